"""How long reconcile takes per response (``python -m bench.reconcile --total N``), in a fresh
process under moto: template.yaml's tables, N response items written straight into the
emulator with their stamps, one raw payload item each (1 KB, as the receiver stores them), the
customers' PROFILE items and identity links (bench.dynamo_cost's setup, ~4 responses per
customer) and the aggregates the responses add up to. Then one report-only pass
(``reconcile(fix=False)``) is timed, every DynamoDB call it makes counted (items and bytes
returned per operation, items a Scan passed over, raw payload items read: none), and, to
extrapolate to DynamoDB, what it costs in this process without the emulator: botocore parsing
a Scan page of the projected response items and reconcile's fold of them (docs/aggregation.md
"Reconcile", "How long").
"""

import argparse
import json
import os
import sys
import time
from typing import Any

RAW_BYTES = 1024  # a compressed webhook body (bench/results.md: 350-3,500 bytes uncompressed)
PAGE_BYTES = 1024 * 1024  # a Scan page: 1 MB of items read, DynamoDB's limit
# Assumed DynamoDB read rate of one Scan segment: a 1 MB page per 100 ms round trip, below
# the 3,000 RCU/s a partition serves (12 MB/s consistent, 24 MB/s eventually consistent).
SEGMENT_BYTES_PER_SECOND = 10 * 1024 * 1024
LAMBDA_CPU = 1024 / 1769  # ReconcileFunction's MemorySize: 1,769 MB is one vCPU
# Assumed round trip of a BatchGetItem of 100 PROFILEs (~1 KB each, 100 KB answer) in-region.
BATCH_GET_SECONDS = 0.05


def extrapolate(result: dict[str, Any]) -> dict[str, float]:
    """Seconds per million responses on DynamoDB: the segments' reads of by_customer overlap
    the fold (one CPU: parse + fold per response, this machine and a 1,024 MB Lambda); the
    PROFILE reads (BatchGetItem, reconcile.PROFILE_READERS in flight) hold up the fold, so they
    add. No raw payload is read (``raw_items_read``, ``table_scanned``: 0)."""
    from nps_sync.aggregation.reconcile import BATCH_KEYS, PROFILE_READERS
    from nps_sync.store.dynamo import SEGMENTS

    million = 1_000_000
    cpu = (result["parse_us"] + result["fold_us"]) * million / 1e6
    indexed = result["index_scanned"] / max(result["responses"], 1)  # index items per response
    index_read = result["item_bytes"] * indexed * million / (SEGMENTS * SEGMENT_BYTES_PER_SECOND)
    profiles = result["profiles_read"] / max(result["responses"], 1) * million
    profile_read = profiles / (BATCH_KEYS * PROFILE_READERS) * BATCH_GET_SECONDS
    return {
        "cpu_s": cpu,
        "cpu_lambda_s": cpu / LAMBDA_CPU,
        "index_read_s": index_read,
        "profile_read_s": profile_read,
        "profiles_per_million": profiles,
        "per_million_s": max(cpu, index_read) + profile_read,
        "per_million_lambda_s": max(cpu / LAMBDA_CPU, index_read) + profile_read,
        # eventually consistent Scan: 0.5 RCU per 4 KB read
        "index_rcu": result["item_bytes"] * indexed * million / 4096 / 2,
        # consistent BatchGetItem: 1 RCU per item per 4 KB (rounded up)
        "profile_rcu": profiles * -(-result["profile_bytes"] // 4096),
        # what the Scan of the whole table that read the PROFILEs before would read
        "table_scan_rcu_before": (result["item_bytes"] + RAW_BYTES) * million / 4096,
    }


class Reads:
    """Every DynamoDB call a client makes, by operation: calls, items returned and their
    bytes, items a Scan passed over (ScannedCount: a table Scan passes over raw payloads even
    when its filter drops them), raw payload items returned."""

    def __init__(self, client: Any, table: str):
        self.table, self.calls, self._asked = table, {}, {}
        client.meta.events.register("provide-client-params.dynamodb.*", self._request)
        client.meta.events.register("after-call.dynamodb.*", self._answer)

    def _request(self, params: dict, context: dict, model: Any, **_: Any) -> None:
        table = params.get("TableName") or next(iter(params.get("RequestItems", {})), None)
        self._asked[id(context)] = (model.name, table, params.get("IndexName"))

    def _answer(self, parsed: dict, context: dict, **_: Any) -> None:
        name, table, index = self._asked.pop(id(context), ("?", None, None))
        items = list(parsed.get("Items", []))
        for found in parsed.get("Responses", {}).values():
            items.extend(found)
        seen = self.calls.setdefault(
            f"{name} {index or table}",
            {"calls": 0, "items": 0, "bytes": 0, "scanned": 0, "raw_items": 0},
        )
        seen["calls"] += 1
        seen["items"] += len(items)
        seen["bytes"] += int(_size(items) * len(items))
        seen["scanned"] += parsed.get("ScannedCount", 0)
        seen["raw_items"] += sum(
            item.get("sk", {}).get("S", "").startswith("RAW#") for item in items
        )
        if name == "Scan" and table == self.table and index is None:
            seen["table_scan"] = True

    def summary(self) -> dict[str, Any]:
        records = [(k, v) for k, v in self.calls.items() if k.endswith(self.table)]
        batch = self.calls.get(f"BatchGetItem {self.table}", {})
        return {
            "reads": json.loads(json.dumps(self.calls)),  # as of now: the bench reads on
            "raw_items_read": sum(v["raw_items"] for v in self.calls.values()),
            "table_scanned": sum(v["scanned"] for k, v in records if k.startswith("Scan ")),
            "index_scanned": self.calls.get("Scan by_customer", {}).get("scanned", 0),
            "profiles_read": batch.get("items", 0),
            "profile_bytes": batch.get("bytes", 0) / max(batch.get("items", 0), 1),
        }


def run(total: int) -> dict[str, Any]:
    from bench.dynamo_cost import (
        _Account,
        _environment,
        _known_customers,
        _prefill,
        _without_stream,
        moto_peek,
    )

    _environment()
    from moto import mock_aws

    from bench.traffic import answers
    from local import moto_speed
    from local import template as template_module
    from local.aws import Stack
    from nps_sync.aggregation.reconcile import reconcile
    from nps_sync.core.settings import DEFAULT_DIMENSIONS
    from nps_sync.store.aggregates import AggregatesStore
    from nps_sync.store.customers import CustomerRecords

    begun = time.perf_counter()
    traffic = answers(total, 100)
    moto_speed.install()
    with mock_aws():
        template = template_module.load()
        stack = Stack(template, _Account()).provision()
        records, aggregates = stack.refs["RecordsTable"], stack.refs["AggregatesTable"]
        _, backend = moto_peek()
        _known_customers(backend, records, traffic)
        _prefill(backend, records, aggregates, traffic, DEFAULT_DIMENSIONS, "shard")
        table = backend.get_table(records)
        with _without_stream(table):
            for answer in traffic:
                table.put_item(
                    {
                        "pk": {"S": f"RESP#generic#{answer.response_id}"},
                        "sk": {"S": "RAW#1"},
                        "raw": {"B": os.urandom(RAW_BYTES)},
                    }
                )
        client = _Account().client("dynamodb")
        setup = time.perf_counter() - begun
        reads = Reads(client, records)
        started = time.perf_counter()
        report = reconcile(
            CustomerRecords(records, client),
            AggregatesStore(aggregates, client),
            DEFAULT_DIMENSIONS,
        )
        seconds = time.perf_counter() - started
        measured = reads.summary()
        local = _without_emulator(client, records, DEFAULT_DIMENSIONS)
    return {
        "total": total,
        "responses": report.responses,
        "profiles": report.outcomes.profiles,
        "seconds": seconds,
        "setup_seconds": setup,
        "per_second": report.responses / seconds,
        "customers": report.customers,
        "differences": report.as_dict(),
        **measured,
        **local,
    }


def _without_emulator(client: Any, records: str, dimensions: tuple[str, ...]) -> dict[str, Any]:
    """µs per response of botocore parsing a Scan page of projected responses, and of
    reconcile's fold of them; the bytes a response's projected and whole item take."""
    import botocore.parsers

    from nps_sync.aggregation.outcome_reconcile import Answers
    from nps_sync.aggregation.reconcile import Identity, Sums, _stale, response_reads
    from nps_sync.store.customers import CustomerRecords
    from nps_sync.store.items import stored_response

    reads = response_reads(dimensions)
    items = []
    for item in CustomerRecords(records, client).responses(("gsi1pk", *reads), segments=1):
        items.append(item)
        if len(items) == 2000:
            break
    keys = [{"pk": item["pk"], "sk": item["sk"]} for item in items[:100]]
    whole = client.batch_get_item(RequestItems={records: {"Keys": keys}})["Responses"][records]
    whole_bytes = _size(whole)
    body = json.dumps({"Items": items, "Count": len(items), "ScannedCount": len(items)}).encode()
    shape = client.meta.service_model.operation_model("Scan").output_shape
    parser = botocore.parsers.create_parser("json")
    started = time.perf_counter()
    for _ in range(3):
        parser.parse({"body": body, "headers": {}, "status_code": 200}, shape)
    parse_us = (time.perf_counter() - started) / 3 / len(items) * 1e6
    started = time.perf_counter()
    expected = Sums(dimensions)
    answers = Answers([])
    identity = Identity()
    for item in items:
        identity.add(item["gsi1pk"]["S"].removeprefix("CUST#"), item)
        response = stored_response(item)
        expected.add(response)
        _stale(response, {})
        answers.add(response)
    fold_us = (time.perf_counter() - started) / len(items) * 1e6
    return {
        "parse_us": parse_us,
        "fold_us": fold_us,
        "projected_bytes": len(body) / len(items),
        "item_bytes": whole_bytes,
    }


def _size(items: list[dict]) -> float:
    """Mean DynamoDB item size (attribute names + values, as billed), bytes."""

    def value(v: dict) -> int:
        ((kind, content),) = v.items()
        return len(content) if kind in ("S", "B") else len(str(content))

    sizes = [sum(len(k) + value(v) for k, v in item.items()) for item in items]
    return sum(sizes) / max(len(sizes), 1)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--total", type=int, default=20_000)
    args = parser.parse_args()
    result = run(args.total)
    result.update(extrapolate(result))
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
