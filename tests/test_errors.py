"""Errors raised by handlers: handle_error, and exceptions that propagate."""

import socket
import sys
import threading

import pytest

import socketse
from conftest import TIMEOUT


class FailsFirst(socketse.StreamRequestHandler):
    """The first request raises; later ones echo a line."""

    calls = 0
    timeout = TIMEOUT

    def handle(self):
        type(self).calls += 1
        line = self.rfile.readline()  # read first: unread data would reset
        if type(self).calls == 1:
            raise ValueError("boom-4711 from the handler")
        self.wfile.write(line)


def test_default_handle_error_prints_traceback_and_serving_goes_on(serve, clients, capfd):
    class Handler(FailsFirst):
        calls = 0

    server = serve(socketse.TCPServer(("127.0.0.1", 0), Handler))
    # The client sees EOF only after handle_error has run.
    assert clients.talk(server, b"first\n") == b""
    assert clients.talk(server, b"second\n") == b"second\n"
    err = capfd.readouterr().err
    assert "Traceback" in err
    assert "ValueError: boom-4711 from the handler" in err


def test_handle_error_gets_request_and_address(serve, clients):
    seen = []

    class Server(socketse.TCPServer):
        def handle_error(self, request, client_address):
            seen.append((request, client_address))

    class Handler(FailsFirst):
        calls = 0

    server = serve(Server(("127.0.0.1", 0), Handler))
    with clients.connect(server) as sock:
        address = sock.getsockname()
        sock.shutdown(socket.SHUT_WR)
        assert clients.read_all(sock) == b""
    [(request, client_address)] = seen
    assert client_address == address
    assert hasattr(request, "recv")


def test_handler_exception_in_a_thread_goes_to_handle_error(serve, clients):
    errors = []

    class Server(socketse.ThreadingTCPServer):
        def handle_error(self, request, client_address):
            errors.append(sys.exc_info()[1])  # called while handling it

    class Handler(FailsFirst):
        calls = 0

    server = serve(Server(("127.0.0.1", 0), Handler))
    assert clients.talk(server, b"first\n") == b""
    assert clients.talk(server, b"second\n") == b"second\n"
    [error] = errors
    assert isinstance(error, ValueError)


def test_handle_error_comes_before_the_request_is_shut_down(clients):
    calls = []

    class Server(socketse.TCPServer):
        def handle_error(self, request, client_address):
            calls.append(("handle_error", request.fileno() >= 0))

        def shutdown_request(self, request):
            calls.append(("shutdown_request", request.fileno() >= 0))
            super().shutdown_request(request)

    class Handler(FailsFirst):
        calls = 0

        def finish(self):
            calls.append(("finish", True))
            super().finish()

    with Server(("127.0.0.1", 0), Handler) as server:
        sock = clients.send(server, b"first\n")
        server.handle_request()
        assert clients.read_all(sock) == b""
    assert calls == [("finish", True), ("handle_error", True), ("shutdown_request", True)]


class Raising(socketse.BaseRequestHandler):
    exception = None

    def handle(self):
        self.request.recv(100)
        raise self.exception


@pytest.mark.parametrize("exception", [SystemExit, KeyboardInterrupt])
def test_fatal_exception_propagates_from_handle_request(exception, clients):
    errors = []

    class Server(socketse.TCPServer):
        def handle_error(self, request, client_address):
            errors.append(True)

    class Handler(Raising):
        pass

    Handler.exception = exception
    server = Server(("127.0.0.1", 0), Handler)
    try:
        sock = clients.send(server, b"x")
        with pytest.raises(exception):
            server.handle_request()
        assert clients.read_all(sock) == b""  # the request was shut down
        assert errors == []
    finally:
        server.server_close()
    assert server.socket.fileno() == -1


@pytest.mark.parametrize("exception", [SystemExit, KeyboardInterrupt])
def test_fatal_exception_propagates_from_serve_forever(exception, clients):
    class Handler(Raising):
        pass

    Handler.exception = exception
    server = socketse.TCPServer(("127.0.0.1", 0), Handler)
    # Should serve_forever swallow the exception, this stops it anyway.
    guard = threading.Timer(TIMEOUT, server.shutdown)
    try:
        sock = clients.send(server, b"x")
        guard.start()
        with pytest.raises(exception):
            server.serve_forever(poll_interval=0.05)
        assert clients.read_all(sock) == b""
    finally:
        guard.cancel()
        guard.join(TIMEOUT)
        server.server_close()
    assert server.socket.fileno() == -1
