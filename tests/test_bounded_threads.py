"""ThreadingMixIn.max_threads: at most that many handler threads at once.

socketse-only (the stdlib has no max_threads): while max_threads handlers
run, further connections wait in the listen backlog; none is dropped or
refused, and shutdown() need not wait for a busy handler.
"""

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time


import socketse
from conftest import TIMEOUT, wait_for


class Concurrency:
    """Counts the handlers running at once, under a lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.most = self.served = 0

    def enter(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self):
        with self.lock:
            self.now -= 1
            self.served += 1


def slow_handler(concurrency, fill, total):
    """A line echo that lingers until `fill` handlers run at once, or all
    of the `total` not yet served do (or 5 s pass): a server that allowed
    more would show it."""

    class Slow(socketse.StreamRequestHandler):
        timeout = TIMEOUT

        def handle(self):
            concurrency.enter()
            try:
                line = self.rfile.readline()
                wait_for(lambda: concurrency.now >= min(fill, total - concurrency.served),
                         seconds=5.0)
                time.sleep(0.02)
                self.wfile.write(line)
            finally:
                concurrency.leave()

    return Slow


def run_clients(server, count):
    """count clients at once, each sending one line; their replies."""
    replies = [None] * count

    def client(i):
        with socket.create_connection(server.server_address, timeout=3 * TIMEOUT) as sock:
            sock.sendall(b"client %d\n" % i)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk
            replies[i] = data

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(6 * TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a client is stuck"
    return replies


def test_sixteen_slow_clients_at_most_four_threads(serve):
    concurrency = Concurrency()
    sampled = []

    class Server(socketse.ThreadingTCPServer):
        max_threads = 4

        def process_request(self, request, client_address):
            super().process_request(request, client_address)
            sampled.append(len(self._threads))

    server = serve(Server(("127.0.0.1", 0), slow_handler(concurrency, fill=4, total=16)))
    replies = run_clients(server, 16)
    assert replies == [b"client %d\n" % i for i in range(16)]  # all served
    assert concurrency.served == 16
    assert concurrency.most == 4, concurrency.most  # the bound, reached, never passed
    assert max(sampled) <= 4, sampled
    assert wait_for(lambda: len(server._threads) == 0)


def test_without_max_threads_more_than_four_run_at_once(serve):
    assert socketse.ThreadingTCPServer.max_threads is None  # as the stdlib: no bound
    concurrency = Concurrency()
    server = serve(socketse.ThreadingTCPServer(("127.0.0.1", 0), slow_handler(concurrency, fill=8, total=8)))
    replies = run_clients(server, 8)
    assert replies == [b"client %d\n" % i for i in range(8)]
    assert concurrency.most > 4, concurrency.most


def test_at_the_bound_connections_wait_in_the_backlog(serve):
    release = threading.Event()
    started = []

    class Blocking(socketse.StreamRequestHandler):
        timeout = TIMEOUT

        def handle(self):
            line = self.rfile.readline()
            started.append(line)
            release.wait(TIMEOUT)
            self.wfile.write(line)

    class Server(socketse.ThreadingTCPServer):
        max_threads = 2

    server = serve(Server(("127.0.0.1", 0), Blocking))
    socks = []
    try:
        for i in range(5):
            # Every connect succeeds: the backlog holds those not yet accepted.
            sock = socket.create_connection(server.server_address, timeout=TIMEOUT)
            socks.append(sock)
            sock.sendall(b"%d\n" % i)
        assert wait_for(lambda: len(started) == 2)
        time.sleep(0.3)  # give a third handler the chance to start, wrongly
        assert len(started) == 2 and len(server._threads) == 2
        release.set()
        for i, sock in enumerate(socks):
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(100)
                assert chunk, "connection %d dropped" % i
                data += chunk
            assert data == b"%d\n" % i
    finally:
        release.set()
        for sock in socks:
            sock.close()
    assert sorted(started) == [b"%d\n" % i for i in range(5)]


def test_failing_handlers_give_their_slot_back(serve, clients):
    errors = []

    class Failing(socketse.StreamRequestHandler):
        timeout = TIMEOUT

        def handle(self):
            line = self.rfile.readline()
            if line == b"fail\n":
                raise ValueError("failing on purpose")
            self.wfile.write(line)

    class Server(socketse.ThreadingTCPServer):
        max_threads = 2

        def handle_error(self, request, client_address):
            errors.append(sys.exc_info()[0])

    server = serve(Server(("127.0.0.1", 0), Failing))
    for _ in range(10):  # five times the bound: a lost slot would stall the server
        assert clients.talk(server, b"fail\n") == b""
    assert clients.talk(server, b"ok\n") == b"ok\n"
    assert errors == [ValueError] * 10
    assert wait_for(lambda: len(server._threads) == 0)


def test_silent_clients_at_the_bound_are_timed_out_and_others_served(serve, clients):
    errors = []

    class Handler(socketse.StreamRequestHandler):
        timeout = 0.3

        def handle(self):
            self.wfile.write(self.rfile.readline())

    class Server(socketse.ThreadingTCPServer):
        max_threads = 2

        def handle_error(self, request, client_address):
            errors.append(sys.exc_info()[0])

    server = serve(Server(("127.0.0.1", 0), Handler))
    silent = [clients.connect(server) for _ in range(2)]  # take both slots
    assert wait_for(lambda: len(server._threads) == 2)
    # Queued behind them, served once their timeouts free the slots.
    assert clients.talk(server, b"patient\n") == b"patient\n"
    for sock in silent:
        assert clients.read_all(sock) == b""
    assert wait_for(lambda: len(errors) == 2)
    assert all(issubclass(error, (socket.timeout, TimeoutError)) for error in errors), errors


def in_thread(function, seconds=TIMEOUT):
    """Run function() in a daemon thread; whether it returned in time.  For
    shutdown() and server_close() at the bound: should one get stuck, the
    test fails instead of hanging the suite."""
    thread = threading.Thread(target=function, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def blocking_server(max_threads):
    """A server whose handlers block until `release` is set, recording the
    lines they got and the connections the server accepted."""
    release = threading.Event()
    running = []
    accepted = []

    class Blocking(socketse.StreamRequestHandler):
        timeout = TIMEOUT

        def handle(self):
            running.append(self.rfile.readline())
            release.wait(TIMEOUT)
            self.wfile.write(b"done\n")

    class Server(socketse.ThreadingTCPServer):
        def verify_request(self, request, client_address):
            accepted.append(client_address)
            return True

    Server.max_threads = max_threads
    server = Server(("127.0.0.1", 0), Blocking)
    server.release, server.running, server.accepted = release, running, accepted
    loop = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    loop.start()
    return server, loop


def test_shutdown_and_server_close_with_handlers_at_the_bound(clients):
    server, loop = blocking_server(max_threads=2)
    try:
        socks = [clients.send(server, b"%d\n" % i) for i in range(3)]
        assert wait_for(lambda: len(server.running) == 2)
        wait_for(lambda: len(server.accepted) == 3, seconds=1.0)  # or it waits in the backlog
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        time.sleep(0.1)
        server.release.set()
        stopper.join(TIMEOUT)
        assert not stopper.is_alive()
        loop.join(TIMEOUT)
        assert not loop.is_alive()
        assert in_thread(server.server_close), "server_close() did not return"
        assert len(server._threads) == 0
        assert [clients.read_all(sock) for sock in socks[:2]] == [b"done\n"] * 2
        # The third was waiting for a slot when shutdown() came: it is
        # served, or closed unanswered (as the backlog is by server_close()).
        try:
            third = clients.read_all(socks[2])
        except ConnectionResetError:
            third = b""
        assert third in (b"done\n", b"")
    finally:
        server.release.set()
        server.socket.close()


def test_shutdown_at_the_bound_does_not_wait_for_a_handler(clients):
    server, loop = blocking_server(max_threads=1)
    try:
        busy = clients.send(server, b"busy\n")
        assert wait_for(lambda: server.running)
        clients.send(server, b"waiting\n")  # no slot for it
        wait_for(lambda: len(server.accepted) == 2, seconds=1.0)  # or it waits in the backlog
        returned_while_busy = in_thread(server.shutdown, seconds=2.0)
        server.release.set()
        loop.join(TIMEOUT)
        assert not loop.is_alive()
        assert clients.read_all(busy) == b"done\n"
        assert in_thread(server.server_close), "server_close() did not return"
        assert returned_while_busy, "shutdown() waited for a busy handler"
    finally:
        server.release.set()
        server.socket.close()


# In a process of its own: with the bug it guards against, a handler thread
# dies and server_close() never returns, which must not hang the suite.
SHUTDOWN_AT_THE_BOUND = textwrap.dedent(r"""
    import socket, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    import socketse

    release = threading.Event()
    running = []

    class Blocking(socketse.StreamRequestHandler):
        timeout = 10

        def handle(self):
            line = self.rfile.readline()
            running.append(line)
            if line == b"a\n":
                release.wait(10)
            self.wfile.write(b"done " + line)

    class Server(socketse.ThreadingTCPServer):
        max_threads = 1

    def serve_in_thread():
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        return thread

    def ask(sock):
        data = b""
        while True:
            chunk = sock.recv(100)
            if not chunk:
                return data
            data += chunk

    def wait_for(condition):
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)

    server = Server(("127.0.0.1", 0), Blocking)
    loop = serve_in_thread()
    first = socket.create_connection(server.server_address, timeout=10)
    first.sendall(b"a\n")
    wait_for(lambda: running)
    time.sleep(0.1)  # the loop waits for connections again
    server.shutdown()  # with its one slot busy
    loop.join(10)
    print("stopped", not loop.is_alive(), flush=True)
    loop = serve_in_thread()  # serving again, the slot still busy
    second = socket.create_connection(server.server_address, timeout=10)
    second.sendall(b"b\n")
    time.sleep(0.1)
    release.set()
    print("first", ask(first), flush=True)
    print("second", ask(second), flush=True)  # waited for the slot, was served
    server.shutdown()
    loop.join(10)
    closer = threading.Thread(target=server.server_close, daemon=True)
    closer.start()
    closer.join(3)  # it takes milliseconds, unless the count never comes down
    print("closed", not closer.is_alive(), len(server._threads), flush=True)
""")


def test_shutdown_at_the_bound_then_serving_again_loses_nothing():
    """shutdown() while max_threads handlers are busy and the loop waits for
    connections; the busy handler ends afterwards; serving again, the next
    request waits for its slot and is served, not dropped; server_close()
    returns, and no handler thread fails."""
    try:
        run = subprocess.run(
            [sys.executable, "-c", SHUTDOWN_AT_THE_BOUND,
             os.path.dirname(os.path.abspath(socketse.__file__))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=6 * TIMEOUT)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError("hung; output so far: %r" % (expired.stdout,))
    stderr = run.stderr.decode(errors="replace")
    assert run.stdout.decode().splitlines() == [
        "stopped True", "first b'done a\\n'", "second b'done b\\n'", "closed True 0",
    ], stderr
    assert run.returncode == 0 and "Traceback" not in stderr, stderr
