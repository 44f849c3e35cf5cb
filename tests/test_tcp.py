"""TCPServer: binding, socket options, single requests and the hook order."""

import errno
import socket

import pytest

import socketse
from conftest import TIMEOUT


class Echo(socketse.BaseRequestHandler):
    """Reads until the client half-closes, then sends it all back."""

    def handle(self):
        self.request.settimeout(TIMEOUT)
        data = []
        while True:
            chunk = self.request.recv(4096)
            if not chunk:
                break
            data.append(chunk)
        self.request.sendall(b"".join(data))


def test_echo_on_port_zero_gets_real_port(serve, clients):
    server = serve(socketse.TCPServer(("127.0.0.1", 0), Echo))
    host, port = server.server_address
    assert host == "127.0.0.1"
    assert port != 0
    assert server.server_address == server.socket.getsockname()
    assert clients.talk(server, b"hello") == b"hello"


def test_bind_and_activate_by_hand(serve, clients):
    server = socketse.TCPServer(("127.0.0.1", 0), Echo, bind_and_activate=False)
    try:
        assert server.socket.getsockname()[1] == 0  # not bound yet
        server.server_bind()
        assert server.server_address[1] != 0
        assert server.server_address == server.socket.getsockname()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    serve(server)
    assert clients.talk(server, b"by hand") == b"by hand"


def test_failing_bind_raises_original_error_and_closes(count_fds):
    closed = []

    class Recording(socketse.TCPServer):
        def server_close(self):
            closed.append(True)
            super().server_close()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        before = count_fds()
        with pytest.raises(OSError) as info:
            Recording(taken.getsockname(), Echo)
        assert info.value.errno == errno.EADDRINUSE
        assert type(info.value) is OSError
        assert closed == [True]
        assert count_fds() == before


@pytest.mark.parametrize("reuse", [False, True])
def test_allow_reuse_address_sets_so_reuseaddr(reuse):
    class Server(socketse.TCPServer):
        allow_reuse_address = reuse

    with Server(("127.0.0.1", 0), Echo) as server:
        value = server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert bool(value) is reuse


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
@pytest.mark.parametrize("reuse", [False, True])
def test_allow_reuse_port_sets_so_reuseport(reuse):
    class Server(socketse.TCPServer):
        allow_reuse_port = reuse

    with Server(("127.0.0.1", 0), Echo) as server:
        value = server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        assert bool(value) is reuse


def test_request_queue_size_defaults_to_somaxconn():
    # socketse-only: the stdlib's default is 5.
    assert socketse.TCPServer.request_queue_size == socket.SOMAXCONN


def test_fileno_is_the_listening_socket():
    with socketse.TCPServer(("127.0.0.1", 0), Echo) as server:
        assert server.fileno() == server.socket.fileno()
        assert server.fileno() >= 0


def test_context_manager_closes_socket():
    with socketse.TCPServer(("127.0.0.1", 0), Echo) as server:
        assert server.socket.fileno() >= 0
    assert server.socket.fileno() == -1


def test_context_manager_returns_the_server():
    server = socketse.TCPServer(("127.0.0.1", 0), Echo)
    with server as entered:
        assert entered is server


def test_ipv6_literal_with_plain_tcpserver(ipv6_loopback, serve, clients):
    # socketse-only: the stdlib needs a subclass with address_family = AF_INET6.
    server = serve(socketse.TCPServer((ipv6_loopback, 0), Echo))
    assert server.address_family == socket.AF_INET6
    assert server.socket.family == socket.AF_INET6
    assert server.server_address[0] == "::1"
    assert server.server_address[1] != 0
    assert clients.talk(server, b"six") == b"six"
    # The class itself is untouched.
    assert socketse.TCPServer.address_family == socket.AF_INET


def test_handle_request_serves_exactly_one(clients):
    handled = []

    class Counting(Echo):
        def handle(self):
            handled.append(self.client_address)
            super().handle()

    with socketse.TCPServer(("127.0.0.1", 0), Counting) as server:
        first = clients.send(server, b"one")
        second = clients.send(server, b"two")
        server.handle_request()
        assert len(handled) == 1
        assert clients.read_all(first) == b"one"
        server.handle_request()
        assert len(handled) == 2
        assert clients.read_all(second) == b"two"
        assert handled[0] == first.getsockname()
        assert handled[1] == second.getsockname()


def test_handle_request_times_out():
    timeouts = []
    handled = []

    class Server(socketse.TCPServer):
        timeout = 0.05

        def handle_timeout(self):
            timeouts.append(True)

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            handled.append(True)

    with Server(("127.0.0.1", 0), Handler) as server:
        server.handle_request()
    assert timeouts == [True]
    assert handled == []


def test_verify_request_false_closes_without_handler(clients):
    handled = []

    class Refusing(socketse.TCPServer):
        def verify_request(self, request, client_address):
            return False

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            handled.append(True)

    with Refusing(("127.0.0.1", 0), Handler) as server:
        sock = clients.connect(server)
        server.handle_request()
        assert clients.read_all(sock) == b""
    assert handled == []


def test_hook_order_matches_stdlib(clients):
    calls = []

    class Server(socketse.TCPServer):
        def verify_request(self, request, client_address):
            calls.append("verify_request")
            return super().verify_request(request, client_address)

        def process_request(self, request, client_address):
            calls.append("process_request")
            super().process_request(request, client_address)

        def finish_request(self, request, client_address):
            calls.append("finish_request")
            super().finish_request(request, client_address)

        def shutdown_request(self, request):
            calls.append("shutdown_request")
            super().shutdown_request(request)

        def close_request(self, request):
            calls.append("close_request")
            super().close_request(request)

    class Handler(Echo):
        def setup(self):
            calls.append("setup")

        def handle(self):
            calls.append("handle")
            super().handle()

        def finish(self):
            calls.append("finish")

    with Server(("127.0.0.1", 0), Handler) as server:
        sock = clients.send(server, b"hooks")
        server.handle_request()
        assert clients.read_all(sock) == b"hooks"
    assert calls == [
        "verify_request",
        "process_request",
        "finish_request",
        "setup",
        "handle",
        "finish",
        "shutdown_request",
        "close_request",
    ]
