"""AWS faults injected at the botocore level: throttles, 500s and lost answers.

A hook on a boto3 session's event system (not a patch of our code) throttles calls to
DynamoDB, EventBridge and SQS sends, fails them with a 500, loses the answer of a call that was
applied, and can crash the aggregator in the middle of a batch after some of its keys were
written. Used by tests/integration/test_faults.py and, with ``LOCAL_FAULTS=rate``, by the local
runtime (``make load-faults``), where it sits on boto3's default session, so every function's
client goes through it; the runtime's own emulation of Lambda (local/pollers.py, local/aws.py)
is spared, as AWS's is not ours to fail.
"""

import atexit
import json
import os
import random
import sys
import threading
from pathlib import Path

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from nps_sync.store import aws

FAULTY_SQS = {"SendMessage", "SendMessageBatch", "ChangeMessageVisibility"}
TARGETED = ("dynamodb", "eventbridge")  # botocore's hyphenized service ids
RUNTIME_FILES = ("local/pollers.py", "local/aws.py")  # Lambda's and AWS's part, not ours
RATE, LOST_RATE = 0.05, 0.02  # LOCAL_FAULTS=rate: per targeted call


class Faults:
    """Decides, per AWS call, whether it fails and how. Seeded: a failure can be replayed."""

    def __init__(
        self,
        seed: int,
        rate: float,
        lost_rate: float,
        crash_at: set[int] = frozenset(),
        outcome_crash_at: set[int] = frozenset(),
    ):
        self.random = random.Random(seed)  # noqa: S311 - fault injection, reproducible
        self.rate, self.lost_rate, self.crash_at = rate, lost_rate, crash_at
        self.outcome_crash_at = outcome_crash_at
        self.on = False
        self.aggregate_writes = 0
        self.outcome_writes = 0
        self.injected: dict[str, int] = {}
        self.lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self.lock:
            self.injected[kind] = self.injected.get(kind, 0) + 1

    def _targeted(self, model) -> bool:
        service = aws.service_of(model.service_model)
        if service == "sqs":
            return model.name in FAULTY_SQS
        return service in ("dynamodb", "events")  # service names (after-call has the model)

    def before_send(self, request, event_name: str = "", **kwargs):
        """A throttle (400) or a server error (500) instead of the call; nothing applied.
        botocore names the call only in the event: ``before-send.<service id>.<operation>``."""
        _, service, operation = [*event_name.split("."), "", ""][:3]
        targeted = operation in FAULTY_SQS if service == "sqs" else service in TARGETED
        if not (self.on and targeted) or _from_runtime():
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
        if not (self.on and self._targeted(model)) or _from_runtime():
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

    def install(self, session) -> "Faults":
        """First on ``session``'s hooks, so every client made from it afterwards has them."""
        session.events.register_first("before-send", self.before_send)
        session.events.register_first("after-call", self.after_call)
        return self


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


def _from_runtime() -> bool:
    """The call is the runtime's own (a poller's, the stack's), not a function's: the nearest
    frame outside botocore and boto3 is in local/pollers.py or local/aws.py."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if "/botocore/" not in name and "/boto3/" not in name:
            return name.endswith(RUNTIME_FILES)
        frame = frame.f_back
    return False


def from_environment() -> Faults | None:
    """``LOCAL_FAULTS=rate`` (the runtime, at start): faults at RATE and LOST_RATE on a fresh
    default session, botocore's own retries off so each reaches our code, and what was injected
    written to ``LOCAL_FAULTS_REPORT`` (JSON) at exit. Unset or ``0``: None, nothing changed."""
    mode = os.environ.get("LOCAL_FAULTS", "")
    if mode in ("", "0"):
        return None
    if mode != "rate":
        raise SystemExit(f"LOCAL_FAULTS={mode!r}: only 'rate' (or unset) is known")
    os.environ["AWS_MAX_ATTEMPTS"] = "1"
    os.environ["AWS_RETRY_MODE"] = "standard"
    boto3.setup_default_session()
    faults = Faults(seed=8, rate=RATE, lost_rate=LOST_RATE).install(boto3.DEFAULT_SESSION)
    faults.on = True
    report = os.environ.get("LOCAL_FAULTS_REPORT")
    if report:
        atexit.register(lambda: Path(report).write_text(json.dumps(faults.injected) + "\n"))
    return faults
