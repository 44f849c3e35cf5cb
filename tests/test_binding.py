"""Binding a TCPServer: by hand, the socket options it sets, its fileno().

Port 0, an IPv6 literal, a busy port, the context manager, and the order of
the server's and handler's hooks hold on every interpreter: they are in
tests/scenarios.py.  request_queue_size is in tests/test_api.py.
"""

import socket

import pytest

import socketse
from conftest import TIMEOUT, recv_until_eof


class Echo(socketse.BaseRequestHandler):
    """Reads until the client half-closes, then sends it all back."""

    def handle(self):
        self.request.settimeout(TIMEOUT)
        self.request.sendall(recv_until_eof(self.request))


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


@pytest.mark.parametrize("attribute, option", [
    ("allow_reuse_address", "SO_REUSEADDR"),
    pytest.param("allow_reuse_port", "SO_REUSEPORT", marks=pytest.mark.skipif(
        not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")),
])
@pytest.mark.parametrize("reuse", [False, True])
def test_allow_reuse_attributes_set_their_socket_option(attribute, option, reuse):
    Server = type("Server", (socketse.TCPServer,), {attribute: reuse})
    with Server(("127.0.0.1", 0), Echo) as server:
        value = server.socket.getsockopt(socket.SOL_SOCKET, getattr(socket, option))
        assert bool(value) is reuse


def test_fileno_is_the_listening_socket():
    with socketse.TCPServer(("127.0.0.1", 0), Echo) as server:
        assert server.fileno() == server.socket.fileno()
        assert server.fileno() >= 0
