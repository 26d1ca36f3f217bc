"""``python -m local.load`` (``make load``): webhooks under load, and nothing lost.

Starts the local runtime (SEED=0) on 127.0.0.1, or uses one given with --url and --aws; ~20
senders post a few thousand signed webhooks of several providers, some of them twice; then,
once the stream has drained, every accepted webhook must be stored exactly once and reconcile
must find no difference (aggregates, segment stamps and revenue outcomes). Prints throughput
and p50/p99 latency. Loopback traffic only.

``--faults`` (``make load-faults``): the runtime injects throttles, 500s and lost answers into
its functions' DynamoDB, EventBridge and SQS calls (local/faults.py, ``LOCAL_FAULTS=rate``), a
subscriber on 127.0.0.1 takes every response.received, and at the end each stored response's
event must have been delivered to it or be in a dead-letter queue. The checks here are made
from this process, without faults.
"""

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .process import LocalRuntime, NotStarted
from .process import start_runtime as start_local
from .signer import signed_headers

ROOT = Path(__file__).resolve().parent.parent
BODIES = ROOT / "events" / "bodies"
LOG = ROOT / ".nps-sync" / "load.log"  # the runtime's log file (a `make run` beside keeps its own)
FAULTS_REPORT = ROOT / ".nps-sync" / "load-faults.json"  # what the runtime injected, at its exit


def start_runtime(faults: bool = False) -> tuple[LocalRuntime, str, str]:
    """(process, url, AWS endpoint) of a runtime of its own: empty, warnings only."""
    extra = {}
    if faults:
        FAULTS_REPORT.unlink(missing_ok=True)
        extra = {"LOCAL_FAULTS": "rate", "LOCAL_FAULTS_REPORT": str(FAULTS_REPORT)}
    try:
        process = start_local(log=LOG, PORT="0", SEED="0", LOCAL_LOG_LEVEL="WARNING", **extra)
    except NotStarted as error:
        raise SystemExit(str(error)) from None
    return process, process.url, process.aws_endpoint


def runtime_stopped(process: LocalRuntime | None) -> bool:
    if process is None or process.poll() is None:
        return False
    print(f"the runtime stopped (exit {process.returncode}); its last lines:")
    print("".join(process.lines[-40:]), end="")
    return True


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


ATTEMPTS = 4  # a provider retries a 5xx or a request that got no answer
FAULT_ATTEMPTS = 10  # under injected faults (providers retry for hours; Stripe for 3 days)
DRAIN_SECONDS = 900  # the aggregator runs behind the receivers on a laptop: minutes for 3000
DELIVERY_SECONDS = 300  # after reconcile is clean, for the last events to reach the subscriber


def post(
    url: str,
    kind: str,
    provider: str,
    body: bytes,
    gone: threading.Event | None = None,
    attempts: int = ATTEMPTS,
) -> tuple[int, float, int, int, bool]:
    """(status, seconds, records stored or replaced, retries, unsure), as a provider sends: a
    5xx or no answer within 30 s is retried (status 0: never answered); seconds span every
    attempt. Unsure: an attempt got no answer or a 5xx, so it may have stored what a retry
    then calls a duplicate. ``gone``: the runtime stopped, nothing to retry against."""
    target = f"{url}/webhooks/{kind}/{provider}"
    headers = signed_headers(provider, body, url=target)
    started = time.perf_counter()
    status, stored, unanswered = 0, 0, False
    for attempt in range(attempts):
        if gone is not None and gone.is_set():
            break
        if attempt:
            time.sleep(min(0.5 * 2**attempt, 8))
        request = urllib.request.Request(  # noqa: S310 - loopback, our own runtime
            target, data=body, method="POST", headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                stored = json.loads(answer.read()).get("accepted", 0)
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            status, unanswered = 0, True
        if 0 < status < 500:
            break
        unanswered = True  # a 5xx may come after the write was applied (its answer lost)
    return status, time.perf_counter() - started, stored, attempt, unanswered and not stored


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
    parser.add_argument(
        "--faults", action="store_true", help="a runtime injecting AWS faults, and a subscriber"
    )
    args = parser.parse_args(argv)
    count = max(10, min(args.count, 20_000))
    process = receiver = None
    if args.url:
        if args.faults:
            raise SystemExit("--faults starts a runtime of its own (no --url)")
        url, aws = args.url, args.aws
    else:
        process, url, aws = start_runtime(args.faults)
    gone = threading.Event()
    if process is not None:
        threading.Thread(target=lambda: (process.wait(), gone.set()), daemon=True).start()
    if not url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SystemExit("load is sent to loopback only")
    attempts = FAULT_ATTEMPTS if args.faults else ATTEMPTS
    try:
        if args.faults:
            receiver = subscribe(aws)
        rng = random.Random(8)  # noqa: S311 - test traffic, reproducible
        hooks = webhooks(count, rng)
        sends = hooks + rng.sample(hooks, int(len(hooks) * args.duplicates))
        rng.shuffle(sends)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.senders) as pool:
            results = list(pool.map(lambda h: post(url, h[0], h[1], h[2], gone, attempts), sends))
        elapsed = time.perf_counter() - started
        statuses: dict[int, int] = {}
        for result in results:
            statuses[result[0]] = statuses.get(result[0], 0) + 1
        retries = sum(r[3] for r in results)
        latencies = sorted(r[1] for r in results)
        # 202 for all; stored once each (a stale profile update is acknowledged, not stored)
        answered = {h[3] for h, r in zip(sends, results, strict=True) if r[0] == 202}
        accepted = {h[3] for h, r in zip(sends, results, strict=True) if r[2]}
        unsure = {h[3] for h, r in zip(sends, results, strict=True) if r[4]} - accepted
        print(
            f"sent {len(sends)} webhooks ({len(hooks)} distinct) with {args.senders} senders "
            f"in {elapsed:.1f} s: {len(sends) / elapsed:.0f}/s; statuses {statuses}, "
            f"{retries} retries (5xx or no answer in 30 s)"
        )
        print(
            f"latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms"
        )
        if runtime_stopped(process):
            return 1
        ok = check(aws, accepted, answered, hooks, unsure) == 0
        if receiver is not None:
            ok = delivered_or_dead_lettered(receiver) and ok
        return 0 if ok else 1
    finally:
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):  # killed then
                process.stop(timeout=20)
        if receiver is not None:
            receiver.stop()
            if FAULTS_REPORT.exists():
                print(f"faults injected by the runtime: {FAULTS_REPORT.read_text().strip()}")


def use_emulator(aws: str) -> None:
    """This process's boto3 (without faults) and nps_sync against the runtime's emulator."""
    os.environ.update(
        AWS_ENDPOINT_URL=aws,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - the emulator's dummy
        AWS_DEFAULT_REGION="us-east-1",
        RECORDS_TABLE="nps-sync-RecordsTable",
        AGGREGATES_TABLE="nps-sync-AggregatesTable",
    )
    if str(ROOT / "layers" / "common") not in sys.path:
        sys.path.insert(0, str(ROOT / "layers" / "common"))


def subscribe(aws: str):
    """A subscriber on 127.0.0.1 (tests/fakes/receiver.py) for every response.received; a
    delivery the function could not finish is back in 2 s, not the queue's 180."""
    import boto3

    from tests.fakes.receiver import Receiver

    use_emulator(aws)  # nps_sync importable from here
    from nps_sync.store.subscriptions import SubscriptionsStore

    receiver = Receiver().start()
    SubscriptionsStore("nps-sync-SubscriptionsTable").create(
        receiver.url, ["response.received"], {}
    )
    sqs = boto3.client("sqs")
    sqs.set_queue_attributes(
        QueueUrl=sqs.get_queue_url(QueueName="nps-sync-DeliveryQueue")["QueueUrl"],
        Attributes={"VisibilityTimeout": "2"},
    )
    return receiver


def last_errors() -> dict[str, str]:
    """Event id -> why its last delivery attempt failed, from the delivery log (sender.py
    writes it before the message is left for the dead-letter queue, which does not say why)."""
    from nps_sync.store.subscriptions import SubscriptionsStore

    store = SubscriptionsStore("nps-sync-SubscriptionsTable")
    return {
        entry["event_id"]: f"{entry['status']}, last answer: "
        + str(entry.get("error") or entry.get("response_code") or "none")
        for subscription in store.all()
        for entry in store.deliveries(subscription.id, limit=1000)
        if entry["status"] != "delivered"
    }


def dead_letters() -> list[tuple[str, str | None, str]]:
    """(queue, response key or None, reason) of every message in the two failure queues."""
    import boto3

    sqs = boto3.client("sqs")
    errors: dict[str, str] | None = None
    out = []
    for queue in ("nps-sync-DeliveryDeadLetterQueue", "nps-sync-AggregatorFailureQueue"):
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        seen: set[str] = set()
        while True:
            page = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=60,  # each read once while they are counted
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            fresh = [m for m in page if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                body = json.loads(message["Body"])
                if "event" in body:  # a delivery moved by the redrive policy
                    data = body["event"].get("data", {})
                    key = f"{data.get('provider')}:{data.get('response_id')}"
                    receives = message["Attributes"]["ApproximateReceiveCount"]
                    errors = last_errors() if errors is None else errors
                    why = errors.get(str(body["event"].get("id")), "no attempt logged")
                    out.append((queue, key, f"not delivered after {receives} receives: {why}"))
                else:  # a stream batch the aggregator gave up on (local/pollers.py)
                    info = body.get("DDBStreamBatchInfo", {})
                    reason = body.get("requestContext", {}).get("condition", "")
                    span = f"{info.get('startSequenceNumber')}..{info.get('endSequenceNumber')}"
                    out.append((queue, None, f"{reason}: {info.get('batchSize')} records {span}"))
    return out


def delivered_or_dead_lettered(receiver) -> bool:
    """Every stored response's response.received event reached the subscriber (counted once per
    webhook-id, which a redelivery keeps) or is dead-lettered with a reason."""
    responses, _ = stored_counts("nps-sync-RecordsTable")
    started = time.monotonic()
    while True:
        delivered: dict[str, str] = {}
        for received in list(receiver.received):
            data = received.event["data"]
            delivered[received.headers["webhook-id"]] = f"{data['provider']}:{data['response_id']}"
        letters = dead_letters()
        dead = {key for _, key, _ in letters if key is not None}
        missing = responses - set(delivered.values()) - dead
        if not missing or time.monotonic() > started + DELIVERY_SECONDS:
            break
        time.sleep(5)
    twice = len(delivered) - len(set(delivered.values()))  # two events for one response
    print(
        f"events: {len(responses)} response.received for {len(responses)} stored responses, "
        f"{len(set(delivered.values()))} delivered ({len(receiver.received)} requests, "
        f"{len(receiver.received) - len(delivered)} redelivered with the same webhook-id), "
        f"{len(letters)} dead-lettered, {len(missing)} neither, "
        f"{time.monotonic() - started:.0f} s after reconcile"
    )
    for queue, key, reason in letters:
        print(f"  dead-lettered in {queue}: {key or 'a stream batch'} ({reason})")
    ok = not missing and not twice and not any(key is None for _, key, _ in letters)
    print(
        "OK: every event delivered or dead-lettered with a reason"
        if ok
        else f"FAILED: {sorted(missing)[:10]} neither delivered nor dead-lettered"
    )
    return ok


def check(aws: str, accepted: set[str], answered: set[str], hooks, unsure: set[str]) -> int:
    """Stored exactly once: every accepted webhook, none that was not sent, and of those whose
    answer was lost (``unsure``) either none or one."""
    use_emulator(aws)
    from nps_sync.aggregation.reconcile import reconcile
    from nps_sync.core.settings import aggregate_settings
    from nps_sync.store.aggregates import AggregatesStore
    from nps_sync.store.customers import CustomerRecords

    from . import template as template_module

    parameters = template_module.load(
        overrides=template_module.local_settings().get("parameters", {})
    ).parameters
    os.environ["AGGREGATE_DIMENSIONS"] = str(parameters.get("AggregateDimensions", "overall"))
    settings = aggregate_settings()
    report = None
    started = time.monotonic()
    while time.monotonic() < started + DRAIN_SECONDS:  # the stream drains behind the answers
        report = reconcile(
            CustomerRecords(settings.records_table),
            AggregatesStore(settings.aggregates_table),
            settings.aggregate_dimensions,
        )
        if report.unresolved == 0:  # aggregates, stamps and revenue outcomes alike
            break
        time.sleep(5)
    waited = time.monotonic() - started
    clean = report is not None and report.unresolved == 0
    print(f"reconcile {'clean' if clean else 'still differs'} {waited:.0f} s after the last answer")
    responses, events = stored_counts(settings.records_table)

    def split(ids: set[str]) -> tuple[set[str], set[str]]:
        profile = {i for i in ids if i.startswith(("billing:", "crm:"))}
        return ids - profile, {"generic#" + i.split(":", 1)[1] for i in profile}

    wanted_responses, wanted_events = split(accepted)
    maybe_responses, maybe_events = split(unsure)
    print(
        f"stored: {len(responses)} responses for {len(wanted_responses)} accepted, "
        f"{len(events)} profile events for {len(wanted_events)} accepted "
        f"({len(unsure)} answered 5xx or lost, stored at most once)"
    )
    print(f"reconcile: {json.dumps(report.as_dict())}")
    ok = (
        wanted_responses <= responses <= wanted_responses | maybe_responses
        and wanted_events <= events <= wanted_events | maybe_events
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
