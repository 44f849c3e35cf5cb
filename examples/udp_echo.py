"""A UDP echo server: every datagram comes back to its sender.

    python3 examples/udp_echo.py [--host HOST] [--port PORT]
    python3 examples/udp_echo.py --client [--host HOST] [--port PORT] [--wait SECONDS] WORD...

Serves until interrupted (Ctrl-C).  Binds 127.0.0.1:8765 (UDP) by default
and prints the address it serves on.  With --client, sends each word as a
datagram and prints the echo; exits 1 if an echo differs, or if none comes
within SECONDS (default 10).
Try it without the client too: socat - UDP:127.0.0.1:8765

Runs on CPython, PyPy and MicroPython, with socketse.py beside it or on the
path (from the repository root: PYTHONPATH=. python3 examples/udp_echo.py).
On a board (ESP32, Pico W, ESP8266, stm32), pass --host 0.0.0.0: board
firmware has no loopback interface.
"""

import sys

import socketse


class EchoHandler(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())  # sent back by finish()


def option(name, default):
    if name in sys.argv:
        index = sys.argv.index(name)
        value = sys.argv[index + 1]
        del sys.argv[index:index + 2]
        return value
    return default


def exchange(host, port, data, seconds):
    """Send one datagram and return the reply.  UDP may drop a datagram, and
    the server may not be up yet: send again, every half second.  A fresh
    socket for each exchange, so a late reply to an earlier one is never
    taken for this one's."""
    import socket  # here: a CircuitPython board serves with no socket module
    family, _, _, _, address = socket.getaddrinfo(host, port)[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    try:
        for _ in range(max(1, int(seconds * 2))):
            sock.sendto(data, address)
            try:
                return sock.recv(65536)
            except OSError:  # timed out (socket.timeout is an OSError)
                pass
    finally:
        sock.close()
    raise OSError("no reply from %s port %s" % (host, port))


def client(host, port, seconds, words):
    for word in words:
        echo = exchange(host, port, word.encode(), seconds).decode()
        print("sent %r, got %r" % (word, echo))
        if echo != word:
            return 1
    return 0


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    host, port = option("--host", "127.0.0.1"), int(option("--port", "8765"))
    if "--client" in sys.argv:
        sys.argv.remove("--client")
        seconds = float(option("--wait", "10"))
        try:
            return client(host, port, seconds, sys.argv[1:] or ["hello", "socketse"])
        except OSError as error:
            print(error, file=sys.stderr)
            return 1
    with socketse.UDPServer((host, port), EchoHandler) as server:
        try:  # from here on, so that Ctrl-C is never a traceback
            print("serving on %s port %s" % server.server_address[:2])
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
