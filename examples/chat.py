"""A chat room: every line a client sends goes to everyone else.

    python3 examples/chat.py [--host HOST] [--port PORT]
    python3 examples/chat.py --client NAME [--host HOST] [--port PORT]

Serves until interrupted (Ctrl-C).  Binds 127.0.0.1:8766 by default,
prints the address it serves on, then who joins and leaves.  A client's
first line is its name; after that each line it sends reaches the others as
"name: text", the room announces "* name joined" and "* name left", and the
line /quit leaves.  Every client has its own thread (ThreadingTCPServer).

A client that stops reading never holds up the others: a line is handed to
each client's socket without waiting for it (MSG_DONTWAIT), and a client
whose socket cannot take a whole line, so is a socket buffer (some hundred
KB) behind, or has gone, is dropped.

With --client NAME, joins as NAME, sends each line read from stdin, prints
what the room says, and leaves at the end of input (Ctrl-D).  Any line
client works too: socat - TCP:127.0.0.1:8766

Runs on CPython, PyPy and MicroPython (server and client), with socketse.py
beside it or on the path (from the repository root:
PYTHONPATH=. python3 examples/chat.py).  The server needs _thread: on a
board that is the ESP32 (the Pico W's one extra thread serves one member at
a time); pass --host 0.0.0.0 there, as board firmware has no loopback.
"""

import _thread  # MicroPython has no threading module
import socket
import sys

import socketse

MAX_LINE = 4096  # longer lines go in pieces: a client cannot make us buffer without end
# Without it (Windows) a send may wait for a slow client, holding up one speaker.
DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def send_now(sock, data):
    """send() without waiting, where the platform can ask for that: board
    sockets' send() takes no flags, and there a slow client can hold up
    the speaker until its socket has room."""
    if DONTWAIT:
        try:
            return sock.send(data, DONTWAIT)
        except TypeError:
            pass
    return sock.send(data)


class Room:
    def __init__(self):
        # MicroPython has no GIL: a list changed by several threads needs a lock.
        self.lock = _thread.allocate_lock()
        self.members = []

    def join(self, member):
        with self.lock:
            self.members.append(member)
        self.announce(member, "* %s joined" % member.name)

    def leave(self, member, why=""):
        with self.lock:
            if member not in self.members:
                return  # dropped already
            self.members.remove(member)
        self.announce(member, "* %s left%s" % (member.name, why))

    def announce(self, member, news):
        print(news)  # the server's log: who came and went, not what they said
        self.broadcast(member, news + "\n")

    def broadcast(self, sender, text):
        data = text.encode()
        with self.lock:
            others = [member for member in self.members if member is not sender]
        # The lock is not held while sending, so joins, leaves and other
        # speakers never wait for any client's socket.
        for member in others:
            if not member.deliver(data):
                self.leave(member, " (too slow, or gone)")  # before its own thread can
                member.hang_up()


class ChatHandler(socketse.StreamRequestHandler):
    def handle(self):
        self.send_lock = _thread.allocate_lock()
        self.dropped = False
        self.name = self.rfile.readline(MAX_LINE).decode("utf-8", "replace").strip()
        if not self.name:
            return
        room = self.server.room
        room.join(self)
        try:
            while not self.dropped:
                line = self.rfile.readline(MAX_LINE)
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if not line or text == "/quit":
                    break
                room.broadcast(self, "%s: %s\n" % (self.name, text))
        except OSError:
            pass  # the client reset the connection: it has left
        finally:
            room.leave(self)

    def deliver(self, data):
        """Hand data to this client's socket without waiting; False if it
        could not take all of it."""
        # One sender at a time, so that two lines never interleave; held
        # only for a send that does not wait.
        with self.send_lock:
            try:
                return send_now(self.request, data) == len(data)
            except OSError:
                return False

    def hang_up(self):
        self.dropped = True
        try:  # wakes this client's thread, waiting in readline, at once
            self.request.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            # MicroPython has no shutdown(): the thread ends when the client
            # next sends a line, or goes.
            pass


class ChatServer(socketse.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True  # Ctrl-C need not wait for connected clients

    def __init__(self, address):
        self.room = Room()
        socketse.ThreadingTCPServer.__init__(self, address, ChatHandler)


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


def send_stdin(sock):
    try:
        while True:
            line = sys.stdin.readline()
            if not line:
                break
            send_all(sock, line.encode())
        # The server then ends the connection, which ends the main loop: a
        # portable way to wake it, since MicroPython has no shutdown().
        send_all(sock, b"/quit\n")
    except OSError:
        pass  # the connection has gone: the main loop sees that too


def client(host, port, name):
    family, _, _, _, address = socket.getaddrinfo(host, port)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.connect(address)
        send_all(sock, name.encode() + b"\n")
        _thread.start_new_thread(send_stdin, (sock,))
        pending = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                print(line.decode("utf-8", "replace"))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("* disconnected")
    return 0


def usage():
    # MicroPython drops docstrings as it compiles: there, read ours from the file.
    return globals().get("__doc__") or open(__file__).read().split('"""')[1]


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(usage())
        return 0
    host, port = option("--host", "127.0.0.1"), int(option("--port", "8766"))
    name = option("--client", None)
    if name is not None:
        try:
            return client(host, port, name)
        except OSError as error:  # refused, unreachable: a line, not a traceback
            print(error, file=sys.stderr)
            return 1
    with ChatServer((host, port)) as server:
        try:  # from here on, so that Ctrl-C is never a traceback
            print("serving on %s port %s" % server.server_address[:2])
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
