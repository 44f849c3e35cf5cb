"""Shared fixtures for the CPython test suite of socketse.

* The repository root is put on sys.path, so test modules can ``import
  socketse``.  With SOCKETSE_TEST_STDLIB=1 in the environment, ``socketse``
  is the standard library's ``socketserver`` instead: a way to check that
  the tests describe the stdlib's behaviour (the few socketse-only tests
  are then expected to fail).
* ``serve`` runs a server's serve_forever() in a thread and stops it with
  shutdown() + server_close() at teardown.
* ``clients`` makes client sockets (closed at teardown) and does simple
  exchanges: send, half-close, read until EOF.
* An autouse fixture fails a test that leaves threads or descriptors behind.
* The helpers the test modules share, each written once here: wait_for,
  in_thread, thread_count, fd_count, read_line, reset, recv_until_eof, and
  missing / skip_or_fail_on_ci (skip for want of a tool; fail under CI).

What must hold on every interpreter is not tested here but in
tests/scenarios.py (no pytest), which tests/test_portable.py runs under
each: the pytest modules keep what only CPython can show.
"""

import gc
import os
import select
import socket
import struct
import sys
import threading
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

if os.environ.get("SOCKETSE_TEST_STDLIB") == "1":
    import socketserver

    sys.modules["socketse"] = socketserver

# Generous bound for anything that waits: the machine is shared and noisy.
TIMEOUT = 10.0


def wait_for(condition, seconds=TIMEOUT, step=0.01):
    """Poll condition() until true or seconds pass; return its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def in_thread(function, *args, seconds=TIMEOUT):
    """Run function(*args) in a daemon thread; whether it returned within
    seconds.  Should it hang, the test fails instead of the suite."""
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def skip_or_fail_on_ci(reason):
    """Skip for want of what this machine lacks, saying why; under CI=true,
    which installs everything, fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def missing(what, install):
    """skip_or_fail_on_ci(): `what` is not installed, and `install` does it."""
    skip_or_fail_on_ci("%s is not installed: %s" % (what, install))


def read_line(process, seconds=TIMEOUT):
    """A line of a child process's stdout, waited for within seconds."""
    ready = select.select([process.stdout], [], [], seconds)[0]
    assert ready, "no output from the child process"
    return process.stdout.readline()


# ---------------------------------------------------------------------------
# Leak checks


def thread_count():
    try:
        import _thread

        return _thread._count()  # counts _thread and threading threads alike
    except (ImportError, AttributeError):
        return threading.active_count()


def _fd_count():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves threads or file descriptors behind.

    Handler threads may still be winding down when a test ends (daemon
    threads are not joined by server_close), so wait for them, boundedly.
    """
    threads = thread_count()
    fds = _fd_count()
    yield
    deadline = time.monotonic() + TIMEOUT
    while True:
        gc.collect()
        now_threads, now_fds = thread_count(), _fd_count()
        if now_threads <= threads and (fds is None or now_fds <= fds):
            return
        if time.monotonic() > deadline:
            pytest.fail(
                "leak: threads %d -> %d, fds %s -> %s"
                % (threads, now_threads, fds, now_fds)
            )
        time.sleep(0.02)


def fd_count():
    """Open descriptors of this process (None where /proc is missing)."""
    gc.collect()
    return _fd_count()


@pytest.fixture
def count_fds():
    if _fd_count() is None:
        pytest.skip("needs /proc/self/fd")
    return fd_count


# ---------------------------------------------------------------------------
# Running servers


@pytest.fixture
def serve():
    """serve(server, poll_interval=0.05) -> server, serving in a thread.

    At teardown: shutdown() (if the loop still runs), join the thread,
    server_close().  Tests may stop the server themselves first.
    """
    running = []

    def start(server, poll_interval=0.05):
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": poll_interval},
            name="serve_forever",
        )
        thread.daemon = True
        thread.start()
        running.append((server, thread))
        server.serving_thread = thread
        return server

    yield start

    for server, thread in reversed(running):
        if thread.is_alive():
            server.shutdown()
        thread.join(TIMEOUT)
        server.server_close()
        assert not thread.is_alive(), "serve_forever did not stop"


# ---------------------------------------------------------------------------
# Clients


def reset(sock):
    """Close sock with a TCP reset (linger on, timeout 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def recv_until_eof(sock, limit=64 * 1024 * 1024):
    """Read until the peer closes (bounded by the socket's timeout per
    read, an overall deadline and a size limit)."""
    chunks = []
    size = 0
    deadline = time.monotonic() + 3 * TIMEOUT
    while size <= limit and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise AssertionError("no EOF after %d bytes" % size)


class Clients:
    """Client sockets for the tests, all closed at teardown."""

    def __init__(self, tmp_path):
        self._sockets = []
        self._tmp_path = tmp_path
        self._paths = 0

    def _track(self, sock):
        self._sockets.append(sock)
        sock.settimeout(TIMEOUT)
        return sock

    def connect(self, server):
        """A stream socket connected to the server."""
        sock = self._track(socket.socket(server.address_family, socket.SOCK_STREAM))
        sock.connect(server.server_address)
        return sock

    def send(self, server, data, half_close=True):
        """A connected socket that has sent data (and half-closed): the
        request waits in the server's backlog, so the test can then call
        handle_request() itself."""
        sock = self.connect(server)
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return sock

    @staticmethod
    def read_all(sock):
        """Everything the peer sends until EOF."""
        return recv_until_eof(sock)

    def talk(self, server, data):
        """Send data, half-close, return everything read until EOF."""
        with self.connect(server) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            return recv_until_eof(sock)

    def datagram_socket(self, family):
        """A datagram socket able to receive replies (AF_UNIX ones are bound
        to a fresh path under tmp_path)."""
        sock = self._track(socket.socket(family, socket.SOCK_DGRAM))
        if family == getattr(socket, "AF_UNIX", None):
            self._paths += 1
            sock.bind(str(self._tmp_path / ("c%d" % self._paths)))
        elif family == socket.AF_INET:
            sock.bind(("127.0.0.1", 0))
        elif family == getattr(socket, "AF_INET6", None):
            sock.bind(("::1", 0))
        return sock

    def send_datagram(self, server, data):
        sock = self.datagram_socket(server.address_family)
        sock.sendto(data, server.server_address)
        return sock

    def exchange_datagram(self, server, data, bufsize=65536):
        """Send one datagram, return the one reply."""
        sock = self.send_datagram(server, data)
        return sock.recv(bufsize)

    def close(self):
        for sock in self._sockets:
            sock.close()


@pytest.fixture
def clients(tmp_path):
    helper = Clients(tmp_path)
    yield helper
    helper.close()


@pytest.fixture
def unix_path(tmp_path):
    """A fresh path for a Unix socket server."""
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no AF_UNIX")
    path = str(tmp_path / "srv")
    if len(path) > 100:
        pytest.skip("tmp_path too long for a Unix socket path")
    return path


@pytest.fixture
def ipv6_loopback():
    """Skip unless the machine can bind the IPv6 loopback."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    return "::1"
