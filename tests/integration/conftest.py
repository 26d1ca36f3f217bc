"""Moto-backed tables created from template.yaml, a stand-in for Lambda's stream polling, and
ApiFunction called with the events the local HTTP API makes."""

import itertools
import json
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import template as template_module
from local.aws import Stack
from local.gateway import api_event
from local.lambdas import Context, load_handler
from local.template import Route
from nps_sync.aggregation.aggregator import Aggregator
from nps_sync.aggregation.reconcile import reconcile
from nps_sync.aggregation.stream import ShardLocator
from nps_sync.core.aggregates import DEFAULT_DIMENSIONS
from nps_sync.core.models import Response
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.records import RecordsStore
from nps_sync.store.response_index import ResponseIndex
from nps_sync.store.secrets import parse as parse_secrets
from nps_sync.web.api import Services, resolver

PASSED = ("RESP", "PROFILE")
STREAMS_ENDPOINT = "https://streams.dynamodb.us-east-1.amazonaws.com"


@pytest.fixture(scope="session")
def template():
    return template_module.load()


class _MotoAccount:
    """What local.aws.Stack needs from an emulator, backed by moto's in-process mock."""

    def client(self, service: str):
        if service == "dynamodbstreams":
            return boto3.client(service, endpoint_url=STREAMS_ENDPOINT)
        return boto3.client(service)


class Flaky:
    """A DynamoDB client that fails chosen UpdateItem calls, or runs them twice (an SDK retry
    after a lost response). A batch's counter writes go out from several threads, so a call's
    number says little about its key: ``fail_keys`` maps a ``pk/sk`` prefix to how many of
    its writes fail (then they pass)."""

    def __init__(self, client, fail_calls=(), repeat_calls=(), fail_keys=None):
        self.client = client
        self.fail_calls = set(fail_calls)
        self.repeat_calls = set(repeat_calls)
        self.fail_keys = dict(fail_keys or {})
        self.calls = 0
        self.lock = threading.Lock()

    def _call(self, key: str) -> tuple[int, bool]:
        """This call's number, and whether it fails."""
        with self.lock:
            self.calls += 1
            if self.calls in self.fail_calls:
                return self.calls, True
            prefix = next((p for p, n in self.fail_keys.items() if n and key.startswith(p)), None)
            if prefix is not None:
                self.fail_keys[prefix] -= 1
            return self.calls, prefix is not None

    def update_item(self, **kwargs):
        number, fails = self._call(f"{kwargs['Key']['pk']['S']}/{kwargs['Key']['sk']['S']}")
        if fails:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                "UpdateItem",
            )
        if number in self.repeat_calls:
            self.client.update_item(**kwargs)  # applied; its answer was lost, the SDK retries
        return self.client.update_item(**kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


@dataclass
class World:
    records_table: str
    aggregates_table: str
    stream_arn: str
    ddb: Any
    streams: Any
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS

    def __post_init__(self):
        self.store = RecordsStore(self.records_table, self.ddb)
        self.versions = itertools.count(1)
        self.iterator = None
        self.seen: list[dict] = []  # every stream record read so far, in order

    # --- writes, as the webhooks and the profile code make them --------------------------

    def respond(self, response_id, customer, score, day="2026-01-15", version=0, **fields):
        submitted = datetime.fromisoformat(f"{day}T10:00:00+00:00")
        response = Response(
            provider="generic",
            response_id=response_id,
            customer_key=customer,
            score=score,
            submitted_at=submitted,
            updated_at=submitted + timedelta(minutes=version),
            **fields,
        )
        return self.store.put_response(response, {"id": response_id}, 400)

    def profile(self, customer, version, **attributes):
        item = {
            "pk": {"S": f"CUST#{customer}"},
            "sk": {"S": "PROFILE"},
            "profile_version": {"N": str(version)},
        }
        for name, value in attributes.items():
            item[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
        self.ddb.put_item(TableName=self.records_table, Item=item)

    # --- the stream ------------------------------------------------------------------------

    def new_records(self) -> list[dict]:
        if self.iterator is None:
            shard = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"][
                "Shards"
            ][0]["ShardId"]
            self.iterator = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        records = []
        while True:
            page = self.streams.get_records(ShardIterator=self.iterator, Limit=1000)
            self.iterator = page["NextShardIterator"]
            if not page["Records"]:
                break
            records.extend(
                {**r, "eventSourceARN": self.stream_arn}
                for r in page["Records"]
                if r["dynamodb"]["Keys"]["sk"]["S"] in PASSED  # the mapping's FilterCriteria
            )
        self.seen.extend(records)
        return records

    def aggregator(self, client=None, dimensions=None, locator=None) -> Aggregator:
        return Aggregator(
            AggregatesStore(self.aggregates_table, client or self.ddb),
            CustomerRecords(self.records_table, self.ddb),
            dimensions or self.dimensions,
            locator or ShardLocator(self.streams),
        )

    def run(self, aggregator=None, batch_size=100, pending=None, attempts=50) -> list[dict]:
        """Lambda's event source mapping: batches in order; with reported failures it goes on
        from the lowest one, delivering everything after it again. Returns the batches."""
        aggregator = aggregator or self.aggregator()
        pending = list(pending) if pending is not None else self.new_records()
        batches = []
        for _ in range(attempts):
            if not pending:
                pending = self.new_records()  # the aggregator's own stamps come back
                if not pending:
                    return batches
            batch = pending[:batch_size]
            batches.append(batch)
            answer = aggregator.handle({"Records": batch})
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
            first = min((sequence.index(f) for f in failed), default=len(batch))
            pending = pending[first:] if failed else pending[len(batch) :]
        raise AssertionError("the stream did not drain")

    def differences(self):
        return reconcile(
            CustomerRecords(self.records_table, self.ddb),
            AggregatesStore(self.aggregates_table, self.ddb),
            self.dimensions,
        ).differences

    def series(self, dimension, value, granularity="all"):
        return AggregatesStore(self.aggregates_table, self.ddb).series(
            dimension, value, granularity, None, None
        )

    def index_series(self, dimension, value, granularity="all", first=None, last=None):
        return ResponseIndex(self.records_table, self.ddb).series(
            dimension, value, granularity, first, last
        )


def nps(series: dict) -> dict:
    """A series' NPS counters by period, without the score histograms (checked on their own,
    and by reconcile against the responses)."""
    return {period: counts.nps_counts() for period, counts in series.items()}


@pytest.fixture
def world(template, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield make_world(template)


def make_world(template) -> World:
    account = _MotoAccount()
    stack = Stack(template, account).provision()
    return World(
        records_table=stack.refs["RecordsTable"],
        aggregates_table=stack.refs["AggregatesTable"],
        stream_arn=stack.attributes[("RecordsTable", "StreamArn")],
        ddb=account.client("dynamodb"),
        streams=account.client("dynamodbstreams"),
    )


def now() -> datetime:
    return datetime.now(UTC)


# --- ApiFunction ---------------------------------------------------------------------------

API_TOKEN = "dev-token-change-me"  # in DEV_SECRETS as a bare token: scope admin
READ_TOKEN = "dev-read-token"  # in DEV_SECRETS with scope read
DEV_SECRETS = Path(__file__).parents[2] / "local" / "dev-secrets.json"


def api_resolver(world: World, client: Any = None, dimensions=None, **fields: Any):
    """The API's resolver over the world's tables (through ``client``, else the world's own),
    accepting the tokens of DEV_SECRETS; ``fields`` are the other Services (today, ...)."""

    def services() -> Services:
        return Services(
            AggregatesStore(world.aggregates_table, client or world.ddb),
            CustomerRecords(world.records_table, client or world.ddb),
            dimensions or world.dimensions,
            lambda: parse_secrets(DEV_SECRETS.read_text()).api_tokens,
            **fields,
        )

    return resolver(services)


@pytest.fixture
def api_function(world, template, monkeypatch):
    """ApiFunction's handler as template.yaml names it; ``api_function(**fields)`` makes it
    serve ``api_resolver(world, **fields)`` and returns it."""
    monkeypatch.setenv("NPS_SYNC_SECRETS_FILE", str(DEV_SECRETS))
    monkeypatch.setenv("RECORDS_TABLE", world.records_table)
    monkeypatch.setenv("AGGREGATES_TABLE", world.aggregates_table)
    handler = load_handler(template.functions["ApiFunction"])

    def serving(**fields: Any):
        monkeypatch.setattr(sys.modules[handler.__module__], "app", api_resolver(world, **fields))
        return handler

    return serving


def api_request(resolve, method, path, query=None, body=None, token=API_TOKEN, route=None):
    """One request to ``resolve`` (a resolver's ``resolve``, or ApiFunction's handler) as the
    local HTTP API sends it; ``route``: the route's path where it is not ``path``. Returns the
    function's answer."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    payload = b""
    if body is not None:
        headers["content-type"] = "application/json"
        payload = json.dumps(body).encode()
    target = f"{path}?{urlencode(query)}" if query else path
    route_ = Route(method, route or path, "ApiFunction")
    event = api_event(method, target, headers, payload, route_, {}, "localhost", "127.0.0.1")
    context = Context("ApiFunction", 512, 10, "req-1", "arn:aws:lambda:::function:ApiFunction")
    return resolve(event, context)


def call_api(resolve, method, path, query=None, body=None, token=API_TOKEN, route=None):
    """api_request's status and JSON body (None for an empty body)."""
    answer = api_request(resolve, method, path, query, body, token, route)
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None
