"""``python -m local.load`` (``make load``): webhooks under load, and nothing lost.

Starts the local runtime (SEED=0) on 127.0.0.1, or uses one given with --url and --aws; ~20
senders post a few thousand signed webhooks of several providers, some of them twice; then,
once the stream has drained, every accepted webhook must be stored exactly once and reconcile
must find no difference (aggregates, segment stamps and revenue outcomes). Prints throughput
and p50/p99 latency. Loopback traffic only.
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .signer import signed_headers

ROOT = Path(__file__).resolve().parent.parent
BODIES = ROOT / "events" / "bodies"


def start_runtime() -> tuple[subprocess.Popen, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PORT="0", SEED="0", PYTHONUNBUFFERED="1", LOCAL_LOG_LEVEL="WARNING")
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = aws = ""
    deadline = time.monotonic() + 60
    for line in process.stdout:
        if line.startswith("AWS "):
            aws = line.split()[1]
        if line.startswith("READY "):
            url = line.split()[1]
            break
        if time.monotonic() > deadline:
            break
    if not (url and aws):
        process.kill()
        raise SystemExit("the local runtime did not start")
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, url, aws


def webhooks(count: int, rng: random.Random) -> list[tuple[str, str, bytes, str]]:
    """(kind, provider, body, record id) - a mix of providers, customers and segments."""
    typeform = json.loads((BODIES / "survey" / "typeform.json").read_text())
    delighted = json.loads((BODIES / "survey" / "delighted.json").read_text())
    out = []
    for n in range(count):
        customer = f"load-{rng.randrange(count // 4 + 1)}@example.com"
        pick = n % 6
        if pick in (0, 1):
            body = {
                "id": f"load-r{n}",
                "customer": {"email": customer},
                "score": rng.randrange(11),
                "submitted_at": f"2026-0{1 + n % 3}-15T10:00:00Z",
                "channel": rng.choice(["email", "in-app"]),
            }
            out.append(("survey", "generic", json.dumps(body).encode(), f"generic:load-r{n}"))
        elif pick == 2:
            body = json.loads(json.dumps(typeform))
            body["form_response"]["token"] = f"load-t{n}"
            body["form_response"]["hidden"] = {"email": customer}
            for answer in body["form_response"]["answers"]:
                if answer["field"]["type"] == "nps":
                    answer["number"] = rng.randrange(11)
            out.append(("survey", "typeform", json.dumps(body).encode(), f"typeform:load-t{n}"))
        elif pick == 3:
            body = json.loads(json.dumps(delighted))
            body["event_data"].update(id=f"load-d{n}", score=rng.randrange(11))
            body["event_data"]["person"] = {"id": f"p{n}", "email": customer}
            out.append(("survey", "delighted", json.dumps(body).encode(), f"delighted:load-d{n}"))
        elif pick == 4:
            body = {
                "id": f"load-b{n}",
                "customer": {"email": customer},
                "updated_at": f"2026-03-01T{n % 24:02d}:{n % 60:02d}:00Z",
                "plan": rng.choice(["pro", "team"]),
                "mrr": {"amount": rng.randrange(1000, 9000), "currency": "EUR"},
            }
            out.append(("billing", "generic", json.dumps(body).encode(), f"billing:load-b{n}"))
        else:
            body = {
                "id": f"load-m{n}",
                "customer": {"email": customer},
                "updated_at": f"2026-03-01T{n % 24:02d}:{n % 60:02d}:01Z",
                "region": rng.choice(["EMEA", "APAC", "AMER"]),
            }
            out.append(("crm", "generic", json.dumps(body).encode(), f"crm:load-m{n}"))
    return out


def post(url: str, kind: str, provider: str, body: bytes) -> tuple[int, float, int]:
    """(status, seconds, records stored or replaced by this request)."""
    target = f"{url}/webhooks/{kind}/{provider}"
    request = urllib.request.Request(  # noqa: S310 - loopback, our own runtime
        target, data=body, method="POST", headers=signed_headers(provider, body, url=target)
    )
    started = time.perf_counter()
    stored = 0
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            stored = json.loads(answer.read()).get("accepted", 0)
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started, stored


def stored_counts(records_table: str) -> tuple[set[str], set[str]]:
    """Response ids and profile event markers in RecordsTable."""
    import boto3

    ddb = boto3.client("dynamodb")
    responses, events = [], []
    for page in ddb.get_paginator("scan").paginate(
        TableName=records_table, ProjectionExpression="pk, sk", ConsistentRead=True
    ):
        for item in page["Items"]:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            if sk == "RESP":
                responses.append(pk.removeprefix("RESP#").replace("#", ":", 1))
            elif sk == "EVT":
                events.append(pk.removeprefix("EVT#"))
    assert len(responses) == len(set(responses)) and len(events) == len(set(events))
    return set(responses), set(events)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.load", description=__doc__)
    parser.add_argument("--count", type=int, default=3000, help="distinct webhooks (max 20000)")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share sent twice")
    parser.add_argument("--url", help="a running runtime (default: start one)")
    parser.add_argument("--aws", help="its emulated AWS endpoint (the runtime's AWS line)")
    args = parser.parse_args(argv)
    count = max(10, min(args.count, 20_000))
    process = None
    if args.url:
        url, aws = args.url, args.aws
    else:
        process, url, aws = start_runtime()
    if not url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SystemExit("load is sent to loopback only")
    try:
        rng = random.Random(8)  # noqa: S311 - test traffic, reproducible
        hooks = webhooks(count, rng)
        sends = hooks + rng.sample(hooks, int(len(hooks) * args.duplicates))
        rng.shuffle(sends)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.senders) as pool:
            results = list(pool.map(lambda h: post(url, h[0], h[1], h[2]), sends))
        elapsed = time.perf_counter() - started
        statuses: dict[int, int] = {}
        for status, _, _ in results:
            statuses[status] = statuses.get(status, 0) + 1
        latencies = sorted(seconds for _, seconds, _ in results)
        # 202 for all; stored once each (a stale profile update is acknowledged, not stored)
        answered = {h[3] for h, (status, _, _) in zip(sends, results, strict=True) if status == 202}
        accepted = {h[3] for h, (_, _, stored) in zip(sends, results, strict=True) if stored}
        print(
            f"sent {len(sends)} webhooks ({len(hooks)} distinct) with {args.senders} senders "
            f"in {elapsed:.1f} s: {len(sends) / elapsed:.0f}/s; statuses {statuses}"
        )
        print(
            f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms"
        )
        return check(aws, accepted, answered, hooks)
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def check(aws: str, accepted: set[str], answered: set[str], hooks) -> int:
    os.environ.update(
        AWS_ENDPOINT_URL=aws,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - the emulator's dummy
        AWS_DEFAULT_REGION="us-east-1",
        RECORDS_TABLE="nps-sync-RecordsTable",
        AGGREGATES_TABLE="nps-sync-AggregatesTable",
    )
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    from nps_sync.aggregate_settings import aggregate_settings
    from nps_sync.aggregate_store import AggregatesStore
    from nps_sync.customer_records import CustomerRecords
    from nps_sync.reconcile import reconcile

    from . import template as template_module

    parameters = template_module.load(
        overrides=template_module.local_settings().get("parameters", {})
    ).parameters
    os.environ["AGGREGATE_DIMENSIONS"] = str(parameters.get("AggregateDimensions", "overall"))
    settings = aggregate_settings()
    report = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # the stream drains behind the answers
        report = reconcile(
            CustomerRecords(settings.records_table),
            AggregatesStore(settings.aggregates_table),
            settings.aggregate_dimensions,
        )
        if report.unresolved == 0:  # aggregates, stamps and revenue outcomes alike
            break
        time.sleep(2)
    responses, events = stored_counts(settings.records_table)
    wanted_responses = {i for i in accepted if not i.startswith(("billing:", "crm:"))}
    wanted_events = {
        "generic#" + i.split(":", 1)[1] for i in accepted if i.startswith(("billing:", "crm:"))
    }
    print(
        f"stored: {len(responses)} responses for {len(wanted_responses)} accepted, "
        f"{len(events)} profile events for {len(wanted_events)} accepted"
    )
    print(f"reconcile: {json.dumps(report.as_dict())}")
    ok = (
        responses == wanted_responses
        and events == wanted_events
        and report.unresolved == 0
        and not report.differences
        and not report.outcomes.differences
        and len(answered) == len(hooks)
    )
    print(
        "OK: every accepted webhook stored exactly once, aggregates and outcomes exact"
        if ok
        else "FAILED"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
