"""socketse is written in its own words: what it shares with CPython's
socketserver.py is what the drop-in promise dictates (names, signatures,
defaults, hook order), not the stdlib's prose or method bodies.

../shared/tools/provenance.py measures it: a run of 6 words of prose or 12
tokens of code that stands in the stdlib's file too marks a line as copied
when at least half of the line is such runs.  The bounds are the issue's: at
most 5% of the prose lines, and at most 40 body lines (the lines no
def/class header or class attribute explains: a hook called in the stdlib's
order reads as the stdlib's call).  Today: no prose, 35 body lines.
"""

import importlib.util
import os
import re
import subprocess
import sys

from conftest import skip_or_fail_on_ci

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROSE_SHARE_BOUND = 0.05
BODY_LINES_BOUND = 40

_spec = importlib.util.spec_from_file_location(
    "footprint", os.path.join(ROOT, "tools", "footprint.py"))
footprint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(footprint)


def provenance_tool():
    for shared in (os.path.join(ROOT, "..", "shared"), "/work/shared"):
        path = os.path.join(shared, "tools", "provenance.py")
        if os.path.exists(path):
            return path
    return None


def test_socketse_shares_no_prose_and_only_dictated_code_with_the_stdlib():
    tool = provenance_tool()
    stdlib = footprint.python313()[1]
    if tool is None or stdlib is None:
        skip_or_fail_on_ci("needs ../shared/tools/provenance.py and CPython 3.13 (pyenv)")
    run = subprocess.run([sys.executable, tool, os.path.join(ROOT, "socketse.py"), stdlib],
                         stdout=subprocess.PIPE, universal_newlines=True, timeout=120)
    assert run.returncode == 0, run.stdout
    summary = re.search(r"summary: prose (\d+) lines, (\d+) copied .*?(\d+) body",
                        run.stdout)
    assert summary, run.stdout
    prose, prose_copied, body_copied = map(int, summary.groups())
    spans = run.stdout  # each copied span, with the stdlib's lines it matches
    assert prose_copied <= PROSE_SHARE_BOUND * prose, spans
    assert body_copied <= BODY_LINES_BOUND, spans
