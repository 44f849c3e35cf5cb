"""The examples run end to end, as a person would run them."""

import subprocess
import sys

import pytest

from example_programs import ENVIRONMENT, ROOT, example, free_port, interpreter


@pytest.mark.parametrize("name", ["echo_server.py", "echo_client.py"])
def test_help(name):
    run = subprocess.run([sys.executable, example(name), "--help"], env=ENVIRONMENT,
                         stdout=subprocess.PIPE, timeout=30, check=True)
    assert b"python3 examples/" + name.encode() in run.stdout


@pytest.mark.parametrize("name, mode", [
    ("cpython", []), ("cpython", ["--threading"]),
    ("micropython", []), ("micropython", ["--threading"])])
def test_echo_server_and_client(name, mode):
    # MicroPython can't tell which port port 0 chose: name one.
    port = str(free_port())
    server = subprocess.Popen(interpreter(name) + [example("echo_server.py"), "--port", port]
                              + mode, env=ENVIRONMENT, stdout=subprocess.PIPE)
    try:
        banner = server.stdout.readline().decode()
        assert banner.startswith("serving on 127.0.0.1 port " + port), banner
        client = subprocess.run([sys.executable, example("echo_client.py"), "--port", port,
                                 "one", "two"], stdout=subprocess.PIPE, timeout=60)
        assert client.returncode == 0
        assert client.stdout.decode().splitlines() == [
            "sent 'one', got 'one'", "sent 'two', got 'two'"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()


def test_make_example_the_readme_command():
    run = subprocess.run(["make", "--no-print-directory", "example", "PORT=%d" % free_port()],
                         cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert run.returncode == 0, run.stdout.decode()
    assert b"got 'socketse'" in run.stdout
