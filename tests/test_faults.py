"""Faults: each costs at most the one request that caused it.

After every fault the server must go on serving: another request gets its
correct reply, other clients' data arrives intact, and no descriptor,
thread or child process is left behind (the autouse leak check in
conftest.py, and explicit checks here).
"""

import ast
import collections
import errno
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import socketse
from conftest import REPO_ROOT, TIMEOUT, wait_for
from example_programs import micropython_or_skip


LINGER_0 = struct.pack("ii", 1, 0)  # close() then resets the connection


def reset(sock):
    """Close sock with a TCP reset instead of an orderly FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
    sock.close()


class Reverse(socketse.StreamRequestHandler):
    """One line in, that line reversed out."""

    timeout = TIMEOUT

    def handle(self):
        line = self.rfile.readline()
        self.wfile.write(line.rstrip(b"\n")[::-1] + b"\n")


def tracked(server_class):
    """server_class recording handle_error calls (exception type and
    message, no traceback: that would keep frames alive) and the client
    addresses of the requests it has shut down."""

    class Server(server_class):
        def __init__(self, *args, **kwargs):
            self.errors = []
            self.closed = []  # client addresses, in the order shut down
            self.addresses = {}
            self.changed = threading.Condition()
            super().__init__(*args, **kwargs)

        def handle_error(self, request, client_address):
            error = sys.exc_info()[1]
            with self.changed:
                self.errors.append((type(error), str(error)))

        def verify_request(self, request, client_address):
            with self.changed:
                self.addresses[id(request)] = client_address
            return super().verify_request(request, client_address)

        def shutdown_request(self, request):
            with self.changed:
                address = self.addresses.pop(id(request), None)
            super().shutdown_request(request)
            with self.changed:
                self.closed.append(address)
                self.changed.notify_all()

        def wait_closed(self, count):
            """Wait until count requests in all have been shut down."""
            with self.changed:
                return self.changed.wait_for(lambda: len(self.closed) >= count, TIMEOUT)

        def wait_done(self, address):
            """Wait until the request from address has been shut down
            (after handle_error, if it had an error)."""
            with self.changed:
                return self.changed.wait_for(lambda: address in self.closed, TIMEOUT)

    Server.__name__ = "Tracked" + server_class.__name__
    return Server


SERVER_CLASSES = ["TCPServer", "ThreadingTCPServer"]


def make(kind, handler=Reverse, **attributes):
    cls = type("Server", (tracked(getattr(socketse, kind)),), attributes)
    return cls(("127.0.0.1", 0), handler)


class Bystander:
    """Another client, whose request is in flight across the fault: with a
    threading server it sends half its line before and half after; with a
    single-threaded one, which would wait for the rest, all of it before."""

    def __init__(self, server, clients, line=b"bystander's data\n"):
        self.sock = clients.connect(server)
        self.clients = clients
        self.line = line
        self.cut = len(line) // 2 if isinstance(server, socketse.ThreadingMixIn) else len(line)
        self.sock.sendall(line[:self.cut])

    def arrives_intact(self):
        self.sock.sendall(self.line[self.cut:])
        return self.clients.read_all(self.sock) == self.line[:-1][::-1] + b"\n"


def served(server, clients, word=b"still serving"):
    """A request after the fault gets its correct reply."""
    return clients.talk(server, word + b"\n") == word[::-1] + b"\n"


# ---------------------------------------------------------------------------
# Connections reset by the client


@pytest.mark.parametrize("kind", SERVER_CLASSES)
def test_client_resets_mid_request(kind, serve, clients):
    started = threading.Event()

    class Handler(Reverse):
        def handle(self):
            started.set()
            super().handle()

    server = serve(make(kind, Handler))
    bystander = Bystander(server, clients)
    for round in range(10):
        started.clear()
        sock = clients.connect(server)
        address = sock.getsockname()
        sock.sendall(b"half a requ")  # no end of line: the handler waits for more
        if kind == "ThreadingTCPServer":
            assert started.wait(TIMEOUT)
        reset(sock)
        assert served(server, clients, b"after reset %d" % round)
        assert server.wait_done(address)
        # A reset costs at most one handle_error, and only a connection error.
        assert len(server.errors) <= round + 1, server.errors
    assert bystander.arrives_intact()
    assert all(issubclass(error, OSError) for error, _ in server.errors), server.errors


@pytest.mark.parametrize("wbufsize", [0, 65536])
@pytest.mark.parametrize("kind", SERVER_CLASSES)
def test_client_resets_while_the_server_writes_a_large_reply(kind, wbufsize, serve, clients):
    size = 16 * 1024 * 1024
    writing = threading.Event()

    class Large(Reverse):
        def handle(self):
            line = self.rfile.readline()
            if line == b"large\n":
                writing.set()
                self.wfile.write(b"x" * size)  # far more than the socket buffers hold
            else:
                self.wfile.write(line.rstrip(b"\n")[::-1] + b"\n")

    Large.wbufsize = wbufsize
    server = serve(make(kind, Large))
    bystander = Bystander(server, clients)
    for round in range(3):
        writing.clear()
        # A small receive window: the reply cannot all fit in the buffers,
        # so the handler is still writing when the reset comes.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(TIMEOUT)
        sock.connect(server.server_address)
        address = sock.getsockname()
        sock.sendall(b"large\n")
        assert writing.wait(TIMEOUT)
        got = 0
        while got < 256 * 1024:  # the reply is flowing
            chunk = sock.recv(65536)
            assert chunk, "EOF in the middle of the reply"
            got += len(chunk)
        reset(sock)
        assert server.wait_done(address)
        assert len(server.errors) == round + 1, server.errors
        assert served(server, clients, b"after %d" % round)
    assert bystander.arrives_intact()
    # Each reset cost exactly its own request: one error, a connection error.
    assert len(server.errors) == 3, server.errors
    assert all(issubclass(error, (ConnectionError, OSError)) for error, _ in server.errors)


# ---------------------------------------------------------------------------
# Clients that send nothing


def test_silent_client_frees_its_thread_after_the_handler_timeout(serve, clients):
    live = []

    class Handler(Reverse):
        timeout = 0.3

        def setup(self):
            live.append(threading.get_ident())
            super().setup()

        def finish(self):
            try:
                super().finish()
            finally:
                live.remove(threading.get_ident())

    server = serve(make("ThreadingTCPServer", Handler))
    silent = clients.connect(server)  # connects and sends nothing
    assert wait_for(lambda: len(live) == 1)
    [silent_thread] = live
    # Others are served meanwhile.
    assert served(server, clients, b"while one is silent")
    assert silent_thread in live or server.errors  # it may just have timed out
    # Its thread ends once the timeout passes: the silent client sees EOF.
    assert clients.read_all(silent) == b""
    assert server.wait_closed(2)
    assert wait_for(lambda: not live)
    [(error, _)] = server.errors
    assert issubclass(error, (socket.timeout, TimeoutError)), server.errors
    assert served(server, clients)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
def test_silent_client_frees_its_child_after_the_handler_timeout(clients):
    # Driven with handle_request() from this thread: no other thread runs
    # when the server forks.
    class Handler(Reverse):
        timeout = 0.3

    class Server(socketse.ForkingTCPServer):
        def handle_error(self, request, client_address):
            pass  # in the child: seen here as its exit status, 1

    with Server(("127.0.0.1", 0), Handler) as server:
        silent = clients.connect(server)
        server.handle_request()
        [silent_child] = server.active_children
        # Another client is served meanwhile, by another child.
        sock = clients.send(server, b"meanwhile\n")
        server.handle_request()
        assert clients.read_all(sock) == b"elihwnaem\n"
        # The silent one's child gives up after the timeout, and exits.
        assert clients.read_all(silent) == b""
        status = wait_for(lambda: os.waitpid(silent_child, os.WNOHANG)[1])
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1, status
        server.active_children.discard(silent_child)
        sock = clients.send(server, b"after\n")
        server.handle_request()
        assert clients.read_all(sock) == b"retfa\n"
    assert not server.active_children
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no zombie left


# ---------------------------------------------------------------------------
# Half-closed connections and input the handler cannot take


class Lines(socketse.StreamRequestHandler):
    """Every line reversed until EOF; an unfinished last line is refused."""

    timeout = TIMEOUT

    def handle(self):
        for line in self.rfile:
            if not line.endswith(b"\n"):
                self.wfile.write(b"ERR unfinished\n")
                return
            self.wfile.write(line[:-1][::-1] + b"\n")
        self.wfile.write(b"bye\n")


@pytest.mark.parametrize("kind", SERVER_CLASSES)
def test_half_close_after_the_request(kind, serve, clients):
    server = serve(make(kind, Lines))
    for round in range(5):
        assert clients.talk(server, b"one\ntwo\n") == b"eno\nowt\nbye\n"
        assert clients.talk(server, b"one\ntw") == b"eno\nERR unfinished\n"
        assert clients.talk(server, b"") == b"bye\n"
    assert server.errors == []


class Sized(socketse.StreamRequestHandler):
    """A length line, then that many bytes: a short body is an error."""

    timeout = TIMEOUT

    def handle(self):
        size = int(self.rfile.readline())
        body = self.rfile.read(size)
        if len(body) != size:
            raise ValueError("short body: %d of %d bytes" % (len(body), size))
        self.wfile.write(body[::-1])


@pytest.mark.parametrize("kind", SERVER_CLASSES)
def test_half_close_in_the_middle_of_the_request(kind, serve, clients):
    server = serve(make(kind, Sized))
    assert clients.talk(server, b"5\nhello") == b"olleh"
    assert clients.talk(server, b"10\nhello") == b""  # half-closed 5 bytes short
    assert server.wait_closed(2)
    assert server.errors == [(ValueError, "short body: 5 of 10 bytes")]
    assert clients.talk(server, b"3\nabc") == b"cba"


class Utf8(socketse.StreamRequestHandler):
    timeout = TIMEOUT

    def handle(self):
        text = self.rfile.readline().decode("utf-8")
        self.wfile.write(text.upper().encode("utf-8"))


@pytest.mark.parametrize("kind", SERVER_CLASSES)
def test_invalid_utf8_costs_one_handle_error(kind, serve, clients):
    server = serve(make(kind, Utf8))
    bystander = clients.connect(server)
    if kind == "TCPServer":  # one at a time: the bystander's whole request first
        bystander.sendall(b"intact\n")
    assert clients.talk(server, b"\xff\xfe not utf-8 \xc3\x28\n") == b""
    assert [error for error, _ in server.errors] == [UnicodeDecodeError]
    assert clients.talk(server, "h\u00e9llo\n".encode()) == "H\u00c9LLO\n".encode()
    if kind != "TCPServer":
        bystander.sendall(b"intact\n")
    assert clients.read_all(bystander) == b"INTACT\n"
    assert len(server.errors) == 1


# ---------------------------------------------------------------------------
# Handlers that raise


class Failing(socketse.StreamRequestHandler):
    timeout = TIMEOUT

    def handle(self):
        line = self.rfile.readline()
        if line.startswith(b"fail"):
            raise RuntimeError(line.decode().strip())
        self.wfile.write(line[:-1][::-1] + b"\n")


@pytest.mark.parametrize("kind", SERVER_CLASSES)
def test_handler_exceptions_cost_their_own_requests_only(kind, serve, clients):
    server = serve(make(kind, Failing))
    replies = {}

    def client(worker):
        for n in range(10):
            word = b"fail %d %d" % (worker, n) if n % 2 else b"ok %d %d" % (worker, n)
            replies[word] = clients.talk(server, word + b"\n")

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(3 * TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert len(replies) == 40
    for word, reply in replies.items():
        assert reply == (b"" if word.startswith(b"fail") else word[::-1] + b"\n"), word
    assert server.wait_closed(40)
    assert sorted(message for _, message in server.errors) == sorted(
        word.decode() for word in replies if word.startswith(b"fail"))
    assert {error for error, _ in server.errors} == {RuntimeError}


class Raising(socketse.StreamRequestHandler):
    timeout = TIMEOUT
    exception = None

    def handle(self):
        line = self.rfile.readline()
        if line == b"raise\n":
            raise self.exception("from the handler")
        self.wfile.write(line[:-1][::-1] + b"\n")


@pytest.mark.parametrize("exception", [SystemExit, KeyboardInterrupt])
def test_fatal_exception_leaves_the_server_usable(exception, clients):
    """SystemExit and KeyboardInterrupt propagate out of serve_forever();
    the server can then serve again, and be closed, twice."""
    handler = type("Handler", (Raising,), {"exception": exception})
    server = make("TCPServer", handler)
    guard = threading.Timer(TIMEOUT, server.shutdown)  # should it not propagate
    try:
        sock = clients.send(server, b"raise\n")
        guard.start()
        with pytest.raises(exception):
            server.serve_forever(poll_interval=0.05)
        guard.cancel()
        guard.join(TIMEOUT)
        assert clients.read_all(sock) == b""  # that request was closed
        assert server.errors == []
        # The same server serves again, and stops again.
        serving = threading.Thread(target=server.serve_forever, args=(0.05,))
        serving.start()
        try:
            assert clients.talk(server, b"again\n") == b"niaga\n"
        finally:
            server.shutdown()
            serving.join(TIMEOUT)
        assert not serving.is_alive()
    finally:
        guard.cancel()
        server.server_close()
    server.server_close()
    assert server.socket.fileno() == -1


def test_system_exit_in_a_handler_thread_ends_only_that_thread(serve, clients, monkeypatch):
    """Each thread death is reported to threading.excepthook, as the
    stdlib's handler threads report theirs, and its slot comes back."""
    # socketse-only: max_threads.
    deaths = []
    monkeypatch.setattr(threading, "excepthook", lambda death: deaths.append(death.exc_type))
    handler = type("Handler", (Raising,), {"exception": SystemExit})
    server = serve(make("ThreadingTCPServer", handler, max_threads=2))
    for round in range(5):  # more than max_threads: every slot comes back
        assert clients.talk(server, b"raise\n") == b""
        assert server.wait_closed(2 * round + 1)
        assert served(server, clients)
    assert server.errors == []
    assert wait_for(lambda: len(deaths) == 5) and deaths == [SystemExit] * 5


# ---------------------------------------------------------------------------
# Descriptor exhaustion

EXHAUSTED_SERVER = textwrap.dedent(r"""
    import resource, select, sys
    sys.path.insert(0, sys.argv[1])
    import socketse

    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    class Handler(socketse.StreamRequestHandler):
        timeout = 60  # longer than the flood: its connections hold their descriptors

        def handle(self):
            line = self.rfile.readline()
            if line:
                self.wfile.write(line[:-1][::-1] + b"\n")

    class Server(socketse.ThreadingTCPServer):
        def handle_error(self, request, client_address):
            print("handle_error:", sys.exc_info()[1], file=sys.stderr)

        def service_actions(self):
            if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
                self.shutdown()  # the test closed our stdin: stop

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    print("closed", flush=True)
""")


def cpu_seconds(pid):
    """User + system CPU time of a process and all its threads, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_line(process, seconds=TIMEOUT):
    assert select.select([process.stdout], [], [], seconds)[0], "no output from the server"
    return process.stdout.readline()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_descriptor_exhaustion_neither_kills_nor_spins_the_server():
    pytest.importorskip("resource")
    limit, flood_size = 64, 150
    server = subprocess.Popen(
        [sys.executable, "-c", EXHAUSTED_SERVER,
         os.path.dirname(os.path.abspath(socketse.__file__)), str(limit)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    flood = []
    try:
        port = int(read_line(server))
        for _ in range(flood_size):  # they wait in the backlog once accept fails
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        descriptors = "/proc/%d/fd" % server.pid
        assert wait_for(lambda: len(os.listdir(descriptors)) >= limit), \
            "the server never ran out of descriptors"
        # Out of descriptors, with connections waiting: measure its CPU use.
        wall_start, cpu_start = time.monotonic(), cpu_seconds(server.pid)
        time.sleep(2.0)
        wall, cpu = time.monotonic() - wall_start, cpu_seconds(server.pid) - cpu_start
        assert server.poll() is None, "the server died"
        assert cpu < 0.5 * wall, "the server spun: %.2f s of CPU in %.2f s" % (cpu, wall)
        # The flood goes away; the server serves normally again.
        for sock in flood:
            sock.close()
        flood = []
        with socket.create_connection(("127.0.0.1", port), timeout=3 * TIMEOUT) as sock:
            sock.sendall(b"after the flood\n")
            assert sock.recv(100) == b"doolf eht retfa\n"
        server.stdin.close()
        assert read_line(server, 3 * TIMEOUT) == b"closed\n"
        assert server.wait(TIMEOUT) == 0
    finally:
        for sock in flood:
            sock.close()
        if server.poll() is None:
            server.kill()
            server.wait(TIMEOUT)
        server.stdout.close()
        stderr = server.stderr.read().decode(errors="replace")
        server.stderr.close()
    assert "Traceback" not in stderr, stderr


# ---------------------------------------------------------------------------
# Signals arriving while the server waits

needs_itimer = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer")


class Alarms:
    """SIGALRM every `interval` seconds to a Python handler, at most
    `limit` times (so that a loop restarted by each one still ends)."""

    def __init__(self, interval, limit, action=None):
        self.count = 0
        self.interval, self.limit, self.action = interval, limit, action

    def _handler(self, signum, frame):
        self.count += 1
        if self.count >= self.limit:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if self.action is not None:
            self.action()

    def __enter__(self):
        self.previous = signal.signal(signal.SIGALRM, self._handler)
        signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)
        return self

    def __exit__(self, *exc_info):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


@needs_itimer
def test_signals_do_not_break_serve_forever(clients):
    server = make("TCPServer")
    replies = []

    def client():
        try:
            wait_for(lambda: alarms.count >= 5)
            for n in range(20):
                replies.append(clients.talk(server, b"request %d\n" % n))
                time.sleep(0.01)
        finally:
            server.shutdown()

    alarms = Alarms(0.01, 2000)
    talker = threading.Thread(target=client)
    try:
        with alarms:
            talker.start()
            server.serve_forever(poll_interval=0.5)  # signals land in here: main thread
    finally:
        talker.join(3 * TIMEOUT)
        server.server_close()
    assert not talker.is_alive()
    assert replies == [(b"request %d" % n)[::-1] + b"\n" for n in range(20)]
    assert alarms.count >= 5
    assert server.errors == []


@needs_itimer
def test_signals_do_not_cut_handle_request_timeout_short():
    timeouts = []

    class Server(socketse.TCPServer):
        timeout = 1.0

        def handle_timeout(self):
            timeouts.append(time.monotonic())

    with Server(("127.0.0.1", 0), Reverse) as server:
        with Alarms(0.05, 200) as alarms:
            start = time.monotonic()
            server.handle_request()
            elapsed = time.monotonic() - start
    assert len(timeouts) == 1
    assert alarms.count >= 3  # signals did arrive during the wait
    assert 0.9 <= elapsed < TIMEOUT, elapsed


@needs_itimer
def test_keyboard_interrupt_from_a_signal_stops_serve_forever_cleanly(clients):
    """The Ctrl-C case: an exception raised by a signal handler while the
    loop waits ends serve_forever(); the server can then serve again."""

    def interrupt():
        raise KeyboardInterrupt

    server = make("TCPServer")
    try:
        with Alarms(0.2, 1, interrupt):
            with pytest.raises(KeyboardInterrupt):
                server.serve_forever(poll_interval=30)
        serving = threading.Thread(target=server.serve_forever, args=(0.05,))
        serving.start()
        try:
            assert served(server, clients)
        finally:
            server.shutdown()
            serving.join(TIMEOUT)
        assert not serving.is_alive()
    finally:
        server.server_close()


# ---------------------------------------------------------------------------
# Lifecycle misuse


def in_thread(function, *args):
    """Run function(*args) in a thread; return whether it ended in time."""
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    return not thread.is_alive()


def test_shutdown_before_serve_forever(serve, clients):
    # socketse-only: the stdlib's shutdown() blocks until a serve_forever()
    # ends, so there it must come from another thread.
    server = make("TCPServer")
    assert in_thread(server.shutdown), "shutdown() before serve_forever() blocked"
    assert in_thread(server.serve_forever, 0.05), "serve_forever() did not return at once"
    serve(server)  # the shutdown was spent: this one serves
    assert served(server, clients)


def test_shutdown_twice(serve, clients):
    server = serve(make("TCPServer"))
    assert served(server, clients)
    # Twice at once from two threads: both return once the loop has ended.
    stoppers = [threading.Thread(target=server.shutdown) for _ in range(2)]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join(TIMEOUT)
    assert not any(stopper.is_alive() for stopper in stoppers)
    server.serving_thread.join(TIMEOUT)
    assert not server.serving_thread.is_alive()
    # Twice more with no loop: both return at once; as in the stdlib, the
    # next serve_forever() then returns at once.
    assert in_thread(server.shutdown) and in_thread(server.shutdown)
    assert in_thread(server.serve_forever, 0.05)
    serve(server)
    assert served(server, clients)


@pytest.mark.parametrize("kind", [
    "TCPServer", "UDPServer", "ThreadingTCPServer", "ThreadingUDPServer",
    "ForkingTCPServer", "UnixStreamServer", "UnixDatagramServer",
])
def test_server_close_twice(kind, tmp_path, clients):
    if not hasattr(socketse, kind):
        pytest.skip("no %s here" % kind)
    server_class = getattr(socketse, kind)
    if server_class.address_family == getattr(socket, "AF_UNIX", None):
        address = str(tmp_path / "s")
    else:
        address = ("127.0.0.1", 0)
    if server_class.socket_type == socket.SOCK_STREAM:
        server = server_class(address, Reverse)
        sock = clients.send(server, b"once\n")
        server.handle_request()
        assert clients.read_all(sock) == b"ecno\n"
    else:
        server = server_class(address, socketse.DatagramRequestHandler)
    server.server_close()
    server.server_close()
    with server:  # __exit__ closes a third time
        pass
    assert server.socket.fileno() == -1


@pytest.mark.parametrize("kind", ["TCPServer", "UDPServer", "ThreadingTCPServer"])
def test_bind_to_a_busy_port_raises_and_leaks_nothing(kind, count_fds):
    server_class = getattr(socketse, kind)
    with socket.socket(socket.AF_INET, server_class.socket_type) as busy:
        busy.bind(("127.0.0.1", 0))
        if server_class.socket_type == socket.SOCK_STREAM:
            busy.listen()
        address = busy.getsockname()
        for reuse in (False, True):  # SO_REUSEADDR does not take a port in use
            attempt = type("Server", (server_class,), {"allow_reuse_address": reuse})
            before = count_fds()
            for _ in range(50):
                with pytest.raises(OSError) as raised:
                    attempt(address, Reverse)
                assert raised.value.errno == errno.EADDRINUSE
            assert count_fds() == before


@pytest.mark.parametrize("kind", ["UnixStreamServer", "UnixDatagramServer"])
def test_unix_server_on_an_existing_path_removes_nothing(kind, unix_path, count_fds):
    server_class = getattr(socketse, kind)
    with open(unix_path, "wb") as f:
        f.write(b"precious contents")
    before = count_fds()
    with pytest.raises(OSError) as raised:
        server_class(unix_path, Reverse)
    assert raised.value.errno == errno.EADDRINUSE
    assert count_fds() == before
    with open(unix_path, "rb") as f:
        assert f.read() == b"precious contents"
    os.remove(unix_path)
    # A socket file left behind by a closed server: also refused, also kept.
    server_class(unix_path, Reverse).server_close()
    assert stat.S_ISSOCK(os.stat(unix_path).st_mode)
    with pytest.raises(OSError) as raised:
        server_class(unix_path, Reverse)
    assert raised.value.errno == errno.EADDRINUSE
    assert stat.S_ISSOCK(os.stat(unix_path).st_mode)
    assert count_fds() == before


def test_unix_server_on_a_live_servers_path_leaves_that_server_serving(unix_path, serve):
    live = serve(socketse.UnixStreamServer(unix_path, Reverse))
    with pytest.raises(OSError) as raised:
        socketse.UnixStreamServer(unix_path, Reverse)
    assert raised.value.errno == errno.EADDRINUSE
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(unix_path)
        sock.sendall(b"alive\n")
        assert sock.recv(100) == b"evila\n"
    assert live.server_address == unix_path


class LineEcho(socketse.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


def test_out_of_memory_while_taking_a_request_costs_that_request(serve, clients):
    """A MemoryError from accept() or from turning the address round (what a
    board's small heap gives under load) costs that request, not the loop."""
    class Server(socketse.TCPServer):
        failures = [MemoryError("memory allocation failed")]

        def get_request(self):
            request = socketse.TCPServer.get_request(self)
            if self.failures:
                request[0].close()  # as get_request() itself does when it fails
                raise self.failures.pop()
            return request

    server = serve(Server(("127.0.0.1", 0), LineEcho))
    lost = clients.connect(server)
    try:  # closed unanswered; the close may come before the client has sent
        lost.sendall(b"lost\n")
        assert clients.read_all(lost) == b""
    except (ConnectionResetError, BrokenPipeError):  # closed with the request unread
        pass
    assert clients.talk(server, b"served\n") == b"served\n"
    assert server.serving_thread.is_alive()


def test_out_of_memory_for_a_thread_waits_for_one_instead(serve, clients, monkeypatch):
    """start_new_thread() failing for want of memory, as a refusal: the
    request is served by a thread that becomes free, not dropped."""
    started = socketse._thread.start_new_thread
    calls = []

    def second_refused(function, args):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("no room for a thread stack")
        return started(function, args)

    monkeypatch.setattr(socketse._thread, "start_new_thread", second_refused)
    release = threading.Event()

    class Waiting(socketse.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            if line == b"first\n":
                release.wait(TIMEOUT)
            self.wfile.write(line)

    class Server(socketse.ThreadingTCPServer):
        reuse_threads = True

    server = serve(Server(("127.0.0.1", 0), Waiting))
    first = clients.send(server, b"first\n")
    second = clients.send(server, b"second\n")
    assert wait_for(lambda: len(calls) >= 2), calls
    release.set()
    assert clients.read_all(first) == b"first\n"
    assert clients.read_all(second) == b"second\n"



# ---------------------------------------------------------------------------
# Out of memory under load, in MicroPython's small heap

OUT_OF_MEMORY_SERVER = textwrap.dedent(r"""
    from errno import EADDRINUSE

    import _thread
    import socketse
    from runner import random_port

    # Where memory ran out, or a thread was refused: printed at exit.  The
    # keys exist already, so that counting allocates nothing (the heap is
    # full when it happens); without a lock, a count may come out low.
    failures = {"out of memory taking a request": 0, "out of memory starting a thread": 0,
                "thread refused otherwise": 0, "out of memory in a handler": 0}


    class CountingThreads:
        # The _thread that socketse sees, counting the threads refused.
        def start_new_thread(self, function, args):
            try:
                return _thread.start_new_thread(function, args)
            except MemoryError:
                failures["out of memory starting a thread"] += 1
                raise
            except Exception:
                failures["thread refused otherwise"] += 1
                raise


    socketse._thread = CountingThreads()


    class Echo(socketse.StreamRequestHandler):
        # A line in, the same line out: the clients' 2 KiB lines are what
        # fill the heap.  "quit" stops the server, then is echoed.
        timeout = 10

        def handle(self):
            try:
                line = self.rfile.readline()
                if line == b"quit\n":
                    self.server.shutdown()
                self.wfile.write(line)
            except MemoryError:
                failures["out of memory in a handler"] += 1
                raise  # on to the server, as any other error


    # socketse's own handle_error(), as a user's server has: it prints a
    # traceback per failed request, out of memory or not.
    class Server(socketse.ThreadingTCPServer):
        def get_request(self):
            try:
                return socketse.ThreadingTCPServer.get_request(self)
            except MemoryError:
                failures["out of memory taking a request"] += 1
                raise


    for attempt in range(50):  # MicroPython can't tell which port port 0 chose
        try:
            server = Server(("127.0.0.1", random_port()), Echo)
            break
        except OSError as error:
            if attempt == 49 or error.args[0] != EADDRINUSE:
                raise
    print(server.server_address[1])
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    print(failures)
""")

TWO_KIB_LINE = b"x" * 2047 + b"\n"


def echo(port, line, pause=0.0, timeout=TIMEOUT):
    """The server's reply to line, sent in two halves `pause` seconds apart
    (so that many requests are in the server's heap at once).  A reply cut
    short, or b"", means the server closed the connection first."""
    half = len(line) // 2
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(line[:half])
        time.sleep(pause)
        sock.sendall(line[half:])
        reply = b""
        while len(reply) < len(line):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def test_out_of_memory_under_load_neither_kills_nor_hangs_a_micropython_server(tmp_path):
    """A ThreadingTCPServer on MicroPython with a 128 KiB heap, under 30
    clients at once whose 2 KiB lines fill that heap: while memory runs
    out, requests may fail (refused, reset, closed unanswered) but none
    gets a wrong reply and the server stays up; once the load drops, the
    same server echoes every line, and it stops cleanly when asked to."""
    interpreter = micropython_or_skip()
    script = tmp_path / "out_of_memory_server.py"
    script.write_text(OUT_OF_MEMORY_SERVER)
    environment = dict(os.environ,
                       MICROPYPATH=REPO_ROOT + ":" + os.path.join(REPO_ROOT, "tests"))
    # stderr to a file: handle_error() prints hundreds of tracebacks, more
    # than a pipe holds while nobody reads it.
    stderr = open(tmp_path / "stderr", "w+b")
    server = subprocess.Popen([interpreter, "-X", "heapsize=128k", str(script)],
                              env=environment, stdout=subprocess.PIPE, stderr=stderr)
    load_seconds, clients_at_once, client_timeout = 4.0, 30, 5.0
    outcomes = []  # each request of the load: its reply, or the name of its error

    def load():
        deadline = time.monotonic() + load_seconds
        while time.monotonic() < deadline:
            try:
                outcomes.append(echo(port, TWO_KIB_LINE, pause=0.2, timeout=client_timeout))
            except OSError as error:  # refused, reset or timed out: allowed
                outcomes.append(type(error).__name__)
                time.sleep(0.05)  # as a client would before trying again

    def what_the_server_said():
        stdout = server.stdout.read() if server.poll() is not None else b""
        stderr.seek(0)
        status = server.returncode
        if status is not None and status < 0:
            status = signal.Signals(-status).name
        return "exit status %s; stdout:\n%s\nthe end of stderr:\n%s" % (
            status, stdout.decode(errors="replace"),
            stderr.read().decode(errors="replace")[-3000:])

    load_clients = []
    try:
        port = int(read_line(server))
        load_clients = [threading.Thread(target=load, daemon=True)
                        for _ in range(clients_at_once)]
        for client in load_clients:
            client.start()
        for client in load_clients:  # a last exchange may take its three timeouts
            client.join(load_seconds + 3 * client_timeout + 5)
        assert not any(client.is_alive() for client in load_clients), "a client hung"
        assert server.poll() is None, \
            "the server died under the load: " + what_the_server_said()
        wrong = [reply for reply in outcomes
                 if isinstance(reply, bytes) and not TWO_KIB_LINE.startswith(reply)]
        assert wrong == [], "wrong replies: %r" % [reply[:40] for reply in wrong]

        # The load has dropped: the server answers again, once it has wound
        # down what the load left, and then echoes every line.
        def answers():
            try:
                return echo(port, b"back\n", timeout=2.0) == b"back\n"
            except OSError:
                return False

        assert wait_for(answers, step=0.1), "no answer after the load: " + what_the_server_said()
        for _ in range(5):
            assert echo(port, TWO_KIB_LINE, timeout=client_timeout) == TWO_KIB_LINE, \
                what_the_server_said()
        assert echo(port, b"quit\n", timeout=client_timeout) == b"quit\n"
        assert server.wait(TIMEOUT) == 0, what_the_server_said()
        # The counts are the last line: MicroPython prints the error that
        # ended a thread to stdout too.
        failures = ast.literal_eval(server.stdout.read().decode().strip().splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(TIMEOUT)
        server.stdout.close()
        stderr.close()
    print("\nload:", dict(collections.Counter(
        "echoed" if reply == TWO_KIB_LINE else "cut short" if isinstance(reply, bytes) else reply
        for reply in outcomes)), "\nserver:", failures)
    # Else this test would prove nothing about running out of memory.
    assert sum(failures.values()) > 0, "the load never ran the heap out: %r" % failures


# ---------------------------------------------------------------------------
# Slow readers

def test_a_slow_reader_cannot_hold_a_handler_past_its_timeout(serve, clients):
    """StreamRequestHandler.timeout bounds a whole wfile.write(), as it
    bounds the stdlib's sendall(): a client that reads a little at a time,
    so that every send() moves some bytes, still costs only about the
    timeout, not the whole transfer."""
    outcome = []

    class Flood(socketse.StreamRequestHandler):
        timeout = 0.5

        def handle(self):
            started = time.monotonic()
            try:
                self.wfile.write(b"x" * 64 * 1024 * 1024)
                outcome.append("sent it all")
            except OSError as error:
                outcome.append((type(error), time.monotonic() - started))

    server = serve(socketse.ThreadingTCPServer(("127.0.0.1", 0), Flood))
    with clients.connect(server) as sock:
        deadline = time.monotonic() + 3 * TIMEOUT
        while not outcome and time.monotonic() < deadline:
            sock.recv(4096)  # 4 KiB every 20 ms: far too slow for 64 MiB
            time.sleep(0.02)
    assert outcome, "the write still went on after %d s" % (3 * TIMEOUT)
    [(error_type, seconds)] = outcome
    assert issubclass(error_type, socket.timeout)
    assert seconds < TIMEOUT
