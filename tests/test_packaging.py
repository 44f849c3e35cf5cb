"""The three ways people take socketse, each done as a person would.

* Copy the file: socketse.py alone in an empty directory serves from there,
  under CPython and under MicroPython.
* pip: the wheel pyproject.toml builds holds socketse.py and its metadata
  only, installs into a fresh virtual environment (of this Python, and of
  the oldest one requires-python admits), and serves from there.
* MicroPython's mip: package.json is in the form mip reads, and mip itself
  installs socketse.py from it (served over the loopback interface, as
  `mip.install("github:OWNER/REPO")` would fetch it from the repository).
"""

import glob
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile

import pytest

from conftest import missing
from example_programs import free_port, micropython_or_skip, pyenv_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKETSE = os.path.join(ROOT, "socketse.py")
TIMEOUT = 60


def file_version():
    with open(SOCKETSE) as source:
        found = re.search(r'^__version__ = "([^"]+)"$', source.read(), re.M)
    assert found, "socketse.py has no __version__ line"
    return found.group(1)


def pyenv_python_or_skip(version):
    return pyenv_python(version) or missing(
        "CPython " + version, "pyenv install " + version)


def clean_environment(**extra):
    """os.environ without the variables that would find the repository's copy."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("PYTHONPATH", "MICROPYPATH", "PYTHONHOME")}
    environment.update(extra)
    return environment


# A program that uses socketse: one echo request, served without threads (the
# client's request waits in the backlog while the server is not yet
# accepting), in the subset of Python that CPython 3.6+ and MicroPython share.
PROGRAM = """\
import socket, sys
import socketse

class Upper(socketse.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())

port = int(sys.argv[1])
server = socketse.TCPServer(("127.0.0.1", port), Upper)
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.settimeout(30)
client.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
client.send(b"hello from a copy\\n")
server.handle_request()
reply = b""
while not reply.endswith(b"\\n"):
    chunk = client.recv(64)
    if not chunk:
        break
    reply += chunk
client.close()
server.server_close()
print(socketse.__file__)
print(socketse.__version__)
print(reply.decode().strip())
"""


def run_program(command, directory, environment):
    """Run PROGRAM (written into directory) there; (socketse's file, version)."""
    with open(os.path.join(directory, "program.py"), "w") as program:
        program.write(PROGRAM)
    run = subprocess.run(command + ["program.py", str(free_port())], cwd=directory,
                         env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=TIMEOUT)
    output = run.stdout.decode(errors="replace")
    assert run.returncode == 0, output
    lines = output.splitlines()
    assert lines[-1] == "HELLO FROM A COPY", output
    return os.path.join(directory, lines[-3]), lines[-2]


# ---------------------------------------------------------------------------
# Copy the file


@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
def test_the_file_copied_alone_serves(interpreter, tmp_path):
    directory = str(tmp_path / "app")
    os.mkdir(directory)
    shutil.copy(SOCKETSE, directory)
    if interpreter == "micropython":
        command, environment = [micropython_or_skip()], clean_environment(MICROPYPATH=directory)
    else:
        command, environment = [sys.executable], clean_environment()
    imported, version = run_program(command, directory, environment)
    assert os.path.realpath(imported) == os.path.realpath(os.path.join(directory, "socketse.py"))
    assert version == file_version()


# ---------------------------------------------------------------------------
# pip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel `pip wheel` builds from the repository (pyproject.toml)."""
    try:
        import flit_core  # noqa: F401  (the build backend, pinned in requirements-dev.txt)
    except ImportError:
        missing("flit_core", "pip install -r requirements-dev.txt")
    dist = str(tmp_path_factory.mktemp("dist"))
    # No build isolation: the pinned flit_core builds it, and nothing is downloaded.
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                          "--no-build-isolation", "--wheel-dir", dist, ROOT],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    assert run.returncode == 0, run.stdout.decode(errors="replace")
    wheels = glob.glob(os.path.join(dist, "*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_the_module_alone(wheel):
    version = file_version()
    assert os.path.basename(wheel) == "socketse-%s-py3-none-any.whl" % version
    info = "socketse-%s.dist-info/" % version
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(info + "METADATA").decode()
    assert "socketse.py" in names
    assert [name for name in names if name != "socketse.py" and not name.startswith(info)] == []
    headers = metadata.split("\n\n")[0].splitlines()
    assert "Name: socketse" in headers
    assert "Version: " + version in headers
    assert "Requires-Python: >=3.6" in headers


@pytest.mark.parametrize("python", ["running", "cpython-3.6"])
def test_the_wheel_installs_into_a_fresh_venv_and_serves(python, wheel, tmp_path):
    interpreter = sys.executable if python == "running" else pyenv_python_or_skip("3.6")
    venv = str(tmp_path / "venv")
    subprocess.run([interpreter, "-m", "venv", venv], check=True, timeout=TIMEOUT,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    venv_python = os.path.join(venv, "bin", "python")
    install = subprocess.run([venv_python, "-m", "pip", "install", "--no-index", "--no-deps",
                              wheel], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=clean_environment(), timeout=TIMEOUT)
    assert install.returncode == 0, install.stdout.decode(errors="replace")
    site = subprocess.run([venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], stdout=subprocess.PIPE, check=True, timeout=TIMEOUT)
    purelib = site.stdout.decode().strip()

    directory = str(tmp_path / "app")  # holds the program only: no socketse.py
    os.mkdir(directory)
    imported, version = run_program([venv_python], directory, clean_environment())
    assert os.path.realpath(imported) == os.path.realpath(os.path.join(purelib, "socketse.py"))
    assert version == file_version()


# ---------------------------------------------------------------------------
# mip


def package_json():
    with open(os.path.join(ROOT, "package.json")) as source:
        return json.load(source)


def test_package_json_is_what_mip_reads():
    package = package_json()
    assert set(package) <= {"urls", "version", "deps", "hashes"}, sorted(package)
    assert package["version"] == file_version()
    urls = package["urls"]
    assert isinstance(urls, list) and urls, urls
    for pair in urls:
        assert isinstance(pair, list) and len(pair) == 2, pair
        destination, source = pair
        assert isinstance(destination, str) and isinstance(source, str), pair
        assert not os.path.isabs(destination) and ".." not in destination.split("/"), pair
        # Relative: mip fetches it from beside package.json, in the repository.
        assert ":" not in source and not source.startswith("/"), pair
        assert os.path.isfile(os.path.join(ROOT, source)), "%s is not in the repository" % source
    assert ["socketse.py", "socketse.py"] in urls


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=ROOT, **kwargs)

    def log_message(self, *args):
        pass


@pytest.fixture
def repository_over_http():
    """The repository served read-only on the loopback interface: a stand-in
    for the raw-file URLs mip fetches from ("github:OWNER/REPO")."""
    server = http.server.HTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    thread.join(TIMEOUT)
    server.server_close()


def test_mip_installs_it_from_package_json_and_it_serves(repository_over_http, tmp_path):
    interpreter = micropython_or_skip()
    library = str(tmp_path / "lib")
    install = ("import mip; mip.install(%r, target=%r)"
               % (repository_over_http + "/package.json", library))
    run = subprocess.run([interpreter, "-c", install], cwd=str(tmp_path),
                         env=clean_environment(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=TIMEOUT)
    output = run.stdout.decode(errors="replace")
    assert run.returncode == 0 and output.rstrip().endswith("Done"), output
    destinations = sorted(destination for destination, _ in package_json()["urls"])
    assert sorted(os.listdir(library)) == destinations, output
    with open(os.path.join(library, "socketse.py"), "rb") as installed:
        with open(SOCKETSE, "rb") as original:
            assert installed.read() == original.read()

    directory = str(tmp_path / "app")  # the program; socketse comes from lib
    os.mkdir(directory)
    imported, version = run_program([interpreter], directory,
                                    clean_environment(MICROPYPATH=library))
    assert os.path.realpath(imported) == os.path.realpath(os.path.join(library, "socketse.py"))
    assert version == file_version()
