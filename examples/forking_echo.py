"""An echo server that serves each client in its own process.

    python3 examples/forking_echo.py [--host HOST] [--port PORT]

Serves until interrupted (Ctrl-C).  Binds 127.0.0.1:8769 by default and
prints the address it serves on and its process id.  Every line a client
sends comes back prefixed with the id of the process that serves it, a
child forked for that client (ForkingTCPServer): "[pid 4242] hello".  A
child that crashes takes only its own client with it.  Try it with two
clients at once: socat - TCP:127.0.0.1:8769

Needs os.fork (CPython and PyPy on Unix; not Windows, not MicroPython, where
it says so and exits with status 2), with socketse.py beside it or on the
path (from the repository root: PYTHONPATH=. python3 examples/forking_echo.py).
"""

import os
import sys

import socketse


class PidEchoHandler(socketse.StreamRequestHandler):
    def handle(self):
        prefix = ("[pid %d] " % os.getpid()).encode()
        for line in self.rfile:
            self.wfile.write(prefix + line)


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
    if not hasattr(socketse, "ForkingTCPServer"):  # socketse defines it where os.fork exists
        print("forking_echo.py needs os.fork, which this Python does not have", file=sys.stderr)
        return 2
    address = (option("--host", "127.0.0.1"), int(option("--port", "8769")))
    socketse.ForkingTCPServer.allow_reuse_address = True
    with socketse.ForkingTCPServer(address, PidEchoHandler) as server:
        try:  # from here on, so that Ctrl-C is never a traceback
            host, port = server.server_address[:2]
            print("serving on %s port %s (pid %d)" % (host, port, os.getpid()))
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
