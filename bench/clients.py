"""The load: client processes that talk to a server on 127.0.0.1.

``load(kind, port, clients, duration)`` starts ``clients`` processes (forked
from this CPython, never run on the interpreter under test) that all begin
at the same instant and stop starting requests ``duration`` seconds later;
each request is a whole exchange, a new connection for every one over TCP:

- ``tcp``: connect, send a short message, read until the server closes,
  check the echo
- ``line``: connect, then LINES times send one line and read its echo,
  then close and read until the server closes; a request is one connection
- ``udp``: send a datagram on the process's one socket and read the echo
  (a datagram lost on the way counts as an error, after a 1 s wait)
- ``http``: connect, send a GET, read the whole response until the server
  closes, check for a 200

It returns (requests completed per second, errors, requests completed).  Everything is bounded:
each process stops at MAX_REQUESTS, every socket operation times out after
TIMEOUT seconds, and a process still running well after the deadline is
killed.

``wrk_load(port, connections, duration)`` drives an HTTP server with wrk
(Debian package ``wrk``) instead, where it is installed.
"""

import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import time

HOST = "127.0.0.1"
TIMEOUT = 2.0
MAX_REQUESTS = 10 ** 7
LINES = 4
MESSAGE = b"x" * 64
LINE = b"a line of the benchmark's line protocol\n"
HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def _read_until_closed(sock):
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _read_line(sock, pending):
    """One line from sock, with what was read past it: (line, pending)."""
    while b"\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            return pending, b""
        pending += chunk
    end = pending.index(b"\n") + 1
    return pending[:end], pending[end:]


def _tcp_exchange(address, kind):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(TIMEOUT)
        sock.connect(address)
        if kind == "tcp":
            sock.sendall(MESSAGE)
            return _read_until_closed(sock) == MESSAGE
        if kind == "line":
            pending = b""
            for _ in range(LINES):
                sock.sendall(LINE)
                line, pending = _read_line(sock, pending)
                if line != LINE:
                    return False
            sock.shutdown(socket.SHUT_WR)
            return _read_until_closed(sock) == pending == b""
        if kind == "http":
            sock.sendall(HTTP_REQUEST)
            response = _read_until_closed(sock)
            return response.startswith(b"HTTP/1.") and response[9:12] == b"200"
        raise ValueError("unknown kind %r" % kind)
    finally:
        sock.close()


def _worker(kind, port, start, deadline, results):
    address = (HOST, port)
    count = errors = 0
    udp = None
    if kind == "udp":
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(1.0)
        udp.connect(address)
    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    try:
        while count < MAX_REQUESTS and time.monotonic() < deadline:
            try:
                if udp is not None:
                    udp.send(MESSAGE)
                    ok = udp.recv(65536) == MESSAGE
                else:
                    ok = _tcp_exchange(address, kind)
            except OSError:
                ok = False
                if kind != "udp":
                    time.sleep(0.001)  # a refused or reset connection: no spin
            if time.monotonic() > deadline:
                break  # finished late: outside the measured window
            if ok:
                count += 1
            else:
                errors += 1
    finally:
        if udp is not None:
            udp.close()
        results.send((count, errors))
        results.close()


def load(kind, port, clients, duration):
    """(requests per second, errors, requests) of `clients` processes for
    `duration` s."""
    context = multiprocessing.get_context("fork")
    start = time.monotonic() + 0.05 + 0.01 * clients  # after every fork
    deadline = start + duration
    workers = []
    try:
        for _ in range(clients):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_worker,
                                      args=(kind, port, start, deadline, sender))
            process.daemon = True
            process.start()
            sender.close()
            workers.append((process, receiver))
        count = errors = 0
        for process, receiver in workers:
            wait = deadline + TIMEOUT + 5 - time.monotonic()
            if receiver.poll(max(wait, 0.1)):
                done, failed = receiver.recv()
                count += done
                errors += failed
            else:
                errors += 1  # a client that never reported
        return count / duration, errors, count
    finally:
        for process, receiver in workers:
            process.join(1)
            if process.is_alive():
                process.kill()
                process.join(5)
            receiver.close()


_built = {}


def loadgen():
    """bench/loadgen.c built with the system's C compiler (once per run, in
    a temporary directory), or None where there is no compiler."""
    if "path" not in _built:
        _built["path"] = None
        compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if compiler:
            import atexit
            import tempfile
            scratch = tempfile.mkdtemp(prefix="socketse-loadgen-")
            atexit.register(shutil.rmtree, scratch, True)
            binary = os.path.join(scratch, "loadgen")
            source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loadgen.c")
            build = subprocess.run([compiler, "-O2", "-o", binary, source],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            if build.returncode == 0:
                _built["path"] = binary
            else:
                _built["error"] = build.stdout.decode(errors="replace")
    return _built["path"]


def build_error():
    loadgen()
    return _built.get("error", "no cc, gcc or clang on PATH")


def c_load(kind, port, clients, duration):
    """load() with the C client: `clients` loadgen processes."""
    start = time.monotonic_ns() + int((0.02 + 0.005 * clients) * 1e9)
    deadline = start + int(duration * 1e9)
    processes = []
    try:
        for _ in range(clients):
            processes.append(subprocess.Popen(
                [loadgen(), kind, str(port), str(start), str(deadline)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        count = errors = 0
        for process in processes:
            remaining = (deadline - time.monotonic_ns()) / 1e9 + TIMEOUT + 5
            try:
                out, err = process.communicate(timeout=max(remaining, 0.1))
                done, failed = out.split()
                count += int(done)
                errors += int(failed)
            except (subprocess.TimeoutExpired, ValueError):
                errors += 1  # a client that never reported
        return count / duration, errors, count
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)


def wrk():
    """The wrk command, or None."""
    return shutil.which("wrk")


def wrk_version():
    run = subprocess.run([wrk(), "--version"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=30)
    match = re.search(r"wrk (\S+)", run.stdout.decode(errors="replace"))
    return match.group(1) if match else "?"


_UNITS = {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}


def wrk_load(port, connections, duration):
    """(requests per second, errors, requests) from one wrk run of
    `duration` s, rounded to whole seconds (wrk's unit)."""
    seconds = max(1, int(round(duration)))
    command = [wrk(), "-t", "1", "-c", str(connections), "-d", "%ds" % seconds,
               "--timeout", "%ds" % int(TIMEOUT), "-H", "Connection: close",
               "http://%s:%d/" % (HOST, port)]
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=seconds + TIMEOUT + 30)
    output = run.stdout.decode(errors="replace")
    match = re.search(r"^Requests/sec:\s+([\d.]+)([kKmM]?)", output, re.M)
    if run.returncode != 0 or not match:
        raise RuntimeError("wrk failed:\n" + output)
    rate = float(match.group(1)) * _UNITS[match.group(2)]
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    count = int(total.group(1)) if total else int(rate * seconds)
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", output)
    if socket_errors:
        # wrk counts a server's close after its response as a read error
        # with HTTP/1.0; connect, write and timeout errors are real ones.
        errors += sum(int(socket_errors.group(i)) for i in (1, 3, 4))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return rate, errors, count


if __name__ == "__main__":  # a quick look by hand: clients.py KIND PORT
    import sys
    print(load(sys.argv[1], int(sys.argv[2]), int(os.environ.get("CLIENTS", "2")),
               float(os.environ.get("DURATION", "2"))))
