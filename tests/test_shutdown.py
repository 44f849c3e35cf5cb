"""serve_forever() and shutdown()."""

import socket
import threading
import time

import pytest

import socketse
from conftest import TIMEOUT


class LineEcho(socketse.StreamRequestHandler):
    timeout = TIMEOUT

    def handle(self):
        self.wfile.write(self.rfile.readline())


class Upper(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().upper())


def test_shutdown_stops_serve_forever(serve, clients):
    handled_in = []

    class Handler(LineEcho):
        def handle(self):
            handled_in.append(threading.get_ident())
            super().handle()

    server = serve(socketse.TCPServer(("127.0.0.1", 0), Handler))
    assert clients.talk(server, b"one\n") == b"one\n"
    server.shutdown()
    # The loop has ended: a new request is left for us to handle here.
    sock = clients.send(server, b"two\n")
    server.handle_request()
    assert clients.read_all(sock) == b"two\n"
    assert handled_in == [server.serving_thread.ident, threading.get_ident()]
    server.serving_thread.join(TIMEOUT)
    assert not server.serving_thread.is_alive()


def waiting_after_a_request(server_class):
    """server_class, with an event set once the loop has handled a request
    and gone back to waiting (service_actions() runs just before)."""

    class Server(server_class):
        processed = False

        def __init__(self, *args, **kwargs):
            self.waiting = threading.Event()
            super().__init__(*args, **kwargs)

        def process_request(self, request, client_address):
            super().process_request(request, client_address)
            self.processed = True

        def service_actions(self):
            super().service_actions()
            if self.processed:
                self.waiting.set()

    return Server


@pytest.mark.parametrize("kind", ["TCPServer", "UDPServer", "ThreadingTCPServer"])
def test_shutdown_is_fast_with_a_long_poll_interval(kind, serve, clients):
    # socketse-only: the stdlib's shutdown() waits up to poll_interval.
    server_class = waiting_after_a_request(getattr(socketse, kind))
    if kind == "UDPServer":
        server = serve(server_class(("127.0.0.1", 0), Upper), poll_interval=30)
        assert clients.exchange_datagram(server, b"up") == b"UP"
    else:
        server = serve(server_class(("127.0.0.1", 0), LineEcho), poll_interval=30)
        assert clients.talk(server, b"up\n") == b"up\n"
    assert server.waiting.wait(TIMEOUT)  # the loop waits for the next request
    start = time.monotonic()
    server.shutdown()
    elapsed = time.monotonic() - start
    server.serving_thread.join(TIMEOUT)
    assert not server.serving_thread.is_alive()
    assert elapsed < 5.0


def test_handler_of_single_threaded_server_may_call_shutdown(clients):
    # socketse-only: with the stdlib this deadlocks.
    shutdown_returned = threading.Event()

    class Handler(LineEcho):
        def handle(self):
            super().handle()
            self.server.shutdown()
            shutdown_returned.set()

    server = socketse.TCPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        with clients.connect(server) as sock:
            sock.sendall(b"stop\n")
            reply = sock.recv(100)
            thread.join(TIMEOUT)
            ended = not thread.is_alive()
            if ended:
                assert clients.read_all(sock) == b""  # the request was finished
        assert reply == b"stop\n"
        assert ended, "serve_forever() did not return after the handler's shutdown()"
        assert shutdown_returned.is_set()
    finally:
        if thread.is_alive():
            # Unblock a stdlib-style deadlock so the test can clean up.
            stuck = getattr(server, "_BaseServer__is_shut_down", None)
            if stuck is not None:
                stuck.set()
            thread.join(TIMEOUT)
        server.server_close()


def test_serve_forever_again_after_shutdown(serve, clients):
    server = socketse.TCPServer(("127.0.0.1", 0), LineEcho)
    serve(server)
    assert clients.talk(server, b"first run\n") == b"first run\n"
    server.shutdown()
    server.serving_thread.join(TIMEOUT)
    assert not server.serving_thread.is_alive()
    serve(server)  # the same server object, a second serving thread
    assert clients.talk(server, b"second run\n") == b"second run\n"


def test_shutdown_before_serve_forever_runs(serve):
    # Works whichever of shutdown() and the start of the loop comes first.
    server = serve(socketse.TCPServer(("127.0.0.1", 0), LineEcho))
    server.shutdown()
    server.serving_thread.join(TIMEOUT)
    assert not server.serving_thread.is_alive()


def test_service_actions_is_called_by_the_loop(serve):
    called = threading.Event()
    calls = []

    class Server(socketse.TCPServer):
        def service_actions(self):
            calls.append(threading.get_ident())
            if len(calls) >= 3:
                called.set()

    server = serve(Server(("127.0.0.1", 0), LineEcho), poll_interval=0.01)
    assert called.wait(TIMEOUT)
    assert set(calls) == {server.serving_thread.ident}


def test_service_actions_is_called_after_a_request(serve, clients):
    after_request = threading.Event()
    handled = threading.Event()

    class Server(socketse.TCPServer):
        def service_actions(self):
            if handled.is_set():
                after_request.set()

    class Handler(LineEcho):
        def handle(self):
            super().handle()
            handled.set()

    # A long poll interval: only the request can make the loop go round.
    server = serve(Server(("127.0.0.1", 0), Handler), poll_interval=30)
    assert clients.talk(server, b"x\n") == b"x\n"
    assert after_request.wait(TIMEOUT)


def test_shutdown_from_another_thread_while_a_request_is_running(serve, clients):
    started = threading.Event()
    release = threading.Event()

    class Handler(LineEcho):
        def handle(self):
            started.set()
            release.wait(TIMEOUT)
            super().handle()

    server = serve(socketse.TCPServer(("127.0.0.1", 0), Handler))
    sock = clients.send(server, b"in flight\n")
    assert started.wait(TIMEOUT)
    stopper = threading.Thread(target=server.shutdown)
    stopper.start()
    release.set()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    assert clients.read_all(sock) == b"in flight\n"  # the request completed
    server.serving_thread.join(TIMEOUT)
    assert not server.serving_thread.is_alive()


def test_socket_stays_open_after_shutdown(serve):
    server = serve(socketse.TCPServer(("127.0.0.1", 0), LineEcho))
    server.shutdown()
    assert server.socket.fileno() >= 0  # closing is server_close()'s job
    assert server.socket.family == socket.AF_INET


def test_signal_handler_in_the_serving_thread_may_call_shutdown():
    # socketse-only: the stdlib's shutdown() would wait for the very loop the
    # signal interrupted, for ever.  Here serve_forever() returns.
    signal = pytest.importorskip("signal")
    with socketse.TCPServer(("127.0.0.1", 0), LineEcho) as server:
        previous = signal.signal(signal.SIGALRM, lambda number, frame: server.shutdown())
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            started = time.monotonic()
            server.serve_forever(poll_interval=TIMEOUT)
            assert time.monotonic() - started < TIMEOUT
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
