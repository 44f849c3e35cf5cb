"""An echo server on a Unix socket: stream (lines) or datagram.

    python3 examples/unix_echo.py [--path PATH] [--datagram]
    python3 examples/unix_echo.py --client [--path PATH] [--datagram] WORD...

Serves until interrupted (Ctrl-C) on the socket file PATH (by default
/tmp/socketse-echo.sock, or /tmp/socketse-echo-dgram.sock with --datagram),
which it removes on exit.  A socket file left there by a server that was
killed is replaced; a live server's, or any other file, is left alone.  The
stream server echoes every line, the datagram one every datagram.  With
--client, sends each word and prints the echo; exits 1 if an echo differs.
Without the client: socat - UNIX-CONNECT:/tmp/socketse-echo.sock

Runs on CPython, PyPy and MicroPython, with socketse.py beside it or on the
path (from the repository root: PYTHONPATH=. python3 examples/unix_echo.py).
"""

import errno
import os
import socket
import sys

import socketse


class StreamEcho(socketse.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


class DatagramEcho(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())


def option(name, default):
    if name in sys.argv:
        index = sys.argv.index(name)
        value = sys.argv[index + 1]
        del sys.argv[index:index + 2]
        return value
    return default


def is_socket(path):
    try:
        mode = os.stat(path)[0]  # MicroPython's stat is a plain tuple
    except OSError:
        return False
    return mode & 0o170000 == 0o140000  # S_IFSOCK, without the stat module


def remove_stale(path, kind):
    """bind() fails on an existing path.  Remove a socket file that nobody
    serves on any more (left by a server that was killed), but neither a
    live server's nor a regular file someone pointed --path at by mistake."""
    if not is_socket(path):
        try:
            os.stat(path)
        except OSError:
            return  # nothing there
        raise SystemExit("%s exists and is not a socket: not touching it" % path)
    probe = socket.socket(socket.AF_UNIX, kind)
    try:
        probe.connect(socketse._native_address(path))
        error = 0
    except OSError as exception:
        error = exception.args[0]
    probe.close()
    if error != errno.ECONNREFUSED:
        raise SystemExit("%s: a server is serving there already" % path)
    os.remove(path)


def read_line(sock):
    line = b""
    while not line.endswith(b"\n"):  # a stream may deliver a line in parts
        chunk = sock.recv(4096)
        if not chunk:
            break
        line += chunk
    return line


def client(path, datagram, words):
    kind = socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM
    sock = socket.socket(socket.AF_UNIX, kind)
    # A datagram reply needs an address to go to: a path of our own.
    own_path = path + "." + "".join("%02x" % b for b in os.urandom(4))
    try:
        sock.settimeout(10)
        # MicroPython's sockets take a raw sockaddr: _native_address makes it.
        if datagram:
            sock.bind(socketse._native_address(own_path))
        sock.connect(socketse._native_address(path))
        for word in words:
            if datagram:
                sock.send(word.encode())
                echo = sock.recv(65536)
            else:
                sock.send(word.encode() + b"\n")
                echo = read_line(sock)
            echo = echo.decode().rstrip("\n")
            print("sent %r, got %r" % (word, echo))
            if echo != word:
                return 1
        return 0
    finally:
        sock.close()
        if datagram and is_socket(own_path):
            os.remove(own_path)


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    datagram = "--datagram" in sys.argv
    if datagram:
        sys.argv.remove("--datagram")
    default = "/tmp/socketse-echo-dgram.sock" if datagram else "/tmp/socketse-echo.sock"
    path = option("--path", default)
    if "--client" in sys.argv:
        sys.argv.remove("--client")
        try:
            return client(path, datagram, sys.argv[1:] or ["hello", "socketse"])
        except OSError as error:  # no server there: a line, not a traceback
            print(error, file=sys.stderr)
            return 1
    remove_stale(path, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM)
    if datagram:
        server = socketse.UnixDatagramServer(path, DatagramEcho)
    else:
        server = socketse.UnixStreamServer(path, StreamEcho)
    try:
        print("serving on %s" % path)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
        os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
