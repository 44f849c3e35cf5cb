"""CPython's own tests of socketserver and of the stdlib modules built on it
pass with socketse installed as socketserver.

This is the drop-in claim, tested by the stdlib's suites rather than by ours:
for CPython 3.13 and 3.11 (from pyenv), each suite below runs in a fresh
interpreter in which socketse.py is loaded under the name ``socketserver``
before anything imports it, so that test_socketserver itself, and
http.server, xmlrpc.server, wsgiref.simple_server, logging.handlers' test
servers, logging.config.listen() and test_imaplib's servers, all run on it.
The child reports where its socketserver came from and every test module's
view of it, so a run that silently used the stdlib's socketserver fails.

Every test must pass, except those in EXPECTED_FAILURES: tests that fail on
this machine with the stdlib's own socketserver too, each with its reason.
With SOCKETSE_TEST_STDLIB=1 (as for the rest of the tests, see conftest.py)
the same suites run on the stdlib's socketserver: the baseline that list is
checked against.

A missing interpreter, or one without its ``test`` package, skips its cases
and says why; under CI=true it fails instead.  Servers bind loopback only:
the "network" resource, which test_imaplib's remote tests ask for, stays
off; test_socketserver alone gets it, as it asks for it for loopback servers.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import skip_or_fail_on_ci

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKETSE = os.path.join(ROOT, "socketse.py")
AGAINST_STDLIB = os.environ.get("SOCKETSE_TEST_STDLIB") == "1"

# CPython versions: the pyenv version directory and the interpreter in it.
PYTHONS = {
    "3.13": ("3.13.0", "python3.13"),
    "3.11": ("3.11.7", "python3.11"),
}

# logging's tests that run socketserver servers; the rest of test_logging
# never touches socketserver (and takes longer).
LOGGING_SERVER_TESTS = ["test.test_logging." + name for name in (
    "SocketHandlerTest",
    "UnixSocketHandlerTest",
    "DatagramHandlerTest",
    "UnixDatagramHandlerTest",
    "SysLogHandlerTest",
    "UnixSysLogHandlerTest",
    "IPv6SysLogHandlerTest",
    "HTTPHandlerTest",
    # logging.config.listen() serves through socketserver.ThreadingTCPServer.
    "ConfigDictTest.test_listen_config_10_ok",
    "ConfigDictTest.test_listen_config_1_ok",
    "ConfigDictTest.test_listen_verify",
)]

# suite: the unittest names it loads.
SUITES = {
    "test_socketserver": ["test.test_socketserver"],
    "test_httpservers": ["test.test_httpservers"],
    "test_xmlrpc": ["test.test_xmlrpc"],
    "test_wsgiref": ["test.test_wsgiref"],
    "test_logging": LOGGING_SERVER_TESTS,
    "test_urllib2_localnet": ["test.test_urllib2_localnet"],
    "test_imaplib": ["test.test_imaplib"],
}

# test.support resources to enable; outside regrtest it would enable all of
# them, "network" included, and test_imaplib's remote tests would then try
# the internet.  "walltime" runs slow but local tests (xmlrpc's MultiPath
# tests wait out a server timeout).  test_socketserver asks for "network" at
# import, yet all its servers are on loopback.
RESOURCES = ["walltime"]
EXTRA_RESOURCES = {"test_socketserver": ["network"]}

# unittest test id: why it fails here with the stdlib's socketserver too.
# Only such tests belong here; one that fails with socketse alone is a bug.
EXPECTED_FAILURES = {}  # type: dict[str, str]

# Per child, however slow the machine: a hung suite must not hang `make test`.
TIMEOUT = 300
MISSING_TEST_PACKAGE = 3  # the child's exit status when the suite is absent

# The child: install socketse as socketserver, run the suite, write a JSON
# report.  Argument order: see SuiteRun.start().
BOOTSTRAP = r"""
import faulthandler, importlib.util, json, sys, types, unittest

(mode, socketse_path, report_path, suite, resources, timeout), names = (
    sys.argv[1:7], sys.argv[7:])
imported_early = "socketserver" in sys.modules
if mode == "socketse":
    # Under the stdlib's name, as a copy of socketse.py named socketserver.py
    # would be: class __module__s then read "socketserver", as the stdlib's do.
    spec = importlib.util.spec_from_file_location("socketserver", socketse_path)
    installed = importlib.util.module_from_spec(spec)
    sys.modules["socketserver"] = installed
    spec.loader.exec_module(installed)
import socketserver

try:
    import test.support
    present = importlib.util.find_spec(names[0].split(".")[0] + "." + suite)
except ImportError:
    present = None
if present is None:
    sys.exit(%(missing)d)
test.support.verbose = 0  # as regrtest without -v: no chatter from servers
test.support.use_resources = resources.split(",") if resources else []
# A hang shows where it hangs, before the parent's timeout kills us.
faulthandler.dump_traceback_later(float(timeout), exit=True)

result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(
    unittest.defaultTestLoader.loadTestsFromNames(names))

# Every module's view of socketserver, after the tests: any module or class
# named socketserver that is not the one installed above is a stray.
strays = ["socketserver was imported before the bootstrap"] if imported_early else []
if sys.modules.get("socketserver") is not socketserver:
    strays.append("sys.modules['socketserver'] was replaced")
for module_name, module in list(sys.modules.items()):
    for attribute, value in list(getattr(module, "__dict__", {}).items()):
        if isinstance(value, types.ModuleType):
            stray = value.__name__ == "socketserver" and value is not socketserver
        elif isinstance(value, type):
            stray = (value.__module__ == "socketserver"
                     and getattr(socketserver, value.__name__, None) is not value)
        else:
            continue
        if stray:
            strays.append("%%s.%%s" %% (module_name, attribute))

with open(report_path, "w") as report:
    json.dump({
        "socketserver_file": socketserver.__file__,
        "strays": strays,
        "run": result.testsRun,
        "skipped": len(result.skipped),
        "failed": {test.id(): trace for test, trace in result.failures + result.errors},
        "unexpected_successes": [test.id() for test in result.unexpectedSuccesses],
    }, report)
""" % {"missing": MISSING_TEST_PACKAGE}


def pyenv_root():
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            found = subprocess.run([pyenv, "root"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, timeout=60)
            root = found.stdout.decode().strip()
            if found.returncode == 0 and root:
                return root
        except (OSError, subprocess.TimeoutExpired):
            pass
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


class SuiteRun:
    """One suite under one CPython, in a child process of its own."""

    def __init__(self, version, suite, directory):
        self.version = version
        self.suite = suite
        self.directory = directory  # the child's cwd: test.support's TESTFN lands here
        self.log_path = os.path.join(directory, "log.txt")
        self.report_path = os.path.join(directory, "report.json")
        pyenv_version, executable = PYTHONS[version]
        self.python = os.path.join(pyenv_root(), "versions", pyenv_version, "bin", executable)
        self.process = None
        self.returncode = None
        self.timed_out = False

    def start(self):
        if not os.path.exists(self.python):
            return
        resources = RESOURCES + EXTRA_RESOURCES.get(self.suite, [])
        command = [
            # -I: no PYTHONPATH, user site or cwd on sys.path to pick modules from.
            self.python, "-I", "-X", "faulthandler", "-c", BOOTSTRAP,
            "stdlib" if AGAINST_STDLIB else "socketse", SOCKETSE, self.report_path,
            self.suite, ",".join(resources), str(TIMEOUT - 30),
        ] + SUITES[self.suite]
        with open(self.log_path, "wb") as log:
            # A session of its own, so that a timeout ends forked servers too.
            self.process = subprocess.Popen(
                command, cwd=self.directory, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.deadline = time.monotonic() + TIMEOUT

    def wait(self):
        if self.process is None or self.returncode is not None:
            return
        try:
            self.returncode = self.process.wait(
                max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.kill()

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except OSError:
                pass
            self.returncode = self.process.wait()

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return "(no output)"

    def report(self):
        with open(self.report_path) as report:
            return json.load(report)


CASES = [(version, suite) for version in PYTHONS for suite in SUITES]


@pytest.fixture(scope="module")
def suite_runs(request, tmp_path_factory):
    """Every selected suite run, all started at once: they mostly wait on
    sockets and timers, so running them side by side costs about as much
    wall time as the slowest alone."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.module is request.module and hasattr(item, "callspec")]
    runs = {}
    for version, suite in selected:
        directory = str(tmp_path_factory.mktemp("%s-%s" % (version, suite)))
        runs[version, suite] = SuiteRun(version, suite, directory)
        runs[version, suite].start()
    yield runs
    for run in runs.values():  # those whose case never came (-x, ^C)
        run.kill()


@pytest.mark.parametrize("case", CASES, ids=["%s-%s" % case for case in CASES])
def test_stdlib_suite_passes_with_socketse_as_socketserver(case, suite_runs):
    version, suite = case
    run = suite_runs[case]
    if run.process is None:
        skip_or_fail_on_ci("CPython %s is not installed at %s (pyenv install %s)"
                           % (version, run.python, PYTHONS[version][0]))
    run.wait()
    if run.returncode == MISSING_TEST_PACKAGE:
        skip_or_fail_on_ci("CPython %s at %s has no test.%s: its test package "
                           "is not installed" % (version, run.python, suite))
    where = "CPython %s, %s (full log: %s)" % (version, suite, run.log_path)
    assert not run.timed_out, "%s: no end within %d s; last output:\n%s" % (
        where, TIMEOUT, run.log_tail())
    assert os.path.exists(run.report_path), \
        "%s: the child exited with status %s before reporting; last output:\n%s" % (
            where, run.returncode, run.log_tail())
    report = run.report()

    if AGAINST_STDLIB:
        assert report["socketserver_file"] != os.path.realpath(SOCKETSE)
    else:
        assert os.path.samefile(report["socketserver_file"], SOCKETSE), \
            "%s: socketserver came from %s" % (where, report["socketserver_file"])
    assert not report["strays"], \
        "%s: the stdlib's socketserver got in: %s" % (where, report["strays"])
    assert report["run"] > report["skipped"], "%s: every test was skipped" % where

    failed = {test: trace for test, trace in report["failed"].items()
              if test not in EXPECTED_FAILURES}
    assert not failed, "%s: %d failed: %s\n\n%s" % (
        where, len(failed), ", ".join(sorted(failed)),
        "\n".join(failed[test] for test in sorted(failed)))
    assert not report["unexpected_successes"], "%s: unexpected successes: %s" % (
        where, report["unexpected_successes"])
    # A child that reported but then failed to exit cleanly (a crash at
    # interpreter shutdown, say) fails too.
    assert run.returncode == 0, "%s: exit status %s after the tests:\n%s" % (
        where, run.returncode, run.log_tail())
