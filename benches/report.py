#!/usr/bin/env python3
"""Renders the load generator's JSON results into the tables of BENCHMARKS.md.

    python3 benches/report.py benches/results BENCHMARKS.md

Only the part between `<!-- results:begin -->` and `<!-- results:end -->` is replaced (the
markers are appended when missing), so the method and findings written around it stay.
"""

import json
import pathlib
import re
import sys

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def load(results: pathlib.Path) -> dict:
    runs = {}
    for path in sorted(results.glob("*.json")):
        try:
            runs[path.stem] = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            runs[path.stem] = None  # a run that crashed or was cut off
    return runs


def machine(results: pathlib.Path, name: str = "machine.env") -> dict:
    env = {}
    path = results / name
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
    return env


def num(value, digits=1):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def clear_p99(r: dict):
    """Delivery p99 without the events in flight during a machine freeze, if measured."""
    return (r.get("delivery_outside_freezes") or {}).get("p99_ms")


def freezes(r: dict) -> str:
    f = r.get("freezes")
    if not f:
        return "–"
    if f["count"] == 0:
        return "0"
    return f"{f['count']} ({f['total_ms'] / 1000:.1f} s)"


def row(r: dict) -> str:
    srv = r.get("server") or {}
    lost = r["lost"]
    lost_pct = 100.0 * lost / r["expected"] if r["expected"] else 0.0
    lost_text = f"{lost:,}" if lost == 0 else f"{lost:,} ({lost_pct:.1f} %)"
    cells = [
        r["label"],
        # Reports from before the load generator had --transport were all WebSocket-only.
        r.get("transport", "websocket"),
        num(r["clients"]),
        num(r["rate"], 0),
        num(r["delivery"]["p50_ms"]),
        num(r["delivery"]["p99_ms"]),
        num(clear_p99(r)),
        freezes(r),
        num(r["delivery"]["p999_ms"]),
        num(r["delivery"]["max_ms"]),
        lost_text,
        num(r["delivered_per_s"], 0),
        num(srv.get("cpu_cores"), 2),
        num(srv.get("cpu_us_per_event"), 2),
        num(srv.get("rss_per_conn_kib"), 1),
        num(r["connect"]["p99_ms"]),
        num(r["ramp_s"], 1),
        num(r["rest"]["p99_ms"]),
        num(r.get("loadgen_cpu_cores"), 2),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| server | transport | clients | updates/s | p50 ms | p99 ms | p99 ms outside freezes | host freezes "
    "| p99.9 ms | max ms | lost | events/s "
    "| server CPU (cores) | CPU µs/event | RSS KiB/conn | connect p99 ms | ramp s "
    "| REST p99 ms | loadgen CPU (cores) |\n"
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
)


def rss(r):
    """RSS per connection of a run, or None when the run or its server figures are missing."""
    return ((r or {}).get("server") or {}).get("rss_per_conn_kib")


def verdict(ok) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def targets(runs: dict) -> list:
    tw5, node5 = runs.get("taskwire-10000-5"), runs.get("node-10000-5")
    tw20, node20 = runs.get("taskwire-10000-20"), runs.get("node-10000-20")
    rest = runs.get("rest-taskwire-10000-200")
    lines = ["| target | taskwire | reference | met |", "|---|--:|--:|:-:|"]

    def cpu(r):
        return (r or {}).get("server", {}) and r["server"]["cpu_us_per_event"]

    if tw5 and node5:
        p, n = tw5["delivery"]["p99_ms"], node5["delivery"]["p99_ms"]
        lines.append(f"| 10 000 × 5/s: p99 ≤ ½ Node's | {p:,.1f} ms | ½ × {n:,.1f} = {n / 2:,.1f} ms | {verdict(p <= n / 2)} |")
    if tw5:
        p = tw5["delivery"]["p99_ms"]
        lines.append(f"| 10 000 × 5/s: p99 ≤ 200 ms | {p:,.1f} ms | 200 ms | {verdict(p <= 200)} |")
        c = clear_p99(tw5)
        if c is not None:
            lines.append(f"| 10 000 × 5/s: p99 ≤ 200 ms, outside host freezes | {c:,.1f} ms | 200 ms | {verdict(c <= 200)} |")
    if tw20:
        lines.append(f"| 10 000 × 20/s: zero loss | {tw20['lost']:,} lost | 0 | {verdict(tw20['lost'] == 0)} |")
        p = tw20["delivery"]["p99_ms"]
        lines.append(f"| 10 000 × 20/s: p99 ≤ 400 ms | {p:,.1f} ms | 400 ms | {verdict(p <= 400)} |")
        c = clear_p99(tw20)
        if c is not None:
            lines.append(f"| 10 000 × 20/s: p99 ≤ 400 ms, outside host freezes | {c:,.1f} ms | 400 ms | {verdict(c <= 400)} |")
    if tw20 and node20 and cpu(tw20) and cpu(node20):
        t, n = cpu(tw20), cpu(node20)
        lines.append(f"| 10 000 × 20/s: CPU/event ≤ 0.45 × Node's | {t:.2f} µs | 0.45 × {n:.2f} = {0.45 * n:.2f} µs | {verdict(t <= 0.45 * n)} |")
    if tw5 and node5 and rss(tw5) and rss(node5):
        t, n = rss(tw5), rss(node5)
        lines.append(f"| RSS/conn ≤ ½ Node's (10 000 clients) | {t:.1f} KiB | ½ × {n:.1f} = {n / 2:.1f} KiB | {verdict(t <= n / 2)} |")
    all_runs = [r for k, r in runs.items() if r and k.startswith("taskwire-")]
    if all_runs:
        lost = sum(r["lost"] for r in all_runs)
        lines.append(f"| zero loss at every N and rate | {lost:,} lost | 0 | {verdict(lost == 0)} |")
    if rest:
        p = rest["rest"]["p99_ms"]
        lines.append(f"| REST p99 < 10 ms at 200 updates/s, 10 000 clients, SQLite | {p:,.1f} ms | 10 ms | {verdict(p < 10)} |")
        c = (rest.get("rest_outside_freezes") or {}).get("p99_ms")
        if c is not None:
            lines.append(f"| REST p99 < 10 ms at 200 updates/s, 10 000 clients, SQLite, outside host freezes | {c:,.1f} ms | 10 ms | {verdict(c < 10)} |")
    return lines


def transport_targets(runs: dict) -> list:
    """The targets for clients on the default transports, from the --transports sitting."""
    ws5 = runs.get("transports-taskwire-websocket-10000-5")
    up5 = runs.get("transports-taskwire-upgrade-10000-5")
    up20 = runs.get("transports-taskwire-upgrade-10000-20")
    lines = ["| target | upgrade | reference | met |", "|---|--:|--:|:-:|"]

    if up5 and ws5:
        p, w = up5["delivery"]["p99_ms"], ws5["delivery"]["p99_ms"]
        lines.append(f"| 10 000 × 5/s: p99 ≤ 1.15 × WebSocket-only | {p:,.1f} ms | 1.15 × {w:,.1f} = {1.15 * w:,.1f} ms | {verdict(p <= 1.15 * w)} |")
    if up5:
        p = up5["delivery"]["p99_ms"]
        lines.append(f"| 10 000 × 5/s: p99 ≤ 200 ms | {p:,.1f} ms | 200 ms | {verdict(p <= 200)} |")
        lines.append(f"| 10 000 × 5/s: zero loss | {up5['lost']:,} lost | 0 | {verdict(up5['lost'] == 0)} |")
    if up20:
        lines.append(f"| 10 000 × 20/s: zero loss | {up20['lost']:,} lost | 0 | {verdict(up20['lost'] == 0)} |")
        p = up20["delivery"]["p99_ms"]
        lines.append(f"| 10 000 × 20/s: p99 ≤ 400 ms | {p:,.1f} ms | 400 ms | {verdict(p <= 400)} |")
    if rss(up5) and rss(ws5):
        u, w = rss(up5), rss(ws5)
        lines.append(f"| RSS/conn ≤ 1.1 × WebSocket-only | {u:.1f} KiB | 1.1 × {w:.1f} = {1.1 * w:.1f} KiB | {verdict(u <= 1.1 * w)} |")
        lines.append(f"| stretch: RSS/conn ≤ 5 KiB, both transports | {u:.1f} / {w:.1f} KiB | 5 KiB | {verdict(max(u, w) <= 5)} |")
    return lines if len(lines) > 2 else []


def conditions(env: dict) -> str:
    return (
        f"Measured {env.get('date', '?')} on {env.get('cpu', '?')}, {env.get('memory', '?')} "
        f"memory, Linux {env.get('kernel', '?')}; {env.get('rustc', '?')}, Node "
        f"{env.get('node', '?')}, socket.io {env.get('socketio', '?')}. Open files: soft limit "
        f"{env.get('nofile_before', '?')} before, raised to {env.get('nofile_after', '?')}. "
        f"Priority: nice {env.get('nice', '?')}, autogroup {env.get('autogroup', '?')}. "
        f"Idle CPUs kept awake: {'yes' if env.get('kept_awake') == '1' else 'no'}. "
        f"Load average {env.get('load_before', '?')} before the runs, "
        f"{env.get('load_after', '?')} after."
    )


def section(title: str, env: dict) -> list:
    """A results section's heading, with its own conditions when it was measured apart."""
    lines = ["", f"### {title}", ""]
    if env:
        lines += [conditions(env), ""]
    return lines


def render(runs: dict, env: dict, ceiling_env: dict, repeats_env: dict, transports_env: dict) -> str:
    out = [BEGIN, ""]
    out.append(conditions(env))
    out.append("")
    out.append("### Targets at 10 000 clients")
    out.append("")
    out.extend(targets(runs))
    out.append("")
    out.append("### Fan-out by clients and update rate")
    out.append("")
    out.append(HEADER)

    def key(name):
        m = re.match(r"(taskwire|node)(?:-(upgrade))?-(\d+)-(\d+)$", name)
        if not m:
            return None
        return (int(m.group(3)), int(m.group(4)), m.group(1) != "taskwire", m.group(2) or "")

    main = sorted((k for k in runs if key(k)), key=key)
    for name in main:
        if runs[name]:
            out.append(row(runs[name]))
        else:
            out.append(f"| {name}: no result (the run failed) |")
    sitting = sorted(
        (k for k in runs if k.startswith("transports-")),
        key=lambda k: (int(k.split("-")[4]), k.split("-")[1] != "taskwire", k.split("-")[2] != "websocket"),
    )
    if sitting:
        out.extend(section("Transports side by side, 10 000 clients, one sitting (`benches/run.sh --transports`)", transports_env))
        out.extend(transport_targets(runs))
        out.append("")
        out.append(HEADER)
        for k in sitting:
            out.append(row(runs[k]) if runs[k] else f"| {k}: no result (the run failed) |")
    rest = [k for k in runs if k.startswith("rest-")]
    if rest:
        out.append("")
        out.append("### REST updates while 10 000 clients listen (taskwire on SQLite)")
        out.append("")
        out.append(HEADER)
        out.extend(row(runs[k]) for k in rest if runs[k])
        for k in rest:
            r = runs[k]
            if r:
                out.append("")
                out.append(
                    f"REST latency over {r['rest_sent']:,} PATCHes: p50 {r['rest']['p50_ms']:.1f} ms, "
                    f"p90 {r['rest']['p90_ms']:.1f} ms, p99 {r['rest']['p99_ms']:.1f} ms, "
                    f"p99.9 {r['rest']['p999_ms']:.1f} ms, max {r['rest']['max_ms']:.1f} ms; "
                    f"{r['rest_errors']} errors."
                    + (
                        f" Without the {r['rest_sent'] - r['rest_outside_freezes']['count']:,} requests in flight "
                        f"during a host freeze: p50 {r['rest_outside_freezes']['p50_ms']:.1f} ms, "
                        f"p99 {r['rest_outside_freezes']['p99_ms']:.1f} ms, max {r['rest_outside_freezes']['max_ms']:.1f} ms."
                        if r.get("rest_outside_freezes")
                        else ""
                    )
                )
    repeats = sorted(
        (k for k in runs if k.startswith("repeat-")),
        key=lambda k: tuple(int(part) for part in k.split("-")[2:]),
    )
    if repeats:
        out.extend(section("Repeats (taskwire, same build and settings, `benches/run.sh --repeats`)", repeats_env))
        out.append(HEADER)
        for k in repeats:
            out.append(row(runs[k]) if runs[k] else f"| {k}: no result (the run failed) |")
    ceiling = sorted(
        (k for k in runs if k.startswith("ceiling-")),
        key=lambda k: (k.split("-")[1], int(k.split("-")[3]), int(k.split("-")[4])),
    )
    if ceiling:
        out.extend(section("Ceiling search (taskwire; pass = no loss and p99 < 250 ms)", ceiling_env))
        head, rule = HEADER.split("\n")
        out.append(head + " pass |\n" + rule + ":-:|")
        for k in ceiling:
            r = runs[k]
            if not r:
                out.append(f"| {k}: no result |")
                continue
            ok = r["lost"] == 0 and r["duplicates"] == 0 and r["delivery"]["p99_ms"] < 250
            out.append(row(r) + f" {verdict(ok)} |")
    out.append("")
    out.append(END)
    return "\n".join(out)


def main() -> None:
    results, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    block = render(
        load(results),
        machine(results),
        machine(results, "machine-ceiling.env"),
        machine(results, "machine-repeats.env"),
        machine(results, "machine-transports.env"),
    )
    text = target.read_text() if target.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text + ("\n" if text else "") + block + "\n"
    target.write_text(text)


if __name__ == "__main__":
    main()
