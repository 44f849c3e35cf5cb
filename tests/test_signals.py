"""Signals arriving while the server waits, and signal handlers that stop
it: what CPython shows with setitimer and SIGALRM, whose handlers run in
the main thread, wherever it happens to be.

The rest of serve_forever() and shutdown() (before the loop runs, twice,
from a handler, from another thread, while a request runs) holds on every
interpreter and is in tests/scenarios.py; storms of signals and shutdowns
at random moments are in tests/test_stress.py.
"""

import signal
import sys
import threading
import time

import pytest

import socketse
from conftest import TIMEOUT, wait_for

pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer")


class Reverse(socketse.StreamRequestHandler):
    """One line in, that line reversed out."""

    timeout = TIMEOUT

    def handle(self):
        line = self.rfile.readline()
        self.wfile.write(line.rstrip(b"\n")[::-1] + b"\n")


class Recording(socketse.TCPServer):
    """A TCPServer on a loopback port, recording the type of each error
    handle_error() is called for."""

    def __init__(self):
        self.errors = []
        super().__init__(("127.0.0.1", 0), Reverse)

    def handle_error(self, request, client_address):
        self.errors.append(sys.exc_info()[0])


class Alarms:
    """SIGALRM every `interval` seconds to a Python handler, at most
    `limit` times (so that a loop restarted by each one still ends)."""

    def __init__(self, interval, limit, action=None):
        self.count = 0
        self.interval, self.limit, self.action = interval, limit, action

    def _handler(self, signum, frame):
        self.count += 1
        if self.count >= self.limit:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if self.action is not None:
            self.action()

    def __enter__(self):
        self.previous = signal.signal(signal.SIGALRM, self._handler)
        signal.setitimer(signal.ITIMER_REAL, self.interval, self.interval)
        return self

    def __exit__(self, *exc_info):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


def test_signal_handler_in_the_serving_thread_may_call_shutdown():
    # socketse-only: the stdlib's shutdown() would wait for the very loop the
    # signal interrupted, for ever.  Here serve_forever() returns.
    with Recording() as server:
        with Alarms(0.2, 1, server.shutdown):
            started = time.monotonic()
            server.serve_forever(poll_interval=TIMEOUT)
            assert time.monotonic() - started < TIMEOUT


def test_signals_do_not_break_serve_forever(clients):
    server = Recording()
    replies = []
    signalled = []

    def client():
        try:
            signalled.append(wait_for(lambda: alarms.count >= 5))
            for n in range(20):
                replies.append(clients.talk(server, b"request %d\n" % n))
                time.sleep(0.01)  # signals land while the loop waits between requests
        finally:
            server.shutdown()

    alarms = Alarms(0.01, 2000)
    talker = threading.Thread(target=client)
    try:
        with alarms:
            talker.start()
            server.serve_forever(poll_interval=0.5)  # signals land in here: main thread
    finally:
        talker.join(3 * TIMEOUT)
        server.server_close()
    assert not talker.is_alive()
    assert signalled == [True], "no signal came before the requests"
    assert replies == [(b"request %d" % n)[::-1] + b"\n" for n in range(20)]
    assert server.errors == []


def test_signals_do_not_cut_handle_request_timeout_short():
    timeouts = []

    class Server(socketse.TCPServer):
        timeout = 1.0

        def handle_timeout(self):
            timeouts.append(time.monotonic())

    with Server(("127.0.0.1", 0), Reverse) as server:
        with Alarms(0.05, 200) as alarms:
            start = time.monotonic()
            server.handle_request()
            elapsed = time.monotonic() - start
    assert len(timeouts) == 1
    assert alarms.count >= 3  # signals did arrive during the wait
    assert 0.9 <= elapsed < TIMEOUT, elapsed


def test_keyboard_interrupt_from_a_signal_stops_serve_forever_cleanly(clients):
    """The Ctrl-C case: an exception raised by a signal handler while the
    loop waits ends serve_forever(); the server can then serve again."""

    def interrupt():
        raise KeyboardInterrupt

    server = Recording()
    try:
        with Alarms(0.2, 1, interrupt):
            with pytest.raises(KeyboardInterrupt):
                server.serve_forever(poll_interval=30)
        serving = threading.Thread(target=server.serve_forever, args=(0.05,))
        serving.start()
        try:
            assert clients.talk(server, b"served\n") == b"devres\n"
        finally:
            server.shutdown()
            serving.join(TIMEOUT)
        assert not serving.is_alive()
    finally:
        server.server_close()
    assert server.errors == []
