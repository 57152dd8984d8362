"""Latency figures and the printed tables of the benchmarks."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(values: Iterable[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": _round(percentile(ordered, 50)),
        "p90": _round(percentile(ordered, 90)),
        "p99": _round(percentile(ordered, 99)),
        "max": _round(ordered[-1] if ordered else None),
        "mean": _round(sum(ordered) / len(ordered) if ordered else None),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def load_report(outcomes: Sequence[object], wall_s: float, slow_ms: float) -> dict[str, object]:
    """Totals and per-kind figures of a load replay (outcomes: replay.Outcome)."""
    kinds: dict[str, list] = {}
    for outcome in outcomes:
        kinds.setdefault(outcome.kind, []).append(outcome)  # type: ignore[attr-defined]
    by_kind = {}
    for kind, items in kinds.items():
        timed = [o.ms for o in items if o.ms is not None]
        by_kind[kind] = {
            "requests": len(items),
            "failed": sum(not o.ok for o in items),
            "slow_over_300ms": sum(ms > slow_ms for ms in timed),
            "latency_ms": latency_summary(timed),
            "failures": dict(Counter(str(o.status) for o in items if not o.ok)),
        }
    timed_all = [o.ms for o in outcomes if o.ms is not None]  # type: ignore[attr-defined]
    failed = sum(not o.ok for o in outcomes)  # type: ignore[attr-defined]
    return {
        "requests": len(outcomes),
        "ok": len(outcomes) - failed,
        "failed": failed,
        "slow_over_300ms": sum(ms > slow_ms for ms in timed_all),
        "wall_s": round(wall_s, 3),
        "throughput_rps": round(len(outcomes) / wall_s, 1) if wall_s else None,
        "latency_ms": latency_summary(timed_all),
        "by_kind": by_kind,
    }


def _cell(value: object, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float):
        return f"{value:.2f}".rjust(width)
    return str(value).rjust(width)


def format_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = [list(row) for row in rows]
    widths = [max(len(str(h)), *(len(_cell(r[i], 0).strip()) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    pairs = enumerate(zip(header, widths, strict=True))
    lines = ["  ".join(str(h).rjust(w) if i else str(h).ljust(w) for i, (h, w) in pairs)]
    lines.append("-" * len(lines[0]))
    for row in rows:
        cells = enumerate(zip(row, widths, strict=True))
        lines.append("  ".join(_cell(v, w) if i else str(v).ljust(w) for i, (v, w) in cells))
    return "\n".join(lines)


def format_load_report(report: dict) -> str:
    header = ["kind", "requests", "failed", ">300ms", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    rows = []
    for kind, figures in sorted(report["by_kind"].items()):
        lat = figures["latency_ms"]
        rows.append([kind, figures["requests"], figures["failed"], figures["slow_over_300ms"],
                     lat["p50"], lat["p90"], lat["p99"], lat["max"]])
    lat = report["latency_ms"]
    rows.append(["all", report["requests"], report["failed"], report["slow_over_300ms"],
                 lat["p50"], lat["p90"], lat["p99"], lat["max"]])
    lines = [format_table(header, rows), ""]
    lines.append(f"throughput {report['throughput_rps']} req/s ({report['requests']} requests in "
                 f"{report['wall_s']} s, {report['concurrency']} in flight)")
    cpu = report.get("cpu")
    if cpu:
        lines.append(f"CPU per request: server {cpu['server_ms_per_request']} ms (app {cpu['app_ms_per_request']}"
                     f" + PostgreSQL {cpu['db_ms_per_request']}), this client {cpu['client_ms_per_request']} ms;"
                     f" machine busy {cpu['machine_busy_pct']} %")
        lines.append(f"app CPU per unit of this client's CPU: {cpu['app_per_client_cpu']}"
                     " (compare runs by this: the client is the control)")
    failures = {k: v["failures"] for k, v in report["by_kind"].items() if v["failures"]}
    if failures:
        lines.append(f"failures: {failures}")
    return "\n".join(lines)
