"""Ports the suite, the benchmark and the tools choose at random lie below
Linux's ephemeral range (32768 and up), where client sockets take their
ports and keep them in TIME_WAIT after closing: a server that chose one of
those could be refused with EADDRINUSE (issue 18, "Ports that don't
collide").  Where such a port is bound, a taken one is retried.  And the
Makefile finds the board sources relative to the checkout (or BOARDS=),
never at an absolute /work path that exists on one machine only.
"""

import errno
import importlib.util
import os
import re

import pytest

import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPHEMERAL_START = 32768  # Linux's default ip_local_port_range starts here
SAMPLES = 5000


def load(relative_path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relative_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def footprint_random_port():
    """The text ECHO_PROBE runs, run here."""
    footprint = load("tools/footprint.py", "footprint_for_ports")
    assert footprint.RANDOM_PORT in footprint.ECHO_PROBE
    namespace = {"os": os}
    exec(footprint.RANDOM_PORT, namespace)
    return namespace["random_port"]


HELPERS = {
    "tests/runner.py random_port": lambda: runner.random_port,
    "bench/servers.py random_port": lambda: load("bench/servers.py", "bench_servers").random_port,
    "tools/footprint.py RANDOM_PORT": footprint_random_port,
}


@pytest.mark.parametrize("name", sorted(HELPERS))
def test_random_ports_lie_below_the_ephemeral_range(name):
    random_port = HELPERS[name]()
    ports = [random_port() for _ in range(SAMPLES)]
    outside = sorted(set(port for port in ports if not 20000 <= port < EPHEMERAL_START))
    assert not outside, "%s gave %s" % (name, outside[:10])
    assert len(set(ports)) > SAMPLES // 4, "%s: too few distinct ports" % name


def taken_twice(ports):
    """A make(port) whose first two ports are taken."""
    def make(port):
        ports.append(port)
        if len(ports) <= 2:
            raise OSError(errno.EADDRINUSE, "taken")
        return "bound to %d" % port
    return make


def test_runner_tries_another_port_while_one_is_taken():
    ports = []
    assert runner.on_a_random_port(taken_twice(ports)) == "bound to %d" % ports[-1]
    assert len(ports) == 3 and all(20000 <= port < EPHEMERAL_START for port in ports)


def test_bench_tries_another_port_while_one_is_taken(monkeypatch):
    servers = load("bench/servers.py", "bench_servers")
    monkeypatch.setattr(servers, "MICROPYTHON", True)  # CPython would take port 0
    ports = []
    assert servers.on_a_free_port(taken_twice(ports)) == "bound to %d" % ports[-1]
    assert len(ports) == 3 and all(20000 <= port < EPHEMERAL_START for port in ports)


def test_other_bind_errors_are_not_retried():
    calls = []

    def refused(port):
        calls.append(port)
        raise OSError(errno.EACCES, "refused")

    with pytest.raises(OSError):
        runner.on_a_random_port(refused)
    assert len(calls) == 1


def test_the_makefile_names_no_absolute_work_path():
    with open(os.path.join(ROOT, "Makefile")) as makefile:
        text = makefile.read()
    found = [line for line in text.splitlines() if re.search(r"(?<![\w.])/work\b", line)]
    assert not found, found
