"""A static file web server: the standard library's handler on socketse.

    python3 examples/http_server.py [--host HOST] [--port PORT] [--dir DIR]

Serves DIR (by default the current directory) until interrupted (Ctrl-C):
files, and a listing for directories without an index.html.  Binds
127.0.0.1:8000 by default and prints the URL it serves on.  Every request
has its own thread.  Try it: curl http://127.0.0.1:8000/

http.server's SimpleHTTPRequestHandler is written for socketserver; it runs
on a socketse server unchanged.  CPython 3.7 or later, and PyPy, with
socketse.py beside it or on the path (from the repository root:
PYTHONPATH=. python3 examples/http_server.py).
"""

import functools
import sys
from http.server import SimpleHTTPRequestHandler

import socketse


class HTTPServer(socketse.ThreadingTCPServer):
    allow_reuse_address = True  # restart at once on the same port
    daemon_threads = True  # Ctrl-C need not wait for browsers' idle connections


def option(name, default):
    if name in sys.argv:
        index = sys.argv.index(name)
        value = sys.argv[index + 1]
        del sys.argv[index:index + 2]
        return value
    return default


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    address = (option("--host", "127.0.0.1"), int(option("--port", "8000")))
    directory = option("--dir", ".")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=directory)
    with HTTPServer(address, handler) as server:
        host, port = server.server_address[:2]
        try:  # from here on, so that Ctrl-C is never a traceback
            url = "http://%s:%s/" % ("[%s]" % host if ":" in host else host, port)
            print("serving %s on %s" % (directory, url))
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
