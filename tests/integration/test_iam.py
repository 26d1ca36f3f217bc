"""Every AWS call a function makes is allowed by its own IAM policy in template.yaml, and every
permission on our tables, queues, bus and secret is one that some flow uses (issue 8, item 5).

moto does not enforce IAM, so a missing permission (``dynamodb:Query`` on a new index) passes
every other test and fails only once deployed. Here each function's policies come out of the
translated template (its role's inline policies, template-defined managed policies, and AWS's
managed policies that SAM attaches), resolved to the ARNs the stack has in moto. The handlers
then run through every sample webhook, the stream, the queues, every API route and reconcile,
with a hook on the boto3 session that records each call as (function, IAM action, resource
ARN). Calls made by an event source mapping (reading the stream or the queue) count for the
function whose role Lambda reads them with.
"""

import dataclasses
import json
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local import template as template_module
from local.aws import ACCOUNT, REGION, Emulator, Stack
from local.events import KINDS, build, provider_of, wire_body
from local.gateway import api_event
from local.lambdas import Context, load_handler
from local.pollers import SqsPoller
from local.template import EventSource, Template
from nps_sync.core.models import Response
from nps_sync.core.settings import (
    aggregate_settings,
    destination_settings,
    fanout_settings,
    settings,
)
from nps_sync.ingest.enqueue import enqueue
from nps_sync.store import aws, dynamo, secrets
from nps_sync.store.records import compress, response_item
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
BODIES = ROOT / "events" / "bodies"
DEV_SECRETS = ROOT / "local" / "dev-secrets.json"
TOKEN = json.loads(DEV_SECRETS.read_text())["api_tokens"][0]
STREAMS_ENDPOINT = f"https://streams.dynamodb.{REGION}.amazonaws.com"
PARAMETERS = {**template_module.local_settings()["parameters"], "LogLevel": "WARNING"}

# What SAM attaches by ARN (AWS managed policies, as AWS publishes them): basic logging, X-Ray
# for `Tracing: Active`, and what Lambda's event source mappings read streams and queues with.
_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
AWS_MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": _LOGS,
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        *_LOGS,
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        *_LOGS,
    ],
}

# Permissions on our resources that no flow below exercises, each with why it stays. The
# resource is named as in template.yaml (logical id, with /index/<name> for an index).
UNEXERCISED = {
    ("AggregatorFunction", "sqs:SendMessage", "AggregatorFailureQueue"): (
        "the stream mapping's on-failure destination: Lambda itself describes a batch there "
        "after MaximumRetryAttempts, with the function's role; the code never sends to it"
    ),
    ("DestinationFunction", "dynamodb:BatchWriteItem", "RecordsTable"): (
        "a link a lookup by e-mail remembers moves what is stored under the alias and merges "
        "the alias's own PROFILE into the customer's (store.links), deleting it; the flow's "
        "aliases (hubspot:<id>) have nothing stored under them"
    ),
    ("ApiFunction", "dynamodb:BatchWriteItem", "RecordsTable"): (
        "an erasure deletes a record's raw payloads apart from its page's transaction only "
        "when they do not fit in one (over 98 versions of one record); no flow stores that many"
    ),
    ("AggregatorFunction", "dynamodb:GetItem", "AggregatesTable"): (
        "a redelivered batch's conditional write fails on its mark; the stored item is read "
        "only when the failed write's answer lacks it (ReturnValuesOnConditionCheckFailure "
        "returns it, in moto too): the redelivery below takes the path, never this read"
    ),
}

# IAM names the batch forms of SQS calls by the single action they repeat.
SQS_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
# A DynamoDB transaction is authorized item by item, as the action each item stands for.
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


# --- the policies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One Allow statement, resolved: action patterns and resource ARN patterns."""

    source: str  # the policy's name, for messages
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def allows(self, action: str, resource: str) -> bool:
        return any(_glob(a, action, fold=True) for a in self.actions) and any(
            _glob(r, resource) for r in self.resources
        )


def _glob(pattern: str, text: str, fold: bool = False) -> bool:
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, text, re.IGNORECASE if fold else 0) is not None


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policies(template: Template, stack: Stack) -> dict[str, list[Grant]]:
    """Function logical id -> every Allow statement its execution role carries."""
    roles = template.of_type("AWS::IAM::Role")
    managed = template.of_type("AWS::IAM::ManagedPolicy")
    result = {}
    for function, resource in template.of_type("AWS::Lambda::Function").items():
        role_id, attribute = resource["Properties"]["Role"]["Fn::GetAtt"]
        assert attribute == "Arn"
        role = roles[role_id]["Properties"]
        documents = [(p["PolicyName"], p["PolicyDocument"]) for p in role.get("Policies", [])]
        for arn in role.get("ManagedPolicyArns", []):
            if isinstance(arn, dict) and arn.get("Ref") in managed:
                documents.append((arn["Ref"], managed[arn["Ref"]]["Properties"]["PolicyDocument"]))
            elif arn in AWS_MANAGED:
                statement = {"Effect": "Allow", "Action": AWS_MANAGED[arn], "Resource": "*"}
                documents.append((arn.rsplit("/", 1)[-1], {"Statement": [statement]}))
            else:
                raise AssertionError(f"{function}: managed policy {arn} is unknown to this test")
        for name, policy in managed.items():  # attached from the policy's side
            if {"Ref": role_id} in policy["Properties"].get("Roles", []):
                documents.append((name, policy["Properties"]["PolicyDocument"]))
        grants = []
        for name, document in documents:
            for statement in _listed(document["Statement"]):
                unsupported = {"NotAction", "NotResource", "Condition"} & set(statement)
                assert statement["Effect"] == "Allow" and not unsupported, (
                    f"{name}: this test evaluates only unconditional Allow statements"
                )
                resources = [stack.resolve(r) for r in _listed(statement["Resource"])]
                for arn in resources:
                    assert arn == "*" or str(arn).startswith("arn:"), f"{name}: unresolved {arn}"
                grants.append(Grant(name, tuple(_listed(statement["Action"])), tuple(resources)))
        result[function] = grants
    return result


def our_arns(stack: Stack) -> dict[str, str]:
    """ARN -> logical id of every table, queue, bus and secret of the stack (the secrets
    parameter under its template parameter's name)."""
    arns = {arn: logical for (logical, name), arn in stack.attributes.items() if name == "Arn"}
    for (logical, name), arn in stack.attributes.items():
        if name == "StreamArn":
            arns[arn] = f"{logical}/stream"
    return arns


def readable(arn: str, names: dict[str, str]) -> str:
    for ours, logical in sorted(names.items(), key=lambda pair: -len(pair[0])):
        if arn == ours or arn.startswith(ours + "/"):
            return logical + arn[len(ours) :]
    return arn


# --- the calls -------------------------------------------------------------------------------


def table_arn(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def queue_arn(url: str) -> str:
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{REGION}:{account}:{name}"


def bus_arn(name: str) -> str:
    return (
        name if name.startswith("arn:") else f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"
    )


class Recorder:
    """Records, while a function runs, each AWS call it makes as (IAM action, resource ARN)."""

    def __init__(self):
        self.who: tuple[str, str] | None = None  # (function, flow)
        self.calls: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self.iterators: dict[str, str] = {}  # shard iterator -> stream ARN
        self.lock = threading.Lock()

    def attach(self, events: Any) -> None:
        events.register("before-parameter-build", self._before)
        events.register("after-call", self._after)

    @contextmanager
    def acting(self, function: str, flow: str) -> Iterator[None]:
        before, self.who = self.who, (function, flow)
        try:
            yield
        finally:
            self.who = before

    def _before(self, params, model, context, **_):
        service = aws.service_of(model.service_model)
        if service == "dynamodbstreams":
            context["iam_stream"] = params.get("StreamArn") or self.iterators.get(
                params.get("ShardIterator", "")
            )
        if self.who is None:
            return
        function, flow = self.who
        prefix = model.service_model.signing_name  # dynamodbstreams signs as dynamodb
        with self.lock:
            for action, resource in self.requests(service, model.name, params, context):
                self.calls[(function, f"{prefix}:{action}", resource)].add(flow)

    def _after(self, parsed, model, context, **_):
        if aws.service_of(model.service_model) != "dynamodbstreams":
            return
        for key in ("ShardIterator", "NextShardIterator"):
            if parsed.get(key) and context.get("iam_stream"):
                self.iterators[parsed[key]] = context["iam_stream"]

    def requests(self, service, operation, params, context) -> list[tuple[str, str]]:
        if service == "dynamodb":
            if operation.startswith("Transact"):
                return [
                    (TRANSACT_ACTIONS[kind], table_arn(body["TableName"]))
                    for item in params["TransactItems"]
                    for kind, body in item.items()
                ]
            if operation.startswith("Batch"):
                return [(operation, table_arn(table)) for table in params["RequestItems"]]
            if "TableName" in params:
                arn = table_arn(params["TableName"])
                if params.get("IndexName"):
                    arn += f"/index/{params['IndexName']}"
                return [(operation, arn)]
        if service == "dynamodbstreams":
            return [(operation, context.get("iam_stream") or "*")]
        if service == "sqs":
            action = SQS_ACTIONS.get(operation, operation)
            if "QueueUrl" in params:
                return [(action, queue_arn(params["QueueUrl"]))]
            if "QueueName" in params:
                return [(action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{params['QueueName']}")]
        if service == "events" and operation == "PutEvents":
            buses = {e.get("EventBusName", "default") for e in params["Entries"]}
            return [(operation, bus_arn(bus)) for bus in sorted(buses)]
        if service == "events" and operation == "ListRules":
            return [(operation, "*")]  # no resource type: IAM authorizes it on "*" only
        if service == "ssm" and "Name" in params:  # "/name": no "/" after ":"
            return [(operation, f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{params['Name']}")]
        return [(operation, "*")]  # a service this test does not know: only a * grant allows it


# --- the functions, as Lambda runs them ------------------------------------------------------


class Deployed:
    """A template function with its own environment (and nothing of the others'), invoked as
    its own container would be; what it calls is recorded under its name."""

    def __init__(self, rig: "Rig", logical_id: str):
        self.rig = rig
        self.name = logical_id
        self.spec = rig.template.functions[logical_id]
        self.environment = {
            name: str(value)
            for name, value in (
                (name, rig.stack.resolve(v)) for name, v in self.spec.environment.items()
            )
            if value is not None
        }
        self.handler = None

    def invoke(self, event: dict) -> Any:
        rig = self.rig
        for name in rig.environment_names:
            rig.monkeypatch.delenv(name, raising=False)
        for name, value in {**self.environment, **rig.overrides}.items():
            rig.monkeypatch.setenv(name, value)
        for cache in (settings, aggregate_settings, fanout_settings, destination_settings):
            cache.cache_clear()
        secrets.clear_cache()
        if self.handler is None:
            self.handler = load_handler(self.spec)
        context = Context(
            function_name=self.name,
            memory_limit_in_mb=self.spec.memory,
            timeout=self.spec.timeout,
            aws_request_id=f"iam-{time.monotonic_ns()}",
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.name}",
        )
        with rig.recorder.acting(self.name, "code"):
            return self.handler(event, context)


class StreamMapping:
    """Lambda's DynamoDB stream mapping, as far as IAM is concerned: it reads the stream with
    the function's role, drops what FilterCriteria do not match and invokes with batches of
    BatchSize, in order. Every batch must succeed (retries are not what is under test)."""

    def __init__(self, function: Deployed, mapping: EventSource, arn: str, patterns: list):
        self.function, self.mapping, self.arn, self.patterns = function, mapping, arn, patterns
        self.client = boto3.client("dynamodbstreams", endpoint_url=STREAMS_ENDPOINT)
        self.iterator: str | None = None
        self.pending: list[dict] = []
        self.last: dict | None = None

    def poll_once(self) -> bool:
        if self.iterator is None:
            (shard,) = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"][
                "Shards"
            ]
            self.iterator = self.client.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        page = self.client.get_records(ShardIterator=self.iterator, Limit=1000)
        self.iterator = page["NextShardIterator"]
        self.pending += [r for r in page["Records"] if any(_matches(p, r) for p in self.patterns)]
        if not self.pending:
            return False
        batch, self.pending = (
            self.pending[: self.mapping.batch_size],
            self.pending[self.mapping.batch_size :],
        )
        self.last = {"Records": [{**r, "eventSourceARN": self.arn} for r in batch]}
        answer = self.function.invoke(self.last)
        assert not answer["batchItemFailures"], answer
        return True


def _matches(pattern: dict, data: Any) -> bool:
    """EventBridge-style patterns of exact values, the only form the template uses."""
    for key, wanted in pattern.items():
        if not isinstance(data, dict) or key not in data:
            return False
        if isinstance(wanted, dict):
            if not _matches(wanted, data[key]):
                return False
        elif data[key] not in wanted:
            return False
    return True


@dataclass
class Rig:
    template: Template
    stack: Stack
    recorder: Recorder
    monkeypatch: pytest.MonkeyPatch
    overrides: dict[str, str]  # parameters as deployed for this test (HubSpot's URL)
    hubspot: FakeHubSpot
    routes_called: set[str] = dataclasses.field(default_factory=set)

    def __post_init__(self):
        self.environment_names = {
            name for spec in self.template.functions.values() for name in spec.environment
        }
        self.functions = {name: Deployed(self, name) for name in self.template.functions}
        self.pollers: dict[str, Any] = {}

    def webhook(self, kind: str, provider: str, body: bytes) -> int:
        answer = self.functions[KINDS[kind]].invoke(build(kind, provider, body))
        assert answer["statusCode"] in (200, 202), (provider, answer)
        return answer["statusCode"]

    def api(self, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> Any:
        target = path.split("?", 1)[0]
        route, match = next(
            (r, m)
            for r in self.template.routes
            if r.method == method and (m := r.pattern().match(target))
        )
        assert route.function == "ApiFunction", route
        headers = {"authorization": f"Bearer {token}"} if token else {}
        raw = b""
        if body is not None:
            raw = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        event = api_event(
            method, path, headers, raw, route, match.groupdict(), "api.example.com", "::1"
        )
        answer = self.functions["ApiFunction"].invoke(event)
        assert 200 <= answer["statusCode"] < 300, (method, path, answer)
        self.routes_called.add(route.route_key)
        text = answer.get("body") or ""
        return json.loads(text) if text and text.lstrip().startswith(("{", "[")) else text

    def mapping(self, function: str) -> tuple[EventSource, str]:
        (mapping,) = [m for m in self.template.event_sources if m.function == function]
        return mapping, self.stack.resolve(mapping.source)

    def drain(self, function: str, rounds: int = 50) -> int:
        """Lambda's event source mapping over the function's stream or queue, until idle."""
        poller = self.pollers.get(function)
        if poller is None:  # one per mapping: a stream is read on from where it was left
            mapping, arn = self.mapping(function)
            # the batching window only delays a batch; it changes nothing that is called
            mapping = dataclasses.replace(mapping, window_seconds=0)
            target = self.functions[function]
            if ":dynamodb:" in arn:
                poller = StreamMapping(target, mapping, arn, self._filters(function))
            else:
                poller = SqsPoller(target, mapping, arn, Emulator(), threading.Event(), 0)
            self.pollers[function] = poller
        for worked in range(rounds):
            with self.recorder.acting(function, "event source mapping"):
                busy = poller.poll_once()
            if not busy:
                return worked
        raise AssertionError(f"{function}'s event source did not drain")

    def queue_depth(self, logical_id: str) -> int:
        attributes = boto3.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.refs[logical_id],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def redeliver(self, function: str) -> None:
        """The last batch again, as Lambda redelivers one whose answer it did not get."""
        mapping = self.pollers[function]
        mapping.function.invoke(mapping.last)

    def _filters(self, function: str) -> list[dict]:
        (resource,) = [
            r
            for r in self.template.of_type("AWS::Lambda::EventSourceMapping").values()
            if self.template.function_of(r["Properties"]["FunctionName"]["Ref"]) == function
        ]
        filters = resource["Properties"].get("FilterCriteria", {}).get("Filters", [])
        return [json.loads(f["Pattern"]) for f in filters] or [{}]


@dataclass
class Recorded:
    calls: dict[tuple[str, str, str], set[str]]  # (function, action, resource) -> flows
    grants: dict[str, list[Grant]]
    names: dict[str, str]  # ARN -> logical id
    routes_called: set[str]


@pytest.fixture(scope="module")
def recorded() -> Recorded:
    """Every flow, run once for the tests below, in moto with the recorder on the session."""
    template = template_module.load(overrides=PARAMETERS)
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        _forget_function_modules(template)
        boto3.setup_default_session()  # every client from here on carries the recorder
        emulator = Emulator()
        emulator.endpoint = None
        monkeypatch.setenv("NPS_SYNC_SECRETS_FILE", str(DEV_SECRETS))  # the secret's value
        stack = Stack(template, emulator).provision()
        monkeypatch.delenv("NPS_SYNC_SECRETS_FILE")  # the functions read Parameter Store
        recorder = Recorder()
        recorder.attach(boto3.DEFAULT_SESSION.events)
        hubspot = FakeHubSpot(
            json.loads(DEV_SECRETS.read_text())["providers"]["hubspot"]["access_token"]
        )
        url = hubspot.start()  # read by CrmEnrich, written by the HubSpot destination
        overrides = {"HUBSPOT_API_URL": url, "HUBSPOT_DESTINATION_URL": url}
        receiver, refusing = Receiver().start(), Receiver(always_fail=True).start()
        try:
            rig = Rig(template, stack, recorder, monkeypatch, overrides, hubspot)
            run_flows(rig, receiver, refusing)
            return Recorded(
                dict(recorder.calls), policies(template, stack), our_arns(stack), rig.routes_called
            )
        finally:
            for server in (hubspot, receiver, refusing):
                server.stop()
            boto3.DEFAULT_SESSION = None
            _forget_function_modules(template)
            for cache in (settings, aggregate_settings, fanout_settings, destination_settings):
                cache.cache_clear()
            secrets.clear_cache()


def _forget_function_modules(template: Template) -> None:
    """Fresh function modules: no client made earlier, without the recorder, survives."""
    for logical_id in template.functions:
        for name in [m for m in sys.modules if m.startswith(f"lambda_{logical_id}_")]:
            sys.modules.pop(name)


# --- the flows -------------------------------------------------------------------------------


def test_every_call_a_function_makes_is_allowed_by_its_own_policy(recorded):
    denied = sorted(
        f"{function}: {action} on {readable(resource, recorded.names)} ({', '.join(sorted(flows))})"
        for (function, action, resource), flows in recorded.calls.items()
        if not any(g.allows(action, resource) for g in recorded.grants[function])
    )

    assert not denied, "calls the template's IAM policies do not allow:\n" + "\n".join(denied)


def test_every_permission_on_our_resources_is_used_by_its_function(recorded):
    unused = {}
    for function, grants in recorded.grants.items():
        for grant in grants:
            for action in grant.actions:
                for resource in grant.resources:
                    name = readable(resource, recorded.names)
                    if name == resource:
                        continue  # "*", or not one of our tables, queues, bus or secret
                    if not any(
                        f == function and _glob(action, a, fold=True) and _glob(resource, r)
                        for f, a, r in recorded.calls
                    ):
                        unused[(function, action, name)] = grant.source

    unexplained = sorted(
        f"{f}: {a} on {r} ({source})"
        for (f, a, r), source in unused.items()
        if (f, a, r) not in UNEXERCISED
    )
    assert not unexplained, "permissions no flow uses:\n" + "\n".join(unexplained)
    assert set(UNEXERCISED) <= set(unused), "UNEXERCISED lists permissions that are now used"


def test_the_flows_reach_every_function_and_every_api_route(recorded, template):
    assert {function for function, _, _ in recorded.calls} == set(template.functions)
    routes = {r.route_key for r in template.routes if r.function == "ApiFunction"}
    assert routes - recorded.routes_called == set()


def test_the_aggregator_reads_its_bus_rules_and_puts_what_one_matches(recorded):
    """ListRules is granted on "*" only, which the unused-permission check cannot see."""
    calls = {
        (action, resource) for f, action, resource in recorded.calls if f == "AggregatorFunction"
    }
    bus = next(arn for arn, logical in recorded.names.items() if logical == "EventBus")

    assert ("events:ListRules", "*") in calls
    assert ("events:PutEvents", bus) in calls


def run_flows(rig: Rig, receiver: Receiver, refusing: Receiver) -> None:
    # given: a rule on the bus (the aggregator puts only what a rule could match, reading the
    # rules with ListRules), made before the aggregator first reads them
    boto3.client("events").put_rule(
        Name="detractor-alerts",
        EventBusName=rig.stack.refs["EventBus"],
        EventPattern=json.dumps({"source": ["nps-sync"], "detail-type": ["detractor.alert"]}),
    )
    # given: webhook subscriptions, one of them refusing every delivery
    everything = rig.api(
        "POST",
        "/subscriptions",
        {
            "url": receiver.url,
            "events": [
                "response.received",
                "detractor.alert",
                "customer.nps_changed",
                "aggregate.updated",
            ],
        },
    )
    rig.api("POST", "/subscriptions", {"url": refusing.url, "events": ["detractor.alert"]})
    # HubSpot has the records its thin events name
    hubspot = rig.hubspot
    for contact in ("901", "902", "903"):
        hubspot.add("contacts", contact, email=f"c{contact}@example.com", company="Acme GmbH")
    hubspot.add("companies", "5790939450", name="Acme GmbH", country="DE")
    hubspot.add("contacts", "905", email="c905@example.com")  # named by no event: followed
    hubspot.add("contacts", "906", email="dana@example.com")  # found by the destination
    hubspot.add("contacts", "907", email="ana@example.com")
    # a HubSpot destination: its test call creates the properties, answers are written back
    destination = rig.api(
        "POST", "/destinations", {"kind": "hubspot", "credentials": "hubspot-dev"}
    )
    assert rig.api("POST", f"/destinations/{destination['id']}/test")["ok"]
    hubspot.associate("companies", "5790939450", "contacts", ["901", "902", "905"])

    # when: every sample webhook arrives, signed, survey answers before the profiles
    for kind in ("survey", "crm", "billing"):
        for path in sorted((BODIES / kind).glob("*.*")):
            rig.webhook(kind, provider_of(path), wire_body(path))
    rig.webhook("survey", "typeform", wire_body(BODIES / "survey" / "typeform.json"))  # again
    # an answer known by the customer id only, then linked to an e-mail (its records move)
    generic(
        rig,
        "survey",
        id="g1",
        customer={"id": "cust-2001"},
        score=9,
        submitted_at="2026-03-01T09:00:00Z",
    )
    generic(
        rig,
        "crm",
        id="g2",
        customer={"email": "fay@example.com", "id": "cust-2001"},
        updated_at="2026-03-02T09:00:00Z",
        account="Fay Corp",
        region="EMEA",
    )
    # each receiver links an id that has a profile of its own to an e-mail (profiles merge)
    for first, second, n in (("crm", "survey", 1), ("billing", "crm", 2), ("crm", "billing", 3)):
        generic(
            rig,
            first,
            id=f"m{n}",
            customer={"id": f"cust-300{n}"},
            region="APAC",
            plan="team",
            updated_at="2026-03-04T09:00:00Z",
            submitted_at="2026-03-04T09:00:00Z",
        )
        generic(
            rig,
            second,
            id=f"n{n}",
            customer={"email": f"m{n}@example.com", "id": f"cust-300{n}"},
            score=8,
            updated_at="2026-03-05T09:00:00Z",
            submitted_at="2026-03-05T09:00:00Z",
        )
    # a billing customer who answers as a detractor, and then churns
    generic(
        rig,
        "survey",
        id="g3",
        customer={"email": "dana@example.com"},
        score=2,
        comment="too slow",
        submitted_at="2026-03-03T09:00:00Z",
    )
    generic(
        rig,
        "survey",
        id="g3",
        customer={"email": "dana@example.com"},
        score=3,
        comment="too slow",
        submitted_at="2026-03-03T09:00:00Z",
        updated_at="2026-03-03T10:00:00Z",
    )  # a newer version of the answer
    generic(
        rig,
        "billing",
        id="g4",
        customer={"email": "dana@example.com"},
        updated_at="2026-03-09T10:00:00Z",
        status="canceled",
    )
    # the CRM reads HubSpot for its thin events, the stream is aggregated, deliveries go out
    assert rig.drain("CrmEnrichFunction")
    assert rig.queue_depth("CrmEnrichmentQueue") == 0  # every read succeeded
    assert rig.drain("AggregatorFunction")
    rig.redeliver("AggregatorFunction")  # at least once: a batch comes again
    assert rig.drain("DeliveryFunction")
    assert receiver.received and refusing.attempts
    assert rig.drain("DestinationFunction")
    assert hubspot.objects["contacts"]["906"]["properties"]["nps_score"] == "3"

    # every API route
    for query in (
        "dimension=overall&granularity=month&from=2026-01-01&to=2026-12-31",
        "dimension=plan&value=pro&window=90d",
        "dimension=account&value=Fay%20Corp&granularity=month&from=2026-01-01&to=2026-12-31",
    ):
        rig.api("GET", f"/nps?{query}")
    rig.api("GET", "/customers/ana@example.com")
    rig.api("GET", "/segments?dimension=plan")
    rig.api("GET", "/distribution")
    rig.api("GET", "/distribution?window=90d")
    rig.api("GET", "/detractors?limit=20")
    rig.api(
        "GET", "/outcomes?dimension=plan&value=pro&granularity=month&from=2026-01-01&to=2026-12-31"
    )
    rig.api("GET", "/outcomes?window=90d")
    rig.api("GET", "/outcomes/at-risk?limit=10")
    rig.api("GET", "/outcomes/at-risk?order=recent&dimension=plan&value=pro")
    rig.api("GET", "/subscriptions")
    rig.api("GET", f"/subscriptions/{everything['id']}")
    rig.api("POST", f"/subscriptions/{everything['id']}/rotate")
    rig.api("GET", f"/subscriptions/{everything['id']}/deliveries")
    rig.api("DELETE", f"/subscriptions/{everything['id']}")
    rig.api("GET", "/dashboard", token=None)
    rig.api("GET", "/dashboard/dashboard.js", token=None)
    rig.api("GET", "/openapi.json", token=None)
    rig.api("GET", "/destinations")
    rig.api("GET", "/destinations/health")
    rig.api("GET", f"/destinations/{destination['id']}")
    rig.api("GET", f"/destinations/{destination['id']}/writes")
    rig.api("DELETE", "/customers/fay@example.com")
    # an erasure too large for its request: the rest goes on from CrmEnrichmentQueue
    large_customer(rig, "gil@example.com", 40)
    assert rig.api("DELETE", "/customers/gil@example.com")["complete"] is False
    assert rig.drain("CrmEnrichFunction")
    assert rig.queue_depth("CrmEnrichmentQueue") == 0
    orphan(rig)  # for reconcile to repair below
    assert rig.drain("AggregatorFunction")  # the erasure's removals reach the aggregates

    # reconcile, over drift it must repair: a counter and a customer's outcome state
    drift(rig)
    report = rig.functions["ReconcileFunction"].invoke({"fix": True, "settle_seconds": 0})
    assert report["fixed"] == 1 and report["outcomes_fixed"] >= 1, report

    # an erasure clears what the destination wrote, and keeps the contact
    rig.api("DELETE", "/customers/dana@example.com")
    assert rig.drain("DestinationFunction")
    assert hubspot.objects["contacts"]["906"]["properties"].get("nps_score") in (None, "")
    # HubSpot rate-limits a write: the change is hidden for the wait, and kept
    change = {"type": "response.received", "data": {"customer_key": "ana@example.com"}}
    boto3.client("sqs").send_message(  # not recorded: as the aggregator sends it
        QueueUrl=rig.stack.refs["DestinationQueue"],
        MessageBody=json.dumps({"subscription_id": destination["id"], "event": change}),
    )
    hubspot.rate_limit(retry_after="1")
    assert rig.drain("DestinationFunction") == 1
    assert rig.queue_depth("DestinationQueue") == 1
    rig.api("DELETE", f"/destinations/{destination['id']}")

    # HubSpot rate-limits a read: its message is hidden for the wait, and kept
    enqueue(rig.stack.refs["CrmEnrichmentQueue"], "hubspot", [("contact", "901")])
    hubspot.rate_limit(retry_after="1")
    assert rig.drain("CrmEnrichFunction") == 1
    assert rig.queue_depth("CrmEnrichmentQueue") == 1


def large_customer(rig: Rig, email: str, count: int) -> None:
    """``count`` answers of one customer, each with its raw payload, written straight into
    the table (not recorded: no function is acting)."""
    items = []
    for i in range(count):
        item = response_item(
            Response(
                provider="generic",
                response_id=f"{email}-{i}",
                customer_key=email,
                score=i % 11,
                submitted_at=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=i),
                updated_at=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=i),
            )
        )
        raw = {"pk": item["pk"], "sk": {"S": f"RAW#{i}"}, "raw": {"B": compress({"i": i})}}
        items += [item, raw]
    dynamo.put_all(boto3.client("dynamodb"), rig.stack.refs["RecordsTable"], items)


def orphan(rig: Rig) -> None:
    """An answer still under an alias whose link is settled (a lagging index hid it from the
    move), with the alias's own PROFILE: written straight into the table (not recorded)."""
    item = response_item(
        Response(
            provider="generic",
            response_id="orphan-1",
            customer_key="cust-4001",
            score=7,
            submitted_at=datetime(2026, 3, 6, tzinfo=UTC),
            updated_at=datetime(2026, 3, 6, tzinfo=UTC),
        )
    )
    link = {
        "pk": {"S": "ID#cust-4001"},
        "sk": {"S": "ID"},
        "type": {"S": "link"},
        "customer_key": {"S": "hal@example.com"},
        "gsi1pk": {"S": "CUST#hal@example.com"},
        "gsi1sk": {"S": "ID#cust-4001"},
        "settled": {"BOOL": True},
        "rechecked": {"BOOL": True},
    }
    profile = {
        "pk": {"S": "CUST#cust-4001"},
        "sk": {"S": "PROFILE"},
        "region": {"S": "EMEA"},
        "at:region": {"S": "2026-03-06T00:00:00Z"},
        "crm_updated_at": {"S": "2026-03-06T00:00:00Z"},
        "profile_version": {"N": "1"},
    }
    dynamo.put_all(boto3.client("dynamodb"), rig.stack.refs["RecordsTable"], [item, link, profile])


def generic(rig: Rig, kind: str, **body: Any) -> None:
    rig.webhook(kind, "generic", json.dumps(body, separators=(",", ":")).encode())


def drift(rig: Rig) -> None:
    """What reconcile exists for: a counter off by one, a customer's outcome state lost."""
    ddb = boto3.client("dynamodb")  # not recorded: no function is acting
    (counter, *_) = ddb.query(  # a month of overall, in whichever counter shard
        TableName=rig.stack.refs["AggregatesTable"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
        ExpressionAttributeValues={":pk": {"S": "overall#all"}, ":m": {"S": "month#"}},
        ProjectionExpression="pk, sk",
    )["Items"]
    ddb.update_item(
        TableName=rig.stack.refs["AggregatesTable"],
        Key=counter,
        UpdateExpression="ADD promoters :one",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    ddb.update_item(
        TableName=rig.stack.refs["RecordsTable"],
        Key={"pk": {"S": "CUST#dana@example.com"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="REMOVE outcome",
        ConditionExpression="attribute_exists(outcome)",
    )
