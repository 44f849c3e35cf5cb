"""What tests/scenarios.py and tests/board_examples.py share: their command
line, the checks, the waits, threads, and the loop that runs the cases.

Written for every interpreter: no pytest, nothing MicroPython lacks.  It
imports no _thread at module level, so that ``--without _thread`` can hide
it first.
"""

import os
import sys
import time

# The clients' sockets: the interpreter's own socket module, taken before
# --board installs a board's.  CircuitPython has none; its unix port keeps the
# host's sockets as _hostsocket, which the clients use under their own name
# here, never as sys.modules["socket"]: socketse must find no socket module
# there, and take its pool.
try:
    import socket as client_socket
except ImportError:
    import _hostsocket as client_socket


class Skip(Exception):
    pass


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def wait_until(condition, seconds=10.0):
    """Poll: MicroPython's lock.acquire() ignores its timeout."""
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(0.01)
    return True


# Random ports come from 20000..32767: below Linux's ephemeral range (32768
# and up), where the clients of this suite and of anything else on the
# machine get their ports, and leave them in TIME_WAIT for a minute after
# closing.  A server there could find its port taken: make test once failed
# that way, with EADDRINUSE.  Below that range, only another server can hold the
# port, and on_a_random_port() then tries another.
def random_port():
    """A port to try: MicroPython's sockets can't tell which one port 0 chose."""
    return 20000 + int.from_bytes(os.urandom(2), "little") % 12768


def on_a_random_port(make):
    """make(port) on a random port; on another while the port is taken."""
    from errno import EADDRINUSE  # here: after --board, the board's number
    for attempt in range(50):
        try:
            return make(random_port())
        except OSError as error:
            if attempt == 49 or error.args[0] != EADDRINUSE:
                raise


def client_address(address):
    """An address, (host, port) or a Unix path, as the clients' sockets take
    it: raw sockaddr bytes where the module has sockaddr() (MicroPython's
    unix port, and CircuitPython's _hostsocket), else as it is."""
    if not hasattr(client_socket, "sockaddr") or not isinstance(address, (tuple, str)):
        return address
    if isinstance(address, str):
        import struct
        return struct.pack("H", client_socket.AF_UNIX) + address.encode()
    return client_socket.getaddrinfo(address[0] or "0.0.0.0", address[1])[0][-1]


_board = []


def board():
    """The NAME of --board NAME, or None."""
    return _board[0] if _board else None


def hide_modules(names):
    """Make ``import name`` fail for each name, as on a build without it."""
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name in names:
                raise ImportError("No module named %r (hidden)" % name)

    for name in names:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, Refuse())


def take_options():
    """Act on ``--without MODULE,...`` (CPython only) and ``--board NAME``
    (tests/boards/NAME.py puts a board's own modules in sys.modules), and
    take them out of sys.argv.  Call it before importing socketse."""
    while len(sys.argv) > 2 and sys.argv[1] in ("--without", "--board"):
        if sys.argv[1] == "--without":
            hide_modules(sys.argv[2].split(","))
        else:
            sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/boards")
            __import__(sys.argv[2])
            _board.append(sys.argv[2])
        del sys.argv[1:3]


def thread_module():
    try:
        import _thread
        return _thread
    except ImportError:
        return None


def start_thread(function, *args):
    """Start a thread, waiting a moment where the platform has none to give
    yet: the Pico W's one extra thread ends a little after its function."""
    _thread = thread_module()
    if _thread is None:
        raise Skip("no _thread")
    for attempt in range(40):
        try:
            return _thread.start_new_thread(function, args)
        except (OSError, RuntimeError):
            if attempt == 39:
                raise
            time.sleep(0.05)


def running_threads():
    """How many threads run besides the main one, where the platform counts
    them (_thread._count(): CPython, PyPy); None where it cannot."""
    count = getattr(thread_module(), "_count", None)
    return count() if count else None


def threads_end(before, seconds=10.0):
    """Whether no more threads run than running_threads() gave `before`,
    within seconds; True where threads cannot be counted."""
    if before is None:
        return True
    return wait_until(lambda: running_threads() <= before, seconds)


_threads_at_once = []


def threads_at_once():
    """How many threads besides this one the platform runs at once, up to 5
    (the Pico W runs one)."""
    if not _threads_at_once:
        _thread = thread_module()
        if _thread is None:
            _threads_at_once.append(0)
            return 0
        hold = _thread.allocate_lock()
        hold.acquire()
        running = []

        def park():
            running.append(1)  # appends and pops only: safe without a GIL
            with hold:
                pass
            running.pop()

        start_thread(park)  # the first may wait for an earlier one to go
        started = 1
        while started < 5:
            try:
                _thread.start_new_thread(park, ())
            except (OSError, RuntimeError):
                break
            started += 1
        hold.release()
        wait_until(lambda: not running)
        _threads_at_once.append(started)
    return _threads_at_once[0]


def need_threads(count):
    if threads_at_once() < count:
        raise Skip("needs %d threads at once; this platform runs %d"
                   % (count, threads_at_once()))


def run(cases):
    """Run each (name, function), or those SOCKETSE_ONLY names: a line
    each, then the counts.  Returns the exit status: 1 if any failed."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    # Which socketse ran: tests/test_portable.py holds it to the copy each
    # profile means to test (the repository's, or the one frozen into a build,
    # whose __file__ is its bare name).
    print("socketse from", getattr(sys.modules.get("socketse"), "__file__", "?"))
    only = os.getenv("SOCKETSE_ONLY")  # a comma-separated list of names to run
    for name, function in cases:
        if only and name not in only.split(","):
            continue
        try:
            function()
        except Skip as why:
            counts["skipped"] += 1
            print("skip", name, "--", why)
        except Exception as error:
            counts["failed"] += 1
            print("FAIL", name, "--", repr(error))
            if hasattr(sys, "print_exception"):
                sys.print_exception(error)
            else:
                import traceback
                if hasattr(traceback, "print_exc"):
                    traceback.print_exc()
                else:  # CircuitPython's traceback: print_exception alone
                    traceback.print_exception(error)
        else:
            counts["passed"] += 1
            print("ok  ", name)
    print("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
    return 1 if counts["failed"] else 0
