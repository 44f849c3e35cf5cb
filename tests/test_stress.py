"""The shared state of the serving loop and the thread pool, under storms.

_HandlerThreads states its invariant (busy never above the bound, a
request either handled or closed, shutdown() never waits for a handler,
nothing left busy or parked after server_close()) and BaseServer its own
(shutdown() from a signal handler in the serving thread never waits for a
lock that thread holds).  These tests throw signals, shutdowns, handler
exits and failures at them at every point they can reach, boundedly, each
in a subprocess with a deadline: a deadlock fails the test instead of
hanging the suite.
"""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What every storm shares: a ThreadingTCPServer whose handlers echo a line,
# fail, or exit their thread; clients that each send one line and read to
# the end; and the check that the process ends with no thread but its own.
COMMON = """
import os, random, signal, socket, sys, threading, time, _thread
import socketse

random.seed(int(sys.argv[1]))
ANSWERED = []  # (line, reply) of every client

class Handler(socketse.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        if line.startswith(b"fail"):
            raise ValueError("failing on purpose")
        if line.startswith(b"exit"):
            raise SystemExit  # ends the handler thread
        time.sleep(random.random() * 0.002)
        self.wfile.write(line)

class Server(socketse.ThreadingTCPServer):
    max_threads = 2
    def handle_error(self, request, client_address):
        pass  # failing on purpose: nothing to report

def client(port, word):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(word + b"\\n")
            reply = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError as error:
        reply = error  # refused or reset: shutting down
    ANSWERED.append((word, reply))

def clients(port, count):
    words = [random.choice([b"echo", b"fail", b"exit"]) + b" %d" % n for n in range(count)]
    threads = [threading.Thread(target=client, args=(port, word)) for word in words]
    for thread in threads:
        thread.start()
    return threads

def check_answers():
    for word, reply in ANSWERED:
        # Echoed, or closed unanswered; never another client's data.
        assert reply in (word + b"\\n", b"") or isinstance(reply, OSError), (word, reply)
    print("echoed", sum(1 for word, reply in ANSWERED if reply == word + b"\\n"))

def no_threads_left():
    deadline = time.monotonic() + 10
    while _thread._count() > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _thread._count() == 0, "%d threads left" % _thread._count()

def end_round(server, threads):
    # server_close(), then every client must have had its answer or end,
    # and the pool's counts are at rest: nothing busy, no thread counted
    # as not yet running (an excess there would grow every later heap
    # trial until start() refused everything).
    server.server_close()
    pool = server._threads
    if isinstance(pool, socketse._HandlerThreads):
        assert (pool._busy, pool._unstarted) == (0, 0), (pool._busy, pool._unstarted)
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), "a client never got an answer or an end"

def end_storm(*counts):
    check_answers()
    no_threads_left()
    print("rounds", ROUNDS, *counts, "clients", len(ANSWERED))
"""

SIGNALS = COMMON + """
# serve_forever() in the main thread while SIGALRM arrives every few hundred
# microseconds, wherever the loop, start() or the locks happen to be; now
# and then its handler calls shutdown().  Every round must end, and the
# next serve again.
shutdowns = []

def on_alarm(signum, frame):
    if random.random() < 0.02:
        shutdowns.append(1)
        server.shutdown()

signal.signal(signal.SIGALRM, on_alarm)
for round in range(ROUNDS):
    server = Server(("127.0.0.1", 0), Handler)
    threads = clients(server.server_address[1], 30)
    signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0002)
    server.serve_forever(poll_interval=0.01)
    server.serve_forever(poll_interval=0.01)  # and once more, signals still arriving
    signal.setitimer(signal.ITIMER_REAL, 0)
    end_round(server, threads)
end_storm("shutdowns", len(shutdowns))
"""

SHUTDOWNS = COMMON + """
# serve_forever() in a thread, shut down from the main thread at a random
# moment while clients arrive, handlers fail and exit at the bound.
for round in range(ROUNDS):
    server = Server(("127.0.0.1", 0), Handler)
    serving = threading.Thread(target=server.serve_forever, args=(0.01,))
    serving.start()
    threads = clients(server.server_address[1], 8)
    time.sleep(random.random() * 0.01)
    server.shutdown()
    serving.join(10)
    assert not serving.is_alive(), "shutdown() returned, serve_forever did not"
    end_round(server, threads)
end_storm()
"""


def storm(script, seed, rounds):
    """Run a storm in a fresh interpreter, bounded in time."""
    code = textwrap.dedent(script).replace("ROUNDS", str(rounds))
    run = subprocess.run([sys.executable, "-c", code, str(seed)], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=120,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = run.stdout.decode(errors="replace")
    assert run.returncode == 0, output
    return output


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="needs setitimer")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_signal_storm_that_calls_shutdown_never_deadlocks(seed):
    output = storm(SIGNALS, seed, rounds=40)
    assert "shutdowns" in output and "shutdowns 0 " not in output, output


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shutdowns_at_any_moment_lose_no_client_and_leave_no_thread(seed):
    output = storm(SHUTDOWNS, seed, rounds=40)
    assert "clients 320" in output, output


INSIDE_THE_POOL_LOCK = COMMON + """
# The narrowest window, made certain: the signal arrives while the serving
# thread holds the pool's lock in start(), whose handler then calls
# shutdown().  (The lock is wrapped to raise the signal once held.)
class SignallingLock:
    def __init__(self, lock):
        self.lock = lock
    def __enter__(self):
        self.lock.__enter__()
        if random.random() < 0.5:
            signal.raise_signal(signal.SIGALRM)  # handled before __enter__ returns
    def __exit__(self, *exc_info):
        return self.lock.__exit__(*exc_info)

def on_alarm(signum, frame):
    server.shutdown()

class WrappedServer(Server):
    def process_request(self, request, client_address):
        if not isinstance(self._threads, socketse._HandlerThreads):
            Server.process_request(self, request, client_address)  # makes the pool
            self._threads._lock = SignallingLock(self._threads._lock)
        else:
            Server.process_request(self, request, client_address)

signal.signal(signal.SIGALRM, on_alarm)
for round in range(ROUNDS):
    server = WrappedServer(("127.0.0.1", 0), Handler)
    threads = clients(server.server_address[1], 6)
    server.serve_forever(poll_interval=0.01)
    end_round(server, threads)
end_storm()
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "raise_signal"), reason="Python 3.8+")
def test_a_signal_inside_the_pools_lock_may_call_shutdown():
    output = storm(INSIDE_THE_POOL_LOCK, 1, rounds=20)
    assert "clients 120" in output, output


IDLE_EXPIRY = COMMON + """
# Parked threads time out while start() hands them requests: idle_seconds
# is a millisecond, and clients come in bursts with pauses around it, so
# that an expiring thread and start() meet at the same slot.  Nothing shuts
# down early here: every echo is answered.
socketse._HandlerThreads.idle_seconds = 0.001

class Unbounded(Server):
    max_threads = None

for round in range(ROUNDS):
    server = Unbounded(("127.0.0.1", 0), Handler)
    serving = threading.Thread(target=server.serve_forever, args=(0.01,))
    serving.start()
    threads = []
    for burst in range(5):
        threads += clients(server.server_address[1], 8)
        time.sleep(random.random() * 0.003)
    for thread in threads:
        thread.join(10)
    server.shutdown()
    serving.join(10)
    end_round(server, threads)
unanswered = [word for word, reply in ANSWERED
              if word.startswith(b"echo") and reply != word + b"\\n"]
assert not unanswered, unanswered
end_storm()
"""


@pytest.mark.parametrize("seed", [1, 2])
def test_idle_threads_expiring_while_requests_arrive_lose_no_request(seed):
    output = storm(IDLE_EXPIRY, seed, rounds=30)
    assert "clients 1200" in output, output
