"""DynamoDB, SQS and EventBridge faults injected at the botocore level, under the real handlers.

A hook on the boto3 session's event system (not a patch of our code) throttles calls, fails
them with a 500, loses the answer of a call that was applied, and crashes the aggregator in the
middle of a batch after some of its keys were written (NPS aggregates, and revenue-outcome
counters or at-risk index). botocore's own retries are switched off
(AWS_MAX_ATTEMPTS=1) so every injected fault reaches our code. Webhooks must answer 5xx (the
provider retries) or succeed; the stream and the queue retry (local.pollers); at the end every
record is stored once, reconcile finds no difference and every event reaches the subscriber.
"""

import dataclasses
import json
import random
import sys
import threading
import time

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from local.aws import Emulator
from local.events import build
from local.lambdas import LocalFunction
from local.pollers import SqsPoller, StreamPoller
from nps_sync.aggregation.reconcile import reconcile
from nps_sync.core.settings import aggregate_settings, fanout_settings
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.subscriptions import SubscriptionsStore
from tests.fakes.receiver import Receiver

WEBHOOKS = ("SurveyWebhookFunction", "CrmWebhookFunction", "BillingWebhookFunction")
FAULTY_SQS = {"SendMessage", "SendMessageBatch", "ChangeMessageVisibility"}
TARGETED = ("dynamodb", "eventbridge")  # botocore's hyphenized service ids


class Faults:
    """Decides, per AWS call, whether it fails and how. Seeded: a failure can be replayed."""

    def __init__(
        self,
        seed: int,
        rate: float,
        lost_rate: float,
        crash_at: set[int],
        outcome_crash_at: set[int] = frozenset(),
    ):
        self.random = random.Random(seed)
        self.rate, self.lost_rate, self.crash_at = rate, lost_rate, crash_at
        self.outcome_crash_at = outcome_crash_at
        self.on = False
        self.aggregate_writes = 0
        self.outcome_writes = 0
        self.injected: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def _targeted(self, model) -> bool:
        service = model.service_model.service_name
        if service == "sqs":
            return model.name in FAULTY_SQS
        return service in ("dynamodb", "events")  # service names (after-call has the model)

    def before_send(self, request, event_name: str = "", **kwargs):
        """A throttle (400) or a server error (500) instead of the call; nothing applied.
        botocore names the call only in the event: ``before-send.<service id>.<operation>``."""
        _, service, operation = [*event_name.split("."), "", ""][:3]
        targeted = operation in FAULTY_SQS if service == "sqs" else service in TARGETED
        if not (self.on and targeted):
            return None
        if self.random.random() >= self.rate:
            return None
        if service == "dynamodb" and self.random.random() < 0.5:
            code, status = "ProvisionedThroughputExceededException", 400
        else:
            code, status = "InternalServerError", 500
        self._count(code)
        # every targeted service speaks botocore's JSON protocol (SQS since botocore 1.31)
        body = json.dumps({"__type": f"com.amazonaws#{code}", "message": "injected"}).encode()
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-errortype": code}
        return AWSResponse(request.url, status, headers, raw=_Raw(body))

    def after_call(self, model, **kwargs):
        """The call was applied, then its answer was lost (or the aggregator crashed)."""
        if not (self.on and self._targeted(model)):
            return
        outcome = _called_from("aggregation/outcome_step.py")
        if model.name == "UpdateItem" and _called_from("store/counters.py") and not outcome:
            self.aggregate_writes += 1
            if self.aggregate_writes in self.crash_at:
                self._count("crash")
                raise RuntimeError("injected: the aggregator crashed mid-batch")
        if model.name == "UpdateItem" and outcome:
            # the revenue-outcome step: its counters, and the outcome state with the at-risk
            # keys on the PROFILE (docs/outcomes.md)
            self.outcome_writes += 1
            if self.outcome_writes in self.outcome_crash_at:
                self._count("outcome crash")
                raise RuntimeError("injected: the aggregator crashed in the outcome writes")
        if self.random.random() < self.lost_rate:
            self._count("lost answer")
            raise ReadTimeoutError(endpoint_url="injected")


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def _called_from(module_file: str) -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.endswith(module_file):
            return True
        frame = frame.f_back
    return False


@pytest.fixture
def faults(function_env, template, monkeypatch):
    """A fresh default session carrying the hooks, and fresh function modules, so that every
    client the functions create from now on goes through them."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("ALLOW_LOCAL_SUBSCRIBERS", "true")  # the subscriber is on 127.0.0.1
    fanout_settings.cache_clear()
    aggregate_settings.cache_clear()
    injected = Faults(
        seed=8, rate=0.08, lost_rate=0.03, crash_at={15, 160, 700}, outcome_crash_at={4, 30}
    )
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register_first("before-send", injected.before_send)
    boto3.DEFAULT_SESSION.events.register_first("after-call", injected.after_call)
    _forget_function_modules(template)
    yield injected
    injected.on = False
    boto3.DEFAULT_SESSION = None
    _forget_function_modules(template)
    fanout_settings.cache_clear()
    aggregate_settings.cache_clear()


def _forget_function_modules(template) -> None:
    for logical_id in template.functions:
        sys.modules.pop(f"lambda_{logical_id}_app", None)


def generic_bodies(rng: random.Random) -> list[tuple[str, bytes]]:
    """Survey responses (some updated later), plan/MRR and region changes, from 12 customers."""
    bodies = []
    for n in range(30):
        customer = f"c{rng.randrange(12)}@example.com"
        day = f"2026-0{1 + n % 3}-1{n % 9}T10:00:00Z"
        item = {
            "id": f"r{n % 24}",
            "customer": {"email": customer},
            "score": rng.randrange(11),
            "submitted_at": day,
            "updated_at": f"2026-03-2{n // 24}T10:00:00Z",
        }
        bodies.append(("survey", json.dumps(item).encode()))
        if n % 5 == 0:
            billing = {
                "id": f"b{n}",
                "customer": {"email": customer},
                "updated_at": f"2026-03-01T10:{n:02d}:00Z",
                "plan": rng.choice(["pro", "team"]),
                "mrr": {"amount": rng.randrange(1000, 9000), "currency": "EUR"},
            }
            bodies.append(("billing", json.dumps(billing).encode()))
        if n % 7 == 0:
            crm = {
                "id": f"m{n}",
                "customer": {"email": customer},
                "updated_at": f"2026-03-01T11:{n:02d}:00Z",
                "region": rng.choice(["EMEA", "APAC"]),
            }
            bodies.append(("crm", json.dumps(crm).encode()))
    return bodies + rng.sample(bodies, 8)  # providers deliver some twice


def test_nothing_is_lost_or_double_counted_under_injected_faults(faults, function_env, template):
    functions = {name: LocalFunction(spec) for name, spec in template.functions.items()}
    kinds = {
        "survey": "SurveyWebhookFunction",
        "crm": "CrmWebhookFunction",
        "billing": "BillingWebhookFunction",
    }
    receiver = Receiver().start()
    try:
        subscriptions = SubscriptionsStore(function_env.refs["SubscriptionsTable"])
        subscriptions.create(receiver.url, ["response.received"], {})
        sqs = boto3.client("sqs")
        sqs.set_queue_attributes(  # failed deliveries come back at once, not in 3 minutes
            QueueUrl=function_env.refs["DeliveryQueue"], Attributes={"VisibilityTimeout": "0"}
        )

        # given: webhooks sent as providers send them, each retried until it is accepted
        answers: dict[int, int] = {}
        faults.on = True
        for kind, body in generic_bodies(random.Random(3)):
            for _ in range(30):
                try:
                    status = functions[kinds[kind]].invoke(build(kind, "generic", body))[
                        "statusCode"
                    ]
                except Exception:  # unhandled: Lambda answers 500, the provider retries
                    status = 500
                answers[status] = answers.get(status, 0) + 1
                assert status == 202 or status >= 500
                if status == 202:
                    break
            else:
                raise AssertionError("a webhook was never accepted")

        # when: the stream and the delivery queue are polled as Lambda polls them
        pollers = []
        for mapping in template.event_sources:
            if mapping.function not in ("AggregatorFunction", "DeliveryFunction"):
                continue
            arn = function_env.resolve(mapping.source)
            destination = function_env.resolve(mapping.on_failure)  # as the runtime does
            mapping = dataclasses.replace(mapping, on_failure=destination)
            kind = StreamPoller if ":dynamodb:" in arn else SqsPoller
            pollers.append(
                kind(
                    functions[mapping.function],
                    mapping,
                    arn,
                    Emulator(),
                    threading.Event(),
                    idle_seconds=0,
                )
            )
        idle_rounds = 0
        deadline = time.monotonic() + 60
        while idle_rounds < 3 and time.monotonic() < deadline:
            worked = False
            for poller in pollers:
                worked |= poller.poll_once()
            idle_rounds = 0 if worked else idle_rounds + 1
        faults.on = False
        for _ in range(20):  # what is still pending after the last fault
            if not any(poller.poll_once() for poller in pollers):
                break

        # then: every response once, the aggregates exact, every event delivered
        ddb = boto3.client("dynamodb")
        records = CustomerRecords(function_env.refs["RecordsTable"], ddb)
        responses = list(records.responses())
        assert sorted(r["response_id"]["S"] for r in responses) == sorted(
            {f"r{n % 24}" for n in range(30)}
        )
        report = reconcile(
            records,
            AggregatesStore(function_env.refs["AggregatesTable"], ddb),
            aggregate_settings().aggregate_dimensions,
        )
        assert report.differences == [], report.as_dict()
        assert report.outcomes.differences == [], [d.as_dict() for d in report.outcomes.differences]
        assert report.stale_stamps == [] and report.unresolved == 0, report.as_dict()
        delivered = {r.event["data"].get("response_id") for r in receiver.received}
        failed = sqs.get_queue_attributes(
            QueueUrl=function_env.refs["AggregatorFailureQueue"],
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"]
        missing = {r["response_id"]["S"] for r in responses} - delivered
        assert not missing, (missing, failed, faults.injected, answers)
        assert faults.injected.get("crash", 0) >= 1
        # the calls refused before they were applied, not only answers lost after
        assert faults.injected.get("ProvisionedThroughputExceededException", 0) >= 1
        assert faults.injected.get("InternalServerError", 0) >= 1, faults.injected
        assert faults.injected.get("outcome crash", 0) >= 1, faults.injected
        assert sum(faults.injected.values()) >= 20, faults.injected
        assert answers.get(503, 0) + answers.get(500, 0) >= 1, answers
    finally:
        receiver.stop()
