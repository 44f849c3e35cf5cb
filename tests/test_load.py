"""Load: many connections, many children, many datagrams, a burst of
connects.

Each test checks every reply, and that the server gives back what it took:
descriptors, threads, child processes.  Every loop is bounded in count and
in time; nothing here asserts on speed beyond a generous overall deadline.
A datagram cut to max_packet_size, and the one after it, are in
tests/scenarios.py.
"""

import json
import os
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import socketse
from conftest import REPO_ROOT, TIMEOUT, fd_count, read_line, thread_count, wait_for
from example_programs import micropython_or_skip


def run_threads(target, count, seconds):
    """Run target(i) in count threads; return the exceptions they raised.
    Fails the test if one is still running after `seconds`."""
    errors = []

    def run(i):
        try:
            target(i)
        except BaseException as error:  # reported by the test, not lost
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread for thread in threads if thread.is_alive()]
    assert not stuck, "%d client threads still running after %.0f s" % (len(stuck), seconds)
    return errors


class LineEcho(socketse.StreamRequestHandler):
    """Line in, the same line reversed out: a wrong reply cannot pass for
    the request echoed by mistake."""

    timeout = TIMEOUT

    def handle(self):
        line = self.rfile.readline()
        self.wfile.write(line[:-1][::-1] + b"\n")


# ---------------------------------------------------------------------------
# 10,000 connections against ThreadingTCPServer

CONNECTIONS = 10000
CLIENT_THREADS = 32


def test_ten_thousand_connections_from_32_threads():
    fds_before = fd_count()
    threads_before = thread_count()
    errors = []

    class Server(socketse.ThreadingTCPServer):
        def handle_error(self, request, client_address):
            errors.append(sys.exc_info()[1])

    server = Server(("127.0.0.1", 0), LineEcho)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    wrong = []
    done = [0] * CLIENT_THREADS
    started = time.monotonic()

    def client(worker):
        for n in range(worker, CONNECTIONS, CLIENT_THREADS):
            request = b"%d-%d-payload" % (worker, n)
            with socket.create_connection(server.server_address, timeout=TIMEOUT) as sock:
                sock.sendall(request + b"\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            if reply != request[::-1] + b"\n":
                wrong.append((request, reply))
            done[worker] += 1

    try:
        failures = run_threads(client, CLIENT_THREADS, seconds=120)
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        serving.join(TIMEOUT)
        server.server_close()
    print("%d connections in %.1f s" % (sum(done), elapsed))
    assert not serving.is_alive()
    assert failures == [], failures[:3]
    assert wrong == [], wrong[:3]
    assert sum(done) == CONNECTIONS
    assert errors == [], errors[:3]
    # Everything the server took is given back (handler threads end just
    # after they release their slot, so wait for them, boundedly).
    assert wait_for(lambda: thread_count() <= threads_before), (threads_before, thread_count())
    assert wait_for(lambda: fd_count() <= fds_before), (fds_before, fd_count())


# ---------------------------------------------------------------------------
# ForkingTCPServer with max_children

# The forking server runs in a process of its own: a single thread forks
# there, and os.waitpid(-1) in collect_children can reap no one else's child.
FORKING_SERVER = textwrap.dedent(r"""
    import json, os, select, sys, time
    sys.path.insert(0, sys.argv[1])
    import socketse

    def live_children():
        # Children of this process, by /proc: (all, not yet exited).
        found, live = set(), set()
        for task in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/children" % task) as f:
                found.update(int(pid) for pid in f.read().split())
        for pid in found:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue  # reaped meanwhile
            if state != "Z":
                live.add(pid)
        return found, live

    class Handler(socketse.StreamRequestHandler):
        timeout = 30

        def handle(self):
            line = self.rfile.readline()
            time.sleep(0.01)  # long enough for several to overlap
            self.wfile.write(b"%s %d %d\n" % (line.strip(), os.getpid(), os.getppid()))

    stats = {"requests": 0, "max_active": 0, "max_live": 0, "strangers": []}

    class Server(socketse.ForkingTCPServer):
        max_children = int(sys.argv[2])

        def process_request(self, request, client_address):
            super().process_request(request, client_address)
            # Just after a fork is when the most children can be alive.
            stats["requests"] += 1
            found, live = live_children()
            stats["max_active"] = max(stats["max_active"], len(self.active_children))
            stats["max_live"] = max(stats["max_live"], len(live))
            stats["strangers"].extend(sorted(found - self.active_children))

        def service_actions(self):
            super().service_actions()
            if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
                self.shutdown()  # the test closed our stdin: stop

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.05)
    server.server_close()
    found, live = live_children()
    stats["children_after_close"] = sorted(found)
    stats["active_after_close"] = sorted(server.active_children or ())
    try:
        os.waitpid(-1, os.WNOHANG)
        stats["waitpid"] = "a child was left"
    except ChildProcessError:
        stats["waitpid"] = "no children"
    print(json.dumps(stats), flush=True)
""")


def run_script(script, *arguments):
    """A Python process running script, its stdin and stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", script, os.path.dirname(os.path.abspath(socketse.__file__))]
        + [str(argument) for argument in arguments],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc")
def test_forking_server_keeps_to_max_children_over_500_requests():
    requests, max_children = 500, 4
    server = run_script(FORKING_SERVER, max_children)
    try:
        port = int(read_line(server))
        replies = []
        wrong = []

        def client(worker):
            for n in range(worker, requests, 8):
                with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
                    sock.sendall(b"r%d\n" % n)
                    reply = b""
                    while not reply.endswith(b"\n"):
                        chunk = sock.recv(1024)
                        if not chunk:
                            break
                        reply += chunk
                fields = reply.split()
                if len(fields) != 3 or fields[0] != b"r%d" % n or int(fields[2]) != server.pid \
                        or int(fields[1]) == server.pid:
                    wrong.append((n, reply))
                replies.append(n)

        failures = run_threads(client, 8, seconds=120)
        server.stdin.close()  # the server stops, closes, reports
        stats = json.loads(read_line(server, 3 * TIMEOUT))
        assert server.wait(TIMEOUT) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(TIMEOUT)
        server.stdout.close()
        stderr = server.stderr.read().decode(errors="replace")
        server.stderr.close()
    assert failures == [], failures[:3]
    assert wrong == [], wrong[:3]
    assert sorted(replies) == list(range(requests))
    assert stats["requests"] == requests, stats
    assert stats["max_active"] <= max_children, stats
    assert stats["max_live"] <= max_children, stats
    assert stats["max_live"] >= 2, stats  # the bound was actually exercised
    assert stats["strangers"] == [], stats  # every child is one it tracks
    assert stats["children_after_close"] == [], stats  # not even a zombie
    assert stats["active_after_close"] == [], stats
    assert stats["waitpid"] == "no children", stats
    assert "Traceback" not in stderr, stderr
    print(stats)


# ---------------------------------------------------------------------------
# UDPServer: 20,000 datagrams

DATAGRAMS = 20000
UDP_CLIENTS = 4
WINDOW = 8  # requests a client has in flight at most


class DatagramReverse(socketse.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read()[::-1])


def test_udp_server_answers_every_datagram_it_receives():
    seen = [0]

    class Server(socketse.UDPServer):
        def process_request(self, request, client_address):
            seen[0] += 1  # only the serving thread counts
            super().process_request(request, client_address)

    server = Server(("127.0.0.1", 0), DatagramReverse)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    results = [None] * UDP_CLIENTS

    def client(worker):
        sent = answered = wrong = 0
        outstanding = {}  # expected reply -> when its request was sent
        given_up = set()  # replies no longer waited for (a late one still counts)
        total = DATAGRAMS // UDP_CLIENTS
        deadline = time.monotonic() + 90
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(2.0)
            while (sent < total or outstanding) and time.monotonic() < deadline:
                while sent < total and len(outstanding) < WINDOW:
                    request = b"c%d-n%d" % (worker, sent)
                    sock.sendto(request, server.server_address)
                    outstanding[request[::-1]] = time.monotonic()
                    sent += 1
                try:
                    reply = sock.recv(1024)
                except socket.timeout:
                    # UDP may drop: give up on the oldest one and go on.
                    oldest = min(outstanding, key=outstanding.get)
                    del outstanding[oldest]
                    given_up.add(oldest)
                    continue
                if outstanding.pop(reply, None) is not None:
                    answered += 1
                elif reply in given_up:
                    given_up.discard(reply)
                    answered += 1
                else:
                    wrong += 1  # not a reply to anything this client sent
            sock.settimeout(0.5)  # late replies to the given-up ones, briefly
            while given_up:
                try:
                    reply = sock.recv(1024)
                except socket.timeout:
                    break
                if reply in given_up:
                    given_up.discard(reply)
                    answered += 1
                else:
                    wrong += 1
        results[worker] = dict(sent=sent, answered=answered, wrong=wrong, lost=len(given_up))

    try:
        failures = run_threads(client, UDP_CLIENTS, seconds=120)
    finally:
        server.shutdown()
        serving.join(TIMEOUT)
        server.server_close()
    assert failures == [], failures[:3]
    print(results, "server saw", seen[0])
    assert all(r["wrong"] == 0 for r in results), results
    assert sum(r["sent"] for r in results) == DATAGRAMS, results
    answered = sum(r["answered"] for r in results)
    # Every datagram the server received was answered, and the answer came.
    assert answered == seen[0], (answered, seen[0], results)
    assert seen[0] >= DATAGRAMS * 0.9, (seen[0], results)  # loopback drops little


BURST_SERVER = textwrap.dedent(r"""
    import socketse
    from runner import on_a_random_port

    class Echo(socketse.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    # a random port: MicroPython can't tell which one port 0 chose
    server = on_a_random_port(lambda port: socketse.TCPServer(("127.0.0.1", port), Echo))
    print(server.server_address[1])
    server.serve_forever()
""")


def test_a_burst_of_connects_is_answered_on_micropython(tmp_path):
    """MicroPython has no socket.SOMAXCONN: with the stdlib's backlog of 5,
    a burst of 200 connects to a single-threaded server left most of them
    waiting on SYN retries (80 answered in 5 s here); socketse's fallback
    answers all of them while they still wait."""
    script = tmp_path / "burst_server.py"
    script.write_text(BURST_SERVER)
    server = subprocess.Popen(
        [micropython_or_skip(), str(script)], stdout=subprocess.PIPE,
        env=dict(os.environ, MICROPYPATH=REPO_ROOT + ":" + os.path.join(REPO_ROOT, "tests")))
    socks = []
    try:
        port = int(server.stdout.readline())
        for _ in range(200):  # all at once: connect() does not wait
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            socks.append(sock)
        waiting = {sock: b"" for sock in socks}  # sock: what it has sent
        answered = 0
        deadline = time.monotonic() + TIMEOUT
        while waiting and time.monotonic() < deadline:
            writable = [sock for sock, sent in waiting.items() if not sent]
            readable, writable, _ = select.select(
                [sock for sock, sent in waiting.items() if sent], writable, [], 0.1)
            for sock in writable:
                try:
                    waiting[sock] = sock.send(b"burst\n") and b"burst\n"
                except BlockingIOError:  # not connected yet
                    pass
            for sock in readable:
                answered += sock.recv(64) == b"burst\n"
                del waiting[sock]
        assert answered == 200, "%d of 200 answered in %d s" % (answered, TIMEOUT)
    finally:
        for sock in socks:
            sock.close()
        server.kill()
        server.wait()
        server.stdout.close()
