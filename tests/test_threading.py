"""ThreadingMixIn: daemon_threads, block_on_close off, the handler
threads' lifetime (reused, reaped, ended when idle).

That handlers run at once, that server_close() waits for them by default,
and ThreadingUDPServer hold on every interpreter: tests/scenarios.py.
"""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

import socketse
from conftest import TIMEOUT, thread_count, wait_for


class LineEcho(socketse.StreamRequestHandler):
    timeout = TIMEOUT

    def handle(self):
        self.wfile.write(self.rfile.readline())


class Blocking(socketse.BaseRequestHandler):
    """Blocks until released; the test owns the events."""

    started = released = done = None

    def handle(self):
        self.started.set()
        self.released.wait(TIMEOUT)
        self.done.set()


def blocking_handler():
    class Handler(Blocking):
        started = threading.Event()
        released = threading.Event()
        done = threading.Event()

    return Handler


def close_in_thread(server):
    """Run server_close() in a thread; return (thread, returned_in_time)."""
    closer = threading.Thread(target=server.server_close)
    closer.start()
    closer.join(TIMEOUT)
    return closer, not closer.is_alive()


@pytest.mark.parametrize("attribute, value", [("block_on_close", False),
                                               ("daemon_threads", True)])
def test_server_close_does_not_wait_for_handlers(attribute, value, clients):
    assert getattr(socketse.ThreadingMixIn, attribute) is not value  # the stdlib's default
    server_class = type("Server", (socketse.ThreadingTCPServer,), {attribute: value})
    handler = blocking_handler()
    server = server_class(("127.0.0.1", 0), handler)
    clients.send(server, b"")
    server.handle_request()
    assert handler.started.wait(TIMEOUT)
    closer, returned = close_in_thread(server)
    busy_when_closed = not handler.done.is_set()
    handler.released.set()
    assert handler.done.wait(TIMEOUT)
    closer.join(TIMEOUT)
    assert returned, "server_close() waited for the handler"
    assert busy_when_closed


def test_daemon_threads_do_not_keep_the_interpreter_alive():
    script = textwrap.dedent("""
        import importlib, socket, sys, threading
        sys.path.insert(0, sys.argv[1])
        socketserver = importlib.import_module(sys.argv[2])
        started = threading.Event()

        class Forever(socketserver.BaseRequestHandler):
            def handle(self):
                started.set()
                threading.Event().wait()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

        with Server(("127.0.0.1", 0), Forever) as server:
            client = socket.create_connection(server.server_address)
            server.handle_request()
            assert started.wait(10)
        print("exiting")
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, os.path.dirname(socketse.__file__), socketse.__name__],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3 * TIMEOUT,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"exiting\n"


def test_handler_threads_do_not_pile_up_and_end_at_server_close(clients):
    before = thread_count()
    server = socketse.ThreadingTCPServer(("127.0.0.1", 0), LineEcho)
    try:
        for i in range(10):
            sock = clients.send(server, b"%d\n" % i)
            server.handle_request()
            assert clients.read_all(sock) == b"%d\n" % i
            sock.close()
        # One request at a time: a few reused threads serve them all, not ten.
        assert thread_count() - before <= 5, thread_count() - before
    finally:
        server.server_close()
    assert wait_for(lambda: thread_count() <= before), thread_count() - before


def test_process_request_thread_can_be_overridden(serve, clients):
    seen = []

    class Server(socketse.ThreadingTCPServer):
        def process_request_thread(self, request, client_address):
            seen.append((threading.get_ident(), client_address))
            super().process_request_thread(request, client_address)

    server = serve(Server(("127.0.0.1", 0), LineEcho))
    with clients.connect(server) as sock:
        address = sock.getsockname()
        sock.sendall(b"overridden\n")
        assert clients.read_all(sock) == b"overridden\n"
    [(ident, client_address)] = seen
    assert client_address == address
    assert ident != server.serving_thread.ident


@pytest.mark.parametrize("reuse", [True, False])
def test_reuse_threads_keeps_handler_threads_for_the_next_request(reuse, clients):
    # A thread-local value set by one request is still there for the next
    # one only when the thread was reused; False is the stdlib's fresh thread.
    local = threading.local()
    seen = []

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            seen.append(getattr(local, "mark", None))
            local.mark = "set by an earlier request"

    class Server(socketse.ThreadingTCPServer):
        reuse_threads = reuse
        max_threads = 1  # the next request waits until the last one's thread is free

    with Server(("127.0.0.1", 0), Handler) as server:
        for _ in range(3):
            sock = clients.send(server, b"x")
            server.handle_request()
            assert clients.read_all(sock) == b""  # the handler has finished with it
    assert seen[0] is None
    assert seen[1:] == (["set by an earlier request"] * 2 if reuse else [None, None])


def spike(serve, clients, n=30):
    """n clients at once, whose handlers all run together; returns the
    server once every one of them has its reply."""
    barrier = threading.Barrier(n, timeout=TIMEOUT)

    class Handler(LineEcho):
        def handle(self):
            line = self.rfile.readline()
            if line[:-1].isdigit():  # one of the spike's: all n at once
                barrier.wait()
            self.wfile.write(line)

    server = serve(socketse.ThreadingTCPServer(("127.0.0.1", 0), Handler))
    socks = [clients.send(server, b"%d\n" % i) for i in range(n)]
    assert [clients.read_all(sock) for sock in socks] == [b"%d\n" % i for i in range(n)]
    return server


def test_a_spike_of_clients_keeps_at_most_16_idle_threads(serve, clients):
    before = thread_count()
    spike(serve, clients)
    # 30 handlers ran; 16 at most stay parked for reuse (plus the serving thread).
    assert wait_for(lambda: thread_count() <= before + 1 + 16), thread_count()


def test_idle_handler_threads_end_after_idle_seconds(serve, clients, monkeypatch):
    monkeypatch.setattr(socketse._HandlerThreads, "idle_seconds", 0.2)
    before = thread_count()
    server = spike(serve, clients)
    assert wait_for(lambda: thread_count() <= before + 1), thread_count()
    assert clients.talk(server, b"still served\n") == b"still served\n"

