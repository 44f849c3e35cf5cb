"""The README's CircuitPython code.py, run as written on CircuitPython's own
interpreter with each port family's socket pool (tests/boards/), against a
client in this process: what a user copies to a board serves.

The only changes made to it: the address, 127.0.0.1 and a free port instead
of 0.0.0.0 and 8080 (the host's interfaces are not a board's), and the
flavour's socketpool and wifi installed first, as a board's firmware has
them built in.
"""

import os
import socket
import subprocess

import pytest

from conftest import REPO_ROOT, missing, read_line
from example_programs import free_port

CIRCUITPYTHON = os.path.join(REPO_ROOT, ".venv", "bin", "circuitpython")


def readme_code_py():
    with open(os.path.join(REPO_ROOT, "README.md")) as readme:
        section = readme.read().split("\n### CircuitPython\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("flavour", ["raspberrypi", "espressif"])
def test_the_readme_code_py_echoes_lines(flavour, tmp_path):
    if not os.path.exists(CIRCUITPYTHON):
        missing("CircuitPython's unix interpreter", "make boards (needs ../shared/boards)")
    code = readme_code_py()
    assert '("0.0.0.0", 8080)' in code, code
    port = free_port()
    code = code.replace('("0.0.0.0", 8080)', '("127.0.0.1", %d)' % port).replace(
        "    server.serve_forever()", '    print("serving")\n    server.serve_forever()')
    (tmp_path / "code.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nimport circuitpython_%s\n%s"
        % (os.path.join(REPO_ROOT, "tests", "boards"), flavour, code))
    board = subprocess.Popen([CIRCUITPYTHON, "code.py"], cwd=str(tmp_path),
                             env=dict(os.environ, MICROPYPATH=REPO_ROOT),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert read_line(board) == b"serving\n"
        for lines in ([b"hello\n"], [b"one\n", b"two\n"]):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                replies = b""
                for line in lines:
                    client.sendall(line)
                    while not replies.endswith(line):
                        chunk = client.recv(64)
                        assert chunk, replies
                        replies += chunk
                assert replies == b"".join(lines)
        assert board.poll() is None, "the server ended"
    finally:
        board.kill()
        board.wait(timeout=30)
        board.stdout.close()
