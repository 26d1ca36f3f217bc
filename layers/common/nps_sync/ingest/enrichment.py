"""Completing thin CRM events off the request path: the receiver queues which records to read,
a queue consumer reads them in batches from the CRM's API and stores full profiles.

Only HubSpot needs it today (its events carry one property, or none on creation). A company's
change reaches its contacts here too: its associated contacts are queued to be read again.
The same queue carries "follow" messages (any CRM): an organization (HubSpot company,
Salesforce Account) was stored, and its member contacts take its name and region here
(``RecordsStore.follow``, resumable), not in the webhook request; and "erasure" messages: a
customer's erasure too large for its request goes on here (store.records.Erasures).

A batch HubSpot rate-limits (429) stays queued, hidden for HubSpot's Retry-After at least and
for a wait that doubles with the message's receives (``rate_limit_wait``): SQS counts every
receive towards the dead-letter queue, so waiting what Retry-After says and no more (seconds,
for the 10-second burst limit) would spend the receives in minutes of a long rate limit.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Json, ValidationError

from nps_sync.core import schema
from nps_sync.core.batch import SqsBatch, StaysQueued
from nps_sync.core.errors import InvalidPayload, StorageUnavailable
from nps_sync.core.models import CrmProfile
from nps_sync.core.observability import logger, metrics
from nps_sync.ingest.enqueue import Target
from nps_sync.ingest.hubspot import HubSpotClient, HubSpotRetryable, PropertyNames, fetch_profiles
from nps_sync.store import aws

Wait = tuple[str, int]  # (receipt handle, seconds to hide the message)

# = CrmEnrichmentQueue's RedrivePolicy maxReceiveCount in template.yaml (a test keeps them
# equal): with these waits, a message survives a day of rate limiting (storm_span).
MAX_RECEIVES = 30
RATE_LIMIT_FIRST_WAIT_SECONDS = 60
# Hourly at most, so reads resume within the hour once HubSpot's daily limit resets; far
# below SQS's 12 h, so ChangeMessageVisibility always accepts it.
RATE_LIMIT_MAX_WAIT_SECONDS = 3600


def rate_limit_wait(receive: int, retry_after: float | None = None) -> int:
    """Seconds to hide a message HubSpot rate-limited on its ``receive``-th receive: 60 s
    doubling to an hour, and never less than HubSpot's Retry-After."""
    step = min(
        RATE_LIMIT_MAX_WAIT_SECONDS, RATE_LIMIT_FIRST_WAIT_SECONDS * 2 ** (max(receive, 1) - 1)
    )
    return max(step, math.ceil(retry_after or 0))


def storm_span(receives: int = MAX_RECEIVES) -> int:
    """The longest rate limit, counted from a message's first receive, after which it is still
    read rather than dead-lettered: its last receive comes after the waits of all the others."""
    return sum(rate_limit_wait(n) for n in range(1, receives))


def hide(queue_url: str, waits: Iterable[Wait], client: Any = None) -> None:
    """ChangeMessageVisibility for each received message, 10 a call: it comes back after its
    wait instead of the queue's visibility timeout."""
    client = client or aws.client("sqs")
    entries = [
        {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
        for i, (handle, seconds) in enumerate(waits)
    ]
    refused = 0
    for start in range(0, len(entries), 10):
        try:
            answer = client.change_message_visibility_batch(
                QueueUrl=queue_url, Entries=entries[start : start + 10]
            )
        except (ClientError, BotoCoreError):
            answer = {"Failed": entries[start : start + 10]}
        refused += len(answer.get("Failed", []))
    if refused:
        raise StorageUnavailable(f"SQS did not hide {refused} rate-limited reads")


class ReadRequest(BaseModel):
    """One enrichment-queue message, as ``enqueue`` writes it: a record to read."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    object_type: str
    object_id: str


class FollowRequest(BaseModel):
    """A "follow" message (``enqueue_follows``): an organization's contacts are to follow it."""

    kind: Literal["follow"]
    provider: str
    organization_id: str
    version: str  # the change's source time; the stored revision is what is followed


class ErasureRequest(BaseModel):
    """An "erasure" message (``enqueue_erasure``): a customer's erasure is to go on."""

    kind: Literal["erasure"]
    job: str


class QueuedRead(SqsRecordModel):
    body: Json[ErasureRequest | FollowRequest | ReadRequest]


@dataclass(frozen=True)
class Enriched:
    failed: list[str]  # message ids to retry
    invalid: int = 0  # records HubSpot gave that are no valid profile: skipped
    followed: int = 0  # contacts queued because their company changed


class NotRead(StaysQueued):
    """The message stays in the queue: HubSpot asked to wait, or storing its record failed."""


class EnrichmentBatch(SqsBatch):
    """The enrichment queue's BatchProcessor. Its handler takes the batch's parsed records at
    once and returns an Enriched (``enrich``): HubSpot is read in batch calls, which a record
    handler would make one per message. The messages Enriched names failed are reported, and
    the counts behind CrmEnrichFunction's metrics are added."""

    def __init__(self):
        super().__init__(QueuedRead, dropped="unreadable enrichment message dropped")

    def process(self) -> list[tuple]:
        parsed: list[QueuedRead] = []
        results = []
        for record in self.records:
            try:
                parsed.append(self._to_batch_type(record, self.event_type, self.model))
            except ValidationError:
                results.append(self._register_model_validation_error_record(record))
        result: Enriched = self.handler(parsed)
        failed = set(result.failed)
        for message in parsed:
            if message.messageId in failed:
                error = NotRead("not read or not stored; the queue retries it")
                results.append(self.failure_handler(message, (NotRead, error, None)))
            else:
                results.append(self.success_handler(message, None))
        metrics.add_metric(name="CrmRecordsRead", unit="Count", value=len(self.records))
        metrics.add_metric(name="CrmRecordsInvalid", unit="Count", value=result.invalid)
        metrics.add_metric(name="CrmContactsFollowed", unit="Count", value=result.followed)
        return results


def follow_all(
    records: list[QueuedRead], follow_organization: Callable[[str, str], int]
) -> Enriched:
    """The batch's "follow" messages, one organization at a time (repeated ones once): a
    failure leaves its messages queued, and their redelivery continues where it stopped."""
    wanted: dict[tuple[str, str], list[str]] = {}
    for record in records:
        if isinstance(record.body, FollowRequest):
            key = (record.body.provider, record.body.organization_id)
            wanted.setdefault(key, []).append(record.messageId)
    failed: list[str] = []
    followed = 0
    for (provider, organization), messages in wanted.items():
        try:
            followed += follow_organization(provider, organization)
        except StorageUnavailable:
            failed.extend(messages)
    return Enriched(failed, followed=followed)


def erase_all(records: list[QueuedRead], continue_erasure: Callable[[str], Any]) -> Enriched:
    """The batch's "erasure" messages, one job at a time (repeated ones once): a failure
    leaves its messages queued, and their redelivery continues the job where it stopped."""
    wanted: dict[str, list[str]] = {}
    for record in records:
        if isinstance(record.body, ErasureRequest):
            wanted.setdefault(record.body.job, []).append(record.messageId)
    failed: list[str] = []
    for job, messages in wanted.items():
        try:
            continue_erasure(job)
        except StorageUnavailable:
            failed.extend(messages)
    return Enriched(failed)


def enrich(
    records: list[QueuedRead],
    hubspot: HubSpotClient,
    store_profile: Callable[[CrmProfile], Any],
    names: PropertyNames = PropertyNames(),
    follow: Callable[[list[Target]], Any] | None = None,
    wait: Callable[[list[Wait]], Any] | None = None,
) -> Enriched:
    """Read every queued record ("read" messages; "follow" ones are ``follow_all``'s) in one
    batch and store it.

    HubSpot refusing for a while (429, 5xx) fails the whole batch, so the queue retries later;
    after a 429, ``wait`` hides its messages for rate_limit_wait (without it, or should it
    fail, they come back after the queue's visibility timeout);
    a record HubSpot no longer has is simply done, and so is one that is no valid profile (a
    value too long, …): it is skipped and counted, the others are stored. A company's
    contacts are read again, as they take its name and region: ``follow`` queues them (without
    it they are read in this batch).
    """
    records = [r for r in records if isinstance(r.body, ReadRequest)]
    if not records:
        return Enriched([])
    wanted: dict[Target, list[str]] = {}
    for record in records:
        wanted.setdefault((record.body.object_type, record.body.object_id), []).append(
            record.messageId
        )
    companies = [object_id for kind, object_id in wanted if kind == "company"]
    try:
        members = hubspot.associated("company", companies, "contact") if companies else {}
        contacts = {c for ids in members.values() for c in ids} - {i for _, i in wanted}
        if follow is None:
            wanted.update({("contact", c): [] for c in sorted(contacts)})
        profiles = fetch_profiles(hubspot, wanted, names)
    except HubSpotRetryable as error:
        logger.warning(
            "HubSpot asked us to wait; the batch will be retried",
            extra={"status": error.status, "retry_after": error.retry_after},
        )
        if error.status == 429 and wait is not None:
            _wait_out(records, error.retry_after, wait)
        return Enriched([m for ids in wanted.values() for m in ids])
    failed: list[str] = []
    invalid = 0
    for fields in profiles:
        try:
            profile = msgspec.convert(fields, CrmProfile)
        except (msgspec.ValidationError, InvalidPayload) as error:
            invalid += 1
            logger.warning(  # the rule and the field, never the value: it may be personal data
                "invalid CRM record skipped",
                extra={
                    "object_type": fields.get("object_type"),
                    "reason": error.message
                    if isinstance(error, InvalidPayload)
                    else schema.message(error),
                },
            )
            continue
        try:
            store_profile(profile)
        except StorageUnavailable:
            object_id = profile.source_id.removeprefix(f"{profile.object_type}-")
            failed.extend(wanted.get((profile.object_type, object_id), []))
    followed = 0
    if follow is not None and contacts:
        try:
            follow([("contact", c) for c in sorted(contacts)])
            followed = len(contacts)
        except StorageUnavailable:
            failed.extend(m for c in companies for m in wanted.get(("company", c), []))
    return Enriched(list(dict.fromkeys(failed)), invalid, followed)


def _wait_out(
    records: list[QueuedRead], retry_after: float | None, wait: Callable[[list[Wait]], Any]
) -> None:
    """Hide a rate-limited batch's messages, each for the wait its receive count gives."""
    waits = [
        (
            r.receiptHandle,
            rate_limit_wait(int(r.attributes.ApproximateReceiveCount or 1), retry_after),
        )
        for r in records
    ]
    try:
        wait(waits)
    except StorageUnavailable:
        logger.warning("could not hide the batch; the queue's visibility timeout applies")
        return
    logger.info(
        "rate-limited reads hidden",
        extra={"messages": len(waits), "longest": max((s for _, s in waits), default=0)},
    )
