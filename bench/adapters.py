"""Warm cost of each webhook adapter: verify + parse (normalize), no I/O.

Every sample body in events/bodies/<kind>/ is signed as its provider signs it and handed to
its adapter's ``verify`` and ``parse``, in a loop; the baseline is the least any receiver must
do with the same bytes: ``json.loads`` and one HMAC-SHA256 compared in constant time. Time per
request is the fastest of several short timed loops, alternated with the baseline's; memory is
tracemalloc's peak over one request.
"""

import hashlib
import hmac
import importlib
import json
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"survey": "survey_providers", "crm": "crm_providers", "billing": "billing_providers"}


def _settings():
    from nps_sync.core.settings import Settings

    parameters = json.loads((ROOT / "local" / "settings.json").read_text())["parameters"]
    return Settings.of(
        {
            "RECORDS_TABLE": "bench",
            "NPS_SYNC_SECRETS_FILE": str(ROOT / "local" / "dev-secrets.json"),
            "NPS_QUESTIONS": parameters["NpsQuestions"],
            "COMMENT_QUESTIONS": parameters["CommentQuestions"],
            "CRM_FIELDS": parameters.get("CrmFields", "{}"),
        }
    )


def _loops(fn, seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds``."""
    loops, start = 1, time.perf_counter()
    fn()
    while time.perf_counter() - start < seconds:
        loops *= 2
        start = time.perf_counter()
        for _ in range(loops):
            fn()
    return loops


def _timed(fn, loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def _per_call(fn, baseline, repeat: int = 15, seconds: float = 0.005) -> tuple[float, float]:
    """Seconds per call of ``fn`` and of ``baseline``: short loops of each, alternated, and
    the fastest of each kept (as timeit advises), so that other load on the machine, which
    only ever adds time, weighs on neither side more than the other."""
    fn_loops, base_loops = _loops(fn, seconds), _loops(baseline, seconds)
    fn_times, base_times = [], []
    for _ in range(repeat):
        fn_times.append(_timed(fn, fn_loops))
        base_times.append(_timed(baseline, base_loops))
    return min(fn_times), min(base_times)


def _peak(fn) -> int:
    fn()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def measure() -> list[dict]:
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
    from local.signer import signed_sample

    settings = _settings()
    rows = []
    for kind, package in KINDS.items():
        sys.path.insert(0, str(ROOT / "functions" / f"{kind}_webhook"))
        adapters = importlib.import_module(package).ADAPTERS
        for path in sorted((ROOT / "events" / "bodies" / kind).iterdir()):
            provider, creds, now, request = signed_sample(kind, path)
            if provider not in adapters:
                continue
            adapter, body = adapters[provider], request.body

            def work(adapter=adapter, request=request, creds=creds, now=now):
                adapter.verify(request, creds, now, settings)
                return adapter.parse(request, settings)

            try:
                records = len(work().records)
            except Exception as error:
                rows.append({"kind": kind, "body": path.name, "error": repr(error)[:120]})
                continue
            key = b"bench-secret"
            expected = hmac.new(key, body, hashlib.sha256).digest()
            loads = json.loads if path.suffix == ".json" else _xml

            def baseline(body=body, expected=expected, loads=loads, key=key):
                digest = hmac.new(key, body, hashlib.sha256).digest()
                hmac.compare_digest(digest, expected)
                return loads(body)

            us, base_us = (seconds * 1e6 for seconds in _per_call(work, baseline))
            peak, base_peak = _peak(work), _peak(baseline)
            rows.append(
                {
                    "kind": kind,
                    "body": path.name,
                    "bytes": len(body),
                    "records": records,
                    "us": us,
                    "baseline_us": base_us,
                    "ratio": us / base_us,
                    "peak_kb": peak / 1024,
                    "baseline_peak_kb": base_peak / 1024,
                    "memory_ratio": peak / max(1, base_peak),
                }
            )
    return rows


def _xml(body: bytes):
    import xml.etree.ElementTree as ET

    return ET.fromstring(body)  # noqa: S314


TARGET_RATIO = 3.0  # issue 17 item 4: verify + parse + normalize <= 3x json + hmac


def table(rows: list[dict]) -> str:
    """The rows as a markdown table, each ratio beside the target."""
    lines = [
        "| body | records | µs | json+hmac µs | ratio | peak KiB | memory ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        name = f"{row['kind']}/{row['body']}"
        if "error" in row:
            lines.append(f"| {name} | error: {row['error']} | | | | | |")
            continue
        mark = "✔" if row["ratio"] <= TARGET_RATIO else "✘"
        lines.append(
            f"| {name} | {row['records']} | {row['us']:.1f} | {row['baseline_us']:.1f} "
            f"| {row['ratio']:.2f}x {mark} | {row['peak_kb']:.1f} | {row['memory_ratio']:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
