"""Hostile input, generated: random bytes, random chunking, oversized
lines and datagrams, clients that vanish at random points.

One server per test function (started once, not per example) is driven by
hypothesis-generated client sessions, several at once.  The property: the
server stays up, every client that ends its session in an orderly way gets
exactly the replies a reference model computes from the bytes it sent, and
only clients that broke off their session can cost a handle_error.
"""

import socket
import sys
import threading

import pytest

import socketse
from conftest import TIMEOUT, recv_until_eof, reset

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

LIMIT = 64  # longest line a stream handler takes, its end of line included
MAX_DATAGRAM = 512  # a datagram this long may have been cut: refused

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOO_LONG = b"ERR too long\n"


def answer(request):
    """The reply to one well-delimited request (without its end of line)."""
    if request.startswith(b"ECHO "):
        return b"OK " + request[5:][::-1] + b"\n"
    if request == b"PING":
        return b"PONG\n"
    return b"ERR bad request\n"


# ---------------------------------------------------------------------------
# The line protocol over TCP


class LineProtocol(socketse.StreamRequestHandler):
    """Requests are lines of at most LIMIT bytes; a longer one is answered
    "ERR too long" and skipped; an unfinished last line is ignored."""

    timeout = TIMEOUT

    def handle(self):
        while True:
            line = self.rfile.readline(LIMIT)
            if not line:
                return
            if line.endswith(b"\n"):
                self.wfile.write(answer(line[:-1]))
                continue
            if len(line) < LIMIT:
                return  # the client stopped in the middle of a line
            self.wfile.write(TOO_LONG)
            while not line.endswith(b"\n"):  # skip the rest of it
                line = self.rfile.readline(LIMIT)
                if not line:
                    return


def expected_replies(data):
    """What LineProtocol answers to a connection that sent `data`, then
    half-closed: computed by splitting, not by readline."""
    replies = []
    lines = data.split(b"\n")
    for line in lines[:-1]:
        replies.append(answer(line) if len(line) + 1 <= LIMIT else TOO_LONG)
    if len(lines[-1]) >= LIMIT:  # unfinished, but already too long
        replies.append(TOO_LONG)
    return replies


def no_newline(data):
    return data.replace(b"\n", b"n")


def echo_line(size):
    """An ECHO request line of `size` bytes, its end of line included."""
    return st.binary(min_size=size - 6, max_size=size - 6).map(lambda b: b"ECHO " + no_newline(b))


request_lines = st.one_of(
    st.binary(max_size=LIMIT - 6).map(lambda b: b"ECHO " + no_newline(b)),  # fits
    st.integers(LIMIT - 2, LIMIT + 2).flatmap(echo_line),  # at the limit, either side
    st.just(b"PING"),
    st.binary(max_size=LIMIT + 8).map(no_newline),  # random bytes, any length near the limit
    st.binary(min_size=LIMIT, max_size=4 * LIMIT).map(lambda b: b"ECHO " + no_newline(b)),
)


ENDINGS = ["half-close", "truncate", "close", "reset"]


@st.composite
def stream_sessions(draw, ending):
    """One client's behaviour: the bytes it sends, where it cuts them into
    sends, and how it ends: 'half-close' after everything; 'truncate' at a
    random point, then half-close; 'close' at a random point without
    reading; 'reset' at a random point."""
    lines = draw(st.lists(request_lines, min_size=0, max_size=8))
    data = b"".join(line + b"\n" for line in lines)
    data += draw(st.sampled_from([b"", b"PI", b"ECHO unfinished"]))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    stop = len(data) if ending == "half-close" else draw(st.integers(0, len(data)))
    return data, cuts, ending, stop


# Every example has a client of each kind, all at once, in a random order.
all_kinds_of_stream_clients = st.tuples(
    *[stream_sessions(ending) for ending in ENDINGS]).flatmap(st.permutations)


def run_stream_session(address, session):
    """Play a session; return (client address, replies or None)."""
    data, cuts, ending, stop = session
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a send, a segment
        me = sock.getsockname()
        start = 0
        for cut in [c for c in cuts if c < stop] + [stop]:
            if cut > start:
                sock.sendall(data[start:cut])
                start = cut
        if ending == "reset":
            reset(sock)
            return me, None
        if ending == "close":
            return me, None
        sock.shutdown(socket.SHUT_WR)
        return me, recv_until_eof(sock)


def in_threads(function, items):
    """function(item) for each item, all at once; the results in order."""
    results = [None] * len(items)
    failures = []

    def run(i):
        try:
            results[i] = function(items[i])
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(6 * TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a client is stuck"
    if failures:
        raise failures[0]
    return results


def recording(server_class):
    class Server(server_class):
        def __init__(self, *args, **kwargs):
            self.errors = []  # (client address, exception type)
            super().__init__(*args, **kwargs)

        def handle_error(self, request, client_address):
            self.errors.append((client_address, sys.exc_info()[0]))

    return Server


@pytest.mark.parametrize("kind", ["TCPServer", "ThreadingTCPServer"])
def test_line_server_survives_generated_clients(kind, serve):
    server = serve(recording(getattr(socketse, kind))(("127.0.0.1", 0), LineProtocol))
    orderly = set()

    @SETTINGS
    @given(all_kinds_of_stream_clients)
    def sessions_at_once(sessions):
        results = in_threads(lambda s: run_stream_session(server.server_address, s), sessions)
        for (data, cuts, ending, stop), (me, replies) in zip(sessions, results):
            if replies is not None:
                orderly.add(me)
                assert replies == b"".join(expected_replies(data[:stop])), (data, ending, stop)
        # Whatever the others did, the server still answers.
        me, replies = run_stream_session(server.server_address, (b"PING\n", [], "half-close", 5))
        orderly.add(me)
        assert replies == b"PONG\n"

    sessions_at_once()
    # Only clients that broke off can have cost a handle_error.
    assert [error for error in server.errors if error[0] in orderly] == []


def test_expected_replies_model():
    """The reference model itself, on cases worked out by hand."""
    assert expected_replies(b"") == []
    assert expected_replies(b"PING\nECHO ab\n") == [b"PONG\n", b"OK ba\n"]
    assert expected_replies(b"PING") == []  # unfinished
    assert expected_replies(b"x" * (LIMIT - 1) + b"\n") == [b"ERR bad request\n"]
    assert expected_replies(b"x" * LIMIT + b"\nPING\n") == [TOO_LONG, b"PONG\n"]
    assert expected_replies(b"x" * LIMIT) == [TOO_LONG]  # unfinished, too long already
    assert expected_replies(b"\n") == [b"ERR bad request\n"]


# ---------------------------------------------------------------------------
# The same protocol over UDP: one request per datagram


class DatagramProtocol(socketse.DatagramRequestHandler):
    def handle(self):
        packet = self.rfile.read()
        self.wfile.write(TOO_LONG if len(packet) >= MAX_DATAGRAM else answer(packet))


def expected_datagram_reply(datagram):
    return TOO_LONG if len(datagram) >= MAX_DATAGRAM else answer(datagram)


datagrams = st.one_of(
    st.binary(max_size=MAX_DATAGRAM - 6).map(lambda b: b"ECHO " + b),
    st.integers(MAX_DATAGRAM - 2, MAX_DATAGRAM + 1).flatmap(  # at the limit, either side
        lambda size: st.binary(min_size=size - 5, max_size=size - 5).map(lambda b: b"ECHO " + b)),
    st.just(b"PING"),
    st.just(b""),
    st.binary(max_size=100),
    st.binary(min_size=MAX_DATAGRAM - 2, max_size=3000),  # around the limit and over it
)


def datagram_sessions(ending):
    """One client's datagrams, and whether it waits for the replies
    ('read') or closes its socket at once ('abandon')."""
    return st.tuples(st.lists(datagrams, min_size=1, max_size=8), st.just(ending))


all_kinds_of_datagram_clients = st.tuples(
    *[datagram_sessions(ending) for ending in ["read", "read", "abandon"]]).flatmap(st.permutations)


def run_datagram_session(address, session):
    """Send the datagrams; return the replies (None if abandoned).  UDP may
    drop: what is missing after a while is asked for again, twice at most."""
    sent, ending = session
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for datagram in sent:
            sock.sendto(datagram, address)
        if ending == "abandon":
            return None
        sock.settimeout(2.0)
        wanted = [expected_datagram_reply(d) for d in sent]
        got = []
        for attempt in range(3):
            try:
                while len(got) < len(sent):
                    got.append(sock.recv(65536))
            except socket.timeout:
                missing = list(wanted)
                for reply in got:
                    if reply in missing:
                        missing.remove(reply)
                for reply in missing:  # resend a request with that reply
                    sock.sendto(sent[wanted.index(reply)], address)
            else:
                break
        return got


@pytest.mark.parametrize("kind", ["UDPServer", "ThreadingUDPServer"])
def test_datagram_server_survives_generated_clients(kind, serve):
    server_class = type("Server", (recording(getattr(socketse, kind)),),
                        {"max_packet_size": MAX_DATAGRAM})
    server = serve(server_class(("127.0.0.1", 0), DatagramProtocol))

    @SETTINGS
    @given(all_kinds_of_datagram_clients)
    def sessions_at_once(sessions):
        results = in_threads(lambda s: run_datagram_session(server.server_address, s), sessions)
        for (sent, ending), replies in zip(sessions, results):
            if replies is not None:
                assert sorted(replies) == sorted(expected_datagram_reply(d) for d in sent)
        assert run_datagram_session(server.server_address, ([b"PING"], "read")) == [b"PONG\n"]

    sessions_at_once()
    assert server.errors == []
