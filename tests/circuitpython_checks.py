"""Checks of the CircuitPython profile itself: that tests/boards/
circuitpython_*.py behave as CircuitPython's C sources say a board does, so
that what socketse is tested against stays what it should be.

Run on CircuitPython's unix port (`make boards`) as ``circuitpython
tests/circuitpython_checks.py --board circuitpython_raspberrypi`` (or
circuitpython_espressif); tests/test_circuitpython_profile.py does.  No
socketse here.  The last line is "N passed, N failed, N skipped".
"""

import sys

from runner import Skip, board, check, client_address, client_socket, random_port, run, take_options

take_options()

import select  # noqa: E402 -- the board's, after --board
import time  # noqa: E402
from errno import EADDRINUSE, EAGAIN, ENOTCONN, ETIMEDOUT  # noqa: E402

import socketpool  # noqa: E402
import wifi  # noqa: E402

PICO = board() == "circuitpython_raspberrypi"
pool = socketpool.SocketPool(wifi.radio)
CHECKS = []
opened = []


def check_case(function):
    def case():
        try:
            function()
        finally:
            while opened:
                opened.pop().close()
    CHECKS.append((function.__name__, case))
    return function


def pool_socket(kind=None):
    sock = pool.socket(pool.AF_INET, kind or pool.SOCK_STREAM)
    opened.append(sock)
    return sock


def listener(backlog=2):
    for attempt in range(20):
        sock = pool_socket()
        sock.setsockopt(pool.SOL_SOCKET, pool.SO_REUSEADDR, 1)
        port = random_port()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(backlog)
        return sock, port
    raise AssertionError("no free port")


def client(port, data=b""):
    sock = client_socket.socket(client_socket.AF_INET, client_socket.SOCK_STREAM)
    sock.connect(client_address(("127.0.0.1", port)))
    if data:
        sock.send(data)
    opened.append(sock)
    return sock


def raises(number, call, *args):
    try:
        call(*args)
    except OSError as error:
        check(error.args[0] == number, "%r, not OSError(%d)" % (error, number))
        return
    check(False, "no OSError(%d)" % number)


def accept_one(sock, timeout=2):
    """The next connection sock accepts within timeout, closed with the case."""
    sock.settimeout(timeout)
    accepted = sock.accept()[0]
    opened.append(accepted)
    return accepted


def drain_and_close(peer, size):
    """Read size bytes, then close: a FIN, where unread input would reset."""
    peer.settimeout(2)
    got = 0
    while got < size:
        got += len(peer.recv(size - got))
    peer.close()
    time.sleep(0.05)


def took(call, *args):
    """How long call(*args) took, in seconds, whatever it raised."""
    start = time.monotonic_ns()
    try:
        call(*args)
    except OSError:
        pass
    return (time.monotonic_ns() - start) / 1e9


@check_case
def the_modules_are_a_boards():
    check("socket" not in sys.modules, "a socket module is installed")
    check((ETIMEDOUT, EADDRINUSE, EAGAIN) == (116, 112, 11), "errno is not newlib's")
    check(hasattr(time, "monotonic") and not hasattr(time, "ticks_ms"), "not a board's time")
    check(isinstance(time.time(), int), "time.time() is not whole seconds")
    check((pool.AF_INET, pool.SOCK_STREAM, pool.SOL_SOCKET, pool.SO_REUSEADDR, pool.TCP_NODELAY)
          == (2, 1, 0xfff, 4, 1), "not lwIP's numbers")
    check(socketpool.SocketPool.IPPROTO_TCP == 6, "constants are not class attributes")
    try:
        socketpool.SocketPool(object())
    except ValueError:
        pass
    else:
        check(False, "a pool for something other than wifi.radio")


@check_case
def sockets_have_the_bindings_methods_only():
    names = sorted(name for name in dir(pool_socket()) if not name.startswith("_"))
    check(names == ["accept", "bind", "close", "connect", "listen", "recv_into",
                    "recvfrom_into", "send", "sendall", "sendto", "setblocking",
                    "setsockopt", "settimeout", "type"], names)


@check_case
def eight_sockets_then_out_of_sockets():
    for _ in range(8):
        pool_socket()
    try:
        pool_socket()
    except RuntimeError as error:
        check(error.args == ("Out of sockets",), error.args)
    else:
        check(False, "a ninth socket")


@check_case
def select_takes_sockets_not_descriptors():
    poller = select.poll()
    try:
        poller.register(3, select.POLLIN)
    except OSError:
        return
    check(False, "an int registered")


@check_case
def a_timeout_under_a_millisecond_is_non_blocking():
    sock, port = listener()
    sock.settimeout(0.0005)
    raises(EAGAIN, sock.accept)


@check_case
def a_reset_closes_unread_input():
    sock, port = listener()
    peer = client(port, b"unread")
    accepted = accept_one(sock)
    time.sleep(0.05)
    accepted.close()
    peer.settimeout(2)
    raises(104, peer.recv, 10)  # the host's ECONNRESET, not a FIN


@check_case
def pico_accept_waits_in_whole_100_ms_steps():
    if not PICO:
        raise Skip("the Pico W's")
    sock, port = listener()
    sock.settimeout(0.09)
    check(took(sock.accept) < 0.05, "a timeout under 0.1 s waited")
    sock.settimeout(0.25)
    check(0.18 < took(sock.accept) < 0.35, "not two steps of 100 ms")


@check_case
def pico_listener_always_polls_readable():
    if not PICO:
        raise Skip("the Pico W's")
    sock, port = listener()
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    check(poller.poll(0), "an idle listener did not poll readable")


@check_case
def pico_accepted_socket_has_the_listeners_timeout():
    if not PICO:
        raise Skip("the Pico W's")
    sock, port = listener()
    client(port)
    accepted = accept_one(sock, 0.3)
    check(0.25 < took(accepted.recv_into, bytearray(8)) < 0.6, "not the listener's timeout")


@check_case
def pico_out_of_sockets_comes_from_accept():
    if not PICO:
        raise Skip("the Pico W's")
    sock, port = listener()
    for _ in range(7):
        pool_socket()
    client(port)
    sock.settimeout(1)
    try:
        sock.accept()
    except RuntimeError as error:
        check(error.args == ("Out of sockets",), error.args)
    else:
        check(False, "accepted a ninth socket")
    raises(ETIMEDOUT, sock.accept)  # the connection left the queue


@check_case
def pico_backlog_is_a_ring_and_a_full_one_resets():
    if not PICO:
        raise Skip("the Pico W's")
    sock, port = listener(backlog=2)
    peers = [client(port) for _ in range(3)]
    time.sleep(0.05)
    accept_one(sock, 0)
    accept_one(sock, 0)
    raises(EAGAIN, sock.accept)
    peers[2].settimeout(2)
    raises(104, peers[2].recv, 1)  # the host's ECONNRESET: the third was reset


@check_case
def pico_reads_a_segment_and_sends_a_buffer_at_most():
    if not PICO:
        raise Skip("the Pico W's")
    sock, port = listener()
    peer = client(port, b"y" * 5000)
    accepted = accept_one(sock)
    time.sleep(0.05)
    check(accepted.recv_into(bytearray(5000)) <= 1460, "read more than a segment")
    check(accepted.send(b"x" * 20000) == 11680, "sent other than the send buffer")
    drain_and_close(peer, 11680)
    try:
        accepted.send(b"x")
    except BrokenPipeError:
        return
    check(False, "sent after the peer's FIN")


@check_case
def pico_holds_one_datagram():
    if not PICO:
        raise Skip("the Pico W's")
    sock = pool_socket(pool.SOCK_DGRAM)
    port = random_port()
    sock.bind(("127.0.0.1", port))
    sender = client_socket.socket(client_socket.AF_INET, client_socket.SOCK_DGRAM)
    opened.append(sender)
    for data in (b"one", b"two"):
        sender.sendto(data, client_address(("127.0.0.1", port)))
    time.sleep(0.05)
    sock.settimeout(0)
    buffer = bytearray(8)
    check(sock.recvfrom_into(buffer)[0] == 3 and buffer[:3] == b"one", buffer)
    raises(EAGAIN, sock.recvfrom_into, buffer)


@check_case
def esp_accepted_socket_is_non_blocking():
    if PICO:
        raise Skip("ESP32's")
    sock, port = listener()
    client(port)
    accepted = accept_one(sock)
    raises(EAGAIN, accepted.recv_into, bytearray(8))


@check_case
def esp_send_never_waits_and_the_end_is_enotconn():
    if PICO:
        raise Skip("ESP32's")
    sock, port = listener()
    peer = client(port)
    accepted = accept_one(sock)
    accepted.settimeout(5)
    sent = accepted.send(b"x" * 20000)
    check(sent <= 5760, sent)
    raises(EAGAIN, accepted.send, b"x")  # a full buffer, whatever the timeout
    drain_and_close(peer, sent)
    accepted.settimeout(0)
    raises(ENOTCONN, accepted.recv_into, bytearray(8))


@check_case
def esp_timed_accept_loses_what_its_last_round_takes():
    if PICO:
        raise Skip("ESP32's")
    import circuitpython_common as cp
    sock, port = listener()
    sock.settimeout(0.05)
    since, connected = cp.since, []

    def late(start):  # the client connects as the round that finds the deadline past begins
        elapsed = since(start)
        if elapsed >= 50 and not connected:
            connected.append(client(port))
        return elapsed

    cp.since = late
    try:
        raises(ETIMEDOUT, sock.accept)
    finally:
        cp.since = since
    sock.settimeout(0.2)
    raises(ETIMEDOUT, sock.accept)  # taken, and never given


sys.exit(run(CHECKS))
