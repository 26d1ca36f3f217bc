"""DeliveryFunction's work: POST each queued (event, subscription) to the subscriber, signed per
Standard Webhooks; retry failures with exponential back-off, then the dead-letter queue.

One message is one delivery. The messages of a batch are sent concurrently, each within one
deadline (connect, send and answer together), and reported one by one (ReportBatchItemFailures):
a slow or failing subscriber neither holds up nor re-sends the others' messages, and a message
the invocation has no time left for is reported failed without being attempted. A failed
message stays in the queue, hidden for its back-off (ChangeMessageVisibility); SQS counts its
receives (ApproximateReceiveCount = the attempt), and after MAX_ATTEMPTS the queue's redrive
policy moves it to the dead-letter queue (`make redrive` moves it back). The batch goes through
powertools' BatchProcessor (DeliveryBatch), each record parsed into QueuedDelivery.
"""

import contextlib
import functools
import http.client
import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AfterValidator, BaseModel, ConfigDict, Json

from nps_sync.core.batch import SqsBatch, StaysQueued
from nps_sync.core.errors import NotFound, StorageUnavailable
from nps_sync.core.observability import logger, metrics
from nps_sync.core.signing import standard_signature
from nps_sync.delivery.outbound import DeliveryQueue, PublishFailed
from nps_sync.delivery.ssrf import BlockedUrl, Resolver, Target, resolve, vet, vet_addresses
from nps_sync.store.subscriptions import DeliveryRecord, Subscription, SubscriptionsStore, iso

BASE_SECONDS = 30
MAX_STEP_SECONDS = 12 * 3600
# = the delivery queue's RedrivePolicy maxReceiveCount in template.yaml (a test keeps them
# equal): the smallest count whose shortest schedule spans a day (minimum_span).
MAX_ATTEMPTS = 15
# SQS hides a message for at most 12 h counted from the receive (ChangeMessageVisibility asks
# for the time from now, and more than what is left of the 12 h is refused).
VISIBILITY_LIMIT_SECONDS = 12 * 3600
# = the delivery queue's VisibilityTimeout (a test keeps them equal): a message still hidden
# when its invocation starts was received less than this before.
QUEUE_VISIBILITY_SECONDS = 180
VISIBILITY_MARGIN_SECONDS = 30  # clock skew between SQS and Lambda, and the call's own latency
# What an invocation keeps for after a POST (delivery log, ChangeMessageVisibility), and the
# least time worth starting a delivery with.
RESERVE_SECONDS = 3.0
MIN_BUDGET_SECONDS = 1.0
MAX_ADDRESSES = 3  # tried per delivery: a name with many dead addresses cannot hold it up
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "nps-sync-webhooks/1"
_jitter = random.SystemRandom()


def backoff(attempt: int, rand: Callable[[], float] = _jitter.random) -> int:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential from 30 s,
    capped at 12 h, with "equal jitter" (between half and all of the step)."""
    step = min(MAX_STEP_SECONDS, BASE_SECONDS * 2 ** (max(attempt, 1) - 1))
    return int(step / 2 + rand() * step / 2)


def visibility_allowance(first_receive: float | None, started: float, now: float) -> int:
    """The longest hiding SQS accepts now, in seconds. The event does not say when this receive
    was; it was after the first receive (exact on the first attempt) and, the message being
    still hidden when the invocation started, less than the queue's visibility timeout before
    that."""
    received = started - QUEUE_VISIBILITY_SECONDS
    if first_receive is not None:
        received = max(received, first_receive)
    return max(0, int(VISIBILITY_LIMIT_SECONDS - (now - received) - VISIBILITY_MARGIN_SECONDS))


# The least allowance a failed attempt gets: its invocation started at most the queue's
# visibility timeout after the receive and runs at most DeliveryFunction's Timeout (30 s).
WORST_ALLOWANCE = visibility_allowance(None, started=0.0, now=30.0)


def minimum_span(attempts: int = MAX_ATTEMPTS) -> int:
    """The shortest time from the first to the last of ``attempts`` attempts."""
    return sum(min(backoff(n, lambda: 0.0), WORST_ALLOWANCE) for n in range(1, attempts))


def maximum_span(attempts: int = MAX_ATTEMPTS) -> int:
    """The longest: every wait at the top of its jitter, as far as SQS allows."""
    return sum(min(backoff(n, lambda: 1.0), VISIBILITY_LIMIT_SECONDS) for n in range(1, attempts))


def signature_header(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<sig>`` per signing secret, space-separated (more than one after a rotation)."""
    return " ".join(standard_signature(s, msg_id, timestamp, body) for s in secrets)


@dataclass(frozen=True)
class Answer:
    status: int | None  # the subscriber's HTTP status; None when there was none
    error: str | None = None
    blocked: bool = False
    timed_out: bool = False  # the deadline, or connecting to one address took its share

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Deadline:
    """One delivery's time: connecting, sending and the answer together. A socket timeout
    bounds each read, not their sum, so a subscriber trickling its answer a byte at a time would
    never trip it; at the deadline this shuts the connection's socket down instead, which ends
    whatever call is blocked on it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True

    def left(self) -> float:
        return self.at - time.monotonic()

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self.release()

    def watch(self, connected: socket.socket) -> None:
        """A duplicate of the connection's socket: TLS wraps (and detaches) the original."""
        with self._lock:
            self._socket = connected.dup()
            if self.expired:
                self._shut()

    def release(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed by the sender
                self._socket.shutdown(socket.SHUT_RDWR)


class _Pinned:
    """Connect to the vetted address, whatever the name resolves to by now; the Host header,
    TLS SNI and certificate check still use the name."""

    def _pin(self, address: str, deadline: _Deadline) -> None:
        def create_connection(where, timeout, source_address=None):
            connected = socket.create_connection((address, where[1]), timeout, source_address)
            deadline.watch(connected)
            return connected

        self._create_connection = create_connection


class PinnedHTTPSConnection(_Pinned, http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, address: str, timeout: float, context, deadline: _Deadline
    ):
        super().__init__(host, port, timeout=timeout, context=context)
        self._pin(address, deadline)


class PinnedHTTPConnection(_Pinned, http.client.HTTPConnection):
    """Local mode only (loopback receivers)."""

    def __init__(self, host: str, port: int, address: str, timeout: float, deadline: _Deadline):
        super().__init__(host, port, timeout=timeout)
        self._pin(address, deadline)


class Sender:
    """POST with the SSRF guard applied at delivery time, to the address actually used, within
    one deadline (``timeout`` seconds, or less when the invocation has less left)."""

    def __init__(
        self,
        allow_local: bool = False,
        timeout: float = 10.0,
        resolver: Resolver = resolve,
        context: ssl.SSLContext | None = None,
    ):
        self.allow_local = allow_local
        self.timeout = timeout
        self.resolver = resolver
        self.context = context or ssl.create_default_context()

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], budget: float | None = None
    ) -> Answer:
        seconds = self.timeout if budget is None else max(0.0, min(self.timeout, budget))
        try:
            target = vet(url, self.allow_local, self.resolver)
        except BlockedUrl as error:
            return Answer(None, error.message, blocked=True)
        addresses = target.addresses[:MAX_ADDRESSES]
        last = Answer(None, "no address")
        late = Answer(None, f"no answer within {seconds:g} s", timed_out=True)
        with _Deadline(seconds) as deadline:
            for n, address in enumerate(addresses):
                if deadline.left() <= 0:
                    break
                # each address gets its share of what is left to connect (one may be dead)
                share = deadline.left() / (len(addresses) - n)
                last = self._post(target, address, body, headers, deadline, share)
                if last.status is not None or last.blocked or deadline.expired:
                    break
        if last.status is None and not last.blocked and (last.timed_out or deadline.expired):
            return late
        return last

    def _post(
        self,
        target: Target,
        address: str,
        body: bytes,
        headers: Mapping[str, str],
        deadline: _Deadline,
        connect_seconds: float,
    ) -> Answer:
        if target.scheme == "https":
            connection: http.client.HTTPConnection = PinnedHTTPSConnection(
                target.host, target.port, address, connect_seconds, self.context, deadline
            )
        else:
            connection = PinnedHTTPConnection(
                target.host, target.port, address, connect_seconds, deadline
            )
        try:
            connection.connect()
            connection.sock.settimeout(max(deadline.left(), 0.001))
            peer = connection.sock.getpeername()[0].split("%", 1)[0]
            vet_addresses([peer], allow_loopback=self.allow_local)  # what we are connected to
            connection.request("POST", target.path, body=body, headers=dict(headers))
            answer = connection.getresponse()
            if deadline.expired:  # what was read may be a cut-off status line
                return Answer(None, "timed out", timed_out=True)
        except BlockedUrl as error:
            return Answer(None, error.message, blocked=True)
        except (OSError, http.client.HTTPException) as error:
            if deadline.expired or isinstance(error, TimeoutError):
                return Answer(None, "timed out", timed_out=True)
            return Answer(None, f"{type(error).__name__}: {error}"[:300])
        else:
            # the status is the subscriber's answer; its body is not needed
            with contextlib.suppress(OSError, http.client.HTTPException):
                answer.read(MAX_ANSWER_BYTES)
            return Answer(answer.status)
        finally:
            deadline.release()
            connection.close()


# (url, body, headers, seconds the delivery may take at most or None) -> the answer
Post = Callable[[str, bytes, Mapping[str, str], float | None], Answer]


def _identified(event: dict[str, Any]) -> dict[str, Any]:
    if "id" not in event or "type" not in event:
        raise ValueError("an event has an id and a type")
    return event


class DeliveryMessage(BaseModel):
    """One delivery-queue message, as DeliveryQueue.send writes it. The event stays the dict
    that was queued: it is what is sent (and signed)."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    subscription_id: str
    event: Annotated[dict[str, Any], AfterValidator(_identified)]


class QueuedDelivery(SqsRecordModel):
    body: Json[DeliveryMessage]


class NotDelivered(StaysQueued):
    """The message stays in the queue: it comes back after its back-off or, if none was set,
    after the queue's visibility timeout."""


class DeliveryBatch(SqsBatch):
    """The delivery queue's BatchProcessor, with what BatchProcessor does not do itself:

    - the messages are delivered concurrently, ``workers`` at a time, each within its own
      deadline, so a slow subscriber holds up no other; the failures are still listed in the
      batch's order;
    - the record handler is also given when the batch started (``started``): it bounds when
      the batch's messages were received (visibility_allowance);
    - the counts behind DeliveryFunction's metrics.
    """

    def __init__(self, workers: int = 10, clock: Callable[[], float] = time.time):
        super().__init__(QueuedDelivery, dropped="undeliverable message dropped")
        self.workers = workers
        self.clock = clock

    def __call__(self, records, handler, lambda_context=None):
        handler = functools.partial(handler, started=self.clock())
        return super().__call__(records, handler, lambda_context)

    def process(self) -> list[tuple]:
        with ThreadPoolExecutor(max_workers=min(self.workers, len(self.records))) as pool:
            results = list(pool.map(self._process_record, self.records))
        # each thread appended its record as it finished
        self.success_messages[:] = [entry[2] for entry in results if entry[0] == "success"]
        self.fail_messages[:] = [entry[2] for entry in results if entry[0] == "fail"]
        return results

    def _clean(self) -> None:
        super()._clean()
        metrics.add_metric(name="Deliveries", unit="Count", value=len(self.records))
        metrics.add_metric(name="DeliveriesFailed", unit="Count", value=len(self.fail_messages))


class Delivery:
    def __init__(
        self,
        subscriptions: SubscriptionsStore,
        queue: DeliveryQueue,
        post: Post | None = None,
        clock: Callable[[], float] = time.time,
        delay: Callable[[int], int] = backoff,
        max_attempts: int = MAX_ATTEMPTS,
    ):
        self.subscriptions = subscriptions
        self.queue = queue
        self.post = post or Sender().post
        self.clock = clock
        self.delay = delay
        self.max_attempts = max_attempts

    def deliver(
        self,
        record: QueuedDelivery,
        lambda_context: LambdaContext | None = None,
        started: float | None = None,
    ) -> None:
        """DeliveryBatch's record handler: returns when the message is done with (delivered, or
        nothing left to deliver to), raises NotDelivered when it stays in the queue.

        A message is only started with time for its whole delivery and its bookkeeping left
        (``lambda_context``'s remaining time); one that is not is reported failed untouched,
        rather than the invocation timing out and every message of the batch coming back.
        """
        budget = (
            None
            if lambda_context is None
            else lambda_context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS
        )
        if budget is not None and budget < MIN_BUDGET_SECONDS:
            # Not attempted: no log entry, no back-off; it comes back after the queue's
            # visibility timeout (SQS still counts the receive).
            logger.warning("no time left for a delivery", extra={"message_id": record.messageId})
            raise NotDelivered("no time left for a delivery")
        subscription_id, event = record.body.subscription_id, record.body.event
        event_id, event_type = str(event["id"]), str(event["type"])
        attributes = record.attributes
        attempt = int(attributes.ApproximateReceiveCount or 1)
        try:
            subscription = self.subscriptions.get(subscription_id)
        except NotFound:
            logger.info("subscription gone; delivery dropped", extra={"event_id": event_id})
            return
        except StorageUnavailable as error:
            logger.warning("reading the subscription failed", extra={"event_id": event_id})
            # comes back after the queue's visibility timeout
            raise NotDelivered("reading the subscription failed") from error
        answer = self._send(subscription, event, budget)
        outcome = DeliveryRecord(
            subscription_id=subscription_id,
            event_id=event_id,
            event_type=event_type,
            event_created_at=str(event.get("created_at", "")),
            status="delivered",
            attempts=attempt,
            response_code=answer.status,
            error=answer.error,
        )
        if answer.ok:
            self._log(outcome)
            return
        last = attempt >= self.max_attempts
        wait = 0
        if not last:
            allowed = visibility_allowance(
                attributes.ApproximateFirstReceiveTimestamp.timestamp(),
                self.clock() if started is None else started,
                self.clock(),
            )
            wait = min(self.delay(attempt), allowed)
        status = "dead_lettered" if last else ("blocked" if answer.blocked else "retrying")
        self._log(
            DeliveryRecord(
                **{
                    **outcome.__dict__,
                    "status": status,
                    "next_attempt_at": None if last else iso(self.clock() + wait),
                }
            )
        )
        logger.info(
            "delivery failed",
            extra={
                "event_id": event_id,
                "subscription_id": subscription_id,
                "attempt": attempt,
                "status": answer.status,
                "retry_in": wait,
            },
        )
        try:
            self.queue.retry_later(record.receiptHandle, wait)
        except PublishFailed:
            logger.warning("could not set the back-off; the queue's visibility timeout applies")
        raise NotDelivered(f"attempt {attempt}: {answer.error or answer.status}")

    def _send(
        self, subscription: Subscription, event: dict[str, Any], budget: float | None
    ) -> Answer:
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        now = int(self.clock())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": str(event["id"]),
            "webhook-timestamp": str(now),
            "webhook-signature": signature_header(
                subscription.signing_secrets(now), str(event["id"]), now, body
            ),
        }
        return self.post(subscription.url, body, headers, budget)

    def _log(self, record: DeliveryRecord) -> None:
        try:
            self.subscriptions.record(record)
        except StorageUnavailable:
            logger.warning("delivery log write failed", extra={"event_id": record.event_id})
