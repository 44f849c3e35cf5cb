"""socketse next to adafruit_httpserver, the HTTP server CircuitPython users
have, on the CircuitPython board profiles.

    python3 bench/circuitpython_http.py [--quick | --smoke] [--flavours espressif,raspberrypi]

(bench/run.py runs it as its ``circuitpython_http`` section, which
``make bench`` includes.)  The servers are bench/circuitpython_servers.py
on CircuitPython's unix port (.venv/bin/circuitpython, from ``make
boards``) with one flavour's socketpool and wifi re-created over the
host's sockets (tests/boards/circuitpython_*.py); adafruit_httpserver is
the copy requirements-circuitpython.txt installs into .venv, found on
MICROPYPATH.  Three servers answer GET / with the same bytes:

- ``socketse``: TCPServer and a StreamRequestHandler reading the request
  line and headers, timeout 2 s a read and request_timeout 4 s a request
- ``httpserver``: adafruit_httpserver's Server, serve_forever() (which
  sleeps its poll_interval, 0.1 s, whenever poll() found no connection)
- ``httpserver-poll``: the same Server, start() then poll() in a loop
  with nothing else to do, as its start-and-poll example

The clients are threads of this CPython: each request a new connection,
sent and read to the end, checked byte for byte.  Throughput: 1 client at
a time, then 4 at once, each run bounded by a count of requests and by
time; the servers take turns within a round (the order turned each
round), and the ratios socketse / other are per round, then the median.
The server's CPU share while no client is there is measured first.

Stalls: on a fresh server, a client connects and then sends nothing
("silent"), half a request line ("half line"), or one byte of a request
every 0.5 s ("trickle"); 0.2 s later a normal client asks for the page.
Reported: how long the normal client waited (it gives up after a bound),
what the stalling client saw from the server and when, whether the server
logged anything, and whether it serves again once the stalling client has
gone.

Every server binds 127.0.0.1 and is killed at the end, with its process
group; every load and wait is bounded in count and time.
"""

import glob
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

import processes  # bench/processes.py, beside this file

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
SERVERS = os.path.join(BENCH, "circuitpython_servers.py")

NAME = "circuitpython_http"  # the section's name for bench/run.py --cases
HOST = "127.0.0.1"
FLAVOURS = (
    ("espressif", "circuitpython_espressif", "ESP32-S2/S3/C3/C6, lwIP sockets"),
    ("raspberrypi", "circuitpython_raspberrypi", "Pico W, lwIP raw API"),
)
VARIANTS = ("socketse", "httpserver", "httpserver-poll")
REFERENCES = ("httpserver", "httpserver-poll")
CONCURRENCY = (1, 4)
STALLS = ("silent", "half line", "trickle")
TRICKLE_GAP = 0.5
STALL_HEAD_START = 0.2
STARTUP_TIMEOUT = 20
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
EXPECTED = (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n"
            b"connection: close\r\n\r\nhello")

# rounds; requests and seconds per server, round and client count (whichever
# ends first); seconds of idle CPU; how long the stall test's clients wait;
# on how many flavours the stall tests run (they take ~30 s a flavour, timed
# by the servers' timeouts: smoke runs them on the first only)
MODES = {
    "full": {"rounds": 5, "requests": 500, "seconds": 5.0, "idle": 1.0, "give_up": 10.0,
             "stall_flavours": len(FLAVOURS)},
    "quick": {"rounds": 3, "requests": 200, "seconds": 2.0, "idle": 0.5, "give_up": 10.0,
              "stall_flavours": len(FLAVOURS)},
    "smoke": {"rounds": 1, "requests": 8, "seconds": 1.0, "idle": 0.2, "give_up": 6.0,
              "stall_flavours": 1},
}


# ---------------------------------------------------------------------------
# What it needs
# ---------------------------------------------------------------------------

def find_circuitpython(given=None):
    """The CircuitPython unix port that `make boards` builds, or None."""
    candidates = [given, os.environ.get("CIRCUITPYTHON"),
                  os.path.join(ROOT, ".venv", "bin", "circuitpython"),
                  os.path.join(os.path.dirname(sys.executable), "circuitpython")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_httpserver():
    """The directory holding the installed adafruit_httpserver package (the
    site-packages of .venv, or of this interpreter), or None."""
    import sysconfig
    candidates = [os.environ.get("ADAFRUIT_HTTPSERVER_PATH"),
                  sysconfig.get_paths().get("purelib")]
    candidates += sorted(glob.glob(os.path.join(ROOT, ".venv", "lib", "python*",
                                                "site-packages")))
    for candidate in candidates:
        if candidate and os.path.isfile(os.path.join(candidate, "adafruit_httpserver",
                                                     "__init__.py")):
            return candidate
    return None


def httpserver_version(path):
    for info in glob.glob(os.path.join(path, "adafruit_circuitpython_httpserver-*.dist-info")):
        return os.path.basename(info)[len("adafruit_circuitpython_httpserver-"):-len(".dist-info")]
    return "?"


def missing(circuitpython, httpserver):
    """Why the section cannot run here, or None."""
    if circuitpython is None:
        return "no .venv/bin/circuitpython (make boards builds it; or CIRCUITPYTHON=PATH)"
    if httpserver is None:
        return ("adafruit_httpserver is not installed (make bench installs "
                "requirements-circuitpython.txt into .venv)")
    return None


# ---------------------------------------------------------------------------
# Server processes
# ---------------------------------------------------------------------------

def random_port():
    """A free port below Linux's ephemeral range, where no client's socket
    lingers in TIME_WAIT (a pool socket cannot say which port 0 chose)."""
    for _ in range(50):
        port = 20000 + int.from_bytes(os.urandom(2), "little") % 12768
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port found")


class Unavailable(Exception):
    pass


class Server:
    """bench/circuitpython_servers.py VARIANT on one flavour, in a process
    group of its own; its output goes to files (a pipe nobody reads could
    fill and stop it)."""

    def __init__(self, circuitpython, httpserver, board, variant):
        self.circuitpython, self.httpserver = circuitpython, httpserver
        self.board, self.variant = board, variant
        self.process = self.port = None
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()

    def start(self):
        environment = dict(os.environ, MICROPYPATH=ROOT + ":" + self.httpserver)
        for attempt in range(3):  # another process may take the port first
            self.port = random_port()
            self.process = subprocess.Popen(
                [self.circuitpython, SERVERS, "--board", self.board, self.variant,
                 str(self.port)], stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                env=environment, cwd=ROOT, start_new_session=True)
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline:
                first = self.output().split(b"\n", 1)
                if len(first) == 2:
                    line = first[0].decode(errors="replace").strip()
                    if line == "READY %d" % self.port:
                        return self
                    if line.startswith("UNAVAILABLE"):
                        self.stop()
                        raise Unavailable(line[len("UNAVAILABLE "):])
                    break
                if self.process.poll() is not None:
                    break
                time.sleep(0.01)
            self._end()
        raise RuntimeError("%s %s did not start:\n%s" % (self.variant, self.board,
                                                         self.log()[-3000:]))

    def output(self):
        self.out.flush()
        self.out.seek(0)
        return self.out.read()

    def log(self, since=(0, 0)):
        """What it printed (stdout, then stderr) after since, a log_size()."""
        out = self.output()[since[0]:]
        self.err.seek(since[1])
        return (out + self.err.read()).decode(errors="replace")

    def log_size(self):
        self.err.seek(0, os.SEEK_END)
        return len(self.output()), self.err.tell()

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def cpu(self):
        """Its CPU seconds so far (Linux), or None."""
        try:
            with open("/proc/%d/stat" % self.process.pid) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))

    def _end(self):
        if self.process is not None:
            processes.end_process_group(self.process)
            self.process = None

    def stop(self):
        self._end()
        self.out.close()
        self.err.close()


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------

def read_to_end(sock, limit=65536):
    chunks, size = [], 0
    while size < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def get_page(port, timeout):
    """One request on a new connection: whether the page came, exactly."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(REQUEST)
        return read_to_end(sock) == EXPECTED


def load(port, clients, requests, seconds):
    """`clients` threads ask for the page one request after another, until
    `requests` have been started or `seconds` have passed: (requests per
    second, errors)."""
    lock = threading.Lock()
    counts = {"started": 0, "done": 0, "errors": 0}
    start = time.monotonic()
    deadline = start + seconds
    ends = []

    def work():
        while time.monotonic() < deadline:
            with lock:
                if counts["started"] >= requests:
                    break
                counts["started"] += 1
            try:
                ok = get_page(port, 5.0)
            except OSError:
                ok = False
                time.sleep(0.01)  # refused or reset: no spin
            with lock:
                counts["done" if ok else "errors"] += 1
        with lock:
            ends.append(time.monotonic())

    threads = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    elapsed = (max(ends) if len(ends) == clients else time.monotonic()) - start
    return counts["done"] / elapsed, counts["errors"]


def stalling_client(port, kind, give_up, seen):
    """Connect and stall as `kind` says; watch what the server does with
    the connection, for at most give_up seconds.  seen gets (what, when)."""
    start = time.monotonic()
    try:
        sock = socket.create_connection((HOST, port), timeout=5)
    except OSError as error:
        seen.append(("refused (%s)" % error.__class__.__name__, time.monotonic() - start))
        return
    received = b""
    try:
        if kind == "half line":
            sock.sendall(REQUEST[:8])  # "GET / HT"
        pending = REQUEST if kind == "trickle" else b""
        next_byte = start
        while True:
            now = time.monotonic()
            if now - start >= give_up:
                seen.append(("still open" + (", got %d bytes" % len(received)
                                             if received else ""), give_up))
                return
            if pending and now >= next_byte:
                try:
                    sock.send(pending[:1])
                except OSError as error:
                    seen.append((describe_end(error, received), now - start))
                    return
                pending, next_byte = pending[1:], next_byte + TRICKLE_GAP
            wait = give_up - (now - start)
            if pending:
                wait = min(wait, max(0.0, next_byte - now))
            if select.select([sock], [], [], wait)[0]:
                try:
                    chunk = sock.recv(4096)
                except OSError as error:
                    seen.append((describe_end(error, received), time.monotonic() - start))
                    return
                if not chunk:
                    seen.append((describe_end(None, received), time.monotonic() - start))
                    return
                received += chunk
    finally:
        sock.close()


def describe_end(error, received):
    if received:
        status = received.split(b"\r\n", 1)[0].decode(errors="replace")
        got = "answered %r, then " % status
    else:
        got = "nothing sent, "
    if error is None:
        return got + "closed"
    if isinstance(error, ConnectionResetError):
        return got + "reset"
    return got + error.__class__.__name__


def timed_page(port, give_up):
    """(seconds until the whole page came, or None if it did not within
    give_up, and why)."""
    start = time.monotonic()
    try:
        ok = get_page(port, give_up)
    except socket.timeout:
        return None, "gave up after %.0f s" % give_up
    except OSError as error:
        return None, "failed after %.1f s: %s" % (time.monotonic() - start, error)
    took = time.monotonic() - start
    if not ok:
        return None, "a wrong answer after %.1f s" % took
    return took, None


def stall_test(make_server, kind, give_up):
    """On a fresh server: a stalling client, a normal one 0.2 s later."""
    server = make_server()
    try:
        before = server.log_size()
        seen = []
        staller = threading.Thread(target=stalling_client,
                                   args=(server.port, kind, give_up, seen), daemon=True)
        staller.start()
        time.sleep(STALL_HEAD_START)
        waited, why = timed_page(server.port, give_up)
        staller.join(give_up + 10)
        stalled = seen[0] if seen else ("no report", None)
        # Once the stalling client has gone (closed by the server, or by
        # itself at give_up), does the server answer again?
        again, again_why = timed_page(server.port, give_up)
        busy = None
        if again is None and server.alive():
            before_cpu, start = server.cpu(), time.monotonic()
            time.sleep(0.5)
            after_cpu = server.cpu()
            if None not in (before_cpu, after_cpu):
                busy = (after_cpu - before_cpu) / (time.monotonic() - start)
        return {"waited": waited, "why": why, "stalled": stalled, "again": again,
                "again_why": again_why, "alive": server.alive(), "busy": busy,
                "logged": last_error(server.log(before))}
    finally:
        server.stop()


def last_error(text):
    """What a log says last: the last line naming an error, else its last
    line, else None.  Dashes framing a traceback, and the warning this unix
    build prints for `raise ... from` (boards' full builds chain
    exceptions), say nothing."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line.strip("-")
             and not line.startswith("Warning: exception chaining not supported")]
    for line in reversed(lines):
        name = line.split(":", 1)[0]
        if name.endswith(("Error", "Exception", "Interrupt")) and " " not in name:
            return line
    return lines[-1] if lines else None


# ---------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------

def median(values):
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def measure_flavour(circuitpython, httpserver, board, settings, log, stalls=True):
    """{"rates": {(variant, clients): [req/s per round]}, "errors": {...},
    "idle": {variant: CPU share}, "stalls": {(variant, kind): result}}."""
    def make(variant):
        return Server(circuitpython, httpserver, board, variant).start()

    rates = {(v, c): [] for v in VARIANTS for c in CONCURRENCY}
    errors = {(v, c): 0 for v in VARIANTS for c in CONCURRENCY}
    idle = {}
    servers = {}
    try:
        for variant in VARIANTS:
            servers[variant] = make(variant)
        time.sleep(0.2)  # past their start-up work
        for variant in VARIANTS:
            server = servers[variant]
            before, start = server.cpu(), time.monotonic()
            time.sleep(settings["idle"])
            after = server.cpu()
            if None not in (before, after):
                idle[variant] = (after - before) / (time.monotonic() - start)
        for number in range(settings["rounds"]):
            turn = VARIANTS[number % len(VARIANTS):] + VARIANTS[:number % len(VARIANTS)]
            line = []
            for clients in CONCURRENCY:
                for variant in turn:
                    rate, failed = load(servers[variant].port, clients, settings["requests"],
                                        settings["seconds"])
                    if not servers[variant].alive():
                        raise RuntimeError("the %s server on %s died:\n%s" % (
                            variant, board, servers[variant].log()[-3000:]))
                    rates[(variant, clients)].append(rate)
                    errors[(variant, clients)] += failed
                    line.append("%s×%d %.0f" % (variant, clients, rate))
            log("  %s %s round %d/%d: %s" % (NAME, board, number + 1, settings["rounds"],
                                             ", ".join(line)))
    finally:
        for server in servers.values():
            server.stop()
    results = {"rates": rates, "errors": errors, "idle": idle, "stalls": None}
    if not stalls:
        return results
    results["stalls"] = stalls = {}
    for variant in VARIANTS:
        for kind in STALLS:
            stalls[(variant, kind)] = result = stall_test(lambda: make(variant), kind,
                                                          settings["give_up"])
            log("  %s %s stall %s, %s: normal client %s; stalling client: %s" % (
                NAME, board, kind, variant, seconds_text(result["waited"], result["why"]),
                result["stalled"][0]))
    return results


def measure(mode="full", flavours=None, log=None, circuitpython=None):
    """Everything the section reports: {"unavailable": why} where it cannot
    run, else the interpreter, the package's version, and per flavour what
    measure_flavour() gives."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    settings = MODES[mode]
    circuitpython = find_circuitpython(circuitpython)
    httpserver = find_httpserver()
    why = missing(circuitpython, httpserver)
    if why:
        log("%s: n/a: %s" % (NAME, why))
        return {"unavailable": why, "mode": mode}
    started = time.monotonic()
    results = {"mode": mode, "settings": settings, "flavours": {},
               "httpserver": httpserver_version(httpserver),
               "interpreter": interpreter_version(circuitpython)}
    for name, board, what in FLAVOURS:
        if flavours and name not in flavours:
            continue
        log("%s: %s (%s)" % (NAME, board, what))
        stalls = len(results["flavours"]) < settings["stall_flavours"]
        results["flavours"][name] = measure_flavour(circuitpython, httpserver, board,
                                                    settings, log, stalls)
    results["elapsed"] = time.monotonic() - started
    return results


def interpreter_version(circuitpython):
    try:
        run = subprocess.run([circuitpython, "-c", "import sys; print(sys.version)"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "CircuitPython (version unknown)"
    text = run.stdout.decode(errors="replace").strip()  # "3.4.0; CircuitPython 10..."
    return text.split("; ")[-1] if text else "CircuitPython"


def seconds_text(value, why):
    return why if value is None else "%.2f s" % value


def _cell(text):
    return str(text).replace("|", "\\|")


def markdown(results):
    lines = ["## socketse and adafruit_httpserver on CircuitPython", ""]
    if "unavailable" in results:
        return "\n".join(lines + ["n/a: %s" % results["unavailable"], ""])
    settings = results["settings"]
    lines += [
        "The same page (GET / answered with 200, text/plain, `hello`, Connection: close, "
        "the same bytes from both) from socketse and from adafruit_httpserver %s, both on "
        "%s (the unix port) as a board profile: socketpool and wifi re-created over the "
        "host's sockets by tests/boards/circuitpython_*.py. %s mode: %d round(s); in each, "
        "every server takes %d requests or %.0f s of load (whichever ends first) from 1 "
        "client, then from 4 at once, in turn. Clients: CPython threads in another "
        "process, a new connection per request." % (
            results["httpserver"], results["interpreter"], results["mode"],
            settings["rounds"], settings["requests"], settings["seconds"]),
        "",
        "| flavour | server | CPU when idle | req/s, 1 client | × httpserver "
        "| × httpserver-poll | req/s, 4 clients | × httpserver | × httpserver-poll |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, board, what in FLAVOURS:
        flavour = results["flavours"].get(name)
        if flavour is None:
            continue
        first = True
        for variant in VARIANTS:
            cells = ["%s (%s)" % (name, what) if first else "", variant]
            share = flavour["idle"].get(variant)
            cells.append("" if share is None else "%.0f%%" % (100 * share))
            for clients in CONCURRENCY:
                samples = flavour["rates"][(variant, clients)]
                value = median(samples)
                text = "no samples" if value is None else "%.0f" % value
                failed = flavour["errors"][(variant, clients)]
                if failed:
                    text += " (%d errors)" % failed
                cells.append(text)
                for reference in REFERENCES:
                    if reference == variant:
                        cells.append("1.00")
                        continue
                    other = flavour["rates"][(reference, clients)]
                    ratios = [a / b for a, b in zip(samples, other) if b > 0]
                    value = median(ratios)
                    cells.append("" if value is None else "%.2f" % value)
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
            first = False
    lines += [
        "",
        "Ratios: the row's requests per second over the other's, within each round, the "
        "median over the rounds. httpserver is Server.serve_forever(), which sleeps 0.1 s "
        "(its poll_interval) whenever poll() finds no connection waiting; httpserver-poll "
        "calls start() and then poll() in a loop with nothing else to do, which never "
        "waits (the CPU it takes when idle). socketse is serve_forever(), which waits in "
        "select.poll() until the listener is readable; on the raspberrypi flavour a "
        "listener always polls readable and the wait is accept() with a timeout, which "
        "the Pico W sleeps in whole 100 ms steps. Each socketpool call here is Python "
        "code over the host's sockets, where a board runs C: code making more socket "
        "calls a request pays more here than on a board.",
        "",
        "Stalling clients, each on a fresh server: a client connects and sends nothing "
        "(silent), `GET / HT` (half line), or a request one byte every %.1f s (trickle); "
        "%.1f s later a normal client asks for the page. Both give up after %.0f s. "
        "socketse's handler has timeout = 2 s and request_timeout = 4 s; "
        "adafruit_httpserver has its defaults (socket_timeout 1 s, a bound on each "
        "read)." % (TRICKLE_GAP, STALL_HEAD_START, settings["give_up"]),
        "",
        "| flavour | stall | server | normal client waited | the stalling client saw "
        "| the server logged | serves again afterwards |",
        "|---|---|---|---:|---|---|---|"]
    for name, board, what in FLAVOURS:
        flavour = results["flavours"].get(name)
        if flavour is None or flavour["stalls"] is None:
            continue
        first_flavour = True
        for kind in STALLS:
            first_kind = True
            for variant in VARIANTS:
                result = flavour["stalls"][(variant, kind)]
                what_seen, when = result["stalled"]
                seen = what_seen if when is None else "%s after %.1f s" % (what_seen, when)
                again = seconds_text(result["again"], result["again_why"])
                if result["again"] is not None:
                    again = "yes (%s)" % again
                elif not result["alive"]:
                    again = "no: the process ended"
                else:
                    again = "no: " + again
                    if result["busy"] is not None:
                        again += ", while it takes %.0f%% of a CPU" % (100 * result["busy"])
                logged = result["logged"] or "nothing"
                if len(logged) > 80:
                    logged = logged[:77] + "..."
                cells = [name if first_flavour else "", kind if first_kind else "", variant,
                         seconds_text(result["waited"], result["why"]), seen,
                         "`%s`" % logged if result["logged"] else logged, again]
                lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
                first_flavour = first_kind = False
    lines += ["", "Rerun: `python3 bench/circuitpython_http.py` (`--quick`, `--smoke`), "
              "or `bench/run.py --cases %s`. Took %.0f s." % (NAME, results["elapsed"]), ""]
    return "\n".join(lines)


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="bench/circuitpython_http.py",
                                     description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--smoke", action="store_true")
    parser.add_argument("--flavours", help="comma-separated, of: " + ", ".join(
        name for name, _, _ in FLAVOURS))
    parser.add_argument("--circuitpython", help="the CircuitPython unix port to run on")
    arguments = parser.parse_args(argv)
    flavours = arguments.flavours.split(",") if arguments.flavours else None
    if flavours and set(flavours) - {name for name, _, _ in FLAVOURS}:
        parser.error("unknown flavour in %s" % arguments.flavours)
    results = measure("smoke" if arguments.smoke else "quick" if arguments.quick else "full",
                      flavours, circuitpython=arguments.circuitpython)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
