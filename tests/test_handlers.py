"""Request handlers: BaseRequestHandler, StreamRequestHandler,
DatagramRequestHandler (and UDPServer's max_packet_size), and the stdlib's
http.server handlers.  What holds on every interpreter (the hooks in order,
an echo of each kind, a datagram cut to max_packet_size, a silent client's
timeout) is in tests/scenarios.py; here, what CPython shows besides."""

import functools
import http.client
import http.server
import io
import select
import socket
import sys

import pytest

import socketse
from conftest import TIMEOUT, recv_until_eof, reset


def readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


class RecordingErrors(socketse.TCPServer):
    """A TCPServer whose handle_error records the exception quietly."""

    def __init__(self, *args, **kwargs):
        self.errors = []
        super().__init__(*args, **kwargs)

    def handle_error(self, request, client_address):
        self.errors.append(sys.exc_info()[1])


# ---------------------------------------------------------------------------
# BaseRequestHandler


def test_base_handler_finishes_when_handle_raises(clients):
    calls = []

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            calls.append("handle")
            raise ValueError("in handle")

        def finish(self):
            calls.append("finish")

    with RecordingErrors(("127.0.0.1", 0), Handler) as server:
        sock = clients.connect(server)
        server.handle_request()
        assert clients.read_all(sock) == b""
    assert calls == ["handle", "finish"]
    [error] = server.errors
    assert isinstance(error, ValueError)


def test_handler_attributes(clients):
    seen = {}

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            seen.update(request=self.request, client_address=self.client_address,
                        server=self.server)

    with socketse.TCPServer(("127.0.0.1", 0), Handler) as server:
        sock = clients.connect(server)
        server.handle_request()
        assert clients.read_all(sock) == b""
    assert seen["server"] is server
    assert seen["client_address"] == sock.getsockname()
    assert isinstance(seen["request"], socket.socket)
    assert seen["request"].fileno() == -1  # closed by the server afterwards


# ---------------------------------------------------------------------------
# StreamRequestHandler


def test_stream_handler_readline_and_write(serve, clients):
    class Handler(socketse.StreamRequestHandler):
        def handle(self):
            first = self.rfile.readline()
            rest = self.rfile.read()
            self.wfile.write(first.upper())
            self.wfile.write(rest)

    server = serve(socketse.TCPServer(("127.0.0.1", 0), Handler))
    assert clients.talk(server, b"hello\nworld\n") == b"HELLO\nworld\n"


def test_stream_handler_file_methods(serve, clients):
    class Handler(socketse.StreamRequestHandler):
        timeout = TIMEOUT

        def handle(self):
            head = self.rfile.read(4)
            first = self.rfile.readline(3)
            lines = [line.upper() for line in self.rfile]  # iterable, to EOF
            self.wfile.writelines([head, b"|", first, b"|"])
            self.wfile.write(bytearray(b"".join(lines)))
            self.wfile.write(memoryview(b"|end"))
            self.wfile.flush()

    server = serve(socketse.TCPServer(("127.0.0.1", 0), Handler))
    reply = clients.talk(server, b"HEADabcdef\nsecond\nthird\n")
    assert reply == b"HEAD|abc|DEF\nSECOND\nTHIRD\n|end"


def test_unbuffered_wfile_write_returns_byte_count(clients):
    seen = []

    class Handler(socketse.StreamRequestHandler):
        def handle(self):
            words = memoryview(bytes(8)).cast("I")  # 2 items, 8 bytes
            seen.append(self.wfile.write(words))
            seen.append(self.wfile.write(bytearray(b"abc")))
            seen.append(self.wfile.writable())
            seen.append(self.wfile.fileno() == self.connection.fileno())

    with socketse.TCPServer(("127.0.0.1", 0), Handler) as server:
        sock = clients.connect(server)
        server.handle_request()
        assert clients.read_all(sock) == bytes(8) + b"abc"
    assert seen == [8, 3, True, True]


def test_files_are_open_in_handle_and_closed_after_finish(clients):
    handlers = []
    open_in_handle = []

    class Handler(socketse.StreamRequestHandler):
        def handle(self):
            handlers.append(self)
            open_in_handle.append((self.rfile.closed, self.wfile.closed))

    with socketse.TCPServer(("127.0.0.1", 0), Handler) as server:
        sock = clients.connect(server)
        server.handle_request()
        assert clients.read_all(sock) == b""
    assert open_in_handle == [(False, False)]
    [handler] = handlers
    assert handler.rfile.closed
    assert handler.wfile.closed


def test_connection_is_request(clients):
    seen = []

    class Handler(socketse.StreamRequestHandler):
        def handle(self):
            seen.append(self.connection is self.request)

    with socketse.TCPServer(("127.0.0.1", 0), Handler) as server:
        sock = clients.connect(server)
        server.handle_request()
        assert clients.read_all(sock) == b""
    assert seen == [True]


@pytest.mark.parametrize("kind", ["bytes", "memoryview of 4-byte items"])
def test_unbuffered_wfile_write_sends_everything(kind, serve, clients):
    big = bytes(range(256)) * (4 * 1024 * 1024 // 256)  # 4 MB
    payload = big if kind == "bytes" else memoryview(big).cast("I")
    seen = {}

    class Handler(socketse.StreamRequestHandler):
        # With a timeout the socket is non-blocking underneath, so a single
        # send() may take only part of the data: write must loop.
        timeout = TIMEOUT

        def handle(self):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            seen["wfile"] = self.wfile
            seen["returned"] = self.wfile.write(payload)

    assert socketse.StreamRequestHandler.wbufsize == 0
    server = serve(socketse.TCPServer(("127.0.0.1", 0), Handler))
    sock = clients.connect(server)
    received = [sock.recv(512) for _ in range(20)]  # slowly at first...
    received.append(clients.read_all(sock))  # ...then as fast as possible
    data = b"".join(received)
    received_bytes, same_bytes = len(data), data == big  # no 4 MB reprs
    assert received_bytes == 4 * 1024 * 1024
    assert same_bytes
    assert seen["returned"] == 4 * 1024 * 1024
    assert isinstance(seen["wfile"], io.BufferedIOBase)


def test_buffered_wfile_is_flushed_in_finish(clients):
    seen = []

    class Handler(socketse.StreamRequestHandler):
        wbufsize = 65536

        def handle(self):
            self.wfile.write(b"buffered\n")
            seen.append(("after write", readable(client)))

        def finish(self):
            super().finish()
            seen.append(("after finish", readable(client)))

    with socketse.TCPServer(("127.0.0.1", 0), Handler) as server:
        client = clients.connect(server)
        server.handle_request()
        assert clients.read_all(client) == b"buffered\n"
    assert seen == [("after write", False), ("after finish", True)]


def test_unbuffered_rfile_leaves_the_rest_in_the_socket(serve, clients):
    class Handler(socketse.StreamRequestHandler):
        rbufsize = 0

        def handle(self):
            line = self.rfile.readline()
            self.request.settimeout(TIMEOUT)
            self.wfile.write(line + b"|" + recv_until_eof(self.request))

    server = serve(socketse.TCPServer(("127.0.0.1", 0), Handler))
    assert clients.talk(server, b"line\nREST") == b"line\n|REST"


@pytest.mark.parametrize("disable", [False, True])
def test_disable_nagle_algorithm_sets_tcp_nodelay(disable, clients):
    seen = []

    class Handler(socketse.StreamRequestHandler):
        disable_nagle_algorithm = disable

        def handle(self):
            seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    with socketse.TCPServer(("127.0.0.1", 0), Handler) as server:
        sock = clients.connect(server)
        server.handle_request()
        assert clients.read_all(sock) == b""
    [nodelay] = seen
    assert bool(nodelay) is disable


@pytest.mark.parametrize("how", ["close", "reset"])
def test_finish_does_not_raise_when_peer_has_gone(how, clients):
    class Handler(socketse.StreamRequestHandler):
        wbufsize = 65536

        def handle(self):
            self.wfile.write(b"nobody is listening\n")

    class Server(RecordingErrors):
        timeout = TIMEOUT  # handle_request() cannot hang

    with Server(("127.0.0.1", 0), Handler) as server:
        sock = clients.connect(server)
        if how == "reset":
            reset(sock)
        else:
            sock.close()
        server.handle_request()
    assert server.errors == []


# ---------------------------------------------------------------------------
# DatagramRequestHandler and max_packet_size


def test_datagram_handler_attributes(clients):
    seen = {}

    class Handler(socketse.DatagramRequestHandler):
        def handle(self):
            seen.update(packet=self.packet, socket=self.socket,
                        read=self.rfile.read())
            self.wfile.write(b"re: ")
            self.wfile.write(self.packet)

    with socketse.UDPServer(("127.0.0.1", 0), Handler) as server:
        client = clients.send_datagram(server, b"packet")
        server.handle_request()
        assert client.recv(100) == b"re: packet"
    assert seen["packet"] == b"packet"
    assert seen["socket"] is server.socket
    assert seen["read"] == b"packet"


def test_datagram_handler_replies_in_finish(clients):
    seen = []

    class Handler(socketse.DatagramRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.read().upper())

        def finish(self):
            seen.append(("before finish", readable(client)))
            super().finish()
            seen.append(("after finish", readable(client)))

    with socketse.UDPServer(("127.0.0.1", 0), Handler) as server:
        client = clients.send_datagram(server, b"late")
        server.handle_request()
        assert client.recv(100) == b"LATE"
    assert seen == [("before finish", False), ("after finish", True)]


def test_max_packet_size_can_be_raised(serve, clients):
    """A datagram longer than the default 8192 bytes comes whole once
    max_packet_size allows it (a board's lwIP has no room for one)."""
    class Server(socketse.UDPServer):
        max_packet_size = 20000

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            sock.sendto(str(len(data)).encode(), self.client_address)

    server = serve(Server(("127.0.0.1", 0), Handler))
    assert clients.exchange_datagram(server, b"x" * 10240) == b"10240"


# ---------------------------------------------------------------------------
# Drop-in with the stdlib's http.server handlers


def test_simple_http_request_handler(tmp_path, serve):
    (tmp_path / "hello.txt").write_bytes(b"hello over http\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = serve(socketse.ThreadingTCPServer(("127.0.0.1", 0), handler))
    conn = http.client.HTTPConnection(*server.server_address, timeout=TIMEOUT)
    try:
        conn.request("GET", "/hello.txt")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200
    assert body == b"hello over http\n"


def test_base_http_request_handler_keep_alive(serve):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = ("you asked for %s" % self.path).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = serve(socketse.ThreadingTCPServer(("127.0.0.1", 0), Handler))
    conn = http.client.HTTPConnection(*server.server_address, timeout=TIMEOUT)
    try:
        bodies = []
        for path in ("/one", "/two"):  # two requests on one connection
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200
            bodies.append(response.read())
    finally:
        conn.close()
    assert bodies == [b"you asked for /one", b"you asked for /two"]
