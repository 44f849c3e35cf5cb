"""tests/circuitpython_checks.py on CircuitPython's unix port, for each port
that tests/boards/ re-creates: the profile socketse is tested against
behaves as CircuitPython's C sources say its board does."""

import os
import subprocess

import pytest

from conftest import missing
from test_portable import CIRCUITPYTHON, CIRCUITPYTHON_BUILD, CIRCUITPYTHON_PATH, ROOT


@pytest.mark.parametrize("name", sorted(CIRCUITPYTHON))
def test_the_profile_behaves_as_a_board(name):
    if not os.path.exists(CIRCUITPYTHON_PATH):
        missing(name, CIRCUITPYTHON_BUILD)
    run = subprocess.run(
        [CIRCUITPYTHON_PATH, os.path.join(ROOT, "tests", "circuitpython_checks.py")]
        + CIRCUITPYTHON[name], cwd=ROOT, env=dict(os.environ, MICROPYPATH=ROOT),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    output = run.stdout.decode(errors="replace")
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert run.returncode == 0 and " 0 failed" in summary, output
    assert not summary.startswith("0 passed"), output
