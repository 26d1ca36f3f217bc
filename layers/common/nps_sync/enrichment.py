"""Completing thin CRM events off the request path: the receiver queues which records to read,
a queue consumer reads them in batches from the CRM's API and stores full profiles.

Only HubSpot needs it today (its events carry one property, or none on creation).
"""

import json
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .errors import StorageUnavailable
from .hubspot_api import HubSpotClient, HubSpotRetryable, PropertyNames, fetch_profiles
from .models import CrmProfile
from .observability import logger

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


def enrich(
    records: list[dict[str, Any]],
    hubspot: HubSpotClient,
    store_profile: Callable[[CrmProfile], Any],
    names: PropertyNames = PropertyNames(),
) -> list[str]:
    """Read every queued record in one batch and store it; the message ids that failed.

    HubSpot refusing for a while (429, 5xx) fails the whole batch, so the queue retries later;
    a record HubSpot no longer has is simply done.
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
    try:
        profiles = fetch_profiles(hubspot, wanted, names)
    except HubSpotRetryable:
        logger.warning("HubSpot asked us to wait; the batch will be retried")
        return [m for ids in wanted.values() for m in ids]
    failed: list[str] = []
    for fields in profiles:
        profile = CrmProfile.model_validate(fields)
        try:
            store_profile(profile)
        except StorageUnavailable:
            object_id = profile.source_id.removeprefix(f"{profile.object_type}-")
            failed.extend(wanted.get((profile.object_type, object_id), []))
    return failed
