"""Where a server's time goes per request: cProfile over every thread.

    python3 bench/profiling.py [--case tcp_threading] [--variants socketse,stdlib]
                             [--seconds 3] [--top 25] [--sort cumulative|tottime]
                             [--client auto|c|python]

For each variant, runs the case's server (bench/servers.py builds it, the
same as the benchmark's) in this process, with a cProfile profiler in the
serving thread and in every handler thread, while client processes load it
for --seconds; then prints, per request: the time by file (tottime: the
interpreter's own work in that file's functions, the rest being C calls
such as socket methods, shown as ``~``), and the top functions by
cumulative or own time.  Profiling slows Python code several times over
and C calls not at all, so read the numbers as shares, not as speeds.

Cases: tcp_sync, tcp_threading, udp, line, http (not tcp_forking: the work
is in the children).
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import threading
import time

import _thread

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
for path in (ROOT, BENCH):
    if path not in sys.path:
        sys.path.insert(0, path)

import clients  # noqa: E402
import servers  # noqa: E402

KINDS = {"tcp_sync": "tcp", "tcp_threading": "tcp", "udp": "udp", "line": "line",
         "http": "http"}


class ThreadProfiles:
    """A cProfile.Profile for every thread started while installed, through
    _thread.start_new_thread (socketse) or threading (the stdlib)."""

    def __init__(self):
        self.profiles = []
        self._lock = threading.Lock()
        self._original = _thread.start_new_thread

    def wrap(self, function):
        def profiled(*args, **kwargs):
            profile = cProfile.Profile()
            with self._lock:
                self.profiles.append(profile)
            profile.enable()
            try:
                return function(*args, **kwargs)
            finally:
                profile.disable()
        return profiled

    def install(self):
        original = self._original

        def start_new_thread(function, args, kwargs=None):
            return original(self.wrap(function), args, kwargs or {})
        _thread.start_new_thread = start_new_thread
        threading._start_new_thread = start_new_thread

    def uninstall(self):
        _thread.start_new_thread = self._original
        threading._start_new_thread = self._original


def profile_variant(variant, case, seconds, client):
    kind = KINDS[case]
    threads = ThreadProfiles()
    threads.install()
    try:
        server = servers.library_server(variant, case, 0)
        port = server.server_address[1]
        serving = threading.Thread(target=server.serve_forever)
        serving.start()  # through the patched start: profiled too
        try:
            time.sleep(0.2)
            if client == "c":
                rate, errors, count = clients.c_load(kind, port, 4, seconds)
            else:
                rate, errors, count = clients.load(kind, port, 4, seconds)
        finally:
            server.shutdown()
            serving.join(30)
            server.server_close()
        deadline = time.monotonic() + 30  # daemon handler threads may linger
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        threads.uninstall()
    stats = None
    for profile in threads.profiles:
        try:
            profile.create_stats()
        except Exception:
            continue  # a thread still running: left out
        if stats is None:
            stats = pstats.Stats(profile)
        else:
            stats.add(profile)
    return stats, count, errors, rate


def by_file(stats, requests):
    """[(µs per request of own time, file)] from most to least."""
    totals = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        name = os.path.basename(filename) if filename != "~" else "~ (C functions)"
        totals[name] = totals.get(name, 0.0) + tottime
    return sorted(((total / requests * 1e6, name) for name, total in totals.items()),
                  reverse=True)


def top_functions(stats, requests, sort, count):
    """Lines: calls per request, own and cumulative µs per request, function."""
    index = 3 if sort == "cumulative" else 2
    rows = sorted(stats.stats.items(), key=lambda item: item[1][index], reverse=True)
    lines = ["%10s %10s %10s  %s" % ("calls/req", "own µs", "cum µs", "function")]
    for (filename, line, function), (calls, ncalls, tottime, cumtime, _) in rows[:count]:
        where = ("%s:%d" % (os.path.basename(filename), line)) if filename != "~" else ""
        lines.append("%10.2f %10.2f %10.2f  %s %s" % (
            ncalls / requests, tottime / requests * 1e6, cumtime / requests * 1e6,
            function, where))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/profiling.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="tcp_threading", choices=sorted(KINDS))
    parser.add_argument("--variants", default="socketse,stdlib")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", choices=("cumulative", "tottime"))
    parser.add_argument("--client", default="auto", choices=("auto", "c", "python"))
    arguments = parser.parse_args(argv)
    if not 0 < arguments.seconds <= 60:
        parser.error("--seconds must be in (0, 60]")
    client = arguments.client
    if client == "auto":
        client = "c" if clients.loadgen() else "python"
    out = io.StringIO()
    for variant in arguments.variants.split(","):
        stats, count, errors, rate = profile_variant(variant, arguments.case,
                                                     arguments.seconds, client)
        print("## %s, %s: %d requests (%.0f/s under the profiler), %d errors" % (
            arguments.case, variant, count, rate, errors), file=out)
        if stats is None or not count:
            print("no profile", file=out)
            continue
        total = sum(value[2] for value in stats.stats.values())
        print("\nProfiled time per request: %.1f µs. Own time by file, µs per request:" % (
            total / count * 1e6), file=out)
        for micros, name in by_file(stats, count):
            if micros >= 0.05:
                print("  %8.2f  %s" % (micros, name), file=out)
        print("\nTop %d by %s time, per request:" % (arguments.top, arguments.sort), file=out)
        for line in top_functions(stats, count, arguments.sort, arguments.top):
            print("  " + line, file=out)
        print("", file=out)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
