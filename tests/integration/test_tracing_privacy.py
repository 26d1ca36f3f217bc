"""No e-mail or comment reaches X-Ray (docs/security.md "Traces"; issue 15, item 2).

Every other test runs with tracing off (tests/conftest.py). Here the traced functions run as
Lambda runs them with `Tracing: Active`: in a fresh interpreter started like a Lambda one
(LAMBDA_TASK_ROOT set, POWERTOOLS_TRACE_DISABLED off), so powertools' Tracer is the real one
and patches botocore and http.client, with each function's environment from template.yaml,
over moto. The X-Ray recorder's emitter is replaced by one that keeps every document it would
send to the daemon. A separate interpreter, because that patching cannot be undone and would
reach every later test.

A detractor's answer with a known e-mail and comment comes in through the survey receiver
(only to store it: the receivers run without the X-Ray SDK, docs/decisions.md; so does the API
as deployed, traced here all the same, as a deployment that turns the SDK on has it) and is
aggregated, her events going to the bus and a subscription's queue; she is read through
GET /customers/{key} and GET /detractors; reconcile runs, and the delivery and enrichment
handlers fail on an empty batch (the error path). What those send X-Ray is checked.
"""

import json
import multiprocessing
import os
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.batch.exceptions import UnexpectedBatchTypeError
from aws_xray_sdk.core import xray_recorder
from moto import mock_aws

from local.aws import Emulator, Stack
from local.events import build
from local.gateway import api_event
from local.lambdas import Context, load_handler
from local.template import Template, load, local_settings
from nps_sync.store import secrets

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRETS = ROOT / "local" / "dev-secrets.json"
TOKEN = json.loads(DEV_SECRETS.read_text())["api_tokens"][0]
EMAIL = "trace.probe-5d1c@example.org"
COMMENT = "Trace probe 5d1c: the export button does nothing"
TRACED = (
    "ApiFunction",
    "AggregatorFunction",
    "DeliveryFunction",
    "CrmEnrichFunction",
    "ReconcileFunction",
)


class Daemon:
    """The X-Ray recorder's emitter: keeps each document as the daemon would receive it."""

    def __init__(self):
        self.documents: list[str] = []

    def send_entity(self, entity) -> None:
        self.documents.append(entity.serialize())

    def set_daemon_address(self, address) -> None:
        pass


class Traced:
    """The traced functions of the template over a moto stack, each invocation in a trace of
    its own (Lambda sets _X_AMZN_TRACE_ID per invocation)."""

    def __init__(self, template: Template, stack: Stack):
        self.template, self.stack = template, stack
        for name in TRACED:
            for variable, value in template.functions[name].environment.items():
                if variable == "POWERTOOLS_TRACE_DISABLED":
                    continue  # the API's: traced all the same, as with the SDK turned on
                if (resolved := stack.resolve(value)) is not None:
                    os.environ[variable] = str(resolved)
        self.handlers = {name: load_handler(template.functions[name]) for name in TRACED}

    def invoke(self, name: str, event: dict, handler=None) -> Any:
        os.environ["_X_AMZN_TRACE_ID"] = (
            f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
            f"Parent={uuid.uuid4().hex[:16]};Sampled=1"
        )
        context = Context(name, 512, 30, str(uuid.uuid4()), f"arn:aws:lambda:::function:{name}")
        return (handler or self.handlers[name])(event, context)

    def api(self, method: str, path: str, body: Any = None, handler=None) -> dict:
        route, match = next(
            (r, m)
            for r in self.template.routes
            if r.method == method and (m := r.pattern().match(path.split("?")[0]))
        )
        headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        raw = json.dumps(body).encode() if body is not None else b""
        event = api_event(
            method, path, headers, raw, route, match.groupdict(), "api.example.com", "::1"
        )
        answer = self.invoke("ApiFunction", event, handler)
        assert 200 <= answer["statusCode"] < 300, (path, answer)
        return answer

    def stream(self) -> dict:
        """The RecordsTable stream's records so far, as the aggregator's mapping delivers them."""
        arn = self.stack.attributes[("RecordsTable", "StreamArn")]
        streams = Emulator().client("dynamodbstreams")
        (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        return {
            "Records": [
                {**r, "eventSourceARN": arn}
                for r in records
                if r["dynamodb"]["Keys"]["sk"]["S"] in ("RESP", "PROFILE")  # FilterCriteria
            ]
        }


def traced_run() -> dict[str, list[str]]:
    """Run in the fresh interpreter: what the traced functions send X-Ray ("safe"), and what one
    answer sends when captured as powertools does by default ("captured")."""
    daemon = Daemon()
    xray_recorder.configure(emitter=daemon)
    os.environ["_X_AMZN_TRACE_ID"] = "Root=1-00000000-000000000000000000000000;Parent=0;Sampled=0"
    with mock_aws():
        template = load(overrides=local_settings()["parameters"])
        emulator = Emulator()
        emulator.endpoint = None
        os.environ["NPS_SYNC_SECRETS_FILE"] = str(DEV_SECRETS)  # the secret's value
        stack = Stack(template, emulator).provision()
        del os.environ["NPS_SYNC_SECRETS_FILE"]  # the functions read Parameter Store
        functions = Traced(template, stack)
        tracer = sys.modules["nps_sync.core.observability"].tracer
        assert isinstance(tracer, Tracer) and not tracer.disabled, "tracing is not on"

        # given: a detractor's answer, through the survey receiver, and a subscription
        detractor = {"id": "trace-1", "customer": {"email": EMAIL}, "score": 2}
        detractor |= {"comment": COMMENT, "submitted_at": "2026-03-02T10:15:00Z"}
        webhook = build("survey", "generic", json.dumps(detractor).encode())
        receiver = load_handler(template.functions["SurveyWebhookFunction"])
        assert functions.invoke("SurveyWebhookFunction", webhook, receiver)["statusCode"] == 202
        functions.api(
            "POST",
            "/subscriptions",
            {"url": "http://127.0.0.1:9/nps", "events": ["response.received", "detractor.alert"]},
        )
        # and a rule on the bus, so that her events are put there (docs/events.md)
        boto3.client("events").put_rule(
            Name="everything",
            EventBusName=stack.refs["EventBus"],
            EventPattern=json.dumps({"source": ["nps-sync"]}),
        )
        batch = functions.stream()
        secrets.clear_cache()  # read again, as a new container does
        daemon.documents.clear()

        # when: her answer is aggregated and fanned out, she is read, reconcile runs, and two
        # handlers fail
        answer = functions.invoke("AggregatorFunction", batch)
        assert answer == {"batchItemFailures": []}, answer
        for path in (f"/customers/{EMAIL}", "/detractors?limit=5"):
            body = functions.api("GET", path)["body"]
            assert EMAIL in body and COMMENT in body, (path, body)  # the answer holds them
        functions.invoke("ReconcileFunction", {})
        for name in ("DeliveryFunction", "CrmEnrichFunction"):
            with pytest.raises(UnexpectedBatchTypeError):
                functions.invoke(name, {"Records": []})
        safe = list(daemon.documents)

        # and: the same request with the answer captured, powertools' default
        daemon.documents.clear()
        resolve = sys.modules[functions.handlers["ApiFunction"].__module__].app.resolve
        captured = tracer.capture_lambda_handler(resolve, capture_response=True)
        functions.api("GET", f"/customers/{EMAIL}", handler=captured)
        return {"safe": safe, "captured": list(daemon.documents)}


@pytest.fixture(scope="module")
def traces() -> dict[str, list[dict]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.delenv("AWS_SAM_LOCAL", raising=False)
        monkeypatch.setenv("LAMBDA_TASK_ROOT", str(ROOT))  # what the Tracer takes for Lambda
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
        spawn = multiprocessing.get_context("spawn")  # inherits the environment set above
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            documents = pool.submit(traced_run).result(timeout=300)
    return {kind: [json.loads(d) for d in found] for kind, found in documents.items()}


def personal(document: dict) -> set[str]:
    text = json.dumps(document, ensure_ascii=False).lower()
    return {value for value in (EMAIL, COMMENT.lower()) if value in text}


def subsegments(documents: list[dict], name: str) -> list[dict]:
    return [d for d in documents if d.get("name") == name]


def test_no_email_or_comment_reaches_xray_from_the_traced_functions(traces):
    leaks = [d["name"] for d in traces["safe"] if personal(d)]

    assert leaks == []
    # and the calls that carried her data were traced: her items read and written, the
    # events put on the bus and the queue, the secret read
    operations = {d.get("aws", {}).get("operation") for d in traces["safe"]}
    assert {"GetItem", "Query", "UpdateItem", "PutEvents", "SendMessageBatch"} <= operations
    assert "GetParameter" in operations


def test_no_handler_keeps_its_answer_or_its_error_as_trace_metadata(traces):
    handlers = subsegments(traces["safe"], "## lambda_handler")

    assert len(handlers) == 6  # the aggregator, two reads, reconcile, two failures
    assert [h.get("metadata") for h in handlers] == [None] * 6
    failed = [h for h in handlers if h.get("fault")]
    assert len(failed) == 2  # the errors ran and were kept out
    # what the X-Ray SDK records of any failure: its type and message, held to the log rule
    assert all(not personal(h) for h in failed)


def test_the_probe_sees_an_answer_that_is_captured(traces):
    """The check above would catch a capture_response left on: powertools' default."""
    (handler,) = subsegments(traces["captured"], "## resolve")  # the resolver, captured

    assert personal(handler) == {EMAIL, COMMENT.lower()}


def test_every_function_keeps_answers_and_errors_out_of_traces_by_its_environment(template):
    for function in template.functions.values():
        environment = function.environment
        assert environment["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false", function.logical_id
        assert environment["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false", function.logical_id
