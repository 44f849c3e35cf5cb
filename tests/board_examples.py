"""The examples that run on boards, run as programs on a board profile.

Run as ``micropython-lwip-threads tests/board_examples.py [--board NAME]``
(any build of tests/test_portable.py's BOARDS), with socketse.py on
MICROPYPATH.  Each example runs as its own program, from its argument
parsing to "stopped", bound to 0.0.0.0 as on a board.  The network of
these builds is inside the process, so the clients are here too, in the
one thread: serve_forever() is replaced by a driver that connects, sends,
lets the server handle each request, checks the replies and then stops
the example as Ctrl-C would.  lwIP calls a client's callback as data
arrives, even while the server waits in a read, so a client reads its
reply and hangs up without a thread of its own.  On CircuitPython's unix
port (--board circuitpython_*) the clients are the host's sockets, and the
re-created pool runs them as background tasks while a socket call waits,
as a board runs its own.  The last line is "N passed, N failed, N
skipped"; the exit status is 1 if any failed.
"""

import sys

import select as board_select  # the build's own, before --board replaces them

from runner import (Skip, check, client_address, need_threads, on_a_random_port, run,
                    take_options, wait_until)
from runner import client_socket as board_socket  # the build's own, or the host's

take_options()

import socketse  # noqa: E402 -- after the board's modules

EXAMPLES = __file__.rsplit("/", 1)[0] + "/../examples/"
SO_CALLBACK = 20  # modlwip's socket option for a callback on every event
BACKGROUND = getattr(sys.modules.get("circuitpython_common"), "background_tasks", None)


class Client:
    """A TCP client of the server in this process.  It sends its request at
    once, reads what arrives from its callback, and hangs up once it has
    `expected` bytes, or when the server closes.  lwIP schedules callbacks
    in a short queue, which may drop some: the waits read too."""

    def __init__(self, port, request, expected):
        self.received = b""
        self.expected = expected
        self.closed = False
        self.sock = board_socket.socket(board_socket.AF_INET, board_socket.SOCK_STREAM)
        self.sock.connect(client_address(("127.0.0.1", port)))
        self.send(request)
        self.sock.setblocking(False)
        if BACKGROUND is not None:  # tests/boards/circuitpython_common.py
            BACKGROUND.append(self.read)
        else:
            self.sock.setsockopt(board_socket.SOL_SOCKET, SO_CALLBACK, self.read)
        self.poller = board_select.poll()
        self.poller.register(self.sock, board_select.POLLIN)

    def send(self, data):
        while data:
            data = data[self.sock.send(data):]

    def read(self, sock=None):
        """Take what has arrived; returns what this client has received."""
        if not self.closed:
            self.poller.poll(1)  # lets lwIP deliver what loopback holds
            try:
                data = self.sock.recv(4096)
            except OSError:  # nothing yet
                return self.received
            self.received += data
            if not data or len(self.received) >= self.expected:
                self.close()
        return self.received

    def close(self):
        self.closed = True
        self.sock.close()
        if BACKGROUND is not None and self.read in BACKGROUND:
            BACKGROUND.remove(self.read)

    def hung_up(self):
        self.read()
        return self.closed


def datagram_exchange(server, port, request):
    """Send one datagram, let the server handle it, return the reply."""
    sock = board_socket.socket(board_socket.AF_INET, board_socket.SOCK_DGRAM)
    try:
        sock.sendto(request, client_address(("127.0.0.1", port)))
        server.handle_request()
        sock.settimeout(5)
        return sock.recv(1024)
    finally:
        sock.close()


# -- what each example's clients do, while serve_forever() would run ------------

def echo_lines(server, port):
    lines = b"hello board\nsecond line\n"
    client = Client(port, lines, len(lines))
    server.handle_request()
    check(wait_until(client.hung_up), "no echo")
    check(client.received == lines, client.received)


def udp_echo(server, port):
    check(datagram_exchange(server, port, b"hello board") == b"hello board", "no echo")


def udp_time(server, port):
    reply = datagram_exchange(server, port, b"time?\n")
    check(len(reply) == 21 and reply[10:11] == b"T" and reply.endswith(b"Z\n"), reply)


def chat(server, port):
    """Two members: each sees the other join, and hears what the other says."""
    ann = Client(port, b"ann\n", 10 ** 6)
    server.handle_request()
    bob = Client(port, b"bob\n", 10 ** 6)
    server.handle_request()
    check(wait_until(lambda: b"* bob joined\n" in ann.read()), ann.received)
    ann.send(b"hello bob\n")
    check(wait_until(lambda: b"ann: hello bob\n" in bob.read()), bob.received)
    bob.send(b"/quit\n")
    check(wait_until(lambda: b"* bob left\n" in ann.read()), ann.received)
    ann.send(b"/quit\n")
    check(wait_until(lambda: ann.hung_up() and bob.hung_up()), "not hung up")


def anywhere():
    pass


# name, the example's arguments, what to check first, its clients
EXAMPLES_ON_BOARDS = [
    ("echo_server", [], anywhere, echo_lines),
    ("echo_server --threading", ["--threading"], lambda: need_threads(1), echo_lines),
    ("udp_echo", [], anywhere, udp_echo),
    ("udp_time", [], anywhere, udp_time),
    ("chat", [], lambda: need_threads(2), chat),  # a thread per member
]


def run_example(name, arguments, clients):
    """Run examples/NAME.py as a program whose serve_forever() is `clients`,
    on a random port: on another if the example can't bind that one."""
    on_a_random_port(lambda port: run_example_on(port, name, arguments, clients))


def run_example_on(port, name, arguments, clients):
    outcome = []

    def drive(server, poll_interval=0.5):
        try:
            clients(server, port)
            outcome.append("served")
        except BaseException as error:
            outcome.append(error)
        raise KeyboardInterrupt  # the example stops as on Ctrl-C

    serve_forever = socketse.BaseServer.serve_forever
    socketse.BaseServer.serve_forever = drive
    del sys.argv[:]  # in place: MicroPython's sys.argv cannot be rebound
    sys.argv.extend([name, "--host", "0.0.0.0", "--port", str(port)] + arguments)
    path = EXAMPLES + name.split()[0] + ".py"
    try:
        with open(path) as source:
            exec(source.read(), {"__name__": "__main__", "__file__": path})
    except SystemExit as exit:
        check(exit.args[:1] in ((), (None,), (0,)), "exit status %r" % (exit.args,))
    except ImportError as error:
        if "socket" in str(error) and "socket" not in sys.modules:
            raise Skip("examples/%s imports socket (for its client), which CircuitPython "
                       "has not" % path.rsplit("/", 1)[1])
        raise
    finally:
        socketse.BaseServer.serve_forever = serve_forever
    check(outcome, "the example never served")
    if outcome[0] != "served":
        raise outcome[0]


def example_case(name, arguments, precondition, clients):
    def case():
        precondition()
        run_example(name, arguments, clients)
    return case


sys.exit(run([(case[0], example_case(*case)) for case in EXAMPLES_ON_BOARDS]))
