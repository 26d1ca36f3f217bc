"""The hot counter items at 10,000 webhooks/s: their size and write units, measured.

Every aggregator batch, whichever stream shard it comes from, ADDs to the ``overall`` counter
items of its responses' periods (pk ``overall#all``) and SETs that shard's mark,
``hwm#<shard id>`` and ``hwm#<shard id>#at`` (store/counters.py). Marks stay 26 h, so an item
grows by one mark pair per stream shard that wrote it in the last 26 h, and every write is
billed by the item's size. With ``COUNTER_SHARDS`` = S (store/counters.py; 1 before keys were
sharded) a key is spread over S items (sort key ``<granularity>#<period>#<n>``), each stream
shard writing one of them: writes per item and marks per item are divided by S.

This runs the real SurveyWebhookFunction and AggregatorFunction under moto, set up as
bench.dynamo_cost sets them up (its helpers), with each batch delivered as if from another
shard (the event's ``shardId``, as a mapping with a window names it). Then it reads every
``overall`` item of AggregatesTable straight from moto and keeps, per granularity (all-time if
there is one, the current month, today), the largest item of the current period: its size,
its marks and what one mark pair adds. With the RecordsTable write units per response (which
set the number of partitions, so of stream shards) and the stream records per response that
pass the aggregator's filter (which set the batches per second), ``at_rate`` does the
arithmetic of docs/cost.md "Hot keys at 10,000 webhooks/s". It prints JSON.

    .venv/bin/python -m bench.hot_keys --batches 8 --batch 100
"""

import argparse
import contextlib
import json
import math
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench import dynamo_cost
from bench.dynamo_cost import ACCOUNT, REGION, STREAMS_ENDPOINT


def shard_id(n: int) -> str:
    """A stream shard id of DynamoDB's form (shardId-<20 digits>-<8 hex>), one per n."""
    return f"shardId-{1764720000000 + n * 3600000:020d}-{n * 2654435761 % 2**32:08x}"


TODAY = datetime(2026, 12, 3, 9, tzinfo=UTC)
RATE = 10_000  # webhooks per second (issue 17)
PARTITION_WCU = 1_000  # DynamoDB's write units per second per partition
TARGET_WCU = 500  # issue 17: half a partition, the rest is headroom
SHARD_LIFE_H = 4  # assumed life of a stream shard before it is replaced (not documented)
HOT_GRANULARITIES = ("all", "month", "day")


def hottest(items: list[dict], today: date) -> dict[str, dict[str, Any]]:
    """granularity -> the largest ``overall`` item of today's period: key, bytes, marks, bytes
    without marks and bytes per mark pair (item sizes as bench/meter.py prices them)."""
    from bench.meter import item_size

    found: dict[str, dict[str, Any]] = {}
    for item in items:
        pk, sk = item.get("pk", {}).get("S", ""), item.get("sk", {}).get("S", "")
        granularity, _, rest = sk.partition("#")
        if not pk.startswith("overall#") or granularity not in HOT_GRANULARITIES:
            continue
        if rest.partition("#")[0] != _label(granularity, today):
            continue
        size = item_size(item)
        if granularity in found and found[granularity]["bytes"] >= size:
            continue
        bare = item_size({k: v for k, v in item.items() if not k.startswith("hwm#")})
        marks = sum(1 for n in item if n.startswith("hwm#") and not n.endswith("#at"))
        found[granularity] = {
            "pk": pk,
            "sk": sk,
            "bytes": size,
            "marks": marks,
            "bytes_without_marks": bare,
            "bytes_per_mark": (size - bare) / marks if marks else 0.0,
        }
    return {g: found[g] for g in HOT_GRANULARITIES if g in found}


def _label(granularity: str, day: date) -> str:
    if granularity == "all":
        return "all"
    return day.isoformat() if granularity == "day" else f"{day.year:04d}-{day.month:02d}"


def at_rate(
    measured: dict[str, Any],
    rate: float = RATE,
    batch_size: int = 100,
    parallelization: int = 1,
) -> dict[str, Any]:
    """The stream arithmetic at ``rate`` webhooks/s and what it does to each hot item.

    Stream shards P = RecordsTable base-table write units/s / 1,000 (one open shard per
    partition), batches/s = records passing the filter / batch size, every batch writes each
    hot item of today once; with S counter shards each stream shard writes one counter item,
    so an item takes batches/s / S writes and holds ceil(P / S) marks (ceil(P x 26 h / shard
    life / S) if shards are replaced every SHARD_LIFE_H hours)."""
    counter_shards = max(1, int(measured.get("counter_shards", 1)))
    write_units = rate * measured["records_table_wcu_per_response"]
    shards = math.ceil(write_units / PARTITION_WCU)
    records = rate * measured["stream_records_per_response"]
    batches = records / batch_size
    per_shard = batches / shards
    generations = math.ceil(26 / SHARD_LIFE_H)
    items = {}
    for granularity, item in measured["hottest"].items():
        writes = batches / counter_shards
        row = {"writes_per_s": writes}
        for name, marks in (
            ("steady", math.ceil(shards / counter_shards)),
            ("turnover", math.ceil(shards * generations / counter_shards)),
        ):
            size = round(item["bytes_without_marks"] + marks * item["bytes_per_mark"])
            units = max(1, math.ceil(size / 1024))
            row[name] = {"marks": marks, "bytes": size, "wcu_per_write": units}
            row[name]["wcu_per_s"] = writes * units
        items[granularity] = row
    return {
        "rate": rate,
        "counter_shards": counter_shards,
        "records_table_wcu_per_s": write_units,
        "stream_shards": shards,
        "stream_records_per_s": records,
        "batch_size": batch_size,
        "batches_per_s": batches,
        "batches_per_s_per_shard": per_shard,
        "concurrency": shards * parallelization,
        "ms_per_batch": 1000 / per_shard if per_shard else math.inf,
        "shard_generations_in_26h": generations,
        "items": items,
        "target_wcu_per_s": TARGET_WCU,
        "worst_wcu_per_s": max((r["steady"]["wcu_per_s"] for r in items.values()), default=0),
    }


def run(batches: int, batch: int) -> dict[str, Any]:
    dynamo_cost._environment()
    import os

    import boto3
    from moto import mock_aws

    from bench.meter import Meter
    from bench.traffic import answers
    from local import moto_speed
    from local import template as template_module
    from local.aws import Stack
    from local.lambdas import add_layers, load_handler

    parameters = {**template_module.local_settings().get("parameters", {}), "LogLevel": "WARNING"}
    # Live traffic: every response of the run is submitted today, as at 10,000/s, so every batch
    # writes the same day, month (and all-time) items (bench.traffic walks through a year).
    traffic = [
        replace(a, submitted_at=TODAY + timedelta(seconds=i))
        for i, a in enumerate(answers(batches * batch, batch))
    ]
    moto_speed.install()
    with mock_aws():
        template = template_module.load(overrides=parameters)
        stack = Stack(template, dynamo_cost._Account()).provision()
        for function in template.functions.values():
            for name, value in function.environment.items():
                resolved = stack.resolve(value)
                if resolved is not None:
                    os.environ[name] = str(resolved)
        os.environ.pop("NPS_SYNC_SECRETS_FILE")
        add_layers(template)
        records, aggregates = stack.refs["RecordsTable"], stack.refs["AggregatesTable"]
        peek, backend = dynamo_cost.moto_peek(ACCOUNT, REGION)
        indexes = dynamo_cost._indexes(template, stack)

        def kind(table: str, key: dict) -> str:
            pk, sk = key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")
            if table == records:
                return "records"
            if table == aggregates and pk.startswith("overall#"):
                return f"hot:{sk.split('#', 1)[0]}"
            return "other"

        reader = boto3.session.Session().client("dynamodbstreams", endpoint_url=STREAMS_ENDPOINT)
        stream_arn = stack.attributes[("RecordsTable", "StreamArn")]
        shard = reader.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
        dynamo_cost._known_customers(backend, records, traffic)
        iterator = reader.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]
        meter = Meter(peek=peek, indexes=indexes, kind=kind)
        meter.attach(
            boto3.DEFAULT_SESSION._session if boto3.DEFAULT_SESSION else dynamo_cost._default()
        )
        webhook = dynamo_cost._Function(template, "SurveyWebhookFunction", load_handler)
        aggregator = dynamo_cost._Function(template, "AggregatorFunction", load_handler)
        route = next(r for r in template.routes if r.function == "SurveyWebhookFunction")

        started = time.perf_counter()
        passed = invocations = 0
        for start in range(0, len(traffic), batch):
            meter.phase = "receiver"
            for answer in traffic[start : start + batch]:
                reply = webhook(dynamo_cost._webhook_event(answer, route))
                if reply["statusCode"] != 202:
                    raise RuntimeError(f"webhook answered {reply['statusCode']}")
            meter.phase = "aggregator"
            pending, iterator = dynamo_cost._read(reader, iterator, stream_arn)
            passed += len(pending)
            while pending:
                lane = shard_id(invocations)  # each batch from another shard: one more mark
                chunk, pending = pending[:batch], pending[batch:]
                reply = aggregator({"Records": chunk, "shardId": lane})
                if reply["batchItemFailures"]:
                    raise RuntimeError("the aggregator reported failures")
                invocations += 1
                more, iterator = dynamo_cost._read(reader, iterator, stream_arn)  # stamps
                passed += len(more)
                pending += more
        seconds = time.perf_counter() - started
        items = [i.to_json()["Attributes"] for i in backend.get_table(aggregates).all_items()]
    from nps_sync.store import counters  # after the functions' environment: it loads metrics

    writes = Counter({k: v for (p, k), v in meter.items_written.items() if p == "aggregator"})
    units = Counter({k: v for (p, k), v in meter.wcu.items() if p == "aggregator"})
    responses = len(traffic)
    record_units = sum(v for (p, k), v in meter.wcu.items() if k == "records")
    return {
        "responses": responses,
        "batch": batch,
        "aggregator_invocations": invocations,
        "seconds": round(seconds, 1),
        "counter_shards": getattr(counters, "COUNTER_SHARDS", 1),
        "stream_records_per_response": round(passed / responses, 3),
        "records_table_wcu_per_response": round(record_units / responses, 3),
        "records_table_gsi_wcu_per_response": round(
            sum(v for (p, k), v in meter.gsi_wcu.items() if k == "records") / responses, 3
        ),
        "hot_writes_per_invocation": {
            k.removeprefix("hot:"): round(writes[k] / invocations, 3)
            for k in sorted(writes)
            if k.startswith("hot:")
        },
        "hot_wcu_per_write_measured": {
            k.removeprefix("hot:"): round(units[k] / writes[k], 3)
            for k in sorted(writes)
            if k.startswith("hot:")
        },
        "hottest": hottest(items, TODAY.date()),
    }


def render(result: dict[str, Any]) -> str:
    """The measured items and the arithmetic at 10,000 webhooks/s, for bench/results.md."""
    a = result["at_rate"]
    out = [
        "## Hot keys at 10,000 webhooks/s (bench/hot_keys.py)\n",
        f"{result['responses']:,} responses all submitted today through the real receiver "
        f"and aggregator under moto, {result['aggregator_invocations']} aggregator batches "
        f"each delivered as from another stream shard, `COUNTER_SHARDS` = "
        f"{a['counter_shards']}; the largest `overall` item of each current period, read "
        "from moto afterwards:\n",
        "| item | bytes | marks | bytes without marks | bytes per mark pair |",
        "|---|---:|---:|---:|---:|",
    ]
    for item in result["hottest"].values():
        out.append(
            f"| `{item['pk']}` / `{item['sk']}` | {item['bytes']:,} | {item['marks']} | "
            f"{item['bytes_without_marks']:,} | {item['bytes_per_mark']:.1f} |"
        )
    out += [
        "",
        f"Stream at {a['rate']:,} webhooks/s: {result['records_table_wcu_per_response']:.2f} "
        f"RecordsTable write units per response → {a['records_table_wcu_per_s']:,.0f}/s → "
        f"**{a['stream_shards']} stream shards** (1,000 per partition, one open shard each); "
        f"{result['stream_records_per_response']:.2f} stream records per response pass the "
        f"filter → {a['stream_records_per_s']:,.0f}/s in batches of {a['batch_size']} → "
        f"**{a['batches_per_s']:.0f} batches/s**, {a['batches_per_s_per_shard']:.1f} per shard "
        f"per second, **{a['concurrency']} concurrent aggregators**, each with "
        f"{a['ms_per_batch']:.0f} ms per batch. Each batch writes each hot item of today once; "
        f"a counter item takes batches/s ÷ {a['counter_shards']} writes and holds "
        f"⌈{a['stream_shards']} ÷ {a['counter_shards']}⌉ marks (with shards replaced every "
        f"{SHARD_LIFE_H} h, an assumption: {a['shard_generations_in_26h']} generations in "
        "26 h).\n",
        "| item | writes/s | marks | bytes | units/write | **units/s** | with turnover: "
        "marks | units/s | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for granularity, row in a["items"].items():
        steady, turnover = row["steady"], row["turnover"]
        mark = "✔" if steady["wcu_per_s"] <= a["target_wcu_per_s"] else "✘"
        out.append(
            f"| {granularity} | {row['writes_per_s']:.1f} | {steady['marks']} | "
            f"{steady['bytes']:,} | {steady['wcu_per_write']} | **{steady['wcu_per_s']:,.0f}** "
            f"| {turnover['marks']} | {turnover['wcu_per_s']:,.0f} | "
            f"≤ {a['target_wcu_per_s']} {mark} |"
        )
    if "all" not in result["hottest"]:
        out.append(
            "\nNo all-time item was written: all time is summed on read from the months "
            "(core/periods.py STORED)."
        )
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_keys", description=__doc__)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    from bench.cost_model import aggregator_stream

    stream = aggregator_stream()
    with contextlib.redirect_stdout(sys.stderr):  # the functions' EMF lines
        result = run(args.batches, args.batch)
    result["at_rate"] = at_rate(
        result, RATE, int(stream.get("BatchSize", 100)), int(stream.get("ParallelizationFactor", 1))
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
