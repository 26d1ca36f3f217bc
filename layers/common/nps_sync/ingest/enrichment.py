"""Completing thin CRM events off the request path: the receiver queues which records to read,
a queue consumer reads them in batches from the CRM's API and stores full profiles.

Only HubSpot needs it today (its events carry one property, or none on creation). A company's
change reaches its contacts here too: its associated contacts are queued to be read again.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.models import CrmProfile
from nps_sync.core.observability import logger
from nps_sync.ingest.hubspot import HubSpotClient, HubSpotRetryable, PropertyNames, fetch_profiles

Target = tuple[str, str]  # (object type, object id)


def enqueue(queue_url: str, provider: str, targets: Iterable[Target], client: Any = None) -> int:
    """One message per record to read; the consumer batches them into API calls."""
    client = client or boto3.client("sqs")
    bodies = [
        json.dumps({"provider": provider, "object_type": kind, "object_id": object_id})
        for kind, object_id in targets
    ]
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])
        ]
        try:
            answer = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable("could not queue the CRM reads") from error
        if answer.get("Failed"):
            raise StorageUnavailable("could not queue the CRM reads")
    return len(bodies)


@dataclass(frozen=True)
class Enriched:
    failed: list[str]  # message ids to retry
    invalid: int = 0  # records HubSpot gave that are no valid profile: skipped
    followed: int = 0  # contacts queued because their company changed


def enrich(
    records: list[dict[str, Any]],
    hubspot: HubSpotClient,
    store_profile: Callable[[CrmProfile], Any],
    names: PropertyNames = PropertyNames(),
    follow: Callable[[list[Target]], Any] | None = None,
) -> Enriched:
    """Read every queued record in one batch and store it.

    HubSpot refusing for a while (429, 5xx) fails the whole batch, so the queue retries later;
    a record HubSpot no longer has is simply done, and so is one that is no valid profile (a
    value too long, …): it is skipped and counted, the others are stored. A company's
    contacts are read again, as they take its name and region: ``follow`` queues them (without
    it they are read in this batch).
    """
    wanted: dict[Target, list[str]] = {}
    for record in records:
        try:
            body = json.loads(record["body"])
            wanted.setdefault((body["object_type"], str(body["object_id"])), []).append(
                record["messageId"]
            )
        except (ValueError, KeyError, TypeError):
            logger.error(
                "unreadable enrichment message dropped",
                extra={"message_id": record.get("messageId")},
            )
    companies = [object_id for kind, object_id in wanted if kind == "company"]
    try:
        members = hubspot.associated("company", companies, "contact") if companies else {}
        contacts = {c for ids in members.values() for c in ids} - {i for _, i in wanted}
        if follow is None:
            wanted.update({("contact", c): [] for c in sorted(contacts)})
        profiles = fetch_profiles(hubspot, wanted, names)
    except HubSpotRetryable:
        logger.warning("HubSpot asked us to wait; the batch will be retried")
        return Enriched([m for ids in wanted.values() for m in ids])
    failed: list[str] = []
    invalid = 0
    for fields in profiles:
        try:
            profile = CrmProfile.model_validate(fields)
        except ValidationError as error:
            invalid += 1
            logger.warning(  # names the fields only: the values may be personal data
                "invalid CRM record skipped",
                extra={
                    "object_type": fields.get("object_type"),
                    "fields": sorted({str(e["loc"][0]) for e in error.errors() if e["loc"]}),
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
