"""DynamoDB requests and capacity units per ingested response, through the real functions.

One scenario runs in a fresh process (``python -m bench.dynamo_cost --total N --batch B``)
under moto: template.yaml's tables, queue, bus and secret are created as ``make run`` does,
SurveyWebhookFunction's handler receives signed ``generic`` webhooks as API Gateway events
(one response each), and AggregatorFunction's handler receives the RecordsTable stream in
batches of B, filtered as its event source mapping filters them. A ``bench.meter.Meter`` on
boto3's default session counts every AWS call the functions make, and prices DynamoDB writes
from the item sizes before and after each write.

Setup that is not counted: customers' merged profiles and identity links exist before the
first response (their CRM and billing webhooks came earlier). With ``--window W`` the first
N - W responses are written straight into the emulator (response items with their segment
stamps, and the aggregates they add up to, as the pipeline leaves them) and only the last W
go through the functions: the per-response figures at table size N without N slow emulated
requests.
"""

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
REGION = "us-east-1"
STREAMS_ENDPOINT = f"https://streams.dynamodb.{REGION}.amazonaws.com"
PASSED = ("RESP", "PROFILE")  # AggregatorFunction's FilterCriteria


def _environment() -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - moto
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL_DYNAMODB_STREAMS=STREAMS_ENDPOINT,
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_METRICS_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="WARNING",
        NPS_SYNC_SECRETS_FILE=str(ROOT / "local" / "dev-secrets.json"),
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    for path in (str(ROOT), str(ROOT / "layers" / "common")):
        if path not in sys.path:
            sys.path.insert(0, path)


class _Account:
    def client(self, service: str):
        import boto3

        return boto3.session.Session().client(service)  # not metered: setup


def moto_peek(account: str = ACCOUNT, region: str = REGION):
    """Read an item straight from moto's store (no request, so nothing is counted)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType

    backend = dynamodb_backends[account][region]

    def peek(table_name: str, item: dict) -> dict | None:
        table = backend.get_table(table_name)
        range_value = DynamoType(item[table.range_key_attr]) if table.range_key_attr else None
        found = table.get_item(DynamoType(item[table.hash_key_attr]), range_value)
        return found.to_json()["Attributes"] if found else None

    return peek, backend


def run(
    total: int,
    batch: int,
    window: int | None = None,
    dimensions: str | None = None,
    backfill: bool = False,
    nps_query: bool = True,
) -> dict[str, Any]:
    _environment()
    import boto3
    from moto import mock_aws

    from bench.meter import Meter
    from bench.traffic import answers
    from local import moto_speed
    from local import template as template_module
    from local.aws import Stack
    from local.lambdas import add_layers, load_handler

    parameters = template_module.local_settings().get("parameters", {})
    parameters = {**parameters, "LogLevel": "WARNING"}
    if dimensions is not None:
        parameters = {**parameters, "AggregateDimensions": dimensions}
    traffic = answers(total, batch, backfill=backfill)
    window = min(window or total, total)
    moto_speed.install()  # index Queries without walking the whole table (same answers)
    with mock_aws():
        template = template_module.load(overrides=parameters)
        stack = Stack(template, _Account()).provision()
        for function in template.functions.values():
            for name, value in function.environment.items():
                resolved = stack.resolve(value)
                if resolved is not None:
                    os.environ[name] = str(resolved)
        os.environ.pop("NPS_SYNC_SECRETS_FILE")  # the functions read Secrets Manager, as in AWS
        add_layers(template)
        records, aggregates = stack.refs["RecordsTable"], stack.refs["AggregatesTable"]
        names = {physical: logical for logical, physical in stack.refs.items()}
        # What a company listens to on the bus (docs/events.md "What goes on the bus"): a rule
        # for detractor alerts, so only those are put; no rule would put nothing at all.
        _Account().client("events").put_rule(
            Name="detractor-alerts",
            EventBusName=stack.refs["EventBus"],
            EventPattern=json.dumps({"source": ["nps-sync"], "detail-type": ["detractor.alert"]}),
        )
        peek, backend = moto_peek()
        indexes = _indexes(template, stack)

        def kind(table: str, key: dict) -> str:
            pk, sk = key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")
            if table == aggregates:  # revenue outcome counters beside the NPS aggregates
                return "outcome" if pk.startswith("outcome:") else "aggregate"
            if table != records:
                return names.get(table, table)
            if sk.startswith("RAW#"):
                return "raw"
            if pk.startswith("EVT#"):
                return "idempotency"
            if pk.startswith("ID#"):
                return "link"
            if pk.startswith("RESP#"):
                return "response"
            return "profile"

        reader = boto3.session.Session().client("dynamodbstreams", endpoint_url=STREAMS_ENDPOINT)
        stream_arn = stack.attributes[("RecordsTable", "StreamArn")]
        shard = reader.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
        started = time.perf_counter()
        settings = os.environ.get("AGGREGATE_DIMENSIONS", "")
        _known_customers(backend, records, traffic)
        history, measured = traffic[: total - window], traffic[total - window :]
        _prefill(backend, records, aggregates, history, settings.split(","), shard["ShardId"])
        prefill_seconds = time.perf_counter() - started
        iterator = reader.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]

        # What the template's mapping adds to each event: with a tumbling window, the shard
        # (so the aggregator reads no stream to find it) and the window's state
        mapping = next(e for e in template.event_sources if e.function == "AggregatorFunction")
        windowed = (
            {"shardId": shard["ShardId"], "window": {}, "state": {}}
            if mapping.tumbling_seconds
            else {}
        )
        meter = Meter(peek=peek, indexes=indexes, kind=kind)
        meter.attach(boto3.DEFAULT_SESSION._session if boto3.DEFAULT_SESSION else _default())
        webhook = _Function(template, "SurveyWebhookFunction", load_handler)
        aggregator = _Function(template, "AggregatorFunction", load_handler)
        route = next(r for r in template.routes if r.function == "SurveyWebhookFunction")
        timing: dict[str, float] = Counter()
        in_calls: dict[str, float] = Counter()
        invocations: Counter[str] = Counter()
        sizes: list[int] = []

        def timed(phase: str, function: "_Function", event: dict) -> Any:
            meter.phase = phase
            before = meter.seconds_in_calls
            t0 = time.perf_counter()
            answer = function(event)
            timing[phase] += time.perf_counter() - t0
            in_calls[phase] += meter.seconds_in_calls - before
            invocations[phase] += 1
            return answer

        started = time.perf_counter()
        for start in range(0, len(measured), batch):
            for answer in measured[start : start + batch]:
                result = timed("receiver", webhook, _webhook_event(answer, route))
                if result["statusCode"] != 202:
                    raise RuntimeError(f"webhook answered {result['statusCode']}: {result}")
            pending: list[dict] = []
            while True:
                if not pending:
                    pending, iterator = _read(reader, iterator, stream_arn)
                    if not pending:
                        break
                chunk = pending[:batch]
                sizes.append(len(chunk))
                answer = timed("aggregator", aggregator, {"Records": chunk, **windowed})
                failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
                sequence = [r["dynamodb"]["SequenceNumber"] for r in chunk]
                first = min((sequence.index(f) for f in failed), default=len(chunk))
                pending = pending[first:] if failed else pending[len(chunk) :]
        run_seconds = time.perf_counter() - started

        api = {}
        if nps_query:
            api_function = _Function(template, "ApiFunction", load_handler)
            api_route = next(r for r in template.routes if r.path == "/nps")
            calls_before = meter.total_calls("api")
            event = _api_event(
                api_route,
                "dimension=overall&value=all&granularity=day&from=2025-01-01&to=2025-12-31",
            )
            answer = timed("api", api_function, event)
            body = json.loads(answer["body"])
            api = {
                "status": answer["statusCode"],
                "buckets": len(body.get("buckets", [])),
                "calls": dict(_by_op(meter, "api")),
                "dynamodb_calls": meter.total_calls("api", "dynamodb") - calls_before,
                "rcu": sum(v for (p, _), v in meter.rcu.items() if p == "api"),
            }
    from nps_sync.store.dynamo import WRITERS  # (the layer is on the path since add_layers)

    n = len(measured)
    return {
        "total": total,
        "batch": batch,
        "measured": n,
        "dimensions": settings,
        "backfill": backfill,
        "customers": len({a.customer.email for a in traffic}),
        "prefill_seconds": round(prefill_seconds, 2),
        "run_seconds": round(run_seconds, 2),
        "aggregator_batches": len(sizes),
        "mean_batch": sum(sizes) / len(sizes) if sizes else 0,
        "calls": {phase: dict(_by_op(meter, phase)) for phase in ("receiver", "aggregator")},
        "round_trips": {
            phase: meter.round_trips(phase, WRITERS) for phase in ("receiver", "aggregator")
        },
        "entries": {f"{p}:{s}:{o}": n for (p, s, o), n in meter.entries.items()},
        "wcu": _nested(meter.wcu),
        "gsi_wcu": _nested(meter.gsi_wcu),
        "rcu": _nested(meter.rcu),
        "items_written": _nested(meter.items_written),
        "handler_ms": {p: 1000 * timing[p] / max(1, invocations[p]) for p in invocations},
        "in_calls_ms": {p: 1000 * in_calls[p] / max(1, invocations[p]) for p in invocations},
        "invocations": dict(invocations),
        "api": api,
    }


def _default():
    import boto3

    boto3.setup_default_session()
    return boto3.DEFAULT_SESSION._session


def _by_op(meter, phase: str) -> Counter:
    result: Counter[str] = Counter()
    for (p, service, operation), count in meter.calls.items():
        if p == phase:
            result[f"{service}:{operation}"] += count
    return result


def _nested(counter: Counter) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = defaultdict(dict)
    for (phase, kind), value in counter.items():
        result[phase][kind] = value
    return dict(result)


def _indexes(template, stack) -> dict[str, list]:
    """table -> each GSI's (key attributes, projected attributes or None for ALL), from the
    template: bench.meter bills an index write by the entry the projection holds."""
    result = {}
    for logical, resource in template.of_type("AWS::DynamoDB::Table").items():
        properties = resource.get("Properties", {})
        table_keys = tuple(k["AttributeName"] for k in properties.get("KeySchema", []))
        indexes = []
        for gsi in properties.get("GlobalSecondaryIndexes", []):
            keys = tuple(k["AttributeName"] for k in gsi["KeySchema"])
            projection = gsi.get("Projection", {})
            kind = projection.get("ProjectionType", "ALL")
            extra = tuple(projection.get("NonKeyAttributes", [])) if kind == "INCLUDE" else ()
            indexes.append((keys, None if kind == "ALL" else (*table_keys, *keys, *extra)))
        result[stack.refs[logical]] = indexes
    return result


class _Function:
    def __init__(self, template, logical_id: str, load_handler):
        from local.lambdas import Context

        self.spec = template.functions[logical_id]
        self.handler = load_handler(self.spec)
        self.context_type = Context

    def __call__(self, event: dict) -> Any:
        context = self.context_type(
            function_name=self.spec.logical_id,
            memory_limit_in_mb=self.spec.memory,
            timeout=self.spec.timeout,
            aws_request_id="bench",
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench",
        )
        return self.handler(event, context)


def _webhook_event(answer, route) -> dict:
    from local.gateway import api_event
    from local.signer import signed_headers

    body = json.dumps(answer.generic_body(), separators=(",", ":")).encode()
    headers = signed_headers("generic", body)
    return api_event(
        "POST",
        "/webhooks/survey/generic",
        headers,
        body,
        route,
        {"provider": "generic"},
        "api.example.com",
        "203.0.113.7",
    )


def _api_event(route, query: str) -> dict:
    from local.gateway import api_event

    token = json.loads((ROOT / "local" / "dev-secrets.json").read_text())["api_tokens"][0]
    headers = {"authorization": f"Bearer {token}"}
    return api_event("GET", f"/nps?{query}", headers, b"", route, {}, "api.example.com", "::1")


def _read(reader, iterator: str, arn: str) -> tuple[list[dict], str]:
    records = []
    while True:
        page = reader.get_records(ShardIterator=iterator, Limit=1000)
        iterator = page["NextShardIterator"]
        if not page["Records"]:
            return records, iterator
        records.extend(
            {**r, "eventSourceARN": arn}
            for r in page["Records"]
            if r["dynamodb"]["Keys"]["sk"]["S"] in PASSED
        )


# --- setup straight into the emulator (not counted) -------------------------------------------


def _without_stream(table):
    class _Quiet:
        def __enter__(self):
            self.shard, table.stream_shard = table.stream_shard, None

        def __exit__(self, *_):
            table.stream_shard = self.shard

    return _Quiet()


def _known_customers(backend, records: str, traffic) -> None:
    table = backend.get_table(records)
    stamp = {"S": "2024-12-01T00:00:00.000000Z"}
    with _without_stream(table):
        for customer in {a.customer.email: a.customer for a in traffic}.values():
            key = {"S": f"CUST#{customer.email}"}
            table.put_item(
                {
                    "pk": key,
                    "sk": {"S": "PROFILE"},
                    "plan": {"S": customer.plan},
                    "region": {"S": customer.region},
                    "account": {"S": customer.account},
                    "mrr_amount": {"N": str(customer.mrr)},
                    "mrr_currency": {"S": "USD"},
                    "email": {"S": customer.email},
                    "customer_id": {"S": customer.customer_id},
                    "crm_updated_at": stamp,
                    "billing_updated_at": stamp,
                    "profile_version": {"N": "2"},
                }
            )
            table.put_item(
                {
                    "pk": {"S": f"ID#{customer.customer_id}"},
                    "sk": {"S": "ID"},
                    "type": {"S": "link"},
                    "customer_key": {"S": customer.email},
                    "gsi1pk": key,
                    "gsi1sk": {"S": f"ID#{customer.customer_id}"},
                    "settled": {"BOOL": True},  # its CRM/billing webhook moved what it had
                    # and a later one (billing's monthly events) moved it again once the index
                    # had caught up (store/links.py): nothing is left to move
                    "rechecked": {"BOOL": True},
                }
            )


def _prefill(backend, records: str, aggregates: str, history, dimensions, shard: str) -> None:
    from nps_sync.core.aggregates import COUNTERS, contribution, pad
    from nps_sync.core.models import Response
    from nps_sync.store.counters import LISTED_GRANULARITY, shard_of
    from nps_sync.store.items import stored_response
    from nps_sync.store.records import response_item

    if not history:
        return
    table = backend.get_table(records)
    sums: dict = {}
    with _without_stream(table):
        for answer in history:
            c = answer.customer
            item = response_item(
                Response(
                    provider="generic",
                    response_id=answer.response_id,
                    customer_key=c.email,
                    score=answer.score,
                    submitted_at=answer.submitted_at,
                    updated_at=answer.submitted_at,
                    survey=answer.survey,
                    channel=answer.channel,
                    email=c.email,
                    customer_id=c.customer_id,
                )
            )
            item.update(
                plan={"S": c.plan},
                region={"S": c.region},
                account={"S": c.account},
                mrr_amount={"N": str(c.mrr)},
                mrr_currency={"S": "USD"},
                profile_version={"N": "2"},
            )
            table.put_item(item)
            for key, counts in contribution(stored_response(item), dimensions).items():
                sums[key] = sums[key] + counts if key in sums else counts
    target = backend.get_table(aggregates)
    mark = pad("0")
    for key, counts in sums.items():  # laid out as the aggregator writes them from this shard
        item = {
            "pk": {"S": key.pk},
            "sk": {"S": f"{key.sk}#{shard_of(shard)}"},
            "dimension": {"S": key.dimension},
            "value": {"S": key.value},
            "granularity": {"S": key.granularity},
            "period": {"S": key.period},
            f"hwm#{shard}": {"S": mark},
            f"hwm#{shard}#at": {"N": str(int(time.time()))},
        }
        if key.granularity == LISTED_GRANULARITY:
            item["listed_dimension"] = {"S": key.dimension}
        for name in COUNTERS:
            item[name] = {"N": str(getattr(counts, name))}
        target.put_item(item)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dynamo_cost", description=__doc__)
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument("--dimensions", default=None)
    parser.add_argument("--backfill", action="store_true")
    args = parser.parse_args()
    result = run(args.total, args.batch, args.window, args.dimensions, args.backfill)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
