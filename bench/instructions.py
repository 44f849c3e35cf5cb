"""Instructions per request, counted by valgrind: a measure that does not drift.

    python3 bench/instructions.py [--interpreter PATH] [--cases udp,tcp_sync]
                                  [--variants bare,+handler,...] [--requests N]

On a shared machine the seconds a request takes drift by a tenth from one
run to the next; the user-mode instructions the server executes for it do
not (to about 0.3k).  Each variant of each case (bench/servers.py's, the
steps from the bare loop to socketse's serve_forever() included) is
started twice under valgrind's cachegrind, without its cache simulation:
once to serve N/5 requests, once N/5 + N.  The difference over N is the
count per request: start-up, compiling and the end cancel out.  The
requests come one at a time from this process, so that the server is
waiting before each, as a server that is not flooded always is.

Cases and variants are bench/servers.py's: udp and tcp_sync have every
step; tcp_threading has bare, socketse and asyncio.  The kernel's work (the
system calls, a thread's start) is not counted: `strace -c` shows that.

Prints a table: each variant's instructions per request, and the bare
loop's count over it (1.0 would be as cheap as the bare loop).  Without
valgrind it says so and exits with status 3.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clients  # noqa: E402  (bench/clients.py)
from run import ROOT, SERVERS, environment  # noqa: E402  (bench/run.py)

VARIANTS = ("bare", "+handler", "+hooks", "+get_request", "socketse")


def request(case, port):
    """One request: a connection as the load clients make them, or a
    datagram each way from a socket of its own (a new client each time, so
    that no request comes from the address a server saw last)."""
    address = (clients.HOST, port)
    if case != "udp":
        echoed = clients._tcp_exchange(address, "tcp")
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            client.sendto(clients.MESSAGE, address)
            echoed = client.recv(65536) == clients.MESSAGE
    if not echoed:
        raise RuntimeError("no echo from %s" % (address,))


def count(interpreter, variant, case, requests):
    """The instructions valgrind counted in a server that served requests."""
    for attempt in range(10):  # another port if this one is taken
        port = random.randint(20000, 32767)  # below the ephemeral range
        server = subprocess.Popen(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no",
             "--cachegrind-out-file=/dev/null", interpreter, SERVERS, variant, case,
             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=environment(), cwd=ROOT, start_new_session=True)
        try:
            ready = server.stdout.readline().startswith(b"READY")
            if ready:
                for _ in range(requests):
                    request(case, port)
                time.sleep(0.2)  # the last reply's close, counted too
            server.send_signal(signal.SIGINT)
            errors = server.communicate(timeout=60)[1].decode(errors="replace")
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        counted = re.search(r"I\s+refs:\s+([\d,]+)", errors)
        if ready and counted:
            return int(counted.group(1).replace(",", ""))
    raise RuntimeError("%s %s did not serve:\n%s" % (variant, case, errors[-2000:]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interpreter", default=os.path.join(ROOT, ".venv", "bin", "micropython"))
    parser.add_argument("--cases", default="udp,tcp_sync")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--requests", type=int, default=1000)
    options = parser.parse_args(argv)
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt install valgrind): nothing measured")
        return 3
    base = max(1, options.requests // 5)
    print("| %s: case | variant | instructions per request | bare ÷ variant |"
          % os.path.basename(options.interpreter))
    print("|---|---|---:|---:|")
    for case in options.cases.split(","):
        bare = None
        for variant in options.variants.split(","):
            per_request = (count(options.interpreter, variant, case, base + options.requests)
                           - count(options.interpreter, variant, case, base)) / options.requests
            bare = per_request if variant == "bare" else bare
            print("| %s | %s | %.1fk | %s |" % (
                case, variant, per_request / 1000,
                "%.2f" % (bare / per_request) if bare else ""))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
