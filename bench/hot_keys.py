"""The hot counter items at 10,000 webhooks/s: their size and write units, measured.

Every aggregator batch, whichever stream shard it comes from, ADDs to the ``overall`` counter
items of its responses' periods (pk ``overall#all``: day, week, month, quarter, year and
all-time, one item collection), and each write SETs that shard's mark, ``hwm#<shard id>`` and
``hwm#<shard id>#at`` (store/counters.py). Marks stay 26 h, so those items grow by one mark
pair per shard the stream had in the last 26 h, and every write is billed by the item's size.

This runs the real SurveyWebhookFunction and AggregatorFunction under moto, set up as
bench.dynamo_cost sets them up (its helpers), with each batch delivered as if from another
shard (the event's ``shardId``, as a mapping with a window names it), and reads the hot items'
sizes after every batch. It prints JSON: the size and write units of the all-time and
current-month items by the number of shards' marks they hold, the RecordsTable write units
per response (which set the number of partitions, so of stream shards) and the stream records
per response that pass the aggregator's filter (which set the batches per second).
docs/cost.md "Hot keys at 10,000 webhooks/s" does the arithmetic with these numbers.

    .venv/bin/python -m bench.hot_keys --batches 24 --batch 100
"""

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import dynamo_cost
from bench.dynamo_cost import ACCOUNT, REGION, STREAMS_ENDPOINT


def shard_id(n: int) -> str:
    """A stream shard id of DynamoDB's form (shardId-<20 digits>-<8 hex>), one per n."""
    return f"shardId-{1764720000000 + n * 3600000:020d}-{n * 2654435761 % 2**32:08x}"


def run(batches: int, batch: int) -> dict[str, Any]:
    dynamo_cost._environment()
    import os

    import boto3
    from moto import mock_aws

    from bench.meter import Meter, item_size, write_units
    from bench.traffic import answers
    from local import moto_speed
    from local import template as template_module
    from local.aws import Stack
    from local.lambdas import add_layers, load_handler
    from nps_sync.core.periods import labels

    parameters = {**template_module.local_settings().get("parameters", {}), "LogLevel": "WARNING"}
    # Live traffic: every response of the run is submitted today, as at 10,000/s, so every batch
    # writes the same day, month and all-time items (bench.traffic walks through a year).
    today = datetime(2026, 12, 3, 9, tzinfo=UTC)
    traffic = [
        replace(a, submitted_at=today + timedelta(seconds=i))
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
            if table == aggregates and pk == "overall#all":
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
        growth: list[dict[str, Any]] = []
        passed = invocations = 0
        for start in range(0, len(traffic), batch):
            chunk_answers = traffic[start : start + batch]
            meter.phase = "receiver"
            for answer in chunk_answers:
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
            periods = labels(today.date())
            sizes, marks = {}, {}
            for granularity in ("all", "month"):
                sk = f"{granularity}#{periods[granularity]}"
                item = peek(aggregates, {"pk": {"S": "overall#all"}, "sk": {"S": sk}}) or {}
                sizes[granularity] = item_size(item)
                marks[granularity] = sum(
                    1 for n in item if n.startswith("hwm#") and not n.endswith("#at")
                )
            growth.append({"marks": marks, "bytes": sizes})
        seconds = time.perf_counter() - started

    first, last = growth[0], growth[-1]
    per_lane = {
        g: (last["bytes"][g] - first["bytes"][g]) / (last["marks"][g] - first["marks"][g])
        for g in ("all", "month")
    }
    bare = {g: first["bytes"][g] - first["marks"][g] * per_lane[g] for g in ("all", "month")}
    writes = Counter({k: v for (p, k), v in meter.items_written.items() if p == "aggregator"})
    units = Counter({k: v for (p, k), v in meter.wcu.items() if p == "aggregator"})
    responses = len(traffic)
    record_units = sum(v for (p, k), v in meter.wcu.items() if k == "records")
    return {
        "responses": responses,
        "batch": batch,
        "aggregator_invocations": invocations,
        "seconds": round(seconds, 1),
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
        "item_bytes_by_marks": growth,
        "bytes_per_mark": per_lane,
        "item_bytes_without_marks": {g: round(b) for g, b in bare.items()},
        "wcu_per_write_by_marks": {
            str(n): {g: write_units(round(bare[g] + n * per_lane[g])) for g in ("all", "month")}
            for n in (1, 7, 10, 40, 100, 200, 300)
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_keys", description=__doc__)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):  # the functions' EMF lines
        result = run(args.batches, args.batch)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
