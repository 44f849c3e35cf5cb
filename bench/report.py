"""The benchmark's report: a markdown table and an SVG bar chart of ratios.

Both take ``measured``, a list of (case, {variant: Result}) from
bench/run.py, and ``stamp``, what the run was made on.  The SVG is written
by hand: no plotting library.

Every ratio reads "higher is better for the row's variant": for throughput,
its requests per second over the other's; for shutdown() latency and
import time, the other's time over its own.  Throughput ratios are the
median, over the rounds, of the ratio within one round (the variants of a
round ran back to back), so a machine that drifts during the run moves
both sides of each ratio alike.
"""

import math
from xml.sax.saxutils import escape

REFERENCES = ("stdlib", "bare", "asyncio")
TIME_KINDS = ("shutdown", "import")


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def percentile(values, fraction):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def cpu_ratio(results, variant, reference):
    """The reference's server CPU time per request over the variant's: how
    many times less the variant costs, or None."""
    mine, theirs = results.get(variant), results.get(reference)
    if mine is None or theirs is None or not mine.ok() or not theirs.ok():
        return None
    pairs = [(a, b) for a, b in zip(mine.cpu, theirs.cpu) if a > 0]
    return median([b / a for a, b in pairs]) if pairs else None


def ratio(case, results, variant, reference, fraction=0.99):
    """How many times better `variant` does than `reference`, or None.
    shutdown() compares the percentile `fraction` of the latencies."""
    mine, theirs = results.get(variant), results.get(reference)
    if mine is None or theirs is None or not mine.ok() or not theirs.ok():
        return None
    if case.kind == "shutdown":
        ours = percentile(mine.samples, fraction)
        others = percentile(theirs.samples, fraction)
        return others / ours if ours > 0 else None
    if case.kind == "import":
        ours, others = median(mine.samples), median(theirs.samples)
        return others / ours if ours > 0 else None
    pairs = [(a, b) for a, b in zip(mine.samples, theirs.samples) if b > 0]
    return median([a / b for a, b in pairs]) if pairs else None


def milliseconds(seconds):
    value = seconds * 1000.0
    if value >= 100:
        return "%.0f ms" % value
    if value >= 10:
        return "%.1f ms" % value
    return "%.2f ms" % value


def value_cell(case, result):
    if result.unavailable:
        return "n/a: " + result.unavailable
    if not result.samples:
        return "no samples"
    if case.kind == "shutdown":
        text = "p50 %s, p99 %s (%d starts)" % (
            milliseconds(percentile(result.samples, 0.5)),
            milliseconds(percentile(result.samples, 0.99)), len(result.samples))
    elif case.kind == "import":
        count = len(result.modules or [])
        text = "%s, %d module%s added" % (milliseconds(median(result.samples)), count,
                                          "" if count == 1 else "s")
    else:
        text = "{:,.0f} {}".format(median(result.samples), case.unit)
    if result.errors:
        text += " (%d errors)" % result.errors
    return text


def target_checks(case, results):
    """[(description, met or None)] for the socketse variant."""
    checks = []
    for against, minimum in case.targets:
        if against == "max_p99":
            result = results.get("socketse")
            value = (percentile(result.samples, 0.99)
                     if result is not None and result.ok() else None)
            checks.append(("p99 < %s" % milliseconds(minimum),
                           None if value is None else value < minimum))
        else:
            value = ratio(case, results, "socketse", against)
            checks.append(("≥ %.2g× %s" % (minimum, against),
                           None if value is None else value >= minimum))
    return checks


def _ratio_text(value):
    return "%.0f" % value if value >= 100 else "%.2f" % value if value >= 0.1 else "%.2g" % value


def _mark(met):
    return "✅" if met else "❌" if met is not None else "n/a"


def stamp_line(stamp):
    settings = stamp["settings"]
    parts = ["Measured %s on %s, %s (%s cores)" % (stamp["date"], stamp["machine"],
                                                   stamp["cpu"], stamp["cores"]),
             "servers on %s" % stamp["interpreter"]]
    if stamp.get("micropython"):
        parts.append("mp_ cases on %s" % stamp["micropython"])
    if stamp.get("board_micropython"):
        parts.append("board_ cases on %s with the boards' lwIP socket layer" % stamp[
            "board_micropython"])
    parts.append("load by %s, HTTP by %s" % (stamp["client"], stamp["http_client"]))
    if stamp.get("busy") is not None:
        parts.append("%.0f%% of the CPU busy with other work before the run" % (
            100 * stamp["busy"]))
    parts.append("socketse.py at %s" % stamp["revision"])
    parts.append("%s mode: %d round(s) of %.2g s of load per variant" % (
        stamp["mode"], settings["rounds"], settings["duration"]))
    return "; ".join(parts) + "."


def markdown(measured, stamp):
    lines = ["# socketse benchmark", "", stamp_line(stamp), "",
             "| case | variant | median | × stdlib | × bare | × asyncio "
             "| server CPU per request | × stdlib | × bare | × asyncio | target (socketse) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    imports = []
    for case, results in measured:
        first = True
        for variant in case.variants:
            result = results[variant]
            title = case.title
            if case.kind not in TIME_KINDS:
                title += ", %d clients" % case.clients
            cells = [title if first else "", variant, value_cell(case, result)]
            for reference in REFERENCES:
                if reference == variant:
                    cells.append("1.00")
                    continue
                value = ratio(case, results, variant, reference)
                text = "" if value is None else _ratio_text(value)
                if case.kind == "shutdown" and value is not None:
                    middle = ratio(case, results, variant, reference, 0.5)
                    text += "" if middle is None else " (p50 %s)" % _ratio_text(middle)
                cells.append(text)
            if result.ok() and result.cpu:
                cells.append("%.1f µs" % (median(result.cpu) * 1e6))
                for reference in REFERENCES:
                    value = 1.0 if reference == variant else cpu_ratio(results, variant,
                                                                        reference)
                    cells.append("" if value is None else _ratio_text(value))
            else:
                cells += [""] * (1 + len(REFERENCES))
            if variant == "socketse":
                cells.append(", ".join("%s %s" % (text, _mark(met))
                                       for text, met in target_checks(case, results)))
            else:
                cells.append("")
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
            first = False
            if case.kind == "import" and result.ok():
                imports.append("%s: %s" % (variant, ", ".join(
                    "`%s`" % name for name in result.modules) or "none"))
    lines += ["",
              "Ratios: higher is better for the row's variant (its requests per second "
              "over the other's; for shutdown() and import, the other's time over its own; "
              "shutdown compares p99s, and p50s in brackets). Throughput ratios are the "
              "median over the rounds of the ratio within a round: the variants of a case "
              "serve at once and take the load in turn, A B C A B C. Each request is a new "
              "connection (UDP: one datagram each way), from client processes (or wrk's "
              "connections) that start a request as soon as their last one is done. Server "
              "CPU per request: the server process's CPU time (user and system, its threads "
              "and reaped children) during a round over the requests it served; its ratios "
              "are the other's over the row's (how many times less it costs). On a 2-core "
              "machine the clients and the kernel's TCP work take much of the CPU, which "
              "narrows the throughput ratios: the CPU ratios show the server's own cost. "
              "shutdown(): each start serves one request from a client in the server's own "
              "process, pauses 5 to 50 ms, then times shutdown() until the loop has ended. "
              "asyncio: asyncio.start_server() with its defaults and a coroutine per "
              "connection doing the same echo (read, write, drain, close), on the same "
              "interpreter as the row's case; a sync and a threading case each run it.",
              ]
    if imports:
        lines += ["", "Modules the import adds beyond `import socket`'s: " + "; ".join(imports)
                  + "."]
    lines += ["", "Rerun: `make bench` (or `python3 bench/run.py`; `--quick` for a "
              "shorter run, `--cases tcp_sync,udp` for some cases, `--interpreter pypy3` "
              "for another interpreter). Took %.0f s." % stamp["elapsed"], ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------

COLOURS = {"stdlib": "#4e79a7", "bare": "#f28e2b", "asyncio": "#59a14f"}
BAR_NAMES = {"stdlib": "÷ stdlib", "bare": "÷ bare loop", "asyncio": "÷ asyncio"}


def _text(x, y, text, size=12, anchor="start", weight="normal", fill="#222"):
    return ('<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" font-weight="%s" '
            'fill="%s">%s</text>' % (x, y, size, anchor, weight, fill, escape(text)))


def _wrap(text, width):
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = (line + " " + word).strip()
    if line:
        lines.append(line)
    return lines


def svg(measured, stamp):
    """A horizontal bar per ratio: socketse over the stdlib, over the bare
    loop and over asyncio for each case that has them, a dashed line at 1.0
    and a red mark at each target."""
    groups = []  # (label, [(reference, value, target)])
    for case, results in measured:
        if "socketse" not in case.variants or case.steps:
            continue
        targets = dict(case.targets)
        bars = [(reference, ratio(case, results, "socketse", reference), targets.get(reference))
                for reference in REFERENCES if reference in case.variants]
        groups.append((case.short, bars))
    finite = [value for _, bars in groups for _, value, _ in bars if value is not None]
    top = min(3.0, max([2.0] + [math.ceil(value * 2 + 0.2) / 2.0 for value in finite]))

    width, left, right = 860, 300, 800
    scale = (right - left) / top
    bar_height, bar_gap, group_gap = 14, 6, 14
    stamp_lines = _wrap(stamp_line(stamp), 125)
    head = [_text(20, 26, "socketse ÷ stdlib socketserver, ÷ bare socket loop, ÷ asyncio "
                  "(higher is better; 1.0: as fast)", 15, weight="bold")]
    for number, line in enumerate(stamp_lines):
        head.append(_text(20, 46 + 15 * number, line, 11, fill="#444"))
    axis_top = 46 + 15 * len(stamp_lines) + 12
    y = axis_top + 10
    body = []
    for label, bars in groups:
        body.append(_text(20, y + bar_height - 2, label, 12, weight="bold"))
        for reference, value, target in bars:
            name = BAR_NAMES[reference]
            body.append(_text(left - 8, y + bar_height - 3, name, 11, "end", fill="#555"))
            end = left
            if value is None:
                body.append(_text(left + 5, y + bar_height - 3, "n/a", 11, fill="#777"))
            else:
                shown = min(value, top)
                end = left + max(shown * scale, 1)
                body.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s">'
                            '<title>socketse %s: %.3f</title></rect>' % (
                                left, y, end - left, bar_height, COLOURS[reference],
                                escape(name), value))
                if value > top:  # a break: the bar goes on beyond the axis
                    x = end - 16
                    body.append('<path d="M%.1f %d l6 -%d M%.1f %d l6 -%d" stroke="white" '
                                'stroke-width="3"/>' % (x, y + bar_height + 1, bar_height + 2,
                                                        x + 5, y + bar_height + 1,
                                                        bar_height + 2))
            if target is not None and target <= top:
                x = left + target * scale
                body.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c00" '
                            'stroke-width="2"><title>target %.2f×</title></line>' % (
                                x, y - 3, x, y + bar_height + 3, target))
                if value is not None and x + 2 > end:
                    end = x + 2
            if value is not None:
                text = ("%.0f×" if value >= 100 else "%.2f×") % value
                if value > top:
                    body.append(_text(end - 24, y + bar_height - 3, text, 11, "end", "bold",
                                      "white"))
                else:
                    body.append(_text(end + 5, y + bar_height - 3, text, 11, weight="bold"))
            y += bar_height + bar_gap
        y += group_gap
    axis_bottom = y - group_gap + 4
    grid = []
    tick = 0.0
    while tick <= top + 1e-9:
        x = left + tick * scale
        colour, dash = ("#333", ' stroke-dasharray="5,3"') if tick == 1.0 else ("#ddd", "")
        grid.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"%s/>' % (
            x, axis_top, x, axis_bottom, colour, dash))
        grid.append(_text(x, axis_bottom + 14, "%.1f×" % tick, 11, "middle", fill="#555"))
        tick += 0.5
    legend_y = axis_bottom + 38
    legend = [
        '<rect x="20" y="%d" width="12" height="12" fill="%s"/>' % (legend_y - 10,
                                                                  COLOURS["stdlib"]),
        _text(36, legend_y, "socketse ÷ the stdlib's socketserver", 11),
        '<rect x="250" y="%d" width="12" height="12" fill="%s"/>' % (legend_y - 10,
                                                                   COLOURS["bare"]),
        _text(266, legend_y, "socketse ÷ a bare socket loop by hand", 11),
        '<rect x="480" y="%d" width="12" height="12" fill="%s"/>' % (legend_y - 10,
                                                                   COLOURS["asyncio"]),
        _text(496, legend_y, "socketse ÷ asyncio.start_server", 11),
        '<line x1="700" y1="%d" x2="700" y2="%d" stroke="#c00" stroke-width="2"/>' % (
            legend_y - 11, legend_y + 3),
        _text(706, legend_y, "target", 11),
    ]
    notes = ("Throughput: requests per second, median over the rounds of the ratio within a "
             "round. shutdown(): p99 latency, the other's over socketse's. Import: time, "
             "likewise. Bars past %.1f× are cut; their label gives the value." % top)
    for number, line in enumerate(_wrap(notes, 135)):
        legend.append(_text(20, legend_y + 20 + 14 * number, line, 10, fill="#555"))
    height = legend_y + 20 + 14 * len(_wrap(notes, 135)) + 6
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" font-family="DejaVu Sans, Verdana, sans-serif">' % (
                 width, height, width, height),
             '<rect width="100%" height="100%" fill="white"/>']
    parts += head + grid + body + legend
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
