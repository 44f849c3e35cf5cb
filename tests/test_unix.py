"""Unix domain socket servers (where AF_UNIX exists): a datagram client's
address, and an abstract name taken by a MicroPython server.

An echo from every Unix server class, and a path that exists already, are
in tests/scenarios.py.  (On MicroPython, a UnixDatagramServer's
client_address is the raw sockaddr bytes, not the client's path: the
client's address is checked here, on CPython.)
"""

import os
import socket
import subprocess

import pytest

import socketse
from conftest import REPO_ROOT, TIMEOUT
from example_programs import micropython_or_skip

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX")


class DatagramEcho(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())


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


ABSTRACT_SERVER = """
import socketse

class Greet(socketse.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"hello " + self.rfile.readline())

server = socketse.UnixStreamServer(%r, Greet)
print("ready")
server.handle_request()
server.server_close()
"""


def test_a_micropython_server_takes_the_abstract_name_it_is_given():
    """On Linux, "\\0name" is an abstract address: a MicroPython server
    bound to it is reached by that very name from another program."""
    name = "\0socketse-test-%d" % os.getpid()
    server = subprocess.Popen(
        [micropython_or_skip(), "-c", ABSTRACT_SERVER % name], stdout=subprocess.PIPE,
        env=dict(os.environ, MICROPYPATH=REPO_ROOT))
    try:
        assert server.stdout.readline() == b"ready\n"
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(TIMEOUT)
            client.connect(name)
            client.sendall(b"abstract\n")
            assert client.recv(1024) == b"hello abstract\n"
        assert server.wait(TIMEOUT) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        server.stdout.close()
