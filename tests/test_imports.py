"""socketse imports only what every build has, and types check strictly."""

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(ROOT, "socketse.py")


def test_import_adds_no_module_beyond_socket():
    # -S: what the site module imports at start-up must not hide what
    # socketse itself would import.
    probe = ("import socket, sys; before = set(sys.modules); import socketse; "
             "print(' '.join(sorted(set(sys.modules) - before)))")
    run = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, check=True,
                         stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
    added = set(run.stdout.decode().split())
    assert added <= {"socketse", "select", "_thread"}, added
    assert not added & {"threading", "selectors", "typing"}, added


def unguarded_imports(statements):
    """Modules imported at module level outside try blocks and TYPE_CHECKING."""
    for node in statements:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.dump(node.test):
                yield from unguarded_imports(node.body)
            yield from unguarded_imports(node.orelse)


def test_module_level_imports_are_socket_os_sys():
    """os and sys unguarded; socket in the first try, whose fallback is
    CircuitPython's pool (socketpool and wifi); anything else guarded."""
    tree = ast.parse(open(MODULE).read())
    assert set(unguarded_imports(tree.body)) == {"os", "sys"}
    first_try = next(node for node in tree.body if isinstance(node, ast.Try))
    assert [alias.name for alias in first_try.body[0].names] == ["socket"]
    fallback = [alias.name for node in ast.walk(first_try.handlers[0])
                if isinstance(node, ast.Import) for alias in node.names]
    assert fallback == ["socketpool", "wifi"], fallback


def test_typing_is_imported_only_for_the_type_checker():
    probe = "import sys, socketse; print('typing' in sys.modules)"
    run = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, stdout=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=ROOT), check=True)
    assert run.stdout == b"False\n"


def test_mypy_strict_is_clean():
    run = subprocess.run([sys.executable, "-m", "mypy", "--strict", MODULE], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert run.returncode == 0, run.stdout.decode()
