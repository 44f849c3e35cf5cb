"""The scenarios socketse must pass on every interpreter, with no pytest.

Run as ``python tests/scenarios.py [--without MODULE,...] [--board NAME]
[SCRATCH_DIR]`` with socketse.py importable (MICROPYPATH on MicroPython).
``--without`` hides modules from the import system (CPython only), to prove
socketse on builds that lack them; ``--board`` imports tests/boards/NAME.py
first, which re-creates a board's own modules (run it on a MicroPython
built with the boards' socket layer, see tests/test_portable.py).  Each
scenario prints a line; the last line is "N passed, N failed, N skipped"
and the exit status is 1 if any failed.  tests/runner.py holds what this
runner shares with tests/board_examples.py.

Most scenarios need no thread: a client connects and sends its request
before the server handles it, since the listen backlog and the socket
buffers hold both, and reads the reply afterwards.
"""

import os
import sys
import time

from runner import (Skip, board, check, client_address, need_threads, on_a_random_port, run,
                    running_threads, start_thread, take_options, threads_at_once, threads_end,
                    wait_until)
from runner import client_socket as socket  # the clients': see runner.py

take_options()

# Names, not numbers (esp32 numbers errors as newlib does), and imported by
# name: MicroPython compiles errno.NAME to its own build's number.
from errno import EADDRINUSE, EBADF, ECONNRESET  # noqa: E402

import socketse  # noqa: E402 -- after hiding modules, or installing a board's

try:
    import _thread
except ImportError:
    _thread = None

SCRATCH = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
SCENARIOS = []
TCP_OR_UDP = (socketse.TCPServer, socketse.UDPServer)


def scenario(function, name=None):
    SCENARIOS.append((name or function.__name__, function))
    return function


# -- servers and clients ----------------------------------------------------

def unix_path():
    return "%s/socketse-%s.sock" % (SCRATCH, "".join("%02x" % b for b in os.urandom(4)))


def make_server(server_class, handler_class, host="127.0.0.1", **attributes):
    """A bound server with the given class attributes set.  MicroPython's
    sockets can't report the port that port 0 chose, so try random ports."""
    cls = type("Server", (server_class,), attributes)
    if hasattr(socket, "AF_UNIX") and server_class.address_family == socket.AF_UNIX:
        return cls(unix_path(), handler_class)
    return on_a_random_port(lambda port: cls((host, port), handler_class))


def close_server(server):
    server.server_close()
    if isinstance(server.server_address, str):
        os.remove(server.server_address)


def client_for(server, bind_to=None):
    """A client socket connected to server, bound first if bind_to is given."""
    client = socket.socket(server.address_family, server.socket_type)
    try:
        if bind_to is not None:
            client.bind(client_address(bind_to))
        client.connect(client_address(server.server_address))
    except OSError:
        client.close()
        raise
    client.settimeout(10)
    return client


def bound_client(server):
    """(client, its address): a client of an IP server, bound first to a port
    of its own, since MicroPython's sockets can't tell their name."""
    def bind_and_connect(port):
        return client_for(server, bind_to=("127.0.0.1", port)), ("127.0.0.1", port)
    return on_a_random_port(bind_and_connect)


def read_all(client):
    """Everything until the server closes.  A server that closes with
    unread input resets the connection where sockets have no shutdown()
    (MicroPython): that counts as closed too."""
    chunks = []  # joined once: a reader that copies as it goes falls behind
    while True:
        try:
            chunk = client.recv(65536)
        except OSError as error:
            if error.args[0] != ECONNRESET:
                raise
            chunk = b""
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def receive(sock, size):
    """Up to size bytes from a server's socket: a CircuitPython pool's
    sockets read into a buffer only."""
    if hasattr(sock, "recv"):
        return sock.recv(size)
    buffer = bytearray(size)
    return bytes(buffer[:sock.recv_into(buffer)])


def closed(server):
    """Whether the server's socket is closed (lwIP sockets have no fileno():
    there, a closed one refuses every call with EBADF)."""
    sock = server.socket
    if hasattr(sock, "fileno"):
        return sock.fileno() == -1
    try:
        sock.settimeout(0)
        receive(sock, 1)
    except OSError as error:
        return error.args[0] == EBADF
    return False


def current_error():
    """The error a handle_error() is called for.  MicroPython's
    sys.exc_info(), where it has one, is one for all threads, and boards
    have none: there, only socketse itself knows it."""
    if hasattr(sys, "print_exception") or not hasattr(sys, "exc_info"):  # boards
        return socketse._current_error()
    return sys.exc_info()[1]


# -- handlers -----------------------------------------------------------------

class LineEcho(socketse.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


class DatagramEcho(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().upper())


class RecordingEcho(socketse.BaseRequestHandler):
    calls = []

    def setup(self):
        self.calls.append("setup")

    def handle(self):
        self.calls.append("handle")
        self.request.send(receive(self.request, 1024).upper())

    def finish(self):
        self.calls.append("finish")


# -- scenarios ------------------------------------------------------------------

def one_exchange(server_class, handler_class, message=b"hello\n", **attributes):
    server = make_server(server_class, handler_class, **attributes)
    try:
        client = client_for(server)
        client.send(message)
        server.handle_request()
        reply = client.recv(1024)
        client.close()
        return server, reply
    finally:
        close_server(server)


@scenario
def tcp_stream_handler():
    server, reply = one_exchange(socketse.TCPServer, LineEcho)
    check(reply == b"HELLO\n", reply)


@scenario
def tcp_client_address_is_host_and_port():
    """client_address is the client's own (host, port); request is the
    connection, server the server."""
    seen = []

    class Record(socketse.BaseRequestHandler):
        def handle(self):
            seen.append((self.client_address, self.server))
            self.request.send(receive(self.request, 1024))

    server = make_server(socketse.TCPServer, Record)
    try:
        client, address = bound_client(server)
        client.send(b"who\n")
        server.handle_request()
        check(read_all(client) == b"who\n", "no reply")
        client.close()
        check(seen == [(address, server)], seen)
        check(isinstance(seen[0][0], tuple) and isinstance(seen[0][0][1], int), seen)
    finally:
        close_server(server)


@scenario
def tcp_base_handler_hooks_in_order():
    """The server's hooks and the handler's run in the stdlib's order."""
    RecordingEcho.calls = calls = []
    base = socketse.TCPServer

    class Server(base):
        def verify_request(self, request, client_address):
            calls.append("verify_request")
            return base.verify_request(self, request, client_address)

        def process_request(self, request, client_address):
            calls.append("process_request")
            base.process_request(self, request, client_address)

        def finish_request(self, request, client_address):
            calls.append("finish_request")
            base.finish_request(self, request, client_address)

        def shutdown_request(self, request):
            calls.append("shutdown_request")
            base.shutdown_request(self, request)

        def close_request(self, request):
            calls.append("close_request")
            base.close_request(self, request)

    server, reply = one_exchange(Server, RecordingEcho)
    check(reply == b"HELLO\n", reply)
    check(calls == ["verify_request", "process_request", "finish_request", "setup", "handle",
                    "finish", "shutdown_request", "close_request"], calls)


@scenario
def tcp_an_empty_write_sends_nothing():
    """wfile.write(b"") is no send at all: esp32's send(b"") reports a
    timeout instead of sending nothing."""
    class Quiet(socketse.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            check(self.wfile.write(b"") in (0, None), "write(b'') returned data")
            self.wfile.write(line)

    server, reply = one_exchange(socketse.TCPServer, Quiet)
    check(reply == b"hello\n", reply)


@scenario
def udp_datagram_handler():
    server, reply = one_exchange(socketse.UDPServer, DatagramEcho)
    check(reply == b"HELLO\n", reply)


@scenario
def udp_base_handler_gets_data_and_socket():
    """request is (the datagram, the server's socket); client_address the
    sender's (host, port)."""
    seen = []

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            seen.append((data, sock is self.server.socket, self.client_address))
            sock.sendto(data.upper(), self.client_address)

    server = make_server(socketse.UDPServer, Handler)
    try:
        client, address = bound_client(server)
        client.send(b"hello")
        server.handle_request()
        check(client.recv(1024) == b"HELLO", "no reply")
        client.close()
        check(seen == [(b"hello", True, address)], seen)
    finally:
        close_server(server)


# The handlers of the socketserver documentation (CPython 3.13, "socketserver
# Example"), as written there but for print(), whose output is not the point.

class DocsTCPHandler(socketse.BaseRequestHandler):
    def handle(self):
        # self.request is the TCP socket connected to the client
        self.data = self.request.recv(1024).strip()
        self.request.sendall(self.data.upper())


class DocsStreamHandler(socketse.StreamRequestHandler):
    def handle(self):
        self.data = self.rfile.readline().strip()
        self.wfile.write(self.data.upper())


class DocsUDPHandler(socketse.BaseRequestHandler):
    def handle(self):
        data = self.request[0].strip()
        socket = self.request[1]
        socket.sendto(data.upper(), self.client_address)


@scenario
def the_documentation_handlers_work_as_written():
    """The documentation's three handlers answer as on CPython, the UDP one
    replying to client_address through the request's socket; a reply to an
    address written as ("127.0.0.1", port) arrives too."""
    server, reply = one_exchange(socketse.TCPServer, DocsStreamHandler)
    check(reply == b"HELLO", reply)
    server, reply = one_exchange(socketse.UDPServer, DocsUDPHandler)
    check(reply == b"HELLO", reply)

    class ToTheAddressWritten(socketse.BaseRequestHandler):
        def handle(self):
            port = self.client_address[1]
            self.request[1].sendto(b"to %d" % port, ("127.0.0.1", port))

    server = make_server(socketse.UDPServer, ToTheAddressWritten)
    try:
        client, address = bound_client(server)
        client.send(b"hello")
        server.handle_request()
        check(client.recv(64) == b"to %d" % address[1], "no reply to the address written")
        client.close()
        if not hasattr(server.socket, "recv"):
            raise Skip("sockets have no recv() (CircuitPython): the docs' TCP handler "
                       "cannot run as written")
    finally:
        close_server(server)
    server, reply = one_exchange(socketse.TCPServer, DocsTCPHandler)
    check(reply == b"HELLO", reply)


@scenario
def each_client_is_told_its_own_address():
    """Clients on two hosts, two ports each, taking turns: each handler
    sees its own client's (host, port), and its reply reaches that client,
    whatever address the server translated last (MicroPython's unix port
    keeps the last one, and the last host)."""
    class SaysWhoAsked(socketse.BaseRequestHandler):
        def handle(self):
            host, port = self.client_address[:2]
            self.request[1].sendto(b"%s %d" % (host.encode(), port), self.client_address)

    server = make_server(socketse.UDPServer, SaysWhoAsked)

    def answered(client, expected):
        server.handle_request()
        reply = client.recv(64)
        check(reply == expected, (reply, expected))

    clients = []
    try:
        for host in ("127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"):
            def bind_and_connect(port, host=host):
                return client_for(server, bind_to=(host, port)), b"%s %d" % (host.encode(), port)
            client = None
            try:
                client, expected = on_a_random_port(bind_and_connect)
                client.send(b"who am I?")
            except OSError:  # a loopback with one address: a board's lwIP
                check(host != "127.0.0.1", "no client on 127.0.0.1")
                if client:
                    client.close()
                continue
            clients.append((client, expected))
            answered(client, expected)
        for client, expected in clients:  # again, in turn
            client.send(b"and now?")
            answered(client, expected)
    finally:
        for client, _ in clients:
            client.close()
        close_server(server)


@scenario
def reading_past_the_end_of_the_stream_returns_nothing_at_once():
    """After the client's end of stream, every further read of rfile gives
    b"" at once, as on CPython (CircuitPython on ESP32 would wait for ever
    if asked again)."""
    reads = []

    class ReadsTwice(socketse.StreamRequestHandler):
        def handle(self):
            reads.extend([self.rfile.read(), self.rfile.read(), self.rfile.readline()])

    server = make_server(socketse.TCPServer, ReadsTwice)
    try:
        client = client_for(server)
        client.send(b"abc")
        client.close()
        started = time.time()
        server.handle_request()
        check(reads == [b"abc", b"", b""], reads)
        check(time.time() - started < 5, "the reads waited")
    finally:
        close_server(server)


@scenario
def udp_datagram_longer_than_max_packet_size_is_cut():
    server, reply = one_exchange(socketse.UDPServer, DatagramEcho, b"abcdefgh", max_packet_size=4)
    check(reply == b"ABCD", reply)


def unix_server_class(name):
    if not hasattr(socketse, name):
        raise Skip("no AF_UNIX")
    return getattr(socketse, name)


@scenario
def unix_stream_echo():
    path = unix_path()
    server = unix_server_class("UnixStreamServer")(path, LineEcho)
    try:
        check(server.server_address == path, server.server_address)
        check(server.address_family == socket.AF_UNIX, server.address_family)
        check(exchange(server, b"over a path\n") == b"OVER A PATH\n", "no reply")
    finally:
        close_server(server)


@scenario
def unix_datagram_echo():
    path = unix_path()
    server = unix_server_class("UnixDatagramServer")(path, DatagramEcho)
    client_path = unix_path()  # a Unix datagram client needs a name for replies
    client = client_for(server, bind_to=client_path)
    try:
        check(server.server_address == path, server.server_address)
        check(server.address_family == socket.AF_UNIX, server.address_family)
        client.send(b"hello")
        server.handle_request()
        check(client.recv(1024) == b"HELLO", "no reply")
    finally:
        client.close()
        close_server(server)
        os.remove(client_path)


@scenario
def port_zero_reports_the_bound_port():
    if not hasattr(socket.socket, "getsockname"):
        raise Skip("sockets can't report their name")
    for server_class, handler_class in ((socketse.TCPServer, LineEcho),
                                        (socketse.UDPServer, DatagramEcho)):
        with server_class(("127.0.0.1", 0), handler_class) as server:
            host, port = server.server_address
            check(host == "127.0.0.1" and port > 0, server.server_address)
            check(server.server_address == server.socket.getsockname(), server.server_address)
            client = client_for(server)
            client.send(b"zero\n")
            server.handle_request()
            check(client.recv(1024) == b"ZERO\n", "no reply")
            client.close()


@scenario
def ipv6_literal_without_choosing_a_family():
    if not hasattr(socket, "AF_INET6"):
        raise Skip("no AF_INET6")
    try:
        server = make_server(socketse.TCPServer, LineEcho, host="::1")
    except (OSError, NotImplementedError) as error:  # NotImplementedError: the Pico W's pool
        raise Skip("no IPv6 loopback: %r" % (error,))
    try:
        check(server.address_family == socket.AF_INET6, server.address_family)
        check(getattr(server.socket, "family", socket.AF_INET6) == socket.AF_INET6,
              "not an IPv6 socket")
        check(server.server_address[0] == "::1", server.server_address)
        check(socketse.TCPServer.address_family == socket.AF_INET, "the class was changed")
        client = client_for(server)
        client.send(b"six\n")
        server.handle_request()
        check(client.recv(1024) == b"SIX\n", "no reply")
        client.close()
    finally:
        close_server(server)
    # A datagram's reply goes to client_address, an IPv6 peer: four items
    # from CircuitPython's pool on ESP32, whose sendto() takes two.
    server = make_server(socketse.UDPServer, DatagramEcho, host="::1")
    try:
        client = client_for(server)
        try:
            client.send(b"six\n")
        except OSError:  # the lwIP builds' clients send no IPv6 datagram
            client.close()
            return
        server.handle_request()
        check(client.recv(1024) == b"SIX\n", "no reply to a datagram")
        client.close()
    finally:
        close_server(server)


@scenario
def handle_request_times_out():
    timeouts = []
    handled = []

    class Server(socketse.TCPServer):
        timeout = 0.05

        def handle_timeout(self):
            timeouts.append(1)

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            handled.append(1)

    server = make_server(Server, Handler)
    try:
        server.handle_request()
        check(timeouts == [1] and handled == [], (timeouts, handled))
    finally:
        close_server(server)


@scenario
def handle_request_serves_exactly_one():
    """Two requests waiting: each handle_request() serves one, the first
    to come first."""
    handled = []

    class Recording(socketse.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            handled.append(line)
            self.wfile.write(line.upper())

    server = make_server(socketse.TCPServer, Recording)
    clients = []
    try:
        for line in (b"one\n", b"two\n"):
            client = client_for(server)
            client.send(line)
            clients.append(client)
        server.handle_request()
        check(handled == [b"one\n"], handled)
        check(read_all(clients[0]) == b"ONE\n", "the first not answered")
        server.handle_request()
        check(handled == [b"one\n", b"two\n"], handled)
        check(read_all(clients[1]) == b"TWO\n", "the second not answered")
    finally:
        for client in clients:
            client.close()
        close_server(server)


@scenario
def handle_request_with_a_deadline_already_past_returns_at_once():
    """timeout = deadline - now, once the deadline has passed: negative."""
    timeouts = []

    class Server(socketse.TCPServer):
        timeout = -5.0

        def handle_timeout(self):
            timeouts.append(1)

    server = make_server(Server, LineEcho)
    try:
        started = time.time()
        server.handle_request()
        check(timeouts == [1] and time.time() - started < 2, timeouts)
    finally:
        close_server(server)


@scenario
def verify_request_refuses():
    handled = []

    class Handler(socketse.BaseRequestHandler):
        def handle(self):
            handled.append(1)

    server = make_server(socketse.TCPServer, Handler,
                         verify_request=lambda self, request, address: False)
    try:
        client = client_for(server)
        client.send(b"x")
        server.handle_request()
        check(read_all(client) == b"" and not handled, handled)
        client.close()
    finally:
        close_server(server)


@scenario
def handler_error_is_reported_and_serving_goes_on():
    """handle_error() gets the failing request and its client's address,
    while the error is being handled; the client sees the end of the
    stream, and the next request is served."""
    errors = []
    failed = []

    class Failing(socketse.StreamRequestHandler):
        def handle(self):
            if self.rfile.readline() == b"fail\n":
                failed.append((self.request, self.client_address))
                raise ValueError("bad request")
            self.wfile.write(b"ok\n")

    def handle_error(self, request, client_address):
        errors.append((type(current_error()), request, client_address))

    server = make_server(socketse.TCPServer, Failing, handle_error=handle_error)
    try:
        for message, expected in ((b"fail\n", b""), (b"fine\n", b"ok\n")):
            client = client_for(server)
            client.send(message)
            server.handle_request()
            reply = read_all(client)
            client.close()
            check(reply == expected, reply)
        check(len(failed) == 1 and errors == [(ValueError,) + failed[0]], errors)
    finally:
        close_server(server)


@scenario
def a_raising_handle_error_still_closes_the_request():
    """A handle_error() of the user's that raises (on a board, one that asks
    sys.exc_info) loses nothing: the request is closed, the error reaches
    the caller, and the server serves the next request."""
    class Failing(LineEcho):
        def handle(self):
            if self.rfile.readline() == b"fail\n":
                raise ValueError("bad request")
            self.wfile.write(b"ok\n")

    def handle_error(self, request, client_address):
        raise RuntimeError("handle_error failed too")

    server = make_server(socketse.TCPServer, Failing, handle_error=handle_error)
    try:
        client = client_for(server)
        client.send(b"fail\n")
        try:
            server.handle_request()
        except RuntimeError:
            pass
        else:
            check(False, "handle_error's own error was swallowed")
        check(read_all(client) == b"", "the request was not closed")
        client.close()
        check(exchange(server, b"fine\n") == b"ok\n", "not served afterwards")
    finally:
        close_server(server)


@scenario
def default_handle_error_prints_and_serving_goes_on():
    class Failing(LineEcho):
        def handle(self):
            if self.rfile.readline() == b"fail\n":
                raise ValueError("deliberate failure, traceback expected")
            self.wfile.write(b"ok\n")

    server = make_server(socketse.TCPServer, Failing)
    try:
        for message, expected in ((b"fail\n", b""), (b"fine\n", b"ok\n")):
            client = client_for(server)
            client.send(message)
            server.handle_request()  # the default handle_error prints, doesn't raise
            reply = read_all(client)
            client.close()
            check(reply == expected, reply)
    finally:
        close_server(server)


@scenario
def system_exit_propagates_after_the_request_is_closed():
    """SystemExit and KeyboardInterrupt from a handler are no request's
    error: handle_request() closes the request and lets them through."""
    for exception in (SystemExit, KeyboardInterrupt):
        errors = Errors()

        class Exiting(socketse.BaseRequestHandler):
            def handle(self):
                receive(self.request, 1)
                raise exception(3)

        server = make_server(socketse.TCPServer, Exiting, handle_error=errors.record)
        client = client_for(server)
        client.send(b"x")
        try:
            server.handle_request()
        except exception as exit:
            check(exit.args == (3,), exit.args)
        else:
            check(False, "%s did not propagate" % exception.__name__)
        check(read_all(client) == b"", "request not closed")
        check(len(errors) == 0, errors.types)
        client.close()
        close_server(server)  # still works
        check(closed(server), "not closed")


@scenario
def stream_handler_timeout_frees_the_request():
    """A client that sends nothing costs its handler the timeout, reported
    to handle_error() as an OSError (a socket timeout); it sees the end of
    the stream, and the next request is served."""
    errors = Errors()

    class Slow(LineEcho):
        timeout = 0.1

    server = make_server(socketse.TCPServer, Slow, handle_error=errors.record)
    try:
        silent = client_for(server)  # connects and sends nothing
        server.handle_request()
        check(len(errors) == 1 and issubclass(errors.types[0], OSError), errors.types)
        check(read_all(silent) == b"", "the silent client's connection was not closed")
        silent.close()
        client = client_for(server)
        client.send(b"next\n")
        server.handle_request()
        check(client.recv(1024) == b"NEXT\n", "no reply after a timeout")
        client.close()
    finally:
        close_server(server)


@scenario
def context_manager_closes_the_socket():
    server = make_server(socketse.TCPServer, LineEcho)
    with server as entered:
        check(entered is server, "__enter__ did not return the server")
        check(not closed(server), "closed on entering")
    check(closed(server), "socket still open")


@scenario
def shutdown_from_a_handler_ends_serve_forever():
    class Stopping(socketse.BaseRequestHandler):
        def handle(self):
            self.request.send(receive(self.request, 4) + b" bye")
            self.server.shutdown()

    server = make_server(socketse.TCPServer, Stopping)
    try:
        client = client_for(server)
        client.send(b"stop")
        server.serve_forever(poll_interval=0.05)  # returns: no deadlock
        check(read_all(client) == b"stop bye", "no reply")
        client.close()
    finally:
        close_server(server)


@scenario
def shutdown_from_another_thread():
    state = {"serving": False, "in_loop": False, "returned": False}

    class Server(socketse.TCPServer):
        def service_actions(self):  # slow, so that shutdown() must wait for it
            state["in_loop"] = True
            time.sleep(0.05)
            state["in_loop"] = False

    def serve():
        state["serving"] = True
        server.serve_forever(poll_interval=2.0)
        state["returned"] = True

    server = make_server(Server, LineEcho)
    try:
        start_thread(serve)
        check(wait_until(lambda: state["serving"]), "serve_forever did not start")
        client = client_for(server)
        client.send(b"served\n")
        check(client.recv(1024) == b"SERVED\n", "no reply")
        client.close()
        started = time.time()
        server.shutdown()
        took = time.time() - started
        check(not state["in_loop"], "shutdown() returned while the loop still ran")
        check(wait_until(lambda: state["returned"]), "serve_forever did not return")
        if socketse.select:  # woken at once through loopback, not at the next poll
            check(took < 1.5, "shutdown took %.2f s" % took)
        # The loop has ended: a new request waits for handle_request() here.
        check(exchange(server, b"after\n") == b"AFTER\n", "not served after shutdown()")
    finally:
        close_server(server)


@scenario
def shutdown_while_a_request_runs_lets_it_finish():
    """shutdown() from another thread while the loop handles a request:
    the request is answered in full, then the loop ends and shutdown()
    returns."""
    state = {"handling": False, "shutting_down": False}

    class Finishing(LineEcho):
        def handle(self):
            state["handling"] = True
            line = self.rfile.readline()
            if wait_until(lambda: state["shutting_down"]):
                self.wfile.write(line.upper())

    server = make_server(socketse.TCPServer, Finishing)
    try:
        stop = serve_in_thread(server)
        client = client_for(server)
        client.send(b"in flight\n")
        check(wait_until(lambda: state["handling"]), "the request was not taken")
        state["shutting_down"] = True  # the handler finishes, while shutdown() waits
        stop()
        check(read_all(client) == b"IN FLIGHT\n", "the request was cut short")
        client.close()
    finally:
        close_server(server)


def shutdowns_take(server_class, handler_class, rounds=5, poll_interval=10.0):
    """Serve in a thread and shut down, rounds times, with a request each
    round; returns (the slowest shutdown in seconds, requests verified)."""
    verified = []

    class Server(server_class):
        def verify_request(self, request, client_address):
            verified.append(client_address)
            return True

    server = make_server(Server, handler_class)
    slowest = 0.0
    try:
        for round in range(rounds):
            stop = serve_in_thread(server, poll_interval)
            client = client_for(server)
            client.send(b"ping\n")
            check(client.recv(64) == b"PING\n", "no reply")
            client.close()
            slowest = max(slowest, stop())
    finally:
        close_server(server)
    return slowest, len(verified)


@scenario
def shutdown_wakes_the_loop_at_once():
    """With poll_interval at 10 s, shutdown() returns within a fraction of
    a second, for TCP and UDP, wherever a socket can reach the loopback
    address (every interpreter and board profile tested here); and the
    wake-up never reaches verify_request() or a handler."""
    need_threads(2)
    if not socketse.select:
        raise Skip("no select: accept() waits, and shutdown() within poll_interval")
    servers = [(socketse.TCPServer, LineEcho), (socketse.UDPServer, DatagramEcho)]
    if threads_at_once() >= 3:  # serve_forever's, a handler's, and this one
        servers.append((socketse.ThreadingTCPServer, LineEcho))
    for server_class, handler_class in servers:
        slowest, verified = shutdowns_take(server_class, handler_class)
        check(slowest < 0.5, "a shutdown took %.2f s" % slowest)
        check(verified == 5, "verify_request saw %d requests for 5" % verified)


@scenario
def shutdown_without_a_wake_up_still_ends_within_poll_interval():
    """Where no wake-up socket can be had (board firmware without loopback,
    here: no os.urandom to choose its port), shutdown() still returns, within
    poll_interval."""
    need_threads(2)

    class NoRandom:
        def __getattr__(self, name):
            if name == "urandom":
                raise AttributeError(name)
            return getattr(os, name)

    socketse.os = NoRandom()
    try:
        slowest, verified = shutdowns_take(socketse.TCPServer, LineEcho, rounds=2,
                                           poll_interval=0.2)
    finally:
        socketse.os = os
    check(slowest < 5.0, "a shutdown took %.2f s" % slowest)
    check(verified == 2, verified)


@scenario
def serve_forever_again_after_shutdown():
    class Stopping(LineEcho):
        def handle(self):
            LineEcho.handle(self)
            self.server.shutdown()

    server = make_server(socketse.TCPServer, Stopping)
    try:
        for word in (b"one\n", b"two\n"):
            client = client_for(server)
            client.send(word)
            server.serve_forever(poll_interval=0.05)
            check(client.recv(1024) == word.upper(), word)
            client.close()
    finally:
        close_server(server)


@scenario
def serve_forever_called_again_is_refused():
    """A second serve_forever() on a serving server (two threads starting
    it by mistake) raises at once, and shutdown() still ends the first."""
    seen = []

    class Nested(socketse.BaseRequestHandler):
        def handle(self):
            try:
                self.server.serve_forever(0.05)
            except RuntimeError:
                seen.append("refused")
            self.server.shutdown()

    server = make_server(socketse.TCPServer, Nested)
    try:
        client = client_for(server)
        client.send(b"x")
        server.serve_forever(0.05)  # returns after the handler's shutdown()
        check(seen == ["refused"], seen)
        client.close()
    finally:
        close_server(server)


@scenario
def server_close_from_a_handler_returns():
    """A handler that stops and closes its own threading server (an admin
    "quit") returns: server_close() does not wait for its caller."""
    need_threads(3)
    state = {"closed": False}

    class Quit(LineEcho):
        def handle(self):
            LineEcho.handle(self)
            self.server.shutdown()
            self.server.server_close()
            state["closed"] = True

    server = make_server(socketse.ThreadingTCPServer, Quit)
    serve_in_thread(server)
    try:
        client = client_for(server)
        client.send(b"quit\n")
        check(read_all(client) == b"QUIT\n", "no reply")
        client.close()
        check(wait_until(lambda: state["closed"]), "server_close() did not return")
        check(closed(server), "the server's socket is still open")
    finally:
        close_server(server)


@scenario
def close_with_unread_input_ends_the_stream():
    """A handler that leaves input unread: its client still sees the reply
    and then the end of the stream, not a reset (where sockets cannot
    half-close, socketse reads what has come before closing)."""
    server = make_server(socketse.TCPServer, LineEcho)
    try:
        for round in range(5):
            client = client_for(server)
            client.send(b"first\nsecond\nthird\n")
            server.handle_request()
            reply = b""
            while True:
                chunk = client.recv(1024)  # ECONNRESET fails the scenario
                if not chunk:
                    break
                reply += chunk
            check(reply == b"FIRST\n", reply)
            client.close()
    finally:
        close_server(server)


@scenario
def service_actions_runs_in_the_loop():
    """service_actions() runs on every round of the loop, in the serving
    thread, while no request comes."""
    rounds = []
    me = _thread.get_ident() if _thread else None

    class Server(socketse.TCPServer):
        def service_actions(self):
            rounds.append(_thread.get_ident() if _thread else None)
            if len(rounds) == 3:
                self.shutdown()

    server = make_server(Server, LineEcho)
    try:
        server.serve_forever(poll_interval=0.01)  # returns after three rounds
        check(rounds == [me] * 3, rounds)
    finally:
        close_server(server)


@scenario
def service_actions_runs_after_a_request():
    """After a request, the loop goes round at once: service_actions() does
    not wait for poll_interval."""
    handled = []

    class Server(socketse.TCPServer):
        def process_request(self, request, client_address):
            socketse.TCPServer.process_request(self, request, client_address)
            handled.append(1)

        def service_actions(self):
            if handled:
                self.shutdown()

    server = make_server(Server, LineEcho)
    try:
        client = client_for(server)
        client.send(b"x\n")
        started = time.time()
        server.serve_forever(poll_interval=30)
        took = time.time() - started
        check(handled == [1], handled)
        check(took < 15, "service_actions() waited %.1f s, for poll_interval" % took)
        check(read_all(client) == b"X\n", "no reply")
        client.close()
    finally:
        close_server(server)


@scenario
def threading_serves_clients_at_once():
    if _thread is None:
        try:
            make_server(socketse.ThreadingTCPServer, LineEcho)
        except ImportError as error:
            check("_thread" in str(error), error)
            raise Skip("no _thread: ThreadingMixIn refuses clearly")
        check(False, "ThreadingTCPServer built without _thread")
    need_threads(2)
    arrived = []

    class Waiting(socketse.BaseRequestHandler):
        def handle(self):
            receive(self.request, 1)
            arrived.append(1)
            if wait_until(lambda: len(arrived) == 2, 10):  # both at once
                self.request.send(b"together")

    before = running_threads()
    server = make_server(socketse.ThreadingTCPServer, Waiting)
    try:
        clients = [client_for(server) for _ in range(2)]
        for client in clients:
            client.send(b"x")
            server.handle_request()
        replies = [read_all(client) for client in clients]
        check(replies == [b"together"] * 2, replies)
        for client in clients:
            client.close()
    finally:
        close_server(server)
    check(threads_end(before), "threads left after server_close")


@scenario
def threading_block_on_close_waits_for_handlers():
    """server_close() waits for a handler still busy when it is called
    (block_on_close, the default)."""
    if _thread is None:
        raise Skip("no _thread")
    check(socketse.ThreadingTCPServer.block_on_close is True, "not the default")
    state = {"closing": False}
    finished = []

    class Slow(socketse.BaseRequestHandler):
        def handle(self):
            receive(self.request, 1)
            wait_until(lambda: state["closing"])  # still busy when server_close() begins
            finished.append(1)

    class Server(socketse.ThreadingTCPServer):
        def server_close(self):
            state["closing"] = True
            socketse.ThreadingTCPServer.server_close(self)

    server = make_server(Server, Slow)
    client = client_for(server)
    client.send(b"x")
    server.handle_request()
    close_server(server)
    check(finished == [1], "server_close returned before the handler ended")
    check(read_all(client) == b"", "the request was not closed")
    client.close()


@scenario
def threading_udp_echo():
    """ThreadingUDPServer answers from a handler thread, not the caller's."""
    if _thread is None:
        raise Skip("no _thread")
    threads = []

    class Handler(DatagramEcho):
        def handle(self):
            threads.append(_thread.get_ident())
            DatagramEcho.handle(self)

    server, reply = one_exchange(socketse.ThreadingUDPServer, Handler)
    check(reply == b"HELLO\n", reply)
    check(len(threads) == 1 and threads[0] != _thread.get_ident(), threads)


@scenario
def unbuffered_wfile_sends_everything():
    """A 300 kB wfile.write() arrives whole.  The board profiles' lwIP runs
    its loopback inside the process, whose buffers a write this large can
    run out of (ENOMEM from send(), reported to handle_error(), the reply
    cut short): such a run is tried again, up to three times in all, and
    any other shortfall fails."""
    if _thread is None:
        raise Skip("no _thread: a large reply needs a reader at once")
    size = 300000

    class Large(socketse.StreamRequestHandler):
        def handle(self):
            self.rfile.readline()
            self.wfile.write(b"x" * size)

    for attempt in range(3):
        errors = Errors()
        server = make_server(socketse.ThreadingTCPServer, Large, handle_error=errors.record)
        client = client_for(server)
        try:
            client.send(b"go\n")
            server.handle_request()
            reply = read_all(client)
        finally:
            client.close()  # first: a handler still writing to it would hold server_close()
            close_server(server)
        out_of_buffers = [message for message in errors.messages if "ENOMEM" in message
                          or "Errno 12" in message]
        if len(reply) == size or not out_of_buffers:
            break
    check(len(reply) == size, (len(reply), errors.messages))


@scenario
def a_reply_larger_than_a_boards_send_buffer_arrives_whole():
    """A 12,000-byte wfile.write() with no thread to read it meanwhile: more
    than a board's TCP send buffer (11,680 bytes on CircuitPython's Pico W,
    which waits for room; 5,760 on its ESP32, whose send() says EAGAIN at
    once when full), less than the buffers of the in-process lwIP builds
    (12,800), which then hold it all until the client reads."""
    class Large(socketse.StreamRequestHandler):
        def handle(self):
            self.rfile.readline()
            self.wfile.write(b"x" * 12000)

    server = make_server(socketse.TCPServer, Large)
    try:
        reply = exchange(server, b"go\n")
        check(reply == b"x" * 12000, len(reply))
    finally:
        close_server(server)


def threading_serves_every_request_with_the_threads_it_gets(reuse):
    """A scenario: requests that arrive while every thread the platform
    gives is busy wait for one, and none is dropped (the Pico W gives one)."""
    def run():
        if _thread is None:
            raise Skip("no _thread")

        accepted = []

        class Slow(LineEcho):
            def handle(self):
                line = self.rfile.readline()
                n = int(line.split()[1])
                # Busy until the next request has come, and been accepted.
                if wait_until(lambda: n == 2 or len(accepted) > n + 1):
                    self.wfile.write(line.upper())

        def verify_request(self, request, client_address):
            accepted.append(client_address)
            return True

        server = make_server(socketse.ThreadingTCPServer, Slow, reuse_threads=reuse,
                             verify_request=verify_request)
        clients = []
        try:
            for n in range(3):
                client = client_for(server)
                client.send(b"client %d\n" % n)
                clients.append(client)
                server.handle_request()
            replies = [read_all(client) for client in clients]
            check(replies == [b"CLIENT %d\n" % n for n in range(3)], replies)
        finally:
            for client in clients:
                client.close()
            close_server(server)
    return run


for reuse in (True, False):
    scenario(threading_serves_every_request_with_the_threads_it_gets(reuse),
             "threading_serves_every_request_%s" % ("reusing_threads" if reuse else "a_new_thread_each"))


@scenario
def threading_new_server_after_server_close_starts_threads():
    """The threads of a closed server end a little after server_close() on
    the Pico W: a new server right away must still start its own."""
    if _thread is None:
        raise Skip("no _thread")
    for round in range(3):
        server = make_server(socketse.ThreadingTCPServer, LineEcho)
        try:
            check(exchange(server, b"round %d\n" % round) == b"ROUND %d\n" % round, round)
        finally:
            close_server(server)


@scenario
def forking_serves_from_a_child():
    """ForkingTCPServer and ForkingUDPServer answer from a child process,
    reaped by server_close()."""
    if not hasattr(socketse, "ForkingTCPServer"):
        raise Skip("no os.fork")

    class Pid(socketse.BaseRequestHandler):
        def handle(self):
            if isinstance(self.request, tuple):
                sock = self.request[1]
                sock.sendto(str(os.getpid()).encode(), self.client_address)
            else:
                self.request.send(str(os.getpid()).encode())

    for server_class in (socketse.ForkingTCPServer, socketse.ForkingUDPServer):
        server = make_server(server_class, Pid)
        try:
            client = client_for(server)
            client.send(b"x")
            server.handle_request()
            reply = client.recv(1024)
            client.close()
            check(reply and int(reply) != os.getpid(), reply)
        finally:
            close_server(server)
        check(not server.active_children, server.active_children)


def ready_made_servers():
    """The names of the ready-made server classes this platform has."""
    return [name for name in sorted(socketse.__all__)
            if name.endswith("Server") and name != "BaseServer"
            and (_thread or not name.startswith("Threading"))]


def echo_server(server_class):
    """A server of a ready-made class, with the echo handler its kind takes."""
    datagram = server_class.socket_type == socketse.UDPServer.socket_type
    return make_server(server_class, DatagramEcho if datagram else LineEcho)


def echo_once(server):
    """Check that an echo_server() answers one request, handle_request()
    serving it."""
    unix = isinstance(server.server_address, str)
    datagram = server.socket_type == socketse.UDPServer.socket_type
    path = unix_path() if datagram and unix else None  # a name to reply to
    try:
        client = client_for(server, bind_to=path)
        client.send(b"every class\n")
        server.handle_request()
        reply = client.recv(1024)
        client.close()
        check(reply == b"EVERY CLASS\n", reply)
    finally:
        if path:
            os.remove(path)


def ready_made_server_serves(name):
    """A scenario: the ready-made server class `name` answers one echo."""
    def run():
        server = echo_server(getattr(socketse, name))
        try:
            echo_once(server)
        finally:
            close_server(server)
    return run


for name in ready_made_servers():
    scenario(ready_made_server_serves(name), name + "_serves")


def base_server_serves_what_get_request_gives(offers):
    """A scenario: BaseServer needs no socket of its own.  Here requests come
    from a list, and a datagram socket with a datagram queued stands for
    "readable"; the server offers it as fileno() (as the stdlib asks) or as
    its socket attribute (what board sockets, without fileno(), allow).  It
    is a socket of socketse's own socket module (on CircuitPython, its
    pool), and a client sends the datagram."""
    def run():
        if socketse.select is None:
            raise Skip("no select: a BaseServer has nothing to wait on")
        handled = []

        def bound_datagram_socket(port):
            sock = socketse.socket.socket(socketse.UDPServer.address_family,
                                          socketse.UDPServer.socket_type)
            try:
                sock.bind(socketse._native_address(("127.0.0.1", port)))
            except OSError:
                sock.close()
                raise
            return sock, ("127.0.0.1", port)

        readable, address = on_a_random_port(bound_datagram_socket)

        class Jobs(socketse.BaseServer):
            jobs = ["first", "second"]

            def get_request(self):
                return self.jobs.pop(0), "job queue"

        if offers == "fileno":
            try:
                socketse.select.poll().register(readable.fileno())
            except (AttributeError, OSError):
                readable.close()
                raise Skip("select here waits on socket objects only")
            Jobs.fileno = lambda self: readable.fileno()
        else:
            Jobs.socket = readable

        class Job(socketse.BaseRequestHandler):
            def handle(self):
                handled.append((self.request, self.client_address))

        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with Jobs(None, Job) as server:
                sender.sendto(b"!", client_address(address))
                server.handle_request()
                server.handle_request()
            check(handled == [("first", "job queue"), ("second", "job queue")], handled)
        finally:
            sender.close()
            readable.close()
    return run


for offers in ("fileno", "socket"):
    scenario(base_server_serves_what_get_request_gives(offers),
             "base_server_waits_on_its_" + offers)


# -- issue 4: faults, load, hostile clients, bounded resources ------------------
#
# Every fault costs at most the request that caused it: the server goes on
# serving, and what it took (descriptors, threads) it gives back.

class Errors:
    """What handle_error saw: the type and the message of each error (not
    the error, which would keep its frames), guarded by a lock: no GIL on
    MicroPython."""

    def __init__(self):
        self.types = []
        self.messages = []
        self.lock = _thread.allocate_lock() if _thread else None
        # A plain function, to be a server class's handle_error method.
        self.record = lambda server, request, client_address: self.add(current_error())

    def add(self, error):
        if self.lock:
            with self.lock:
                self.types.append(type(error))
                self.messages.append(str(error))
        else:
            self.types.append(type(error))
            self.messages.append(str(error))

    def __len__(self):
        return len(self.types)


def send_all(sock, data):
    """sendall(), which may stop short on MicroPython, as a loop."""
    view = memoryview(data)
    sent = 0
    while sent < len(view):
        sent += sock.send(view[sent:])


def need_linger():
    if not hasattr(socket, "SO_LINGER"):
        raise Skip("no SO_LINGER: a client cannot reset the connection")


def reset_close(sock):
    """Close with a TCP reset (linger on, timeout 0) instead of a FIN.
    Callers have asked need_linger() first."""
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def open_descriptors():
    """Descriptors open in this process, or None where /proc is missing."""
    try:
        import gc
        gc.collect()
    except ImportError:
        pass
    try:
        return len(os.listdir("/proc/self/fd"))
    except (OSError, AttributeError):
        return None


def hand_over(server):
    """Have the server take the request waiting for it: handle_request(),
    unless serve_in_thread() serves it."""
    if not getattr(server, "served_in_thread", False):
        server.handle_request()


def exchange(server, message):
    """One request to a stream server, its reply: handle_request() serves
    it, unless serve_in_thread() serves the server."""
    client = client_for(server)
    send_all(client, message)
    hand_over(server)
    reply = read_all(client)
    client.close()
    return reply


def serve_in_thread(server, poll_interval=0.05):
    """serve_forever() in a thread; returns a function that stops it and
    returns the seconds shutdown() took."""
    state = {"ended": False}

    def run():
        try:
            server.serve_forever(poll_interval)
        finally:
            state["ended"] = True

    server.served_in_thread = True
    start_thread(run)

    def stop():
        started = time.time()
        server.shutdown()
        took = time.time() - started
        check(wait_until(lambda: state["ended"]), "serve_forever did not end")
        server.served_in_thread = False
        return took
    return stop


BYSTANDER = b"bystander\n"


def against_each_server(handler_class, run, bystander_reply):
    """run(server, errors) against a TCPServer whose requests the scenario
    hands over with handle_request() (exchange() does), then, where the
    platform runs four threads at once (serve_forever's, and handlers for a
    bystander, a fault and the next request), a ThreadingTCPServer serving
    in a thread, with a bystander: a client whose request is in flight
    across the faults, half of it sent before them and half after, and
    whose reply must come intact."""
    server_classes = [socketse.TCPServer]
    if threads_at_once() >= 4:
        server_classes.append(socketse.ThreadingTCPServer)
    for server_class in server_classes:
        errors = Errors()
        server = make_server(server_class, handler_class, handle_error=errors.record)
        stop = None
        if server_class is socketse.ThreadingTCPServer:
            stop = serve_in_thread(server)
        bystander = None
        try:
            if stop:
                bystander = client_for(server)
                send_all(bystander, BYSTANDER[:4])
            run(server, errors)
            if bystander:
                send_all(bystander, BYSTANDER[4:])
                if hasattr(bystander, "shutdown"):
                    bystander.shutdown(socket.SHUT_WR)
                check(read_all(bystander) == bystander_reply, "the bystander's request was hurt")
        finally:
            if bystander:
                bystander.close()
            if stop:
                stop()
            close_server(server)


class Utf8Upper(socketse.StreamRequestHandler):
    def handle(self):
        text = self.rfile.readline().decode("utf-8")
        self.wfile.write(text.upper().encode("utf-8"))


class PatientLineEcho(LineEcho):
    timeout = 1.0


@scenario
def fault_client_resets_mid_request():
    """A client that resets its connection in the middle of its request
    costs that request a connection error (an OSError) at most.  On the Pico
    W a connection reset before accept() leaves lwIP's queue unseen: there
    handle_request() gives up after its timeout.  CircuitPython on ESP32
    reads a reset connection as "nothing yet" for ever (after one ECONNRESET
    it answers EAGAIN, and a blocking recv_into() waits on): there the
    handler needs a timeout, and the error is that timeout."""
    need_linger()

    def run(server, errors):
        server.timeout = 2.0
        for round in range(5):
            client = client_for(server)
            client.send(b"half a requ")  # no end of line
            reset_close(client)
            hand_over(server)
            check(exchange(server, b"next\n") == b"NEXT\n", "no reply after a reset")
            check(len(errors) <= round + 1, errors.types)  # one request, one error at most
        check(all(issubclass(error, OSError) for error in errors.types), errors.types)

    against_each_server(PatientLineEcho if board() == "circuitpython_espressif" else LineEcho,
                        run, BYSTANDER.upper())


@scenario
def fault_client_resets_while_the_server_writes():
    """A client that resets its connection while the server writes it a
    large reply costs that request one connection error (an OSError),
    whether wfile buffers or not."""
    need_linger()
    if _thread is None and board() == "circuitpython_raspberrypi":
        raise Skip("a connection reset before accept() never reaches a Pico W's server "
                   "(lwIP drops it from the queue), and without a thread the client "
                   "resets before the server takes it: nothing to write to")
    for wbufsize in (0, 65536):
        class Large(socketse.StreamRequestHandler):
            def handle(self):
                if self.rfile.readline() == b"large\n":
                    chunk = b"x" * 65536  # 16 MiB in all, not all at once: MicroPython's heap is small
                    for _ in range(256):
                        self.wfile.write(chunk)
                else:
                    self.wfile.write(b"small\n")

        Large.wbufsize = wbufsize
        against_each_server(Large, reset_while_writing, b"small\n")


def reset_while_writing(server, errors):
    for round in range(3):
        # A small receive window (SO_RCVBUF is 8 on Linux; MicroPython lacks
        # the name): the reply cannot all wait in buffers before the reset.
        client = socket.socket(server.address_family, server.socket_type)
        try:
            client.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUF", 8), 65536)
        except OSError:
            pass
        client.connect(client_address(server.server_address))
        client.settimeout(10)
        client.send(b"large\n")
        if _thread is None:  # reset at once: the server then writes to a reset socket
            reset_close(client)
            server.handle_request()
        else:  # read part of the reply, then reset while the server writes
            done = []

            def handle():
                try:
                    server.handle_request()
                finally:
                    done.append(1)

            if getattr(server, "served_in_thread", False):
                done.append(1)
            else:
                start_thread(handle)
            got = 0
            while got < 65536:
                chunk = client.recv(65536)
                check(chunk, "EOF in the middle of the reply")
                got += len(chunk)
            reset_close(client)
            check(wait_until(lambda: done), "handle_request() never returned")
            check(wait_until(lambda: len(errors) == round + 1), errors.types)
        check(exchange(server, b"small\n") == b"small\n", "no reply after a reset")
    check(1 <= len(errors) <= 3, errors.types)
    check(all(issubclass(error, OSError) for error in errors.types), errors.types)


@scenario
def fault_silent_client_frees_its_thread():
    """A client that connects and sends nothing holds its handler thread
    for the handler's timeout only: others are served meanwhile; then it
    sees the end of the stream, handle_error() gets a timeout (an OSError),
    the handler finishes and its thread is given back."""
    if _thread is None:
        raise Skip("no _thread")
    errors = Errors()
    lock = _thread.allocate_lock()
    live = []  # handlers between setup() and the end of finish()

    class Impatient(LineEcho):
        timeout = 0.2

        def setup(self):
            with lock:
                live.append(1)
            LineEcho.setup(self)

        def finish(self):
            try:
                LineEcho.finish(self)
            finally:
                with lock:
                    live.pop()

    before = running_threads()
    server = make_server(socketse.ThreadingTCPServer, Impatient, handle_error=errors.record)
    try:
        silent = client_for(server)  # connects and sends nothing
        server.handle_request()
        check(exchange(server, b"meanwhile\n") == b"MEANWHILE\n", "not served meanwhile")
        check(read_all(silent) == b"", "silent client not closed")
        silent.close()
        check(wait_until(lambda: not live), "the silent client's handler never finished")
        check(len(errors) == 1 and issubclass(errors.types[0], OSError), errors.types)
        check(exchange(server, b"after\n") == b"AFTER\n", "no reply after the timeout")
    finally:
        close_server(server)
    check(threads_end(before), "threads left after server_close")


class EchoUntilTheDeadline(socketse.StreamRequestHandler):
    """Every line echoed until the end of the stream, with a whole-request
    deadline of a second, far shorter than the per-call timeout."""
    request_timeout = 1.0
    timeout = 5.0

    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


@scenario
def request_timeout_ends_a_trickling_client():
    """A client sending a byte every 0.1 s, each well within the handler's
    timeout, loses its connection at request_timeout, with a timeout (an
    OSError) for handle_error(); the client queued behind it is answered
    no later than that deadline plus a second.  The clients share one
    thread (the Pico W has one to give), the server is the main thread's."""
    need_threads(1)
    errors = Errors()
    server = make_server(socketse.TCPServer, EchoUntilTheDeadline, handle_error=errors.record)
    took = {}
    try:
        trickler = client_for(server)
        patient = client_for(server)
        send_all(patient, b"hello\n")
        sent_at = time.time()

        def trickle():
            try:
                while time.time() - sent_at < 6 and "reply" not in took:
                    try:
                        trickler.send(b"x")
                    except OSError:  # closed at its deadline: the send may fail
                        pass
                    patient.settimeout(0.1)
                    try:
                        took["reply"] = (patient.recv(64), time.time() - sent_at)
                    except OSError:  # nothing yet
                        pass
            finally:
                took["done"] = True

        start_thread(trickle)
        server.handle_request()  # the trickler's request, until its deadline
        took["trickler"] = time.time() - sent_at
        server.handle_request()
        check(wait_until(lambda: "done" in took), "the clients' thread did not end")
        check(0.8 <= took["trickler"] <= 2.0, "the trickler was cut off after %.2f s, "
              "request_timeout is 1 s" % took["trickler"])
        check(took.get("reply", (b"", 0))[0] == b"hello\n", took)
        check(took["reply"][1] <= 2.0, "answered after %.2f s" % took["reply"][1])
        check(errors.types and issubclass(errors.types[0], OSError), errors.types)
        trickler.close()
        patient.close()
    finally:
        close_server(server)


class Lines(socketse.StreamRequestHandler):
    """Every line upper-cased until the end of the stream, then BYE; an
    unfinished last line is refused."""

    def handle(self):
        for line in self.rfile:
            if not line.endswith(b"\n"):
                self.wfile.write(b"ERR unfinished\n")
                return
            self.wfile.write(line.upper())
        self.wfile.write(b"BYE\n")


def half_closed(server, data):
    """The reply to data sent on a connection then half-closed."""
    client = client_for(server)
    if not hasattr(client, "shutdown"):
        client.close()
        raise Skip("sockets have no shutdown()")
    send_all(client, data)
    client.shutdown(socket.SHUT_WR)
    hand_over(server)
    reply = read_all(client)
    client.close()
    return reply


@scenario
def fault_half_close_after_the_request():
    """A client that half-closes after its request still gets every reply;
    an unfinished last line is the handler's to refuse; an empty request
    is answered too."""
    if board() == "circuitpython_raspberrypi":
        raise Skip("the Pico W answers no client that has half-closed: send() is "
                   "BrokenPipeError once the peer's FIN has come")

    def run(server, errors):
        for round in range(3):
            check(half_closed(server, b"one\ntwo\n") == b"ONE\nTWO\nBYE\n", "not answered")
            check(half_closed(server, b"one\ntw") == b"ONE\nERR unfinished\n", "unfinished line")
            check(half_closed(server, b"") == b"BYE\n", "empty request")
        check(len(errors) == 0, errors.types)

    against_each_server(Lines, run, BYSTANDER.upper() + b"BYE\n")


@scenario
def fault_invalid_utf8_costs_one_handle_error():
    def run(server, errors):
        check(exchange(server, b"\xff\xfe not utf-8 \xc3\x28\n") == b"", "bad input answered")
        check(wait_until(lambda: len(errors) == 1), errors.types)
        check(issubclass(errors.types[0], UnicodeError), errors.types)
        text = "h\u00e9llo\n"
        check(exchange(server, text.encode("utf-8")) == text.upper().encode("utf-8"),
              "no reply after bad input")
        check(len(errors) == 1, errors.types)

    against_each_server(Utf8Upper, run, BYSTANDER.upper())


@scenario
def fault_handler_exceptions_in_threads_cost_their_own_requests():
    """Handlers that raise in threads, at max_threads, for clients at once:
    each error reaches handle_error() with its own request's message, costs
    only that request, and gives its thread back."""
    need_threads(2)  # serve_forever's and a handler's
    errors = Errors()
    lock = _thread.allocate_lock()
    replies = []
    ended = []

    class Failing(LineEcho):
        def handle(self):
            line = self.rfile.readline()
            if line.startswith(b"fail"):
                raise ValueError(line.decode().strip())
            self.wfile.write(line.upper())

    def client(worker):
        try:
            for n in range(10):
                word = (b"fail %d %d\n" if n % 2 else b"ok %d %d\n") % (worker, n)
                sock = client_for(server)
                send_all(sock, word)
                reply = read_all(sock)
                sock.close()
                with lock:
                    replies.append((word, reply))
        finally:
            with lock:
                ended.append(worker)

    before = running_threads()
    server = make_server(socketse.ThreadingTCPServer, Failing, max_threads=2,
                         handle_error=errors.record)
    stop = serve_in_thread(server)
    workers = 2 if threads_at_once() >= 4 else 1  # with serve_forever's and two handlers'
    try:
        if workers == 2:
            start_thread(client, 1)
        client(0)
        check(wait_until(lambda: len(ended) == workers), "a client never ended")
        check(len(replies) == 10 * workers, replies)
        for word, reply in replies:
            check(reply == (b"" if word.startswith(b"fail") else word.upper()), (word, reply))
        failed = sorted(word.decode().strip() for word, reply in replies
                        if word.startswith(b"fail"))
        check(wait_until(lambda: len(errors) == len(failed)), errors.types)
        check(errors.types == [ValueError] * len(failed), errors.types)
        check(sorted(errors.messages) == failed, errors.messages)
    finally:
        stop()
        close_server(server)
    check(threads_end(before), "threads left after server_close")


@scenario
def fault_system_exit_leaves_the_server_usable():
    """SystemExit and KeyboardInterrupt from a handler end serve_forever(),
    with no handle_error(); the same server serves again, and closes twice."""
    for exception in (SystemExit, KeyboardInterrupt):
        errors = Errors()

        class Exiting(LineEcho):
            def handle(self):
                line = self.rfile.readline()
                if line == b"exit\n":
                    raise exception(4)
                self.wfile.write(line.upper())
                self.server.shutdown()  # ends serve_forever after this request

        def service_actions(self):  # a guard: the loop went on past the exception
            self.shutdown()

        server = make_server(socketse.TCPServer, Exiting, handle_error=errors.record,
                             service_actions=service_actions)
        try:
            client = client_for(server)
            client.send(b"exit\n")
            try:
                server.serve_forever(0.05)
            except exception as exit:
                check(exit.args == (4,), exit.args)
            else:
                check(False, "%s did not propagate" % exception.__name__)
            check(read_all(client) == b"", "request not closed")
            client.close()
            client = client_for(server)  # the same server serves again
            client.send(b"again\n")
            server.serve_forever(0.05)
            check(read_all(client) == b"AGAIN\n", "not served after %s" % exception.__name__)
            client.close()
            check(len(errors) == 0, errors.types)
        finally:
            close_server(server)
        server.server_close()  # twice: fine


def concurrency_handler(state, fill):
    """A line echo that records how many handlers run at once (under a
    lock), lingering until `fill` do, or every client left does."""

    class Handler(socketse.StreamRequestHandler):
        def handle(self):
            with state["lock"]:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            try:
                line = self.rfile.readline()
                wait_until(lambda: state["now"] >= min(fill, state["total"] - state["served"]), 5)
                time.sleep(0.02)
                self.wfile.write(line.upper())
            finally:
                with state["lock"]:
                    state["now"] -= 1
                    state["served"] += 1
    return Handler


def run_concurrent_clients(server_class, total, fill, **attributes):
    """total clients at once; returns the most handlers seen running together."""
    need_threads(1 + fill)  # serve_forever's and the handlers'
    before = running_threads()
    state = {"lock": _thread.allocate_lock(), "now": 0, "most": 0, "served": 0, "total": total}
    server = make_server(server_class, concurrency_handler(state, fill), **attributes)
    stop = serve_in_thread(server)
    clients = []
    try:
        for n in range(total):  # all connect at once: the backlog holds them
            client = client_for(server)
            client.send(b"client %d\n" % n)
            clients.append(client)
        for n, client in enumerate(clients):
            reply = read_all(client)
            check(reply == b"CLIENT %d\n" % n, reply)
        check(state["served"] == total, state["served"])
    finally:
        for client in clients:  # a board's stack has room for a few only
            client.close()
        stop()
        close_server(server)
    check(threads_end(before), "threads left after server_close")
    return state["most"]


@scenario
def bounded_max_threads():
    # Four clients: the boards' in-process stack holds ten connection ends.
    most = run_concurrent_clients(socketse.ThreadingTCPServer, 4, 2, max_threads=2)
    check(most == 2, "%d handlers at once with max_threads = 2" % most)


@scenario
def bounded_without_max_threads_more_run_at_once():
    check(socketse.ThreadingTCPServer.max_threads is None, "bounded by default")
    most = run_concurrent_clients(socketse.ThreadingTCPServer, 4, 4)
    check(most > 2, "only %d handlers at once without max_threads" % most)


@scenario
def lifecycle_shutdown_before_serve_forever():
    rounds = []

    class Server(socketse.TCPServer):
        def service_actions(self):  # a guard: ends a loop that should not have run
            rounds.append(1)
            self.shutdown()

    server = make_server(Server, LineEcho)
    try:
        server.shutdown()  # nothing serves: returns at once
        server.serve_forever(0.05)
        check(rounds == [], "serve_forever ran after an earlier shutdown()")
        check(exchange(server, b"served\n") == b"SERVED\n", "not served afterwards")
    finally:
        close_server(server)


@scenario
def lifecycle_shutdown_twice():
    """shutdown() twice from the serving thread, twice with no loop, and,
    where threads allow, twice at once from two threads while the loop
    serves: every call returns, and the server serves again."""
    rounds = []

    class Server(socketse.TCPServer):
        def service_actions(self):
            rounds.append(1)
            self.shutdown()
            self.shutdown()  # twice, from the serving thread: both return

    server = make_server(Server, LineEcho)
    try:
        server.serve_forever(0.05)
        check(rounds == [1], rounds)
        server.shutdown()  # twice more, with no loop running
        server.shutdown()
        server.serve_forever(0.05)  # as in the stdlib: returns at once
        check(rounds == [1], rounds)
        server.serve_forever(0.05)  # and this one runs a round again
        check(rounds == [1, 1], rounds)
        check(exchange(server, b"served\n") == b"SERVED\n", "not served afterwards")
    finally:
        close_server(server)
    if threads_at_once() < 3:  # serve_forever's and two shutdown()s
        return
    server = make_server(socketse.TCPServer, LineEcho)
    state = {"ended": False}
    returned = []
    lock = _thread.allocate_lock()

    def serve():
        try:
            server.serve_forever(0.05)
        finally:
            state["ended"] = True

    def shut_down():
        server.shutdown()
        with lock:
            returned.append(1)

    try:
        start_thread(serve)
        client = client_for(server)
        send_all(client, b"served\n")
        check(read_all(client) == b"SERVED\n", "not served")  # the loop runs
        client.close()
        start_thread(shut_down)
        start_thread(shut_down)
        check(wait_until(lambda: len(returned) == 2), "a shutdown() from a thread hung")
        check(wait_until(lambda: state["ended"]), "serve_forever did not end")
        check(exchange(server, b"again\n") == b"AGAIN\n", "not served afterwards")
    finally:
        close_server(server)


@scenario
def lifecycle_server_close_twice():
    """Every ready-made server, having served a request, may be closed
    twice, and a third time by leaving a with block."""
    for name in ready_made_servers():
        server = echo_server(getattr(socketse, name))
        try:
            echo_once(server)
            server.server_close()
            server.server_close()
            with server:
                pass
            check(closed(server), name)
        finally:
            close_server(server)


@scenario
def lifecycle_bind_to_a_busy_port():
    """A server on a port in use, with or without allow_reuse_address,
    raises the OSError (EADDRINUSE) itself, calls server_close() and keeps
    no descriptor; the server on that port serves on."""
    server_classes = [socketse.TCPServer, socketse.UDPServer]
    if _thread:
        server_classes.append(socketse.ThreadingTCPServer)
    for server_class in server_classes:
        busy = echo_server(server_class)
        try:
            before = open_descriptors()
            for reuse in (False, True):  # SO_REUSEADDR takes no port in use
                closes = []

                class Attempt(server_class):
                    allow_reuse_address = reuse

                    def server_close(self):
                        closes.append(1)
                        server_class.server_close(self)

                for _ in range(10):
                    try:
                        Attempt(busy.server_address, LineEcho)
                    except OSError as error:
                        check(type(error) is OSError and error.args[0] == EADDRINUSE,
                              repr(error))
                    else:
                        check(False, "bound a busy port")
                check(len(closes) == 10, "server_close() called %d times for 10" % len(closes))
            check(open_descriptors() == before, "descriptors leaked: %r -> %r"
                  % (before, open_descriptors()))
            echo_once(busy)  # the first server still serves
        finally:
            close_server(busy)


def is_socket_file(path):
    return os.stat(path)[0] & 0o170000 == 0o140000


def refused(server_class, path):
    """Check that a server on path is refused with EADDRINUSE."""
    try:
        server_class(path, LineEcho)
    except OSError as error:
        check(error.args[0] == EADDRINUSE, error.args)
    else:
        check(False, "bound over an existing file")


@scenario
def lifecycle_unix_server_on_an_existing_file():
    """A Unix server on a path that exists, a plain file or the socket file
    a closed server left behind, is refused (EADDRINUSE), removes nothing
    and keeps no descriptor; a live server's path is refused too, and that
    server serves on."""
    for name in ("UnixStreamServer", "UnixDatagramServer"):
        server_class = unix_server_class(name)
        path = unix_path()
        with open(path, "wb") as f:
            f.write(b"precious")
        try:
            before = open_descriptors()
            refused(server_class, path)
            with open(path, "rb") as f:
                check(f.read() == b"precious", "the file was changed")
            os.remove(path)
            server_class(path, LineEcho).server_close()  # leaves its socket file
            check(is_socket_file(path), "no socket file left")
            refused(server_class, path)
            check(is_socket_file(path), "the socket file was removed")
            check(open_descriptors() == before, "descriptors leaked: %r -> %r"
                  % (before, open_descriptors()))
        finally:
            os.remove(path)
    live = make_server(socketse.UnixStreamServer, LineEcho)
    try:
        refused(socketse.UnixStreamServer, live.server_address)
        check(exchange(live, b"alive\n") == b"ALIVE\n", "the live server was hurt")
    finally:
        close_server(live)


@scenario
def udp_empty_reply_is_sent_and_serving_goes_on():
    """An empty reply is a datagram as in the stdlib, and never hangs the
    server (esp32's blocking sendto(b"") would repeat it for ever)."""
    class Silent(socketse.DatagramRequestHandler):
        def handle(self):
            if self.rfile.read() != b"quiet":
                self.wfile.write(b"loud")

    server = make_server(socketse.UDPServer, Silent)
    try:
        for message, expected in ((b"quiet", b""), (b"again", b"loud")):
            client = client_for(server)  # a new one each: on esp32, a socket
            client.send(message)         # that got an empty datagram is spoilt
            server.handle_request()
            reply = client.recv(1024)
            client.close()
            check(reply == expected, reply)
    finally:
        close_server(server)


@scenario
def udp_oversized_datagram_does_not_disturb_the_next():
    server = make_server(socketse.UDPServer, DatagramEcho, max_packet_size=16)
    try:
        client = client_for(server)
        for round in range(5):
            client.send(b"abcdefghijklmnopqrstuvwxyz%d" % round)
            server.handle_request()
            check(client.recv(1024) == b"ABCDEFGHIJKLMNOP", "not cut to max_packet_size")
            client.send(b"next %d" % round)
            server.handle_request()
            check(client.recv(1024) == b"NEXT %d" % round, "the next datagram was disturbed")
        client.close()
    finally:
        close_server(server)


# Generated hostile input, without hypothesis (MicroPython has none): a
# seeded generator gives the same lines and chunks on every interpreter.

LINE_LIMIT = 32


class Generator:
    """A linear congruential generator: portable and reproducible."""

    def __init__(self, seed):
        self.state = seed

    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.state >> 8) % n

    def data(self, size):
        return bytes(self.below(256) for _ in range(size)).replace(b"\n", b"n")


class Limited(socketse.StreamRequestHandler):
    """Lines of at most LINE_LIMIT bytes, each answered until QUIT; a
    longer line is answered "ERR too long" and skipped."""

    def handle(self):
        while True:
            line = self.rfile.readline(LINE_LIMIT)
            if not line or line == b"QUIT\n":
                return
            if line.endswith(b"\n"):
                self.wfile.write(limited_answer(line[:-1]))
                continue
            self.wfile.write(b"ERR too long\n")
            while not line.endswith(b"\n"):
                line = self.rfile.readline(LINE_LIMIT)
                if not line:
                    return


def limited_answer(request):
    if request.startswith(b"ECHO "):
        return b"OK " + request[5:].upper() + b"\n"
    return b"ERR bad request\n"


def limited_replies(lines):
    """The model: what Limited answers to these lines (no end of line)."""
    return b"".join(limited_answer(line) if len(line) < LINE_LIMIT else b"ERR too long\n"
                    for line in lines)


@scenario
def hostile_lines_in_random_chunks():
    random = Generator(4)
    errors = Errors()
    threads = threads_at_once() >= 2  # serve_forever's and a handler's
    server = make_server(socketse.ThreadingTCPServer if threads else socketse.TCPServer,
                         Limited, handle_error=errors.record)
    stop = serve_in_thread(server) if threads else None
    try:
        for round in range(30):
            lines = []
            for _ in range(random.below(8)):
                kind = random.below(4)
                if kind == 0:  # random bytes, any length around the limit
                    lines.append(random.data(random.below(2 * LINE_LIMIT)))
                elif kind == 1:  # at the limit, either side
                    lines.append(b"ECHO " + random.data(LINE_LIMIT - 8 + random.below(5)))
                elif kind == 2:  # far too long
                    lines.append(b"ECHO " + random.data(LINE_LIMIT + random.below(4 * LINE_LIMIT)))
                else:
                    lines.append(b"ECHO " + random.data(random.below(LINE_LIMIT - 6)))
            data = b"".join(line + b"\n" for line in lines) + b"QUIT\n"
            client = client_for(server)
            # Each send its own segment (numbers for MicroPython, which lacks the names).
            client.setsockopt(getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1)
            start = 0
            while start < len(data):  # random chunks
                end = start + 1 + random.below(40)
                send_all(client, data[start:end])
                start = end
                if stop and random.below(16) == 0:  # now and then, a pause
                    time.sleep(0.001)
            if not stop:
                server.handle_request()
            reply = read_all(client)
            client.close()
            check(reply == limited_replies(lines), (round, data, reply))
        check(len(errors) == 0, errors.types)
    finally:
        if stop:
            stop()
        close_server(server)



sys.exit(run(SCENARIOS))
