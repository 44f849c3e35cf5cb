"""Attacks on the two dangerous examples: the command runner (cmd_server.py)
must run only allowed programs, never through a shell; the upload server
(upload_server.py) must write only complete, new files inside its directory.
Each attack is refused with a clear one-line message, leaves nothing behind,
and the server serves on afterwards.
"""

import json
import os
import socket
import struct

import pytest

from example_programs import TIMEOUT, programs, run_example  # noqa: F401  (a fixture)

# ---------------------------------------------------------------------------
# Command runner


@pytest.fixture
def cmd_server(programs, tmp_path):
    """(port, work): a command server allowing echo and head, running in the
    empty directory `work`, where a successful attack would leave files."""
    work = tmp_path / "work"
    work.mkdir()
    server = programs.start("cmd_server.py", "--port", 0, "--allow", "echo,head", cwd=str(work))
    port = server.port()
    yield port, work
    still = run_example("cpython", "cmd_client.py", "--port", str(port), "echo", "still serving")
    assert still.stdout == b"still serving\n", still.stderr
    assert os.listdir(str(work)) == [], "an attack left files behind"
    server.interrupt()


def ask(port, line):
    return run_example("cpython", "cmd_client.py", "--port", str(port), line)


@pytest.mark.parametrize("line", [
    "touch pwned",
    "rm -rf .",
    "sh -c 'touch pwned'",
    "python3 -c 'open(\"pwned\", \"w\")'",
    "/bin/echo hi",   # a path, even to an allowed program's twin
    "./echo hi",
    "ECHO hi",
    " ",
])
def test_cmd_refuses_programs_not_on_the_list(cmd_server, line):
    port, _ = cmd_server
    done = ask(port, line)
    assert done.returncode == 2
    assert done.stdout == b""
    message = done.stderr.decode()
    assert message.count("\n") == 1 and message.startswith("refused: ")
    if line.strip():
        assert "is not an allowed program (allowed: echo, head)" in message, message
    else:
        assert "empty command" in message


@pytest.mark.parametrize("metacharacter, line", [
    (";", "echo hi; touch pwned"),
    ("|", "echo hi | head -c 1 > pwned"),
    ("&", "echo hi && touch pwned"),
    ("&", "echo hi & touch pwned"),
    ("$", "echo $(touch pwned)"),
    ("$", "echo ${HOME}"),
    ("`", "echo `touch pwned`"),
    (">", "echo hi > pwned"),
    ("<", "head < /etc/passwd"),
    ("\n", "echo hi\ntouch pwned"),
])
def test_cmd_refuses_shell_metacharacters(cmd_server, metacharacter, line):
    port, _ = cmd_server
    done = ask(port, line)
    assert done.returncode == 2
    assert done.stdout == b""
    message = done.stderr.decode()
    assert message.startswith("refused: shell metacharacters are not allowed"), message
    assert repr(metacharacter) in message


def test_cmd_refuses_an_unparsable_line(cmd_server):
    port, _ = cmd_server
    done = ask(port, "echo 'unclosed")
    assert done.returncode == 2
    assert done.stderr.startswith(b"refused: cannot split the command line")


def test_cmd_words_reach_the_program_literally(cmd_server):
    port, _ = cmd_server
    done = ask(port, "echo * ~ 'a b' \\*")  # no shell: nothing is globbed or expanded
    assert done.stdout == b"* ~ a b *\n"


def test_cmd_refuses_a_bogus_frame_length_and_serves_on(cmd_server):
    port, _ = cmd_server
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(struct.pack(">I", 0xFFFFFFFF) + b"echo")  # 4 GB "coming"
        reply = b""
        for _ in range(1000):  # the refusal, then the end of the connection
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:  # the unread "echo" may turn the end into a reset
                break
            if not chunk:
                break
            reply += chunk
    assert reply[4:].startswith(b"refused: a frame of 4294967295 bytes, over the limit")
    assert struct.unpack(">I", reply[:4])[0] == len(reply) - 4


# ---------------------------------------------------------------------------
# Upload

MAX_SIZE = 64 * 1024


class Uploads:
    def __init__(self, port, directory, outside):
        self.port, self.directory, self.outside = port, directory, outside

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        return sock, sock.makefile("rb")

    def send(self, header, data=b""):
        """Speak the protocol by hand: (first answer, last answer or None)."""
        sock, replies = self.connect()
        with sock, replies:
            if not isinstance(header, bytes):
                header = json.dumps(header).encode() + b"\n"
            sock.sendall(header)
            first = replies.readline(4096).decode()
            if first != "go ahead\n":
                try:
                    rest = replies.readline(4096)
                except ConnectionResetError:  # what the server left unread may turn
                    rest = b""                # its close into a reset: an end too
                assert rest == b"", "the connection should end after a refusal"
                return first, None
            sock.sendall(data)
            return first, replies.readline(4096).decode()

    def client(self, name, data, tmp_path):
        """The example's own client: (status, stdout, stderr)."""
        source = tmp_path / "source"
        source.write_bytes(data)
        done = run_example("cpython", "upload_client.py", "--port", str(self.port),
                           "--name", name, str(source))
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    def files(self):
        return sorted(os.listdir(str(self.directory)))


@pytest.fixture
def uploads(programs, tmp_path):
    """An upload server on tmp_path/uploads, with tmp_path/outside as the
    place an escape would land: after the test, outside is untouched, no
    temporary file is left, and a normal upload still works."""
    around = tmp_path / "around"  # where "../x" would land
    directory, outside = around / "uploads", around / "outside"
    directory.mkdir(parents=True)
    outside.mkdir()
    (outside / "precious").write_bytes(b"precious")
    server = programs.start("upload_server.py", "--port", 0, "--dir", directory,
                            "--max-size", MAX_SIZE)
    helper = Uploads(server.port(), directory, outside)
    helper.server = server
    yield helper
    assert helper.send({"name": "afterwards.txt", "size": 5}, b"fine!") == (
        "go ahead\n", "saved afterwards.txt (5 bytes)\n")
    assert (directory / "afterwards.txt").read_bytes() == b"fine!"
    assert not [name for name in helper.files() if name.startswith(".")], helper.files()
    assert sorted(os.listdir(str(outside))) == ["precious"]
    assert (outside / "precious").read_bytes() == b"precious"
    assert sorted(os.listdir(str(around))) == ["outside", "uploads"]
    server.interrupt()


@pytest.mark.parametrize("name, why", [
    ("../escape.txt", "'..' (the parent directory) is not allowed"),
    ("../outside/precious", "'..' (the parent directory) is not allowed"),
    ("..", "'..' (the parent directory) is not allowed"),
    ("..\\escape.txt", "'..' (the parent directory) is not allowed"),
    ("ok/../../escape.txt", "'..' (the parent directory) is not allowed"),
    (".", "'.' is not a file name"),
    ("sub/file.txt", "must not contain a path separator"),
    ("back\\slash.txt", "must not contain a path separator"),
    (".hidden", "names starting with '.' are not allowed"),
    (".upload-abc", "names starting with '.' are not allowed"),
    ("nul\0byte", "must not contain control characters"),
    ("new\nline", "must not contain control characters"),
    ("x" * 256, "longer than 255 bytes"),
])
def test_upload_refuses_names_that_are_not_plain_file_names(uploads, tmp_path, name, why):
    if "\0" in name:  # no command line can carry it: by hand
        err, _ = uploads.send({"name": name, "size": 7})
    else:
        status, out, err = uploads.client(name, b"payload", tmp_path)
        assert status == 1 and out == ""
    assert err.startswith("refused: ") and why in err, err
    assert err.count("\n") == 1
    assert uploads.files() == []


def test_upload_refuses_absolute_paths(uploads, tmp_path):
    target = str(uploads.outside / "absolute.txt")
    status, _, err = uploads.client(target, b"payload", tmp_path)
    assert status == 1
    assert err == "refused: absolute paths are not allowed: %r\n" % target
    assert uploads.files() == []


@pytest.mark.parametrize("points_to", ["precious", "new-file"])
def test_upload_never_writes_through_a_symlink(uploads, tmp_path, points_to):
    # A link planted in the directory, named like an upload, pointing outside.
    os.symlink(str(uploads.outside / points_to), str(uploads.directory / "report.txt"))
    status, _, err = uploads.client("report.txt", b"overwritten!", tmp_path)
    assert status == 1
    assert err == "refused: report.txt is a symbolic link: not writing through it\n"
    assert uploads.files() == ["report.txt"]
    os.remove(str(uploads.directory / "report.txt"))  # (the fixture checks outside)


def test_upload_never_overwrites(uploads, tmp_path):
    (uploads.directory / "taken.txt").write_bytes(b"first")
    status, _, err = uploads.client("taken.txt", b"second", tmp_path)
    assert status == 1
    assert err == "refused: taken.txt already exists: not overwriting it\n"
    assert (uploads.directory / "taken.txt").read_bytes() == b"first"


def test_upload_refuses_oversized_files_before_they_are_sent(uploads, tmp_path):
    status, _, err = uploads.client("big.bin", b"x" * (MAX_SIZE + 1), tmp_path)
    assert status == 1
    assert err.endswith("refused: %d bytes is over the limit of %d bytes\n"
                        % (MAX_SIZE + 1, MAX_SIZE))
    assert uploads.files() == []
    # exactly at the limit is fine
    status, out, _ = uploads.client("limit.bin", b"x" * MAX_SIZE, tmp_path)
    assert status == 0 and out == "saved limit.bin (%d bytes)\n" % MAX_SIZE
    os.remove(str(uploads.directory / "limit.bin"))


def test_upload_takes_only_the_declared_size(uploads):
    # A client that lies, sending more than it declared: the rest is ignored.
    first, last = uploads.send({"name": "short.txt", "size": 4}, b"abcd" + b"z" * 100000)
    assert last == "saved short.txt (4 bytes)\n"
    assert (uploads.directory / "short.txt").read_bytes() == b"abcd"
    os.remove(str(uploads.directory / "short.txt"))


@pytest.mark.parametrize("header, why", [
    (b"not json\n", "bad header"),
    (b'{"name": "a.txt"}\n', "bad header"),
    (b'["a.txt", 3]\n', "bad header"),
    (b'{"name": "a.txt", "size": -1}\n', "the size must be a whole number of bytes"),
    (b'{"name": "a.txt", "size": "3"}\n', "the size must be a whole number of bytes"),
    (b'{"name": "a.txt", "size": 1.5}\n', "the size must be a whole number of bytes"),
    (b'{"name": "a.txt", "size": true}\n', "the size must be a whole number of bytes"),
    (b'{"name": 7, "size": 3}\n', "the name must be a non-empty string"),
    (b'{"name": "\\ud800", "size": 3}\n', "the name is not valid Unicode"),
    (b'{"name": "' + b"a" * 5000 + b'", "size": 3}\n', "one line of JSON, under 4 KB"),
])
def test_upload_refuses_bad_headers(uploads, header, why):
    first, last = uploads.send(header)
    assert first.startswith("refused: ") and why in first, first
    assert last is None
    assert uploads.files() == []


@pytest.mark.parametrize("how", ["close", "reset"])
def test_upload_cut_short_leaves_no_file(uploads, how):
    size = MAX_SIZE
    sock, replies = uploads.connect()
    with sock, replies:
        sock.sendall(json.dumps({"name": "partial.bin", "size": size}).encode() + b"\n")
        assert replies.readline(4096) == b"go ahead\n"
        sock.sendall(b"x" * (size // 3))
        if how == "reset":  # SO_LINGER 0: close() sends RST, as a crash would
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if how == "close":
        uploads.server.wait_for(r"refused: the upload ended after %d of %d bytes"
                                % (size // 3, size))
    else:  # where the reset lands decides the wording
        uploads.server.wait_for(r"refused: the upload (ended after|failed)")
    assert uploads.files() == []
