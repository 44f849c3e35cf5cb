"""Unix domain socket servers (where AF_UNIX exists)."""

import os
import socket

import pytest

import socketse
from conftest import TIMEOUT

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX")


class StreamEcho(socketse.StreamRequestHandler):
    timeout = TIMEOUT

    def handle(self):
        self.wfile.write(self.rfile.read())


class DatagramEcho(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())


def test_unix_stream_echo(unix_path, serve, clients):
    server = serve(socketse.UnixStreamServer(unix_path, StreamEcho))
    assert server.server_address == unix_path
    assert server.address_family == socket.AF_UNIX
    assert clients.talk(server, b"over a path") == b"over a path"


def test_unix_datagram_echo(unix_path, serve, clients):
    server = serve(socketse.UnixDatagramServer(unix_path, DatagramEcho))
    assert server.server_address == unix_path
    assert server.address_family == socket.AF_UNIX
    assert clients.exchange_datagram(server, b"dgram") == b"dgram"


def test_unix_datagram_client_address_is_client_path(unix_path, serve, clients):
    seen = []

    class Handler(DatagramEcho):
        def handle(self):
            seen.append(self.client_address)
            super().handle()

    server = serve(socketse.UnixDatagramServer(unix_path, Handler))
    client = clients.send_datagram(server, b"who")
    assert client.recv(100) == b"who"
    assert seen == [client.getsockname()]


STREAM_CLASSES = ["ThreadingUnixStreamServer", "ForkingUnixStreamServer"]
DATAGRAM_CLASSES = ["ThreadingUnixDatagramServer", "ForkingUnixDatagramServer"]


def server_class(name):
    if name.startswith("Forking") and not hasattr(os, "fork"):
        pytest.skip("no os.fork")
    return getattr(socketse, name)


@pytest.mark.parametrize("name", STREAM_CLASSES)
def test_mixed_in_stream_servers_serve(name, unix_path, clients):
    with server_class(name)(unix_path, StreamEcho) as server:
        sock = clients.send(server, name.encode())
        server.handle_request()
        assert clients.read_all(sock) == name.encode()


@pytest.mark.parametrize("name", DATAGRAM_CLASSES)
def test_mixed_in_datagram_servers_serve(name, unix_path, clients):
    with server_class(name)(unix_path, DatagramEcho) as server:
        client = clients.send_datagram(server, name.encode())
        server.handle_request()
        assert client.recv(100) == name.encode()
