"""ThreadingMixIn.max_threads at the bound: silent clients, and shutdown()
while every slot is busy.

socketse-only (the stdlib has no max_threads): while max_threads handlers
run, further connections wait in the listen backlog; none is dropped or
refused, and shutdown() need not wait for a busy handler.  That the bound
is reached and never passed, and that handlers that raise give their slot
back, holds on every interpreter: tests/scenarios.py (bounded_max_threads,
fault_handler_exceptions_in_threads_cost_their_own_requests).
"""

import os
import socket
import subprocess
import sys
import textwrap
import threading

import socketse
from conftest import TIMEOUT, in_thread, wait_for


def test_silent_clients_at_the_bound_are_timed_out_and_others_served(serve, clients):
    errors = []
    started = []  # for each handler, how many errors there were when it started

    class Handler(socketse.StreamRequestHandler):
        timeout = 0.3

        def setup(self):
            started.append(len(errors))
            super().setup()

        def handle(self):
            self.wfile.write(self.rfile.readline())

    class Server(socketse.ThreadingTCPServer):
        max_threads = 2

        def handle_error(self, request, client_address):
            errors.append(sys.exc_info()[0])

    server = serve(Server(("127.0.0.1", 0), Handler))
    silent = [clients.connect(server) for _ in range(2)]  # take both slots
    assert wait_for(lambda: len(started) == 2)
    # Queued behind them, served once a timeout frees a slot.
    assert clients.talk(server, b"patient\n") == b"patient\n"
    assert len(started) == 3 and started[2] >= 1, "served while both slots were busy"
    for sock in silent:
        assert clients.read_all(sock) == b""
    assert wait_for(lambda: len(errors) == 2)
    assert all(issubclass(error, (socket.timeout, TimeoutError)) for error in errors), errors


def blocking_server(max_threads):
    """A server serving in a thread, whose handlers block until `release`
    is set, recording the lines they got, the handlers that finished, and
    the connections the server accepted."""
    release = threading.Event()
    running = []
    finished = []
    accepted = []

    class Blocking(socketse.StreamRequestHandler):
        timeout = TIMEOUT

        def handle(self):
            running.append(self.rfile.readline())
            release.wait(TIMEOUT)
            self.wfile.write(b"done\n")
            finished.append(1)

    class Server(socketse.ThreadingTCPServer):
        def verify_request(self, request, client_address):
            accepted.append(client_address)
            return True

    Server.max_threads = max_threads
    server = Server(("127.0.0.1", 0), Blocking)
    server.release, server.running, server.finished = release, running, finished
    server.accepted = accepted
    loop = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    loop.start()
    return server, loop


def test_shutdown_at_the_bound_does_not_wait_for_busy_handlers(clients):
    """shutdown() while max_threads handlers are busy and the loop waits for
    a slot for the next request: shutdown() returns at once, that request
    is closed unanswered (as the backlog is by server_close()), the busy
    ones are answered once they finish, and server_close() waits for them."""
    server, loop = blocking_server(max_threads=2)
    try:
        socks = [clients.send(server, b"%d\n" % i) for i in range(3)]
        assert wait_for(lambda: len(server.running) == 2)
        assert wait_for(lambda: len(server.accepted) == 3)  # the third waits for a slot
        assert in_thread(server.shutdown), "shutdown() waited for a busy handler"
        loop.join(TIMEOUT)
        assert not loop.is_alive()
        assert server.finished == []  # none released yet
        server.release.set()
        assert in_thread(server.server_close), "server_close() did not return"
        assert server.finished == [1, 1], "server_close() did not wait for the handlers"
        assert sorted(server.running) == [b"0\n", b"1\n"]
        assert [clients.read_all(sock) for sock in socks[:2]] == [b"done\n"] * 2
        try:
            third = clients.read_all(socks[2])
        except ConnectionResetError:  # closed with its request unread
            third = b""
        assert third == b""
    finally:
        server.release.set()
        server.socket.close()


# In a process of its own: with the bug it guards against, a handler thread
# dies and server_close() never returns, which must not hang the suite.
SHUTDOWN_AT_THE_BOUND = textwrap.dedent(r"""
    import _thread, socket, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    import socketse

    release = threading.Event()
    running = []
    accepted = []
    rounds = [0]  # of the serving loop

    class Blocking(socketse.StreamRequestHandler):
        timeout = 10

        def handle(self):
            line = self.rfile.readline()
            running.append(line)
            if line == b"a\n":
                release.wait(10)
            self.wfile.write(b"done " + line)

    class Server(socketse.ThreadingTCPServer):
        max_threads = 1

        def verify_request(self, request, client_address):
            accepted.append(client_address)
            return True

        def service_actions(self):
            rounds[0] += 1

    def serve_in_thread():
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        return thread

    def ask(sock):
        data = b""
        while True:
            chunk = sock.recv(100)
            if not chunk:
                return data
            data += chunk

    def wait_for(condition):
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        return condition()

    server = Server(("127.0.0.1", 0), Blocking)
    loop = serve_in_thread()
    first = socket.create_connection(server.server_address, timeout=10)
    first.sendall(b"a\n")
    assert wait_for(lambda: running)
    now = rounds[0]
    assert wait_for(lambda: rounds[0] >= now + 2)  # the loop waits for connections again
    server.shutdown()  # with its one slot busy
    loop.join(10)
    print("stopped", not loop.is_alive(), flush=True)
    loop = serve_in_thread()  # serving again, the slot still busy
    second = socket.create_connection(server.server_address, timeout=10)
    second.sendall(b"b\n")
    assert wait_for(lambda: len(accepted) == 2)  # it waits for the slot
    release.set()
    print("first", ask(first), flush=True)
    print("second", ask(second), flush=True)  # waited for the slot, was served
    server.shutdown()
    loop.join(10)
    closer = threading.Thread(target=server.server_close, daemon=True)
    closer.start()
    closer.join(3)  # it takes milliseconds, unless the count never comes down
    print("closed", not closer.is_alive(), flush=True)
    wait_for(lambda: _thread._count() == 0)  # parked handler threads end
    print("threads left", _thread._count(), flush=True)
""")


def test_shutdown_at_the_bound_then_serving_again_loses_nothing():
    """shutdown() while max_threads handlers are busy and the loop waits for
    connections; the busy handler ends afterwards; serving again, the next
    request waits for its slot and is served, not dropped; server_close()
    returns, no handler thread fails, and none is left."""
    try:
        run = subprocess.run(
            [sys.executable, "-c", SHUTDOWN_AT_THE_BOUND,
             os.path.dirname(os.path.abspath(socketse.__file__))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=6 * TIMEOUT)
    except subprocess.TimeoutExpired as expired:
        raise AssertionError("hung; output so far: %r" % (expired.stdout,))
    stderr = run.stderr.decode(errors="replace")
    assert run.stdout.decode().splitlines() == [
        "stopped True", "first b'done a\\n'", "second b'done b\\n'", "closed True",
        "threads left 0",
    ], stderr
    assert run.returncode == 0 and "Traceback" not in stderr, stderr
