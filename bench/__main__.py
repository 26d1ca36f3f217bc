"""``make bench`` (``python -m bench``): every figure side by side, from one run.

Prints the table, writes it to bench/results.md and regenerates docs/cost.md. Cold starts,
adapters and reconcile (bench/reconcile.py) run first, alone (they time CPU); the DynamoDB
scenarios then run two at a time, each in a fresh process (they count, so sharing the CPU does
not change them).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WITH_ACCOUNT = "overall,plan,account,region,channel,survey"  # account counted on write

SCENARIOS = {  # name: (role, total, batch, window, dimensions)
    "batch-1": ("batch", 50, 1, None, None),
    "batch-10": ("batch", 200, 10, None, None),
    "batch-100": ("batch", 1000, 100, None, None),
    "account-on-write": ("variant", 500, 100, None, WITH_ACCOUNT),
    "scale-1e4": ("scale", 10_000, 100, 200, None),
    "scale-1e5": ("scale", 100_000, 100, 200, None),
    "scale-1e6": ("scale", 1_000_000, 100, 200, None),
}
FULL_ONLY = ("scale-1e6",)
RECONCILE_TOTAL = 10_000  # the largest that keeps bench.reconcile near a minute under moto


def reconcile_run(total: int = RECONCILE_TOTAL) -> dict:
    """bench.reconcile in a fresh process: a report-only pass over ``total`` responses."""
    command = [sys.executable, "-m", "bench.reconcile", "--total", str(total)]
    out = subprocess.run(  # noqa: S603 - our own module
        command, cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith('{"total"')]
    if not lines:
        raise RuntimeError(f"bench.reconcile failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}"
    )


def scenario(name: str) -> dict:
    role, total, batch, window, dimensions = SCENARIOS[name]
    command = [sys.executable, "-m", "bench.dynamo_cost", "--total", str(total)]
    command += ["--batch", str(batch)]
    if window:
        command += ["--window", str(window)]
    if dimensions:
        command += ["--dimensions", dimensions]
    started = time.perf_counter()
    out = subprocess.run(  # noqa: S603 - our own module
        command, cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith('{"total"')]
    if not lines:
        raise RuntimeError(f"scenario {name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1])
    result.update(name=name, role=role, seconds=time.perf_counter() - started)
    return result


def _sum(tree: dict, phase: str, kinds=None) -> float:
    return sum(v for k, v in tree.get(phase, {}).items() if kinds is None or k in kinds)


def render(info: dict) -> str:
    out = [
        f"# Benchmark results\n\nRun {info['date']} on {info['machine']}; `make bench` "
        f"took {info['seconds']:.0f} s. Regenerate with `make bench`.\n"
    ]
    cold = info["coldstart"]
    out.append(
        "## Cold start (import + first invoke, fresh process, median of "
        f"{next(iter(cold.values()))['samples']} samples; each function with its own "
        "environment from template.yaml, so the webhook receivers start without the X-Ray SDK, "
        "docs/decisions.md)\n"
    )
    out.append("| function | init ms | first invoke ms | total ms | x baseline | answer |")
    out.append("|---|---:|---:|---:|---:|---|")
    for name, v in cold.items():
        out.append(
            f"| {name} | {v['init_ms']:.0f} | {v['invoke_ms']:.0f} | {v['total_ms']:.0f} | "
            f"{v['ratio']:.2f} | {v['status']} |"
        )
    out.append(
        "\nTarget ≤ 1.3x for webhook functions. Where SurveyWebhookFunction's import "
        "time goes (`python -X importtime`, cumulative ms):\n"
    )
    out.append("| module | ms |\n|---|---:|")
    out.extend(f"| {name} | {ms:.0f} |" for name, ms in info["importtime"])
    out.append("\n## Adapters, warm (verify + parse + normalize, no I/O)\n")
    out.append("| body | bytes | records | µs | baseline µs | x | peak KB | baseline KB | x |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in info["adapters"]:
        if "error" in r:
            out.append(f"| {r['kind']}/{r['body']} | error: {r['error']} |||||||")
            continue
        out.append(
            f"| {r['kind']}/{r['body']} | {r['bytes']} | {r['records']} | {r['us']:.1f} | "
            f"{r['baseline_us']:.1f} | {r['ratio']:.1f} | {r['peak_kb']:.1f} | "
            f"{r['baseline_peak_kb']:.1f} | {r['memory_ratio']:.1f} |"
        )
    out.append(
        "\nBaseline: `hmac.new(key, body, sha256)` + `compare_digest` + `json.loads` "
        "(ElementTree for the XML body).\n"
    )
    out.append("## DynamoDB per ingested response (counted at the botocore layer)\n")
    out.append(
        "Real-time traffic: each stream batch's responses were submitted within the same hour; "
        "batches walk through one year; ~4 responses per customer, a third as many accounts, "
        "4 plans, 4 regions, 3 channels, 3 surveys, scores 0-10; dimensions counted on write: "
        "overall, plan, region, channel, survey, score (x 6 granularities), account answered "
        "on read. Customers' profiles (with billing) and identity links exist before their "
        "responses. Write units per response, by what they write:\n"
    )
    out.append(
        "- record: the response item (its conditional put is the idempotency check: a "
        "re-delivery writes nothing); raw: the compressed raw payload item (TTL);\n"
        "- index: every index entry the writes add, change or remove (by_customer, by_account, "
        "recent_detractors, at_risk_*);\n"
        "- NPS aggregates: the counter items of AggregatesTable and segment stamps on responses; "
        "outcomes: the revenue-outcome counters and the derived outcome state on PROFILE "
        "items.\n"
    )
    out.append(
        "| scenario | responses (measured) | batch | record WCU | raw WCU | index WCU "
        "| NPS aggregate WCU | outcome WCU | RCU | events | receiver calls | aggregator calls "
        "| s |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in info["scenarios"].values():
        n = s["measured"]
        label = s["name"] + (" (account counted on write)" if s["role"] == "variant" else "")
        out.append(
            f"| {label} | {s['total']:,} ({n}) | {s['mean_batch']:.0f} | "
            f"{_sum(s['wcu'], 'receiver', {'response', 'link', 'profile'}) / n:.2f} | "
            f"{_sum(s['wcu'], 'receiver', {'raw', 'idempotency'}) / n:.2f} | "
            f"{sum(_sum(s['gsi_wcu'], p) for p in ('receiver', 'aggregator')) / n:.2f} | "
            f"{_sum(s['wcu'], 'aggregator', {'aggregate', 'response'}) / n:.2f} | "
            f"{_sum(s['wcu'], 'aggregator', {'outcome', 'profile'}) / n:.2f} | "
            f"{sum(_sum(s['rcu'], p) for p in ('receiver', 'aggregator')) / n:.2f} | "
            f"{sum(v for k, v in s.get('entries', {}).items() if ':events:' in k) / n:.2f} | "
            f"{sum(s['calls']['receiver'].values()) / n:.2f} | "
            f"{sum(s['calls']['aggregator'].values()) / n:.2f} | "
            f"{s['seconds']:.0f} |"
        )
    out.append("\nCalls per response, by operation:\n")
    for s in info["scenarios"].values():
        n = s["measured"]
        ops = {
            f"{p}/{k}": v / n for p in ("receiver", "aggregator") for k, v in s["calls"][p].items()
        }
        out.append(f"- {s['name']}: " + ", ".join(f"{k} {v:.2f}" for k, v in ops.items()))
    out.append("\n`GET /nps` (overall, daily, 2025-01-01..2025-12-31) after each scenario:\n")
    for s in info["scenarios"].values():
        a = s.get("api", {})
        out.append(
            f"- {s['name']}: HTTP {a.get('status')}, {a.get('buckets')} buckets, "
            f"{a.get('dynamodb_calls')} DynamoDB call(s) {a.get('calls')}, {a.get('rcu')} RCU"
        )
    out.append(
        "\nScale rows: the first N - 200 responses were written straight into the emulator "
        "(response items with their stamps and the aggregates they sum to; raw payloads "
        "left out), the last 200 went through the functions: the per-response figures at "
        "that table size. moto answers index Queries from an index of its own "
        "(local/moto_speed.py), so the run measures the pipeline, not moto's table walks.\n"
    )
    if info.get("reconcile"):
        out.append(render_reconcile(info["reconcile"]))
    out.append("## Cost\n\nSee docs/cost.md (generated by the same run).\n")
    return "\n".join(out)


def render_reconcile(r: dict) -> str:
    reads = r.get("reads", {})
    table = [
        f"| {name} | {v['calls']:,} | {v['scanned'] or v['items']:,} | {v['items']:,} "
        f"| {v['bytes']:,} | {v['raw_items']:,} |"
        for name, v in sorted(reads.items())
    ]
    return "\n".join(
        [
            '## Reconcile (bench/reconcile.py; docs/aggregation.md "How long")\n',
            f"One report-only pass over {r['responses']:,} responses ({r['customers']:,} "
            f"customers, {r['profiles']:,} of them billing, a 1 KB raw payload item per "
            f"response) under moto: {r['seconds']:.1f} s, {r['per_second']:.0f} responses/s "
            "(moto's Scans walk and sort the whole index for every page: that is most of "
            "it).\n",
            "What it read, every DynamoDB call counted: no raw payload item, no Scan of "
            f"RecordsTable itself (items a table Scan passed over: {r['table_scanned']:,}; "
            f"raw payload items read: {r['raw_items_read']:,}); the PROFILEs by key.\n",
            "| call | calls | items passed over | items returned | bytes returned | raw payloads |",
            "|---|---:|---:|---:|---:|---:|",
            *table,
            "",
            "| per response | this machine |\n|---|---:|",
            f"| botocore parsing its projected item, µs | {r['parse_us']:.0f} |",
            f"| reconcile's fold (counters, stamp, outcome answers), µs | {r['fold_us']:.0f} |",
            f"| projected item read, bytes | {r['projected_bytes']:.0f} |",
            f"| whole item in by_customer (billed), bytes | {r['item_bytes']:.0f} |",
            "",
            "Per million responses on DynamoDB, extrapolated (4 segments at an assumed 10 MB/s "
            "each, 1 MB pages, reads overlapping the fold; PROFILEs by BatchGetItem of 100, 4 "
            "in flight, an assumed 50 ms each, holding up the fold):\n",
            f"- fold CPU {r['cpu_s']:.0f} s here ({r['cpu_lambda_s']:.0f} s on the "
            f"1,024 MB ReconcileFunction), by_customer reads {r['index_read_s']:.0f} s, "
            f"{r['profiles_per_million']:,.0f} PROFILEs read by key {r['profile_read_s']:.0f} s;",
            f"- **{r['per_million_s']:.0f} s per million responses here, "
            f"{r['per_million_lambda_s']:.0f} s in the Lambda** (900 s timeout: "
            f"~{900 / r['per_million_lambda_s']:.1f} million responses per run);",
            f"- reads: {r['index_rcu']:,.0f} RCU (by_customer, eventually consistent) + "
            f"{r['profile_rcu']:,.0f} RCU (PROFILEs, consistent BatchGetItem) per pass; the "
            f"Scan of the whole table that read the PROFILEs before: "
            f"{r['table_scan_rcu_before']:,.0f} RCU, raw payloads included.\n",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument(
        "--skip", nargs="*", default=[], help="scenario names (or reconcile) to leave out"
    )
    parser.add_argument("--full", action="store_true", help="also 10^6 responses")
    args = parser.parse_args()
    if not args.full:
        args.skip.extend(FULL_ONLY)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    started = time.perf_counter()
    from bench import adapters, coldstart, cost_model

    print("cold starts ...", file=sys.stderr, flush=True)
    cold = coldstart.measure(args.samples)
    profile = coldstart.import_profile()
    print("adapters ...", file=sys.stderr, flush=True)
    adapter_rows = adapters.measure()
    names = [n for n in SCENARIOS if n not in args.skip]
    print(f"DynamoDB scenarios: {', '.join(names)} ...", file=sys.stderr, flush=True)
    reconcile_result = None
    if "reconcile" not in args.skip:  # alone too: it times CPU
        print("reconcile ...", file=sys.stderr, flush=True)
        reconcile_result = reconcile_run()
    with ThreadPoolExecutor(max_workers=2) as pool:
        ordered = sorted(names, key=lambda n: -SCENARIOS[n][1])  # longest first
        results = dict(zip(ordered, pool.map(scenario, ordered), strict=True))
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    info = {
        "date": date,
        "machine": machine(),
        "coldstart": cold,
        "importtime": profile,
        "adapters": adapter_rows,
        "scenarios": {n: results[n] for n in names},
        "reconcile": reconcile_result,
        "seconds": time.perf_counter() - started,
    }
    text = render(info)
    (ROOT / "bench" / "results.md").write_text(text + "\n")
    (ROOT / "bench" / "results.json").write_text(json.dumps(info, indent=1, default=str))
    cost = ROOT / "docs" / "cost.md"
    kept = cost.read_text().partition(cost_model.HAND_WRITTEN)[2] if cost.exists() else ""
    generated = cost_model.render(info["scenarios"], date).rstrip("\n")
    cost.write_text(generated + "\n\n" + cost_model.HAND_WRITTEN + kept)
    print(text)
    print("\n" + (ROOT / "docs" / "cost.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
