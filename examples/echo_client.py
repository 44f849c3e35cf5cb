"""A client for echo_server.py: sends each word as a line, prints the echo.

    python3 examples/echo_client.py [--host HOST] [--port PORT] WORD...

Waits up to 10 seconds for the server to come up.  Exits 1 if any echo
differs from what was sent.
"""

import socket
import sys
import time


def option(name, default):
    if name in sys.argv:
        index = sys.argv.index(name)
        value = sys.argv[index + 1]
        del sys.argv[index:index + 2]
        return value
    return default


def connect(host, port, seconds=10.0):
    deadline = time.time() + seconds
    while True:
        try:
            return socket.create_connection((host, port), timeout=10)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    host, port = option("--host", "127.0.0.1"), int(option("--port", "8765"))
    words = sys.argv[1:] or ["hello", "socketse"]
    with connect(host, port) as connection:
        replies = connection.makefile("rb")
        for word in words:
            connection.sendall(word.encode() + b"\n")
            echo = replies.readline().decode().rstrip("\n")
            print("sent %r, got %r" % (word, echo))
            if echo != word:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
