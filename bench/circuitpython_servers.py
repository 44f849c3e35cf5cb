"""The two HTTP servers that bench/circuitpython_http.py sets side by side,
run on CircuitPython's unix port as a board profile:

    circuitpython bench/circuitpython_servers.py --board circuitpython_espressif VARIANT PORT

VARIANT is

- ``socketse``: socketse.TCPServer with a StreamRequestHandler that reads
  the request line and headers itself (CircuitPython has no http.server),
  served by serve_forever()
- ``httpserver``: adafruit_httpserver's Server with one route, served by
  serve_forever(host, port), as its simple examples do
- ``httpserver-poll``: the same Server, started and then polled in a
  loop of the program's own, as its start-and-poll example does

Each answers GET / with the same bytes: a 200, text/plain, "hello",
Content-Length and Connection: close; anything else gets a 404.  The
server binds 127.0.0.1:PORT (the caller picks a free port: a pool socket
cannot tell which port 0 chose), prints ``READY <port>``, and serves until
it is killed.  ``UNAVAILABLE <why>`` and status 3 when the variant cannot
run here (adafruit_httpserver not on MICROPYPATH).

--board first: tests/boards/NAME.py must put socketpool, wifi and the
board's errno, select and time in place before anything imports them.
"""

import sys

if len(sys.argv) > 2 and sys.argv[1] == "--board":
    sys.path.insert(0, (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/../tests")
    from runner import take_options  # tests/runner.py

    take_options()

HOST = "127.0.0.1"
BODY = b"hello"
# Byte for byte what adafruit_httpserver sends for this page (its Headers
# keep names in lower case), so that both put the same bytes on the wire.
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n"
            b"connection: close\r\n\r\n" + BODY)
NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n"
             b"Connection: close\r\n\r\nnot found")
# A request longer than this (line or headers) is not one this page serves;
# a bound on what a client can make the handler read.
MAX_LINE = 1024
MAX_HEADERS = 64
# How long a silent client may hold socketse's one handler: a read waits at
# most TIMEOUT, and the whole request, however the client trickles its
# bytes, REQUEST_TIMEOUT.  adafruit_httpserver's own default is a 1 s wait
# per read (Server.socket_timeout), with no bound on the whole.
TIMEOUT = 2
REQUEST_TIMEOUT = 4


def ready(port):
    print("READY %d" % port)
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def serve_socketse(port):
    import socketse

    class Hello(socketse.StreamRequestHandler):
        timeout = TIMEOUT
        request_timeout = REQUEST_TIMEOUT

        def handle(self):
            line = self.rfile.readline(MAX_LINE)
            if not line.endswith(b"\n"):
                return  # ended early, or longer than a request of this page
            # The headers are read to their end, so that close() finds no
            # input unread (lwIP would answer that with a reset).
            for _ in range(MAX_HEADERS):
                header = self.rfile.readline(MAX_LINE)
                if not header.endswith(b"\n"):
                    return
                if header in (b"\r\n", b"\n"):
                    break
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"GET" and parts[1] == b"/":
                self.wfile.write(RESPONSE)
            elif parts:
                self.wfile.write(NOT_FOUND)

    class Server(socketse.TCPServer):
        allow_reuse_address = True  # as adafruit_httpserver sets it

    server = Server((HOST, port), Hello)
    ready(port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def httpserver_server():
    try:
        from adafruit_httpserver import Response, Server
    except ImportError as error:
        print("UNAVAILABLE adafruit_httpserver is not on MICROPYPATH: %s" % error)
        sys.exit(3)
    import socketpool
    import wifi

    pool = socketpool.SocketPool(wifi.radio)
    server = Server(pool, "/static", debug=False)

    @server.route("/")
    def hello(request):
        return Response(request, "hello", content_type="text/plain")

    give_matches_groups(server)
    return server


def give_matches_groups(server):
    """Route.matches() calls match.groups(), which boards have
    (py/circuitpy_mpconfig.h: MICROPY_PY_RE_MATCH_GROUPS is CIRCUITPY_RE)
    and the unix build here lacks (its ROM level leaves it out): each
    route's pattern gets a match() whose result has groups(), made of
    group(), where the interpreter's has none.  One Python call more per
    route tried, against the rest of a request's work."""
    import re
    if hasattr(re.match("(a)", "a"), "groups"):
        return

    class Match:
        def __init__(self, match, count):
            self.match, self.count = match, count

        def groups(self):
            return tuple(self.match.group(i + 1) for i in range(self.count))

    class Pattern:
        def __init__(self, pattern, count):
            self.pattern, self.count = pattern, count

        def match(self, path):
            found = self.pattern.match(path)
            return None if found is None else Match(found, self.count)

    for route in server._routes:
        route.path_pattern = Pattern(route.path_pattern, len(route.parameters_names))


def serve_httpserver(port):
    server = httpserver_server()
    start = server.start

    def start_then_say_ready(host, port):
        # serve_forever() binds inside: READY must wait for that, or the
        # first client could be refused.
        start(host, port)
        ready(port)

    server.start = start_then_say_ready
    server.serve_forever(HOST, port)


def serve_httpserver_poll(port):
    server = httpserver_server()
    server.start(HOST, port)
    ready(port)
    while True:
        try:
            server.poll()
        except OSError as error:  # as the example does: report, go on
            print(error)


VARIANTS = {
    "socketse": serve_socketse,
    "httpserver": serve_httpserver,
    "httpserver-poll": serve_httpserver_poll,
}


def main(argv):
    if len(argv) != 3 or argv[1] not in VARIANTS:
        print(__doc__)
        return 2
    try:
        VARIANTS[argv[1]](int(argv[2]))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
