"""tests/scenarios.py under every interpreter this machine has, and
tests/board_examples.py under every board profile.

The scenarios are written once, with no pytest, so that MicroPython and old
CPythons run them too; here each interpreter, each CPython build with
modules taken away, and each board profile is one named case.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import missing, skip_or_fail_on_ci
from example_programs import micropython, pyenv_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIOS = os.path.join(ROOT, "tests", "scenarios.py")
BOARD_EXAMPLES = os.path.join(ROOT, "tests", "board_examples.py")


RUNNING = "cpython-%d.%d" % sys.version_info[:2]
PYENV = "install it with pyenv: pyenv install %s"

# name: (interpreter, extra arguments for scenarios.py, how to install it)
INTERPRETERS = {
    RUNNING: (sys.executable, [], None),
    RUNNING + "-without-threading": (sys.executable, ["--without", "threading,selectors"], None),
    RUNNING + "-without-select": (
        sys.executable, ["--without", "threading,selectors,select"], None),
    RUNNING + "-without-_thread": (
        sys.executable, ["--without", "threading,selectors,select,_thread"], None),
    "pypy-3.9": (shutil.which("pypy3"), [], "apt-get install pypy3"),
    "micropython-1.29": (micropython(), [], "pip install -r requirements-dev.txt"),
}
for minor in range(6, 14):
    version = "3.%d" % minor
    INTERPRETERS.setdefault("cpython-" + version, (pyenv_python(version), [], PYENV % version))

# The boards' socket layer (extmod/modlwip.c, over lwIP's loopback inside the
# process, no sys.exc_info) in a unix MicroPython that `make boards` builds;
# esp32 and the Pico W's one extra thread re-created on top by tests/boards/.
BOARD_BUILD = "make boards (needs ../shared/boards, cc and xz)"
FROZEN = "board-lwip-frozen (esp8266 firmware: socketse frozen in)"
BOARDS = {
    "board-lwip-nothreads (esp8266, stm32)": ("nothreads", []),
    "board-lwip-threads": ("threads", []),
    "board-rp2 (Pico W: one extra thread)": ("threads", ["--board", "rp2"]),
    "board-esp32": ("threads", ["--board", "esp32"]),
    # manifest.py frozen into the nothreads build, as esp8266 or stm32
    # firmware carries socketse: the run must import that copy, not the file.
    FROZEN: ("frozen", []),
}
for name, (build, arguments) in BOARDS.items():
    path = os.path.join(os.path.dirname(sys.executable), "micropython-lwip-" + build)
    INTERPRETERS[name] = (path if os.path.exists(path) else None, arguments, BOARD_BUILD)

# CircuitPython's own unix port shaped like a board's interpreter (no socket,
# no _thread, no sys.exc_info), which `make boards` builds too; each port's
# socketpool and wifi re-created over the host's sockets by tests/boards/.
CIRCUITPYTHON_BUILD = "make boards (needs ../shared/boards/circuitpython, cc and xz)"
CIRCUITPYTHON = {
    "circuitpython-raspberrypi (Pico W)": ["--board", "circuitpython_raspberrypi"],
    "circuitpython-espressif (ESP32-S2/S3/C3/C6)": ["--board", "circuitpython_espressif"],
}
CIRCUITPYTHON_PATH = os.path.join(os.path.dirname(sys.executable), "circuitpython")
for name, arguments in CIRCUITPYTHON.items():
    INTERPRETERS[name] = (CIRCUITPYTHON_PATH if os.path.exists(CIRCUITPYTHON_PATH) else None,
                          arguments, CIRCUITPYTHON_BUILD)


def socketse_path(name):
    """MICROPYPATH for profile `name`, and the __file__ socketse shows there.
    '.frozen' is how MicroPython's sys.path names the modules built into the
    binary; alone on the path, with the scripts' directory holding no
    socketse.py, nothing else can be imported, and a frozen module's
    __file__ is its bare name."""
    if name == FROZEN:
        return ".frozen", "socketse.py"
    return ROOT, os.path.join(ROOT, "socketse.py")


def check_frozen_build_is_current(interpreter):
    """The frozen build holds socketse.py as it was at build time: an older
    build would pass or fail old code under today's name."""
    newest = max(os.path.getmtime(os.path.join(ROOT, source))
                 for source in ("socketse.py", "manifest.py"))
    if os.path.getmtime(interpreter) < newest:
        skip_or_fail_on_ci("%s is older than socketse.py or manifest.py: run make boards"
                           % interpreter)


def run_portable(name, script, tmp_path):
    """Run a no-pytest runner under interpreter `name`; its output, once it
    reported every case passed or skipped and at least one passed."""
    interpreter, arguments, install = INTERPRETERS[name]
    if interpreter is None:
        missing(name, install)
    if name == FROZEN:
        check_frozen_build_is_current(interpreter)
    micropypath, origin = socketse_path(name)
    environment = dict(os.environ, PYTHONPATH=ROOT, MICROPYPATH=micropypath)
    run = subprocess.run([interpreter, script] + arguments + [str(tmp_path)],
                         env=environment, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=300)
    output = run.stdout.decode(errors="replace")
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert run.returncode == 0 and " 0 failed" in summary, output
    assert not summary.startswith("0 passed"), output
    assert "socketse from %s\n" % origin in output, output
    return output


@pytest.mark.parametrize("name", sorted(INTERPRETERS))
def test_scenarios(name, tmp_path):
    output = run_portable(name, SCENARIOS, tmp_path)
    # default_handle_error_prints_and_serving_goes_on, which can't capture
    # stderr itself: the default handle_error() prints the traceback
    # (CircuitPython's traceback module ends its lines with \r\n).
    assert re.search(r"Traceback \(most recent call last\):\n(  .*\n)+"
                     r"ValueError: deliberate failure, traceback expected\n",
                     output.replace("\r\n", "\n")), output


@pytest.mark.parametrize("name", sorted(BOARDS) + sorted(CIRCUITPYTHON))
def test_board_capable_examples(name, tmp_path):
    """echo_server, udp_echo, udp_time and chat, each run as a program on
    the board profile, bound to 0.0.0.0, with clients in the same process.
    On CircuitPython, udp_echo may only skip because it imports socket."""
    output = run_portable(name, BOARD_EXAMPLES, tmp_path)
    assert "ok   echo_server\n" in output, output
    assert "ok   udp_echo\n" in output or name in CIRCUITPYTHON and \
        "skip udp_echo -- examples/udp_echo.py imports socket" in output, output
