"""The servers that bench/run.py measures, one per variant and case.

    python3 bench/servers.py VARIANT CASE PORT [ARG]

VARIANT is ``socketse``, ``stdlib`` (the standard library's socketserver and
http.server), ``bare`` (a socket loop written as tightly as a person would
by hand: the physical limit on this interpreter) or, for tcp_sync and
tcp_threading, ``asyncio`` (asyncio.start_server with a coroutine per
connection that echoes as the others do: what a person might pick instead
of socketserver, on CPython and MicroPython alike).  CASE is one of

- ``tcp_sync``: TCP echo, one request per connection, one at a time
- ``tcp_threading``: the same, a thread per connection
- ``tcp_forking``: the same, a process per connection
- ``udp``: UDP echo, one datagram in, the same one out
- ``line``: a line protocol on a single-threaded server: every line read
  with rfile.readline() is written back with wfile.write()
- ``line_threading``: the same line protocol, a thread per connection
- ``http``: an http.server.BaseHTTPRequestHandler returning a small body, on
  a thread-per-connection server
- ``shutdown``: no server for clients; starts a server ARG times (default
  50), serves one request from a client in this process, then times
  shutdown(); prints ``SHUTDOWN <s>`` per start.  It runs everywhere the
  servers run, MicroPython and the board profiles too (``bare`` there is
  the stoppable loop a person would write on that interpreter)
- ``import``: times the import of the variant's module in this fresh
  interpreter (after ``import socket``, which every variant needs) and
  prints ``IMPORT <s> <count> <modules added>``

For tcp_sync and udp, VARIANT may also be a step between the bare loop and
socketse's serve_forever(), each adding one layer of socketse to the one
before, so that the cost of each layer shows as a difference:

- ``+handler``: the bare loop, with each request handled by a socketse
  request handler object (its __init__, setup(), handle() and finish())
- ``+hooks``: each request also goes through the server's hooks, as
  serve_forever() calls them: verify_request(), process_request(),
  finish_request(), shutdown_request() and close_request()
- ``+get_request``: the request also comes from get_request() (accept() or
  recvfrom(), and on MicroPython the translation of the client's address)
- ``socketse``: serve_forever() itself, which also waits for readiness
  before each request (the wait that lets shutdown() wake it at once) and
  calls service_actions()

A server binds 127.0.0.1:PORT (0: any free port), prints ``READY <port>``
and serves until it is killed.  A variant this interpreter cannot run
prints ``UNAVAILABLE <why>`` and exits with status 3.

The file runs on CPython, PyPy and MicroPython's unix port (the socketse,
bare and asyncio variants of tcp_sync, tcp_threading, udp and shutdown
there): it imports only ``sys``
and ``socket`` at the top, and the rest where a case needs it.  socketse is
imported from PYTHONPATH / MICROPYPATH (bench/run.py sets both).

    micropython-lwip-threads bench/servers.py --board esp32 VARIANT shutdown 0

runs the shutdown case on a board profile: ``--board NAME``, first, makes
tests/boards/NAME.py replace the socket, select and errno modules with that
board's (as tests/scenarios.py does).  The lwIP build's loopback lives
inside the process, so only the shutdown case, whose client is in the same
process, can run there.
"""

import sys

if len(sys.argv) > 2 and sys.argv[1] == "--board":
    # Before anything imports socket: the board's modules replace the real ones.
    sys.path.insert(0, (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/../tests")
    from runner import take_options  # tests/runner.py

    take_options()

import socket  # noqa: E402

HOST = "127.0.0.1"
BUFFER = 65536
# What the bare UDP loop receives into: UDPServer's max_packet_size, the
# same in socketse and the stdlib.  A larger buffer costs MicroPython a
# 64 KiB allocation, and soon a collection, per datagram.
DATAGRAM = 8192
BODY = b"Hello from the benchmark.\n"
MICROPYTHON = sys.implementation.name == "micropython"


class Unavailable(Exception):
    pass


def native_address(host, port):
    """What bind() takes here: MicroPython's unix port wants raw bytes."""
    if hasattr(socket, "sockaddr"):
        return socket.getaddrinfo(host, port)[0][-1]
    return (host, port)


def listening_socket(port, kind=socket.SOCK_STREAM):
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if hasattr(socket, "SO_REUSEADDR"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(native_address(HOST, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(getattr(socket, "SOMAXCONN", 128))
    except BaseException:  # a port taken: the caller may try another
        sock.close()
        raise
    return sock


def bound_port(sock, port):
    if hasattr(sock, "getsockname"):
        return sock.getsockname()[1]
    return port  # MicroPython can't tell: the caller named the port


def ready(port):
    print("READY %d" % port)
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def library(variant):
    """The socketserver module of a variant."""
    if variant == "socketse":
        import socketse
        return socketse
    if variant == "stdlib":
        try:
            import socketserver
        except ImportError as error:
            raise Unavailable("no socketserver here: %s" % error)
        return socketserver
    raise Unavailable("no %s variant of this case" % variant)


# ---------------------------------------------------------------------------
# Handlers, the same code for socketse and the stdlib
# ---------------------------------------------------------------------------

def echo_handler(base):
    class Echo(base.BaseRequestHandler):
        def handle(self):
            data = self.request.recv(BUFFER)
            if data:
                self.request.sendall(data)
    return Echo


def datagram_handler(base):
    # The socketserver documentation's handler, on every interpreter: on
    # MicroPython's unix port socketse's sockets take client_address too.
    class Echo(base.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            sock.sendto(data, self.client_address)
    return Echo


def line_handler(base):
    class LineEcho(base.StreamRequestHandler):
        def handle(self):
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                self.wfile.write(line)
    return LineEcho


def http_handler():
    try:
        from http.server import BaseHTTPRequestHandler
    except ImportError as error:
        raise Unavailable("no http.server here: %s" % error)

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, format, *args):
            pass  # no per-request line on stderr, for every variant alike
    return Hello


# ---------------------------------------------------------------------------
# socketse and the stdlib: the same classes, from either module
# ---------------------------------------------------------------------------

def library_server(variant, case, port):
    base = library(variant)
    if case == "tcp_sync":
        return base.TCPServer((HOST, port), echo_handler(base))
    if case == "tcp_threading":
        return base.ThreadingTCPServer((HOST, port), echo_handler(base))
    if case == "tcp_forking":
        if not hasattr(base, "ForkingTCPServer"):
            raise Unavailable("no os.fork here")
        return base.ForkingTCPServer((HOST, port), echo_handler(base))
    if case == "udp":
        return base.UDPServer((HOST, port), datagram_handler(base))
    if case == "line":
        return base.TCPServer((HOST, port), line_handler(base))
    if case == "line_threading":
        return base.ThreadingTCPServer((HOST, port), line_handler(base))
    if case == "http":
        handler = http_handler()
        if variant == "stdlib":
            from http.server import ThreadingHTTPServer
            return ThreadingHTTPServer((HOST, port), handler)

        class Server(base.ThreadingTCPServer):
            # What ThreadingHTTPServer sets, so that only the loop differs.
            daemon_threads = True
            allow_reuse_address = True
        return Server((HOST, port), handler)
    raise Unavailable("unknown case %s" % case)


def serve_library(variant, case, port):
    server = library_server(variant, case, port)
    ready(bound_port(server.socket, port))
    try:
        server.serve_forever()
    finally:
        server.server_close()


# ---------------------------------------------------------------------------
# The bare loops: what a person would write by hand
# ---------------------------------------------------------------------------

def bare_tcp_sync(sock):
    while True:
        conn, _ = sock.accept()
        data = conn.recv(BUFFER)
        if data:
            conn.sendall(data)
        conn.close()


def bare_tcp_threading(sock):
    import _thread

    def handle(conn):
        try:
            data = conn.recv(BUFFER)
            if data:
                conn.sendall(data)
        finally:
            conn.close()

    while True:
        conn, _ = sock.accept()
        _thread.start_new_thread(handle, (conn,))


def bare_tcp_forking(sock):
    import os
    if not hasattr(os, "fork"):
        raise Unavailable("no os.fork here")
    while True:
        conn, _ = sock.accept()
        if os.fork() == 0:
            status = 1
            try:
                sock.close()
                data = conn.recv(BUFFER)
                if data:
                    conn.sendall(data)
                conn.close()
                status = 0
            finally:
                os._exit(status)
        conn.close()
        while True:  # reap the children that have ended, without waiting
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break


def bare_udp(sock):
    while True:
        data, address = sock.recvfrom(DATAGRAM)
        sock.sendto(data, address)


def bare_line_connection(conn):
    rfile = conn.makefile("rb")
    try:
        while True:
            line = rfile.readline()
            if not line:
                break
            conn.sendall(line)
    except OSError:
        pass
    finally:
        rfile.close()
        conn.close()


def bare_line(sock):
    while True:
        conn, _ = sock.accept()
        bare_line_connection(conn)


def bare_line_threading(sock):
    import _thread
    while True:
        conn, _ = sock.accept()
        _thread.start_new_thread(bare_line_connection, (conn,))


def bare_http(sock):
    import _thread
    import email.utils
    head = ("HTTP/1.0 200 OK\r\nServer: bare\r\nDate: %s\r\n"
            "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n")

    def handle(conn):
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(BUFFER)
                if not chunk:
                    return
                request += chunk
            date = email.utils.formatdate(usegmt=True)
            conn.sendall((head % (date, len(BODY))).encode("ascii") + BODY)
        finally:
            conn.close()

    while True:
        conn, _ = sock.accept()
        _thread.start_new_thread(handle, (conn,))


BARE = {
    "tcp_sync": bare_tcp_sync,
    "tcp_threading": bare_tcp_threading,
    "tcp_forking": bare_tcp_forking,
    "udp": bare_udp,
    "line": bare_line,
    "line_threading": bare_line_threading,
    "http": bare_http,
}


def serve_bare(case, port):
    if case not in BARE:
        raise Unavailable("unknown case %s" % case)
    if case == "tcp_forking":
        import os
        if not hasattr(os, "fork"):
            raise Unavailable("no os.fork here")
    kind = socket.SOCK_DGRAM if case == "udp" else socket.SOCK_STREAM
    sock = listening_socket(port, kind)
    ready(bound_port(sock, port))
    try:
        BARE[case](sock)
    finally:
        sock.close()


# ---------------------------------------------------------------------------
# asyncio: the peer a MicroPython user would otherwise reach for
# ---------------------------------------------------------------------------

def serve_asyncio(case, port):
    """asyncio.start_server() with its defaults, the same echo as the other
    variants: one read of up to BUFFER bytes, written back, then the
    connection closed.  There is no thread or process per connection to
    choose here, so tcp_sync and tcp_threading run the same server."""
    if case not in ("tcp_sync", "tcp_threading"):
        raise Unavailable("no asyncio variant of %s" % case)
    try:
        import asyncio
    except ImportError as error:
        raise Unavailable("no asyncio here: %s" % error)

    async def echo(reader, writer):
        try:
            data = await reader.read(BUFFER)
            if data:
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    async def serve():
        server = await asyncio.start_server(echo, HOST, port)
        # CPython's server tells the port it bound; MicroPython's cannot,
        # and was given one (bench/run.py picks it).
        sockets = getattr(server, "sockets", None)
        ready(sockets[0].getsockname()[1] if sockets else port)
        if hasattr(server, "serve_forever"):
            await server.serve_forever()
        else:  # MicroPython: its serving task ends only when closed
            await server.wait_closed()

    asyncio.run(serve())


# ---------------------------------------------------------------------------
# The steps from the bare loop to serve_forever(): one layer of socketse each
# ---------------------------------------------------------------------------

INTERMEDIATE_STEPS = ("+handler", "+hooks", "+get_request")  # bench/run.py adds bare and socketse


def serve_step(variant, case, port):
    if case not in ("tcp_sync", "udp"):
        raise Unavailable("no steps for %s" % case)
    server = library_server("socketse", case, port)
    sock, handler = server.socket, server.RequestHandlerClass
    ready(bound_port(sock, port))
    if case == "tcp_sync":
        def request():
            return sock.accept()
    else:
        def request():
            data, address = sock.recvfrom(server.max_packet_size)
            return (data, sock), address
    if variant == "+get_request":
        request = server.get_request
    try:
        while True:
            conn, address = request()
            if variant == "+handler":
                handler(conn, address, server)
                server.close_request(conn)
            elif server.verify_request(conn, address):
                server.process_request(conn, address)
    finally:
        server.server_close()


# ---------------------------------------------------------------------------
# shutdown() latency and import cost
# ---------------------------------------------------------------------------

# Random ports come from 20000..32767, below Linux's ephemeral range (32768
# and up): the load clients' closed connections hold ports there in
# TIME_WAIT, so a server that picked one could be refused with EADDRINUSE.
def random_port():
    import os
    return 20000 + int.from_bytes(os.urandom(2), "little") % 12768


def on_a_free_port(make):
    """make(port): with port 0 where a socket can tell which port that chose;
    on MicroPython, which can't, with random ports until one is free."""
    from errno import EADDRINUSE  # imported here: after --board, the board's number
    if not MICROPYTHON:
        return make(0)
    for attempt in range(50):
        try:
            return make(random_port())
        except OSError as error:
            if attempt == 49 or error.args[0] != EADDRINUSE:
                raise


def self_connected_datagram_socket(port):
    """A datagram socket bound to a loopback port and connected to itself:
    the wake-up a person would use where there is no socketpair
    (MicroPython), as socketse itself does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        address = native_address(HOST, port)
        sock.bind(address)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


class BareStoppable:
    """The stoppable loop a person would write: poll() on the listener and
    on a wake-up socket that shutdown() sends a byte to (a socketpair, or
    where there is none a datagram socket connected to itself), and a lock
    held while the loop runs, so that shutdown() waits for its end as
    socketserver's does."""

    def __init__(self, address, handler):
        import _thread
        self.socket = listening_socket(address[1])
        self.server_address = (HOST, bound_port(self.socket, address[1]))
        self._stop = False
        self._running = _thread.allocate_lock()
        try:
            if hasattr(socket, "socketpair"):
                self._wake_reader, self._wake_writer = socket.socketpair()
            else:
                self._wake_reader = on_a_free_port(self_connected_datagram_socket)
                self._wake_writer = self._wake_reader
        except BaseException:
            self.socket.close()
            raise

    def serve_forever(self):
        import select
        poller = select.poll()
        # Socket objects, not descriptors: board builds of poll() take no int.
        poller.register(self.socket, select.POLLIN)
        poller.register(self._wake_reader, select.POLLIN)
        with self._running:
            while not self._stop:
                # Whole milliseconds: MicroPython's poll() takes no float.  Only
                # shutdown() wakes the wake-up socket, so anything else ready
                # is the listener.
                if poller.poll(500) and not self._stop:
                    conn, _ = self.socket.accept()
                    data = conn.recv(BUFFER)
                    if data:
                        conn.sendall(data)
                    conn.close()

    def shutdown(self):
        self._stop = True
        self._wake_writer.send(b"\0")
        with self._running:  # until the loop has ended
            pass

    def server_close(self):
        self.socket.close()
        self._wake_reader.close()
        if self._wake_writer is not self._wake_reader:
            self._wake_writer.close()


def stopwatch():
    """A function that tells the seconds since stopwatch() was called, here
    and on MicroPython (whose ticks wrap: ticks_diff() knows how)."""
    import time
    if hasattr(time, "perf_counter"):
        start = time.perf_counter()
        return lambda: time.perf_counter() - start
    start = time.ticks_us()
    return lambda: time.ticks_diff(time.ticks_us(), start) / 1e6


def shutdown_latencies(variant, starts):
    """Start a server `starts` times: its serve_forever() runs in a thread
    and serves one request from a client here (so the loop is serving, and
    waits for the next); after a random pause, time shutdown(), which
    returns once the loop has ended."""
    import random
    import time
    try:
        import _thread
    except ImportError:
        raise Unavailable("no _thread here: nothing can call shutdown() while serving")
    if variant == "bare":
        make, handler = BareStoppable, None
    else:
        base = library(variant)
        make, handler = base.TCPServer, echo_handler(base)

    def serve(server, ended):
        try:
            server.serve_forever()
        finally:
            ended.append(True)

    for _ in range(starts):
        server = on_a_free_port(lambda port: make((HOST, port), handler))
        ended = []
        for attempt in range(100):  # the Pico W's one extra thread ends a while after
            try:                    # its function has returned (tests/boards/rp2.py)
                _thread.start_new_thread(serve, (server, ended))
                break
            except OSError:
                time.sleep(0.01)
        try:
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                client.settimeout(10)
                client.connect(native_address(HOST, server.server_address[1]))
                client.send(b"ping")
                client.recv(BUFFER)
            finally:
                client.close()
            time.sleep(random.uniform(0.005, 0.05))
            clock = stopwatch()
            server.shutdown()
            took = clock()
            waited = stopwatch()
            while not ended and waited() < 10:  # the thread's last step
                time.sleep(0.001)
            if not ended:
                raise RuntimeError("serve_forever() did not end")
        finally:
            server.server_close()
        print("SHUTDOWN %.9f" % took)
        if hasattr(sys.stdout, "flush"):
            sys.stdout.flush()


def import_cost(variant):
    stopwatch()  # its imports are not the variant's
    name = {"socketse": "socketse", "stdlib": "socketserver"}.get(variant)
    if name is None:
        raise Unavailable("nothing to import for %s" % variant)
    before = set(sys.modules)
    clock = stopwatch()
    try:
        __import__(name)
    except ImportError as error:
        raise Unavailable("import %s fails: %s" % (name, error))
    elapsed = clock()
    added = sorted(set(sys.modules) - before)
    print("IMPORT %.9f %d %s" % (elapsed, len(added), " ".join(added)))


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    variant, case, port = argv[1], argv[2], int(argv[3])
    extra = argv[4] if len(argv) > 4 else None
    try:
        if case == "import":
            import_cost(variant)
        elif case == "shutdown":
            shutdown_latencies(variant, int(extra or 50))
        elif variant == "bare":
            serve_bare(case, port)
        elif variant == "asyncio":
            serve_asyncio(case, port)
        elif variant in INTERMEDIATE_STEPS:
            serve_step(variant, case, port)
        else:
            serve_library(variant, case, port)
    except Unavailable as why:
        print("UNAVAILABLE %s" % why)
        return 3
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
