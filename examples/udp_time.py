"""A UDP time service: any datagram gets the current time back, as text.

    python3 examples/udp_time.py [--host HOST] [--port PORT]
    python3 examples/udp_time.py --client [--host HOST] [--port PORT] [--wait SECONDS]

Serves until interrupted (Ctrl-C).  Binds 127.0.0.1:8013 (UDP) by default
and prints the address it serves on.  The reply is UTC in ISO 8601 with a
newline, such as "2025-01-31T23:59:58Z".  With --client, asks and prints
the answer; exits 1 if none comes within SECONDS (default 10).  Without the
client: echo | socat - UDP:127.0.0.1:8013

Runs on CPython, PyPy and MicroPython, with socketse.py beside it or on the
path (from the repository root: PYTHONPATH=. python3 examples/udp_time.py).
On a board (ESP32, Pico W, ESP8266, stm32), pass --host 0.0.0.0: board
firmware has no loopback interface.
"""

import sys
import time

import socketse


def now():
    # gmtime rather than strftime, which MicroPython lacks; CircuitPython has
    # only localtime, and a board's clock keeps no time zone
    utc = getattr(time, "gmtime", None) or time.localtime
    return "%04d-%02d-%02dT%02d:%02d:%02dZ\n" % utc(time.time())[:6]


class TimeHandler(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(now().encode())  # what the datagram said does not matter


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


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    host, port = option("--host", "127.0.0.1"), int(option("--port", "8013"))
    if "--client" in sys.argv:
        try:
            print(exchange(host, port, b"time?\n", float(option("--wait", "10"))).decode().strip())
        except OSError as error:
            print(error, file=sys.stderr)
            return 1
        return 0
    with socketse.UDPServer((host, port), TimeHandler) as server:
        try:  # from here on, so that Ctrl-C is never a traceback
            print("serving on %s port %s" % server.server_address[:2])
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
