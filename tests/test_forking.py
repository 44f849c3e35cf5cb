"""ForkingMixIn: active_children, collect_children(), a child that fails,
and no zombie left (where os.fork exists).

That ForkingTCPServer and ForkingUDPServer answer from a child is in
tests/scenarios.py; the default attributes are compared with the stdlib's
in tests/test_api.py.  The servers are driven with handle_request() from
the test's own thread, so no other thread is running when the server forks.
"""

import os

import pytest

import socketse
from conftest import TIMEOUT

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")


class Pid(socketse.StreamRequestHandler):
    """Waits for a line; answers with the pid of the process handling it
    (or raises when the line is 'fail')."""

    timeout = TIMEOUT

    def handle(self):
        if self.rfile.readline() == b"fail\n":
            raise ValueError("failing in the child")
        self.wfile.write(str(os.getpid()).encode())


class QuietForkingTCPServer(socketse.ForkingTCPServer):
    def handle_error(self, request, client_address):
        pass  # runs in the child: the test sees the failure as an EOF


def ask_pid(server, clients, line=b"pid\n"):
    sock = clients.send(server, line)
    server.handle_request()
    reply = clients.read_all(sock)
    return int(reply) if reply else None


def test_active_children_tracks_children_until_server_close(clients):
    server = socketse.ForkingTCPServer(("127.0.0.1", 0), Pid)
    try:
        sock = clients.connect(server)
        server.handle_request()  # the child now waits for our line
        children = set(server.active_children)
        assert len(children) == 1
        sock.sendall(b"pid\n")
        pid = int(clients.read_all(sock))
        assert children == {pid}
    finally:
        server.server_close()
    assert not server.active_children
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped


def test_collect_children_blocking_reaps(clients):
    with socketse.ForkingTCPServer(("127.0.0.1", 0), Pid) as server:
        pids = [ask_pid(server, clients) for _ in range(3)]
        server.collect_children(blocking=True)
        assert not server.active_children
        for pid in pids:
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def test_handler_exception_in_child_does_not_stop_the_server(clients):
    with QuietForkingTCPServer(("127.0.0.1", 0), Pid) as server:
        assert ask_pid(server, clients, b"fail\n") is None  # EOF, no reply
        pid = ask_pid(server, clients)
        assert pid is not None and pid != os.getpid()


def test_no_zombies_after_server_close(clients):
    server = socketse.ForkingTCPServer(("127.0.0.1", 0), Pid)
    try:
        for _ in range(3):
            ask_pid(server, clients)
    finally:
        server.server_close()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
