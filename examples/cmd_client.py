"""A client for cmd_server.py: runs one command line there, prints its output.

    python3 examples/cmd_client.py [--host HOST] [--port PORT] COMMAND [ARG...]

COMMAND and its arguments are joined with spaces into one command line,
which the server splits like a shell would (quotes group words) but runs
without a shell: cmd_client.py 'echo "two  spaces"'.  The program's output
goes to stdout, byte for byte; the exit status becomes ours.  A refusal is
printed to stderr, and the exit status is then 2.

Frames are a 4-byte big-endian length and that many bytes (see
cmd_server.py --help for why).  Runs on CPython, PyPy and MicroPython, and
needs nothing beside it; on MicroPython, give it a heap big enough for the
output, such as micropython -X heapsize=32M examples/cmd_client.py ...
"""

import socket
import struct
import sys


def option(name, default):
    if name in sys.argv:
        index = sys.argv.index(name)
        value = sys.argv[index + 1]
        del sys.argv[index:index + 2]
        return value
    return default


def send_all(sock, data):
    view = memoryview(data)
    while len(view):  # MicroPython's sendall() may stop short
        view = view[sock.send(view):]


def recv_exactly(sock, size):
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise OSError("the server closed the connection mid-reply")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def send_frame(sock, data):
    send_all(sock, struct.pack(">I", len(data)) + data)


def recv_frame(sock):
    size = struct.unpack(">I", recv_exactly(sock, 4))[0]
    return recv_exactly(sock, size)


def ask(host, port, line):
    """The server's reply to one command line."""
    family, _, _, _, address = socket.getaddrinfo(host, port)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(120)
        sock.connect(address)
        send_frame(sock, line.encode())
        return recv_frame(sock)
    finally:
        sock.close()


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    host, port = option("--host", "127.0.0.1"), int(option("--port", "8767"))
    if len(sys.argv) < 2:
        print(usage(), file=sys.stderr)
        return 2
    line = " ".join(sys.argv[1:])
    try:
        reply = ask(host, port, line)
    except OSError as error:  # refused, unreachable, cut off: a line, not a traceback
        print(error, file=sys.stderr)
        return 1
    status, output = (reply.split(b"\n", 1) + [b""])[:2]
    status = status.decode("utf-8", "replace")
    if not status.startswith("exit "):
        print(status, file=sys.stderr)
        return 2
    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()
    code = int(status[5:])
    return code if 0 <= code < 256 else 1  # a negative status: killed by a signal


if __name__ == "__main__":
    sys.exit(main())
