"""The examples in examples/ run end to end as programs, each talked to by
clients nobody here wrote (socat, nc, curl, xmlrpc.client) as well as by its
own, under CPython and, where the example is portable, MicroPython.

The attacks on the two dangerous examples (cmd_server.py, upload_server.py)
are in test_example_attacks.py.
"""

import calendar
import hashlib
import os
import socket
import struct
import time
import xmlrpc.client

import pytest

from example_programs import (  # noqa: F401  (programs is a fixture)
    TIMEOUT, command, free_port, programs, run, run_example, tool)

BOTH = ["cpython", "micropython"]
PORTABLE = ["udp_echo.py", "udp_time.py", "unix_echo.py", "chat.py",
            "cmd_server.py", "cmd_client.py"]
CPYTHON_ONLY = ["upload_server.py", "upload_client.py", "forking_echo.py",
                "http_server.py", "xmlrpc_server.py"]


def start_server(programs, interpreter, script, *arguments, **keywords):
    """(program, port): CPython servers take port 0 and say which port they
    got; MicroPython ones are given a free port."""
    kind = keywords.pop("kind", socket.SOCK_STREAM)
    port = 0 if interpreter == "cpython" else free_port(kind)
    program = programs.start(script, "--port", port, *arguments,
                             interpreter=interpreter, **keywords)
    return program, program.port()


@pytest.mark.parametrize("interpreter, script",
                         [(i, s) for s in PORTABLE for i in BOTH]
                         + [("cpython", s) for s in CPYTHON_ONLY])
def test_help_is_the_docstring(interpreter, script):
    for flag in ("--help", "-h"):
        done = run_example(interpreter, script, flag)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(b"A")  # the summary line, not a usage error
        assert b"python3 examples/" + script.encode() in done.stdout
        if interpreter == "micropython":  # which has no docstrings: the same text
            assert done.stdout == run_example("cpython", script, flag).stdout


# ---------------------------------------------------------------------------
# UDP


@pytest.mark.parametrize("interpreter", BOTH)
def test_udp_echo_answers_socat_nc_and_its_own_client(programs, interpreter):
    server, port = start_server(programs, interpreter, "udp_echo.py", kind=socket.SOCK_DGRAM)
    socat = programs.talk(tool("socat"), "-", "UDP:127.0.0.1:%d" % port)
    socat.say(b"hello over udp\n")
    assert socat.expect(b"\n") == b"hello over udp\n"
    nc = programs.talk(tool("nc"), "-u", "127.0.0.1", port)
    nc.say(b"and from nc\n")
    assert nc.expect(b"\n") == b"and from nc\n"
    own = run_example(interpreter, "udp_echo.py", "--client", "--port", str(port), "one", "two")
    assert own.returncode == 0, own.stderr
    assert own.stdout.decode().splitlines() == ["sent 'one', got 'one'", "sent 'two', got 'two'"]
    server.interrupt()


def parse_time(text):
    return calendar.timegm(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ"))


@pytest.mark.parametrize("interpreter", BOTH)
def test_udp_time_tells_the_time(programs, interpreter):
    server, port = start_server(programs, interpreter, "udp_time.py", kind=socket.SOCK_DGRAM)
    socat = programs.talk(tool("socat"), "-", "UDP:127.0.0.1:%d" % port)
    socat.say(b"what time is it?\n")
    assert abs(parse_time(socat.expect(b"\n").decode()) - time.time()) < 60
    own = run_example(interpreter, "udp_time.py", "--client", "--port", str(port))
    assert own.returncode == 0, own.stderr
    assert abs(parse_time(own.stdout.decode()) - time.time()) < 60
    server.interrupt()


def test_udp_client_gives_up_when_nobody_answers():
    port = free_port(socket.SOCK_DGRAM)  # nobody listens there
    started = time.monotonic()
    done = run_example("cpython", "udp_echo.py", "--client", "--port", str(port),
                       "--wait", "1", "hello")
    assert done.returncode != 0
    assert b"no reply from 127.0.0.1 port %d" % port in done.stderr
    assert time.monotonic() - started < TIMEOUT


# ---------------------------------------------------------------------------
# Unix sockets


@pytest.fixture
def socket_path(tmp_path):
    path = str(tmp_path / "echo.sock")
    if len(path) > 90:  # Unix socket paths have ~108 bytes, the client adds 9
        pytest.skip("tmp_path too long for a Unix socket path")
    return path


@pytest.mark.parametrize("interpreter", BOTH)
def test_unix_stream_echo(programs, interpreter, socket_path):
    server = programs.start("unix_echo.py", "--path", socket_path, interpreter=interpreter)
    server.wait_for("serving on " + socket_path)
    socat = programs.talk(tool("socat"), "-", "UNIX-CONNECT:" + socket_path)
    socat.say(b"first line\n")
    assert socat.expect(b"\n") == b"first line\n"
    socat.say(b"second line\n")
    assert socat.expect(b"\n") == b"second line\n"
    assert socat.finish()[0] == 0
    own = run_example(interpreter, "unix_echo.py", "--client", "--path", socket_path, "a", "b")
    assert own.returncode == 0, own.stderr
    assert own.stdout.decode().splitlines() == ["sent 'a', got 'a'", "sent 'b', got 'b'"]
    server.interrupt()
    assert not os.path.exists(socket_path)  # removed on exit


@pytest.mark.parametrize("interpreter", BOTH)
def test_unix_datagram_echo(programs, interpreter, socket_path, tmp_path):
    server = programs.start("unix_echo.py", "--datagram", "--path", socket_path,
                            interpreter=interpreter)
    server.wait_for("serving on " + socket_path)
    reply_path = str(tmp_path / "socat.sock")  # where socat gets its replies
    socat = programs.talk(tool("socat"), "-",
                          "UNIX-SENDTO:%s,bind=%s" % (socket_path, reply_path))
    socat.say(b"one datagram\n")
    assert socat.expect(b"\n") == b"one datagram\n"
    own = run_example(interpreter, "unix_echo.py", "--client", "--datagram",
                      "--path", socket_path, "x", "y")
    assert own.returncode == 0, own.stderr
    assert own.stdout.decode().splitlines() == ["sent 'x', got 'x'", "sent 'y', got 'y'"]
    server.interrupt()
    assert not os.path.exists(socket_path)
    leftovers = [name for name in os.listdir(str(tmp_path)) if name.startswith("echo.sock.")]
    assert leftovers == []  # the client removes the path it took for replies


@pytest.mark.parametrize("interpreter", BOTH)
@pytest.mark.parametrize("mode", [[], ["--datagram"]])
def test_unix_echo_replaces_a_stale_socket_only(programs, interpreter, mode, socket_path):
    kind = socket.SOCK_DGRAM if mode else socket.SOCK_STREAM
    stale = socket.socket(socket.AF_UNIX, kind)
    stale.bind(socket_path)  # bound, then closed: what a killed server leaves
    stale.close()
    server = programs.start("unix_echo.py", "--path", socket_path, *mode, interpreter=interpreter)
    server.wait_for("serving on " + socket_path)

    second = run_example(interpreter, "unix_echo.py", "--path", socket_path, *mode)
    assert second.returncode != 0
    assert b"a server is serving there already" in second.stderr + second.stdout
    own = run_example(interpreter, "unix_echo.py", "--client", "--path", socket_path, *mode)
    assert own.returncode == 0, own.stderr  # the first one still serves
    server.interrupt()
    assert not os.path.exists(socket_path)

    with open(socket_path, "w") as precious:
        precious.write("not a socket")
    refused = run_example(interpreter, "unix_echo.py", "--path", socket_path, *mode)
    assert refused.returncode != 0
    assert b"exists and is not a socket" in refused.stderr + refused.stdout
    with open(socket_path) as precious:
        assert precious.read() == "not a socket"


# ---------------------------------------------------------------------------
# Chat


class LineClient:
    """A raw chat client in the test: a socket and a line reader."""

    def __init__(self, port, name, receive_buffer=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:  # a small window: the server's sends back up sooner
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(name + b"\n")
        self.pending = b""

    def line(self):
        while b"\n" not in self.pending:
            assert len(self.pending) < 1 << 20, "no end of line in a megabyte"
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection; pending %r" % self.pending[:100]
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line


@pytest.fixture
def chat_clients():
    """join(server, port, name) -> LineClient, once the server's log shows it
    in the room: clients join in a known order."""
    made = []

    def join(server, port, name, **keywords):
        client = LineClient(port, name, **keywords)
        made.append(client)
        server.wait_for(r"\* %s joined" % name.decode())
        return client

    yield join
    for client in made:
        client.sock.close()


@pytest.mark.parametrize("interpreter", BOTH)
def test_chat_broadcasts_joins_lines_and_leaves(programs, interpreter, chat_clients):
    server, port = start_server(programs, interpreter, "chat.py")
    alice = programs.talk(tool("socat"), "-", "TCP:127.0.0.1:%d" % port)
    alice.say(b"alice\n")
    server.wait_for(r"\* alice joined")
    bob = programs.talk(*command(interpreter, "chat.py", "--client", "bob", "--port", port))
    server.wait_for(r"\* bob joined")
    carol = chat_clients(server, port, b"carol")
    assert alice.expect(b"\n") == b"* bob joined\n"
    assert alice.expect(b"\n") == b"* carol joined\n"
    assert bob.expect(b"\n") == b"* carol joined\n"
    alice.say(b"hi bob\n")
    assert bob.expect(b"\n") == b"alice: hi bob\n"
    assert carol.line() == b"alice: hi bob"
    bob.say(b"hi alice \xc3\xa9\n")
    assert alice.expect(b"\n") == b"bob: hi alice \xc3\xa9\n"
    assert carol.line() == b"bob: hi alice \xc3\xa9"
    status, rest = bob.finish()  # end of input: bob leaves
    assert (status, rest) == (0, b"* disconnected\n")
    assert alice.expect(b"\n") == b"* bob left\n"
    assert carol.line() == b"* bob left"
    alice.say(b"/quit\n")
    assert alice.finish()[0] == 0
    assert carol.line() == b"* alice left"
    server.interrupt()


@pytest.mark.parametrize("interpreter", BOTH)
def test_chat_a_client_that_stops_reading_holds_up_nobody(programs, interpreter, chat_clients):
    server, port = start_server(programs, interpreter, "chat.py")
    stuck = chat_clients(server, port, b"stuck", receive_buffer=4096)  # never reads
    reader = chat_clients(server, port, b"reader")
    writer = chat_clients(server, port, b"writer")
    assert reader.line() == b"* writer joined"
    text = b"x" * 4000
    deadline = time.monotonic() + TIMEOUT
    for number in range(5000):  # ~20 MB, far beyond any socket buffer
        writer.sock.sendall(b"%d %s\n" % (number, text))
        line = reader.line()  # every line arrives while the stuck client stays stuck
        if line == b"* stuck left (too slow, or gone)":
            break
        assert line == b"writer: %d %s" % (number, text)
        assert time.monotonic() < deadline
    else:
        pytest.fail("the stuck client was never dropped")
    writer.sock.sendall(b"still here\n")
    for _ in range(2):  # the line that found stuck stuck may come first
        line = reader.line()
        if line == b"writer: still here":
            break
        assert line == b"writer: %d %s" % (number, text)
    assert line == b"writer: still here"
    stuck.sock.close()
    server.interrupt()


@pytest.mark.parametrize("interpreter", BOTH)
def test_chat_a_client_that_vanishes_is_announced_gone(programs, interpreter, chat_clients):
    server, port = start_server(programs, interpreter, "chat.py")
    ghost = chat_clients(server, port, b"ghost")
    other = chat_clients(server, port, b"other")
    assert ghost.line() == b"* other joined"
    # A reset, not a goodbye: SO_LINGER 0 makes close() send RST.
    ghost.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ghost.sock.close()
    assert other.line() == b"* ghost left"
    third = chat_clients(server, port, b"third")
    assert other.line() == b"* third joined"
    other.sock.sendall(b"hello third\n")
    assert third.line() == b"other: hello third"
    server.interrupt()


# ---------------------------------------------------------------------------
# Command runner


def frame(data):
    return struct.pack(">I", len(data)) + data


def read_frame(sock):
    def exactly(size):
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            assert chunk, "EOF inside a frame"
            data += chunk
        return data
    return exactly(struct.unpack(">I", exactly(4))[0])


@pytest.mark.parametrize("client", BOTH)
def test_cmd_runs_allowed_commands_for_its_client(programs, client, tmp_path):
    server, port = start_server(programs, "cpython", "cmd_server.py", "--allow", "echo,head,false")

    def ask(*words):
        return run_example(client, "cmd_client.py", "--port", str(port), *words)

    done = ask("echo", "hello", "world")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"hello world\n", b"")
    done = ask('echo "two  spaces" \'and quotes\'')
    assert done.stdout == b"two  spaces and quotes\n"
    assert ask("false").returncode == 1
    server.interrupt()


def test_cmd_output_of_megabytes_arrives_whole(programs, tmp_path):
    blob = os.urandom(6 * 1024 * 1024)
    (tmp_path / "blob").write_bytes(blob)
    server, port = start_server(programs, "cpython", "cmd_server.py", "--allow", "head")
    done = run_example("cpython", "cmd_client.py", "--port", str(port),
                       "head", "-c", str(len(blob)), str(tmp_path / "blob"))
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256(done.stdout).digest() == hashlib.sha256(blob).digest()
    server.interrupt()


def test_cmd_client_on_micropython_receives_a_megabyte(programs, tmp_path):
    blob = os.urandom(1024 * 1024)
    (tmp_path / "blob").write_bytes(blob)
    server, port = start_server(programs, "cpython", "cmd_server.py", "--allow", "head")
    client = command("micropython", "cmd_client.py", "--port", port,
                     "head", "-c", len(blob), tmp_path / "blob")
    done = run(client[:1] + ["-X", "heapsize=16M"] + client[1:])
    assert done.returncode == 0, done.stderr
    assert done.stdout == blob
    server.interrupt()


@pytest.mark.parametrize("interpreter", BOTH)
def test_cmd_framing_survives_sticky_and_split_packets(programs, interpreter):
    server, port = start_server(programs, interpreter, "cmd_server.py", "--allow", "echo")

    def reply(output):  # MicroPython's server cannot run anything, but frames all the same
        if interpreter == "micropython":
            return (b"refused: this server's Python has no subprocess module:"
                    b" it cannot run programs\n")
        return b"exit 0\n" + output

    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        # Two requests in one send: the server must see two messages.
        sock.sendall(frame(b"echo one") + frame(b"echo two"))
        assert read_frame(sock) == reply(b"one\n")
        assert read_frame(sock) == reply(b"two\n")
        # One request a byte at a time: the server must wait for all of it.
        for byte in frame(b"echo three"):
            sock.sendall(bytes([byte]))
        assert read_frame(sock) == reply(b"three\n")
    server.interrupt()


@pytest.mark.parametrize("client", BOTH)
def test_cmd_server_on_micropython_refuses_for_want_of_subprocess(programs, client):
    server, port = start_server(programs, "micropython", "cmd_server.py")
    done = run_example(client, "cmd_client.py", "--port", str(port), "echo", "hi")
    assert done.returncode == 2
    assert b"refused: this server's Python has no subprocess module" in done.stderr
    assert done.stdout == b""
    server.interrupt()


# ---------------------------------------------------------------------------
# Upload


def test_upload_of_megabytes_with_progress(programs, tmp_path):
    directory = tmp_path / "uploads"
    directory.mkdir()
    blob = os.urandom(5 * 1024 * 1024 + 17)
    (tmp_path / "data.bin").write_bytes(blob)
    server, port = start_server(programs, "cpython", "upload_server.py", "--dir", directory)
    done = run_example("cpython", "upload_client.py", "--port", str(port),
                       str(tmp_path / "data.bin"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"saved data.bin (%d bytes)\n" % len(blob)
    assert b"data.bin: 100%" in done.stderr and b"%" in done.stderr.split(b"100%")[0]
    assert (directory / "data.bin").read_bytes() == blob
    assert os.listdir(str(directory)) == ["data.bin"]

    (tmp_path / "empty").write_bytes(b"")
    done = run_example("cpython", "upload_client.py", "--port", str(port),
                       "--name", "nothing.txt", str(tmp_path / "empty"))
    assert done.stdout == b"saved nothing.txt (0 bytes)\n"
    assert (directory / "nothing.txt").read_bytes() == b""
    server.interrupt()


# ---------------------------------------------------------------------------
# Forking echo


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
def test_forking_echo_serves_each_client_in_its_own_process(programs):
    server = programs.start("forking_echo.py", "--port", 0)
    banner = server.wait_for(r"serving on \S+ port (\d+) \(pid (\d+)\)")
    port, server_pid = int(banner.group(1)), int(banner.group(2))
    first = programs.talk(tool("socat"), "-", "TCP:127.0.0.1:%d" % port)
    second = programs.talk(tool("nc"), "-N", "127.0.0.1", port)  # -N: end at end of input
    pids = []
    for client, text in ((first, b"from socat\n"), (second, b"from nc\n")):
        client.say(text)  # both connected at once, each served by its own child
        reply = client.expect(b"\n")
        assert reply.endswith(b"] " + text), reply
        pids.append(int(reply.split(b"]")[0].split()[1]))
    first.say(b"again\n")
    assert first.expect(b"\n") == b"[pid %d] again\n" % pids[0]
    assert len(set(pids)) == 2 and server_pid not in pids
    for client in (first, second):
        client.finish()
    server.interrupt()


def test_forking_echo_says_when_there_is_no_fork():
    done = run_example("micropython", "forking_echo.py")
    assert done.returncode == 2
    assert b"needs os.fork" in done.stderr


# ---------------------------------------------------------------------------
# HTTP


def test_http_server_serves_files_listings_and_404s_to_curl(programs, tmp_path):
    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    big = os.urandom(10 * 1024 * 1024)
    (site / "big.bin").write_bytes(big)
    (site / "hello.txt").write_bytes(b"hello, web\n")
    server = programs.start("http_server.py", "--port", 0, "--dir", site)
    url = server.wait_for(r"on (http://\S+/)").group(1)
    curl = tool("curl")

    def get(path, *options):
        done = run([curl, "--silent", "--show-error", "--write-out", "\n%{http_code}",
                    url + path] + list(options))
        assert done.returncode == 0, done.stderr
        body, status = done.stdout.rsplit(b"\n", 1)
        return int(status), body

    status, listing = get("")
    assert status == 200
    for name in (b"big.bin", b"hello.txt", b"sub/"):
        assert b'href="' + name + b'"' in listing
    assert get("hello.txt") == (200, b"hello, web\n")
    status, _ = get("big.bin", "--output", str(tmp_path / "got.bin"))
    assert status == 200
    assert (tmp_path / "got.bin").read_bytes() == big
    status, body = get("no/such/file")
    assert status == 404 and b"File not found" in body
    server.interrupt()


# ---------------------------------------------------------------------------
# XML-RPC


def test_xmlrpc_server_answers_xmlrpc_client(programs):
    server = programs.start("xmlrpc_server.py", "--port", 0)
    url = server.wait_for(r"on (http://\S+/)").group(1)
    with xmlrpc.client.ServerProxy(url, allow_none=True) as service:
        assert service.add(2, 3) == 5
        assert service.add("so", "cket") == "socket"
        assert service.pow(2, 10) == 1024
        assert service.pow(2.0, 0.5) == pytest.approx(2 ** 0.5)
        assert service.echo({"text": "h\u00e9llo", "list": [1, None]}) == {
            "text": "h\u00e9llo", "list": [1, None]}
        assert {"add", "pow", "echo"} <= set(service.system.listMethods())
        with pytest.raises(xmlrpc.client.Fault, match="exponent too large"):
            service.pow(10, 10 ** 6)
        with pytest.raises(xmlrpc.client.Fault, match="not supported"):
            service.no_such_method()
        assert service.add(1, 1) == 2  # still serving after the faults
    assert '"POST / HTTP/1.1" 200' in server.errors()  # logRequests reaches the handler
    server.interrupt()
