"""DeliveryFunction's work: POST each queued (event, subscription) to the subscriber, signed per
Standard Webhooks; retry failures with exponential back-off, then the dead-letter queue.

One message is one delivery. The messages of a batch are sent concurrently, each with a short
timeout, and reported one by one (ReportBatchItemFailures): a slow or failing subscriber
neither holds up nor re-sends the others' messages. A failed message stays in the queue,
hidden for its back-off (ChangeMessageVisibility); SQS counts its receives
(ApproximateReceiveCount = the attempt), and after MAX_ATTEMPTS the queue's redrive policy
moves it to the dead-letter queue (`make redrive` moves it back).
"""

import http.client
import json
import random
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .errors import NotFound, StorageUnavailable
from .observability import logger
from .outbound import DeliveryQueue, PublishFailed
from .signing import standard_signature
from .ssrf import BlockedUrl, Resolver, Target, resolve, vet, vet_addresses
from .subscriptions import DeliveryRecord, Subscription, SubscriptionsStore, iso

BASE_SECONDS = 30
MAX_STEP_SECONDS = 12 * 3600  # ChangeMessageVisibility's limit
# = the delivery queue's RedrivePolicy maxReceiveCount in template.yaml (a test keeps them
# equal): the smallest count whose shortest schedule spans a day (minimum_span).
MAX_ATTEMPTS = 15
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "nps-sync-webhooks/1"
_jitter = random.SystemRandom()


def backoff(attempt: int, rand: Callable[[], float] = _jitter.random) -> int:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential from 30 s,
    capped at 12 h, with "equal jitter" (between half and all of the step)."""
    step = min(MAX_STEP_SECONDS, BASE_SECONDS * 2 ** (max(attempt, 1) - 1))
    return int(step / 2 + rand() * step / 2)


def minimum_span(attempts: int = MAX_ATTEMPTS) -> int:
    """The shortest time from the first to the last of ``attempts`` attempts."""
    return sum(backoff(n, lambda: 0.0) for n in range(1, attempts))


def signature_header(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<sig>`` per signing secret, space-separated (two during a rotation)."""
    return " ".join(standard_signature(s, msg_id, timestamp, body) for s in secrets)


@dataclass(frozen=True)
class Answer:
    status: int | None  # the subscriber's HTTP status; None when there was none
    error: str | None = None
    blocked: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Pinned:
    """Connect to the vetted address, whatever the name resolves to by now; the Host header,
    TLS SNI and certificate check still use the name."""

    def _pin(self, address: str) -> None:
        def create_connection(where, timeout, source_address=None):
            return socket.create_connection((address, where[1]), timeout, source_address)

        self._create_connection = create_connection


class PinnedHTTPSConnection(_Pinned, http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, context):
        super().__init__(host, port, timeout=timeout, context=context)
        self._pin(address)


class PinnedHTTPConnection(_Pinned, http.client.HTTPConnection):
    """Local mode only (loopback receivers)."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._pin(address)


class Sender:
    """POST with the SSRF guard applied at delivery time, to the address actually used."""

    def __init__(
        self,
        allow_local: bool = False,
        timeout: float = 5.0,
        resolver: Resolver = resolve,
        context: ssl.SSLContext | None = None,
    ):
        self.allow_local = allow_local
        self.timeout = timeout
        self.resolver = resolver
        self.context = context or ssl.create_default_context()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        try:
            target = vet(url, self.allow_local, self.resolver)
        except BlockedUrl as error:
            return Answer(None, error.message, blocked=True)
        last = Answer(None, "no address")
        for address in target.addresses:
            last = self._post(target, address, body, headers)
            if last.status is not None or last.blocked:
                return last
        return last

    def _post(
        self, target: Target, address: str, body: bytes, headers: Mapping[str, str]
    ) -> Answer:
        if target.scheme == "https":
            connection: http.client.HTTPConnection = PinnedHTTPSConnection(
                target.host, target.port, address, self.timeout, self.context
            )
        else:
            connection = PinnedHTTPConnection(target.host, target.port, address, self.timeout)
        try:
            connection.connect()
            peer = connection.sock.getpeername()[0].split("%", 1)[0]
            vet_addresses([peer], allow_loopback=self.allow_local)  # what we are connected to
            connection.request("POST", target.path, body=body, headers=dict(headers))
            answer = connection.getresponse()
            answer.read(MAX_ANSWER_BYTES)
            return Answer(answer.status)
        except BlockedUrl as error:
            return Answer(None, error.message, blocked=True)
        except TimeoutError:
            return Answer(None, f"timed out after {self.timeout:g} s")
        except (OSError, http.client.HTTPException) as error:
            return Answer(None, f"{type(error).__name__}: {error}"[:300])
        finally:
            connection.close()


Post = Callable[[str, bytes, Mapping[str, str]], Answer]


class Delivery:
    def __init__(
        self,
        subscriptions: SubscriptionsStore,
        queue: DeliveryQueue,
        post: Post | None = None,
        clock: Callable[[], float] = time.time,
        delay: Callable[[int], int] = backoff,
        max_attempts: int = MAX_ATTEMPTS,
        workers: int = 10,
    ):
        self.subscriptions = subscriptions
        self.queue = queue
        self.post = post or Sender().post
        self.clock = clock
        self.delay = delay
        self.max_attempts = max_attempts
        self.workers = workers

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """An SQS event -> the partial batch response (the failed messages only)."""
        records = list(event.get("Records") or [])
        if not records:
            return {"batchItemFailures": []}
        with ThreadPoolExecutor(max_workers=min(self.workers, len(records))) as pool:
            done = list(pool.map(self.deliver, records))
        return {
            "batchItemFailures": [
                {"itemIdentifier": record["messageId"]}
                for record, ok in zip(records, done, strict=True)
                if not ok
            ]
        }

    def deliver(self, record: Mapping[str, Any]) -> bool:
        """True when the message is done with (delivered, or nothing left to deliver to)."""
        try:
            message = json.loads(record["body"])
            subscription_id = str(message["subscription_id"])
            event = dict(message["event"])
            event_id, event_type = str(event["id"]), str(event["type"])
        except (ValueError, KeyError, TypeError):
            logger.error("undeliverable message dropped", extra={"message": record["messageId"]})
            return True
        attempt = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        try:
            subscription = self.subscriptions.get(subscription_id)
        except NotFound:
            logger.info("subscription gone; delivery dropped", extra={"event_id": event_id})
            return True
        except StorageUnavailable:
            logger.warning("reading the subscription failed", extra={"event_id": event_id})
            return False  # comes back after the queue's visibility timeout
        answer = self._send(subscription, event)
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
            return True
        last = attempt >= self.max_attempts
        wait = 0 if last else self.delay(attempt)
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
            self.queue.retry_later(record["receiptHandle"], wait)
        except PublishFailed:
            logger.warning("could not set the back-off; the queue's visibility timeout applies")
        return False

    def _send(self, subscription: Subscription, event: dict[str, Any]) -> Answer:
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
        return self.post(subscription.url, body, headers)

    def _log(self, record: DeliveryRecord) -> None:
        try:
            self.subscriptions.record(record)
        except StorageUnavailable:
            logger.warning("delivery log write failed", extra={"event_id": record.event_id})
