"""socketse's benchmark suite: socketse against the stdlib and a bare loop.

    python3 bench/run.py [--quick | --smoke] [--rounds N] [--duration S]
                         [--cases a,b] [--interpreter PATH] [--micropython PATH]
                         [--board-micropython PATH] [--output DIR | --no-write]

(``make bench`` runs it in full.)  Each case runs the same work on three
variants: socketse, the standard library's socketserver (where the
interpreter has it) and a bare socket loop written tightly by hand, the
physical limit on that interpreter; the TCP echo cases add a fourth,
asyncio.start_server, the peer a user might pick instead, on CPython and
on MicroPython.  The servers run in subprocesses on the
interpreter under test (bench/servers.py); the clients are other processes,
forked from the CPython running this script (bench/clients.py), doing a
connection per request for a fixed time.  The variants of a case all serve
at once and take the load in turn, round by round (A B C A B C ...), and
the report gives each variant's median over the rounds, and the ratios
between variants as the median of the ratios within each round.

Cases: tcp_sync, tcp_threading, tcp_forking, udp, line, line_threading, http
(wrk drives it where installed, the Python client otherwise), shutdown
(latency of shutdown(), p50 and p99), import (time and modules added), and
on MicroPython mp_tcp_sync, mp_tcp_threading, mp_udp and mp_shutdown
(socketse against the bare loop, and the TCP ones against asyncio).
board_shutdown_lwip, _esp32 and _rp2 measure shutdown() on the board
profiles: the unix MicroPython built with the boards' lwIP socket layer
(`make boards`), plain, as esp32 and as rp2; its loopback is inside the
process, so the client of each start is too.
The steps_ cases (steps_tcp_sync, steps_udp, and mp_ ones on MicroPython)
show where socketse's time goes: their variants go from the bare loop to
serve_forever() one layer at a time, and the server CPU per request of each
row, less the row above, is what that layer costs.

The circuitpython_http section (bench/circuitpython_http.py) sets socketse
next to adafruit_httpserver on the CircuitPython board profiles: requests
a second for the same page, and what each does with a client that stalls.
It runs on the .venv/bin/circuitpython that `make boards` builds, and says
n/a where that or the package is missing.

A full run writes bench/results.md and bench/results.svg (or into --output
DIR); --quick and --smoke only print, unless --output is given.  --smoke is
a tiny run of every case that checks the code, not the speed.

Every server binds 127.0.0.1; every load is bounded in time and count; every
server process (and the processes it forked) is killed at the end.
"""

import argparse
import datetime
import os
import platform
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
SERVERS = os.path.join(BENCH, "servers.py")
sys.path.insert(0, BENCH)

import circuitpython_http  # noqa: E402  (bench/circuitpython_http.py)
import clients  # noqa: E402  (bench/clients.py)
import processes  # noqa: E402  (bench/processes.py)
import report  # noqa: E402  (bench/report.py)

STARTUP_TIMEOUT = 20


class Case:
    def __init__(self, name, title, short, kind, clients=4,
                 variants=("socketse", "stdlib", "bare"), server_case=None, micropython=False,
                 unit="req/s", targets=(), steps=False, board=None):
        self.name = name
        self.title = title  # in the table
        self.short = short  # in the chart
        self.kind = kind  # the clients' kind of exchange, or "shutdown"/"import"
        self.clients = clients
        self.variants = variants
        self.server_case = server_case or name
        # A board profile: the lwIP build of MicroPython runs the case, plain
        # ("lwip") or as tests/boards/NAME.py makes it (bench/servers.py --board NAME).
        self.board = board
        self.board_arguments = ["--board", board] if board not in (None, "lwip") else []
        self.micropython = micropython or board is not None
        self.unit = unit
        self.targets = targets  # ((against, minimum ratio), ...)
        self.steps = steps  # variants: the layers of socketse, added one by one


# Issue 20: socketse's TCPServer and ThreadingTCPServer each at least as fast
# as asyncio.start_server, on CPython and MicroPython (bench/servers.py:
# the asyncio variant is one server for both cases).
TCP_PEERS = ("socketse", "stdlib", "bare", "asyncio")
CASES = [
    Case("tcp_sync", "sync TCP echo (TCPServer)", "sync TCP echo", "tcp",
         variants=TCP_PEERS, targets=(("bare", 0.95), ("asyncio", 1.0))),
    Case("tcp_threading", "threading TCP echo (ThreadingTCPServer)", "threading TCP echo",
         "tcp", variants=TCP_PEERS,
         targets=(("stdlib", 1.5), ("bare", 1.0), ("asyncio", 1.0))),
    Case("tcp_forking", "forking TCP echo (ForkingTCPServer)", "forking TCP echo", "tcp"),
    Case("udp", "UDP echo (UDPServer)", "UDP echo", "udp", targets=(("bare", 0.95),)),
    Case("line", "line protocol: StreamRequestHandler on TCPServer, 4 lines a connection",
         "line protocol (rfile/wfile)", "line", unit="conn/s", targets=(("stdlib", 1.2),)),
    Case("line_threading", "line protocol: StreamRequestHandler on ThreadingTCPServer, "
         "4 lines a connection", "line protocol, threading", "line", unit="conn/s",
         targets=(("stdlib", 1.2),)),
    Case("http", "HTTP: BaseHTTPRequestHandler on a threading server",
         "HTTP (http.server handler)", "http", targets=(("stdlib", 1.1),)),
    Case("shutdown", "shutdown() latency (TCPServer)", "shutdown() latency, p99", "shutdown",
         unit="s", targets=(("max_p99", 0.010),)),
    Case("import", "import time (`python -S`, after `import socket`)", "import time",
         "import", variants=("socketse", "stdlib"), unit="s"),
    Case("mp_tcp_sync", "MicroPython: sync TCP echo (TCPServer)", "MicroPython: sync TCP echo",
         "tcp", variants=("socketse", "bare", "asyncio"), server_case="tcp_sync",
         micropython=True, targets=(("bare", 0.95), ("asyncio", 1.0))),
    Case("mp_tcp_threading", "MicroPython: threading TCP echo (ThreadingTCPServer)",
         "MicroPython: threading TCP echo", "tcp", variants=("socketse", "bare", "asyncio"),
         server_case="tcp_threading", micropython=True, targets=(("asyncio", 1.0),)),
    Case("mp_udp", "MicroPython: UDP echo (UDPServer)", "MicroPython: UDP echo", "udp",
         variants=("socketse", "bare"), server_case="udp", micropython=True,
         targets=(("bare", 0.8),)),
    Case("mp_shutdown", "MicroPython: shutdown() latency (TCPServer)",
         "MicroPython: shutdown()", "shutdown", variants=("socketse", "bare"),
         micropython=True, unit="s", targets=(("max_p99", 0.010),)),
    Case("board_shutdown_lwip", "board profile lwip (extmod/modlwip.c, as on the Pico W): "
         "shutdown() latency (TCPServer)", "lwIP board: shutdown()", "shutdown",
         variants=("socketse", "bare"), board="lwip", unit="s",
         targets=(("max_p99", 0.010),)),
    Case("board_shutdown_esp32", "board profile esp32: shutdown() latency (TCPServer)",
         "esp32 board: shutdown()", "shutdown", variants=("socketse", "bare"),
         board="esp32", unit="s", targets=(("max_p99", 0.010),)),
    Case("board_shutdown_rp2", "board profile rp2 (Pico W: one thread besides the main one): "
         "shutdown() latency (TCPServer)", "rp2 board: shutdown()", "shutdown",
         variants=("socketse", "bare"), board="rp2", unit="s", targets=(("max_p99", 0.010),)),
]
# Where socketse's time goes: from the bare loop to serve_forever(), one layer
# added at each step (bench/servers.py says what each adds).
STEPS = ("bare", "+handler", "+hooks", "+get_request", "socketse")
CASES += [
    Case("steps_tcp_sync", "steps to socketse: sync TCP echo", "steps: sync TCP echo", "tcp",
         variants=STEPS, server_case="tcp_sync", steps=True),
    Case("steps_udp", "steps to socketse: UDP echo", "steps: UDP echo", "udp",
         variants=STEPS, server_case="udp", steps=True),
    Case("mp_steps_tcp_sync", "MicroPython: steps to socketse: sync TCP echo",
         "MicroPython steps: sync TCP echo", "tcp", variants=STEPS, server_case="tcp_sync",
         micropython=True, steps=True),
    Case("mp_steps_udp", "MicroPython: steps to socketse: UDP echo",
         "MicroPython steps: UDP echo", "udp", variants=STEPS, server_case="udp",
         micropython=True, steps=True),
]
CASE_NAMES = [case.name for case in CASES]

# (rounds, seconds of load per variant and round, warm-up seconds, shutdown starts, imports)
MODES = {
    "full": (9, 1.5, 0.5, 50, 15),
    "quick": (3, 0.5, 0.2, 20, 5),
    "smoke": (1, 0.15, 0.0, 2, 1),
}


# ---------------------------------------------------------------------------
# Interpreters
# ---------------------------------------------------------------------------

def find_micropython(given=None):
    candidates = [given, os.environ.get("MICROPYTHON"),
                  os.path.join(ROOT, ".venv", "bin", "micropython"),
                  os.path.join(os.path.dirname(sys.executable), "micropython"),
                  shutil.which("micropython")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_board_micropython(given=None):
    """The unix MicroPython with the boards' lwIP socket layer and _thread,
    that `make boards` builds (tests/test_portable.py runs it too)."""
    name = "micropython-lwip-threads"
    candidates = [given, os.environ.get("MICROPYTHON_LWIP"),
                  os.path.join(ROOT, ".venv", "bin", name),
                  os.path.join(os.path.dirname(sys.executable), name), shutil.which(name)]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


VERSION_PROBE = (
    "import sys\n"
    "i = sys.implementation\n"
    "v = '.'.join(str(p) for p in i.version[:3])\n"
    "if len(i.version) > 3 and i.version[3] and i.version[3] != 'final': v += '-' + str(i.version[3])\n"
    "names = {'cpython': 'CPython', 'pypy': 'PyPy', 'micropython': 'MicroPython'}\n"
    "name = names.get(i.name, i.name)\n"
    "if i.name == 'pypy': print('PyPy %s (Python %d.%d.%d)' % ((v,) + tuple(sys.version_info[:3])))\n"
    "else: print(name + ' ' + v)\n"
)


def interpreter_version(command):
    try:
        run = subprocess.run([command, "-c", VERSION_PROBE], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return "%s (version unknown: %s)" % (command, error)
    lines = run.stdout.decode(errors="replace").strip().splitlines()
    return lines[-1] if run.returncode == 0 and lines else "%s (version unknown)" % command


def environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "") if env.get(
        "PYTHONPATH") else ROOT
    env["MICROPYPATH"] = ROOT + ":.frozen"
    env.pop("PYTHONSTARTUP", None)
    return env


def free_port():
    """A port for MicroPython, whose sockets can't tell which port 0 chose."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------
# Server processes
# ---------------------------------------------------------------------------

class Unavailable(Exception):
    pass


class ServerProcess:
    """bench/servers.py VARIANT CASE PORT on an interpreter, in its own
    process group, so that stop() ends the processes it forked too."""

    def __init__(self, interpreter, variant, case, port=0):
        self.command = [interpreter, SERVERS, variant, case, str(port)]
        self.port = None
        self.process = None
        self.log = tempfile.TemporaryFile()

    def start(self):
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                        stderr=self.log, env=environment(), cwd=ROOT,
                                        start_new_session=True)
        line = self._first_line()
        if line.startswith("READY "):
            self.port = int(line.split()[1])
            return self
        if line.startswith("UNAVAILABLE"):
            raise Unavailable(line[len("UNAVAILABLE "):])
        raise RuntimeError("%s did not start: %r\n%s" % (" ".join(self.command), line,
                                                         self.errors()))

    def _first_line(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        data = b""
        stdout = self.process.stdout
        while b"\n" not in data and time.monotonic() < deadline:
            if select.select([stdout], [], [], 0.1)[0]:
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    break
                data += chunk
        return data.decode(errors="replace").strip()

    def errors(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        """SIGTERM to the group, then SIGKILL to whatever of it is left."""
        if self.process is None:
            return
        try:
            processes.end_process_group(self.process)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
            self.process.stdout.close()
            self.log.close()


def run_script(interpreter, arguments, timeout, flags=(), env=None):
    """Run bench/servers.py to completion: its stdout lines."""
    run = subprocess.run([interpreter] + list(flags) + [SERVERS] + arguments,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env or environment(), cwd=ROOT, timeout=timeout,
                         start_new_session=True)
    lines = run.stdout.decode(errors="replace").splitlines()
    if lines and lines[0].startswith("UNAVAILABLE"):
        raise Unavailable(lines[0][len("UNAVAILABLE "):])
    if run.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(arguments), run.returncode,
                                                     run.stderr.decode(errors="replace")[-3000:]))
    return lines


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

class Result:
    """One variant of one case: its samples, errors, or why it did not run."""

    def __init__(self):
        self.samples = []  # req/s per round; seconds per start or import
        self.cpu = []  # server CPU seconds per request, per round
        self.errors = 0
        self.unavailable = None
        self.modules = None  # the import case: the modules added

    def ok(self):
        return self.unavailable is None and bool(self.samples)


def cpu_seconds(pid):
    """CPU time of a process, its threads and its reaped children (Linux)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(value) for value in fields[11:15]) / float(os.sysconf("SC_CLK_TCK"))


def measure_throughput(case, interpreter, settings, log):
    rounds, duration, warmup = settings["rounds"], settings["duration"], settings["warmup"]
    client = settings["http_client"] if case.kind == "http" else settings["client"]
    results = {variant: Result() for variant in case.variants}
    servers = {}
    try:
        for variant in case.variants:
            port = free_port() if case.micropython else 0
            server = ServerProcess(interpreter, variant, case.server_case, port)
            servers[variant] = server
            try:
                server.start()
            except Unavailable as why:
                results[variant].unavailable = str(why)
                del servers[variant]
                server.stop()
        running = [variant for variant in case.variants if variant in servers]

        def one_load(variant, seconds):
            port = servers[variant].port
            if client == "wrk":
                return clients.wrk_load(port, case.clients, seconds)
            if client == "c":
                return clients.c_load(case.kind, port, case.clients, seconds)
            return clients.load(case.kind, port, case.clients, seconds)

        if warmup:
            for variant in running:
                one_load(variant, warmup)
        for number in range(rounds):
            line = []
            for variant in running:  # A B C, A B C, ...
                pid = servers[variant].process.pid
                cpu_before = cpu_seconds(pid)
                rate, errors, count = one_load(variant, duration)
                cpu_after = cpu_seconds(pid)
                if not servers[variant].alive():
                    raise RuntimeError("the %s %s server died:\n%s" % (
                        variant, case.name, servers[variant].errors()))
                result = results[variant]
                result.samples.append(rate)
                result.errors += errors
                if None not in (cpu_before, cpu_after) and count > 0:
                    result.cpu.append((cpu_after - cpu_before) / count)
                line.append("%s %.0f" % (variant, rate))
            log("  %s round %d/%d: %s" % (case.name, number + 1, rounds, ", ".join(line)))
    finally:
        for server in servers.values():
            server.stop()
    return results


def measure_shutdown(case, interpreter, settings, log):
    results = {variant: Result() for variant in case.variants}
    rounds = max(1, min(settings["rounds"], settings["shutdown_starts"]))
    per_round = [settings["shutdown_starts"] // rounds] * rounds
    per_round[-1] += settings["shutdown_starts"] - sum(per_round)
    for number, starts in enumerate(per_round):
        for variant in case.variants:
            result = results[variant]
            if result.unavailable:
                continue
            try:
                lines = run_script(interpreter, case.board_arguments + [
                    variant, "shutdown", "0", str(starts)], timeout=60 + 2 * starts)
            except Unavailable as why:
                result.unavailable = str(why)
                continue
            result.samples += [float(line.split()[1]) for line in lines
                               if line.startswith("SHUTDOWN ")]
        log("  %s round %d/%d" % (case.name, number + 1, rounds))
    return results


def measure_import(case, interpreter, settings, log):
    """Each sample in a fresh `python -S` (no site: its .pth files may import
    threading and more first), importing a copy of socketse.py whose
    bytecode is cached, as the stdlib's is."""
    results = {variant: Result() for variant in case.variants}
    scratch = tempfile.mkdtemp(prefix="socketse-bench-")
    try:
        shutil.copyfile(os.path.join(ROOT, "socketse.py"), os.path.join(scratch, "socketse.py"))
        env = environment()
        env["PYTHONPATH"] = scratch
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for sample in range(settings["imports"] + 1):
            for variant in case.variants:
                result = results[variant]
                if result.unavailable:
                    continue
                try:
                    lines = run_script(interpreter, [variant, "import", "0"], timeout=60,
                                       flags=["-S"], env=env)
                except Unavailable as why:
                    result.unavailable = str(why)
                    continue
                if sample == 0:
                    continue  # the first one writes the bytecode cache
                fields = [line for line in lines if line.startswith("IMPORT ")][0].split()
                result.samples.append(float(fields[1]))
                result.modules = fields[3:]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log("  import: %d fresh interpreters per variant" % settings["imports"])
    return results


def measure(case, settings, log):
    interpreter = settings["interpreter"]
    if case.board:
        interpreter = settings["board_micropython"]
        missing = ("no micropython-lwip-threads found (make boards builds it; "
                   "or --board-micropython PATH)")
    elif case.micropython:
        interpreter = settings["micropython"]
        missing = "no micropython found (MICROPYTHON=..., or pip install -r requirements-dev.txt)"
    if interpreter is None:
        results = {variant: Result() for variant in case.variants}
        for result in results.values():
            result.unavailable = missing
        return results
    if case.kind == "shutdown":
        return measure_shutdown(case, interpreter, settings, log)
    if case.kind == "import":
        return measure_import(case, interpreter, settings, log)
    return measure_throughput(case, interpreter, settings, log)


# ---------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def socketse_revision():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "socketse.py"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    revision = head.stdout.decode().strip() or "unknown"
    return revision + (" + local changes" if dirty.stdout.strip() else "")


CLIENT_NAMES = {
    "c": "C client processes (bench/loadgen.c)",
    "python": "Python client processes (CPython %s)" % platform.python_version(),
}


def busy_cpu(seconds=1.0):
    """The share of the machine's CPU time that other work takes, sampled
    over `seconds` before the run (Linux /proc/stat), or None: a busy
    machine makes the ratios noisier."""
    def sample():
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return idle, sum(fields[:8])
    try:
        idle_before, total_before = sample()
        time.sleep(seconds)
        idle_after, total_after = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total_after - total_before
    return 1.0 - (idle_after - idle_before) / float(total) if total > 0 else None


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer, shorter rounds (~1 min)")
    mode.add_argument("--smoke", action="store_true",
                      help="a tiny run of every case: checks the code, not the speed")
    parser.add_argument("--rounds", type=int, help="rounds of load per variant")
    parser.add_argument("--duration", type=float, help="seconds of load per variant and round")
    parser.add_argument("--cases", help="comma-separated, of: " + ", ".join(
        CASE_NAMES + [circuitpython_http.NAME]))
    parser.add_argument("--interpreter", default=sys.executable,
                        help="the interpreter that runs the servers (default: this one)")
    parser.add_argument("--micropython", help="the micropython binary for the mp_ cases")
    parser.add_argument("--board-micropython",
                        help="the micropython-lwip-threads binary for the board_ cases "
                             "(default: the one `make boards` builds into .venv/bin)")
    parser.add_argument("--client", choices=("auto", "c", "python", "wrk"), default="auto",
                        help="what makes the load: the C client (bench/loadgen.c, built with "
                             "the system's cc), the Python one, or wrk for HTTP; auto: wrk "
                             "for HTTP where installed, C where there is a compiler, "
                             "Python otherwise")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--output", help="write results.md and results.svg into this directory")
    output.add_argument("--no-write", action="store_true", help="print only")
    arguments = parser.parse_args(argv)
    if arguments.cases:
        unknown = set(arguments.cases.split(",")) - set(CASE_NAMES) - {circuitpython_http.NAME}
        if unknown:
            parser.error("unknown case(s): %s (known: %s)" % (", ".join(sorted(unknown)),
                                                               ", ".join(CASE_NAMES)))
    if arguments.rounds is not None and arguments.rounds < 1:
        parser.error("--rounds must be at least 1")
    if arguments.duration is not None and not 0 < arguments.duration <= 60:
        parser.error("--duration must be in (0, 60] seconds")
    return arguments


def main(argv=None):
    arguments = parse_arguments(argv)
    mode = "smoke" if arguments.smoke else "quick" if arguments.quick else "full"
    rounds, duration, warmup, starts, imports = MODES[mode]
    client = arguments.client
    if client == "c" and not clients.loadgen():
        print("no C compiler builds bench/loadgen.c: %s" % clients.build_error(),
              file=sys.stderr)
        return 2
    if client == "wrk" and not clients.wrk():
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    http_client = client
    if client in ("auto", "wrk"):
        client = "c" if clients.loadgen() else "python"
        http_client = "wrk" if clients.wrk() else client
    settings = {
        "rounds": arguments.rounds or rounds,
        "duration": arguments.duration or duration,
        "warmup": warmup,
        "shutdown_starts": starts,
        "imports": imports,
        "interpreter": arguments.interpreter,
        "micropython": find_micropython(arguments.micropython),
        "board_micropython": find_board_micropython(arguments.board_micropython),
        "client": client,
        "http_client": http_client,
    }
    selected = arguments.cases.split(",") if arguments.cases else CASE_NAMES + [
        circuitpython_http.NAME]
    cases = [case for case in CASES if case.name in selected]

    def log(message):
        print(message, file=sys.stderr, flush=True)

    stamp = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "interpreter": interpreter_version(settings["interpreter"]),
        "micropython": (interpreter_version(settings["micropython"])
                        if settings["micropython"] else None),
        "board_micropython": (interpreter_version(settings["board_micropython"])
                              if settings["board_micropython"] else None),
        "client": CLIENT_NAMES[client],
        "http_client": ("wrk %s" % clients.wrk_version() if http_client == "wrk"
                        else CLIENT_NAMES[http_client]),
        "busy": busy_cpu(),
        "revision": socketse_revision(),
        "mode": mode,
        "settings": settings,
    }
    log("bench: %s mode, %d round(s) of %.2f s per variant; servers on %s; load by %s" % (
        mode, settings["rounds"], settings["duration"], stamp["interpreter"], stamp["client"]))
    if (stamp["busy"] or 0) > 0.1:
        log("bench: warning: other work takes %.0f%% of the CPU: the ratios will be "
            "noisier; rerun when the machine is idle" % (100 * stamp["busy"]))
    started = time.monotonic()
    measured = []
    for case in cases:
        log("%s: %s" % (case.name, case.title))
        measured.append((case, measure(case, settings, log)))
    section = None
    if circuitpython_http.NAME in selected:
        log("%s: socketse and adafruit_httpserver on CircuitPython" % circuitpython_http.NAME)
        section = circuitpython_http.measure(mode, log=log)
    stamp["elapsed"] = time.monotonic() - started

    markdown = report.markdown(measured, stamp)
    if section is not None:  # a table of its own: its columns are not the cases'
        markdown += "\n" + circuitpython_http.markdown(section)
    print(markdown)
    directory = arguments.output
    if directory is None and mode == "full" and not arguments.no_write:
        directory = BENCH
    if directory and not arguments.no_write:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "results.md"), "w") as out:
            out.write(markdown)
        with open(os.path.join(directory, "results.svg"), "w") as out:
            out.write(report.svg(measured, stamp))
        log("wrote %s and %s" % (os.path.join(directory, "results.md"),
                                 os.path.join(directory, "results.svg")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
