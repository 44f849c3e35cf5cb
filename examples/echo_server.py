"""An echo server: every line a client sends comes back to it.

    python3 examples/echo_server.py [--host HOST] [--port PORT] [--threading]

Serves until interrupted (Ctrl-C).  Binds 127.0.0.1:8765 by default, and
prints the address it serves on (port 0 picks a free port, where the socket
can tell which).  --threading serves every client in its own thread, so a
slow client does not hold up the others.  Runs on CPython, PyPy and
MicroPython, with socketse.py beside it or on the path (from the repository
root: PYTHONPATH=. python3 examples/echo_server.py).
On a board (ESP32, Pico W, ESP8266, stm32), pass --host 0.0.0.0: board
firmware has no loopback interface.
"""

import sys

import socketse


class EchoHandler(socketse.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


# Our own classes, so that allow_reuse_address (restart at once on the same
# port) changes these servers, not every socketse server in the program.
class EchoServer(socketse.TCPServer):
    allow_reuse_address = True


class ThreadingEchoServer(socketse.ThreadingTCPServer):
    allow_reuse_address = True


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
        return
    address = (option("--host", "127.0.0.1"), int(option("--port", "8765")))
    server_class = ThreadingEchoServer if "--threading" in sys.argv else EchoServer
    with server_class(address, EchoHandler) as server:
        print("serving on %s port %s" % server.server_address[:2])
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")


if __name__ == "__main__":
    sys.exit(main())
