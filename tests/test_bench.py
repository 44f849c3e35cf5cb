"""The benchmark suite (bench/, `make bench`) still runs: `bench/run.py --smoke`
makes a tiny, bounded run of every case and reports each one.  Nothing here
asserts a speed: the numbers of a run this short mean nothing."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "bench", "run.py")

sys.path.insert(0, os.path.join(ROOT, "bench"))
import run as bench  # noqa: E402  (bench/run.py)


def smoke(tmp_path, *arguments):
    completed = subprocess.run(
        [sys.executable, RUN, "--smoke", "--output", str(tmp_path)] + list(arguments),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    output = completed.stdout.decode(errors="replace")
    assert completed.returncode == 0, output
    return output


def table_rows(text):
    """{(case title, variant): cells} of the markdown table in text."""
    rows, title = {}, None
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("| case "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        title = cells[0] or title
        rows[(title, cells[1])] = cells[2:]
    return rows


def interpreter_absent(case):
    """Whether this machine lacks the MicroPython a case runs on: the case
    then reports n/a.  Under CI=true it fails instead, as in
    tests/test_portable.py: CI installs micropython and builds the board
    profiles (`make test`)."""
    if case.board:
        found, install = bench.find_board_micropython(), "make boards"
    elif case.micropython:
        found, install = bench.find_micropython(), "pip install -r requirements-dev.txt"
    else:
        return False
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("%s needs a MicroPython this machine lacks: %s" % (case.name, install))
    return found is None


def check_table(text, cases):
    rows = table_rows(text)
    for case in cases:
        for variant in case.variants:
            matching = [cells for (title, name), cells in rows.items()
                        if title.startswith(case.title) and name == variant]
            assert matching, "no %s row for %s in:\n%s" % (variant, case.name, text)
            value = matching[0][0]
            if value.startswith("n/a") and interpreter_absent(case):
                continue  # reported, not run
            if case.name == "tcp_forking" and value.startswith("n/a") and not hasattr(os, "fork"):
                continue
            if variant == "stdlib" and value.startswith("n/a"):
                continue  # an interpreter without socketserver
            assert not value.startswith(("n/a", "no samples")), (case.name, variant, value)


def test_smoke_run_reports_every_case(tmp_path):
    output = smoke(tmp_path)
    check_table(output, bench.CASES)
    with open(os.path.join(str(tmp_path), "results.md")) as results:
        check_table(results.read(), bench.CASES)
    chart = ElementTree.parse(os.path.join(str(tmp_path), "results.svg")).getroot()
    assert chart.tag.endswith("svg")
    texts = " ".join(element.text or "" for element in chart.iter()
                     if element.tag.endswith("text"))
    for case in bench.CASES:
        assert (case.short in texts) != case.steps  # the steps are in the table only
    assert "1.0×" in texts


def rows_by_case(tmp_path, cases):
    """A smoke run of cases, its table checked: (case, {variant: cells})
    for each case this machine has the interpreter for."""
    output = smoke(tmp_path, "--cases", ",".join(case.name for case in cases))
    check_table(output, cases)
    rows = table_rows(output)
    return [(case, {variant: cells for (title, variant), cells in rows.items()
                    if title.startswith(case.title)})
            for case in cases if not interpreter_absent(case)]


def test_shutdown_latency_on_cpython_micropython_and_the_board_profiles(tmp_path):
    """Each shutdown case gives p50 and p99 per variant, their ratios to the
    bare loop, and whether socketse's p99 meets the 10 ms target."""
    cases = [case for case in bench.CASES if case.kind == "shutdown"]
    assert {case.name for case in cases} >= {"shutdown", "mp_shutdown", "board_shutdown_lwip",
                                              "board_shutdown_esp32"}
    for case, found in rows_by_case(tmp_path, cases):
        for variant, cells in found.items():
            value, bare_ratio, target = cells[0], cells[2], cells[-1]
            assert value.startswith("p50 ") and ", p99 " in value, (case.name, value)
            if variant != "bare":
                assert "(p50 " in bare_ratio, (case.name, variant, bare_ratio)
            if variant == "socketse":
                assert target.startswith("p99 < 10.0 ms ") and "n/a" not in target, target


def test_asyncio_is_a_peer_of_the_tcp_echo_cases(tmp_path):
    """asyncio.start_server serves the TCP echo cases beside socketse, on
    CPython and on the unix MicroPython: each socketse row has its ratio
    to asyncio and the issue's target (at least as fast), and the chart a
    bar for it."""
    cases = [case for case in bench.CASES if "asyncio" in case.variants]
    assert {case.name for case in cases} == {"tcp_sync", "tcp_threading", "mp_tcp_sync",
                                              "mp_tcp_threading"}
    for case, found in rows_by_case(tmp_path, cases):
        # cells: median, × stdlib, × bare, × asyncio, CPU, × stdlib, × bare, × asyncio, target
        assert found["asyncio"][3] == "1.00", (case.name, found["asyncio"])
        socketse = found["socketse"]
        assert float(socketse[3]) > 0, (case.name, socketse)
        assert "≥ 1× asyncio " in socketse[-1] and "n/a" not in socketse[-1], socketse
    chart = ElementTree.parse(os.path.join(str(tmp_path), "results.svg")).getroot()
    texts = [element.text for element in chart.iter() if element.tag.endswith("text")]
    assert texts.count("÷ asyncio") == len(cases), texts


def test_smoke_run_with_the_python_clients(tmp_path):
    """The load bench/clients.py makes itself, where there is no C compiler or wrk."""
    names = ["tcp_sync", "udp", "line", "http"]
    output = smoke(tmp_path, "--client", "python", "--cases", ",".join(names))
    check_table(output, [case for case in bench.CASES if case.name in names])
    assert "Python client processes" in output


@pytest.mark.parametrize("arguments", [["--cases", "nonsense"], ["--rounds", "0"],
                                       ["--duration", "1000"]])
def test_bad_arguments_are_refused(arguments):
    completed = subprocess.run([sys.executable, RUN] + arguments, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert completed.returncode == 2


def test_circuitpython_http_section(tmp_path):
    """socketse next to adafruit_httpserver on the CircuitPython profiles
    (bench/circuitpython_http.py): every server reports requests a second
    on both flavours, and the first flavour has a row per server and stall;
    socketse's handler ends each stalling client within its timeouts, the
    normal client gets the page, and socketse serves on afterwards."""
    from conftest import skip_or_fail_on_ci
    import circuitpython_http as section  # bench/circuitpython_http.py

    why = section.missing(section.find_circuitpython(), section.find_httpserver())
    if why:
        skip_or_fail_on_ci(why)
    output = smoke(tmp_path, "--cases", section.NAME)
    assert "## socketse and adafruit_httpserver on CircuitPython" in output, output
    text = output.split("## socketse and adafruit_httpserver on CircuitPython", 1)[1]
    throughput, stalls, flavour, kind = {}, {}, None, None
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("| flavour "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) == 9:  # flavour, server, idle CPU, then 3 cells per client count
            flavour = cells[0].split(" ")[0] or flavour
            throughput[(flavour, cells[1])] = cells
        elif len(cells) == 7:  # flavour, stall, server, then what happened
            flavour, kind = cells[0] or flavour, cells[1] or kind
            stalls[(flavour, kind, cells[2])] = cells
    for name, _, _ in section.FLAVOURS:
        for variant in section.VARIANTS:
            cells = throughput.get((name, variant))
            assert cells, "no %s row for %s in:\n%s" % (variant, name, text)
            for rate in (cells[3], cells[6]):
                assert float(rate.split()[0]) > 0, (name, variant, cells)
    first = section.FLAVOURS[0][0]
    for stall in section.STALLS:
        for variant in section.VARIANTS:
            assert (first, stall, variant) in stalls, (stall, variant, text)
        waited, seen, again = [stalls[(first, stall, "socketse")][i] for i in (3, 4, 6)]
        assert waited.endswith(" s") and not waited.startswith(("gave up", "failed")), waited
        assert "closed after" in seen, seen
        assert again.startswith("yes"), again


def test_instruction_counts_come_out_per_request():
    """bench/instructions.py (valgrind) gives each variant a count per request
    and the bare loop's count over it; socketse does more than a bare loop."""
    import shutil
    from conftest import skip_or_fail_on_ci
    if not shutil.which("valgrind"):
        skip_or_fail_on_ci("valgrind is not installed (apt install valgrind)")
    micropython = bench.find_micropython()
    if micropython is None:
        skip_or_fail_on_ci("no micropython: pip install -r requirements-dev.txt")
    completed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "instructions.py"), "--interpreter",
         micropython, "--cases", "udp", "--variants", "bare,socketse", "--requests", "50"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    output = completed.stdout.decode(errors="replace")
    assert completed.returncode == 0, output
    counts = {cells[1]: cells for cells in (
        [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for line in output.splitlines() if line.startswith("| udp "))}
    assert set(counts) == {"bare", "socketse"}, output
    assert counts["bare"][3] == "1.00", output
    assert 0 < float(counts["socketse"][3]) < 1, output
