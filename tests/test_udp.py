"""UDPServer with datagram handlers."""

import select

import socketse


def readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


class Upper(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().upper())


def test_datagram_handler_echo(serve, clients):
    server = serve(socketse.UDPServer(("127.0.0.1", 0), Upper))
    assert clients.exchange_datagram(server, b"ping") == b"PING"


def test_datagram_handler_replies_in_finish(clients):
    seen = []

    class Handler(Upper):
        def finish(self):
            seen.append(("before finish", readable(client)))
            super().finish()
            seen.append(("after finish", readable(client)))

    with socketse.UDPServer(("127.0.0.1", 0), Handler) as server:
        client = clients.send_datagram(server, b"late")
        server.handle_request()
        assert client.recv(100) == b"LATE"
    assert seen == [("before finish", False), ("after finish", True)]


def test_base_handler_request_is_data_and_socket(serve, clients):
    seen = []

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            seen.append((data, sock, self.client_address))
            sock.sendto(data[::-1], self.client_address)

    server = serve(socketse.UDPServer(("127.0.0.1", 0), Handler))
    client = clients.send_datagram(server, b"abc")
    assert client.recv(100) == b"cba"
    [(data, sock, address)] = seen
    assert data == b"abc"
    assert sock is server.socket
    assert address == client.getsockname()


def test_max_packet_size_truncates(serve, clients):
    assert socketse.UDPServer.max_packet_size == 8192
    sizes = []

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            sizes.append(len(data))
            sock.sendto(data[-10:], self.client_address)

    server = serve(socketse.UDPServer(("127.0.0.1", 0), Handler))
    big = bytes(range(256)) * 40  # 10240 bytes
    assert clients.exchange_datagram(server, big) == big[8182:8192]
    assert sizes == [8192]


def test_max_packet_size_can_be_raised(serve, clients):
    class Server(socketse.UDPServer):
        max_packet_size = 20000

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            sock.sendto(str(len(data)).encode(), self.client_address)

    server = serve(Server(("127.0.0.1", 0), Handler))
    assert clients.exchange_datagram(server, b"x" * 10240) == b"10240"


def test_port_zero_gets_real_port():
    with socketse.UDPServer(("127.0.0.1", 0), Upper) as server:
        assert server.server_address[1] != 0
        assert server.server_address == server.socket.getsockname()
