"""What the webhook receivers and the API put on the enrichment queue (read by
nps_sync.ingest.enrichment): on their request path, so this module imports no more than the
SQS call needs (the consumer's models, pydantic and powertools' parser, are not)."""

import json
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.errors import StorageUnavailable
from nps_sync.store import aws

Target = tuple[str, str]  # (object type, object id)


def enqueue(queue_url: str, provider: str, targets: Iterable[Target], client: Any = None) -> int:
    """One message per record to read; the consumer batches them into API calls."""
    client = client or aws.client("sqs")
    bodies = [
        json.dumps({"provider": provider, "object_type": kind, "object_id": object_id})
        for kind, object_id in targets
    ]
    _send(client, queue_url, bodies, "could not queue the CRM reads")
    return len(bodies)


def _send(client: Any, queue_url: str, bodies: list[str], failure: str) -> None:
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])
        ]
        try:
            answer = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as error:
            raise StorageUnavailable(failure) from error
        if answer.get("Failed"):
            raise StorageUnavailable(failure)


def enqueue_follows(queue_url: str, changes: Iterable[Any], client: Any = None) -> None:
    """One "follow" message per changed organization (store.records.OrganizationChange)."""
    client = client or aws.client("sqs")
    bodies = [
        json.dumps(
            {
                "kind": "follow",
                "provider": c.provider,
                "organization_id": c.organization,
                "version": c.version,
            }
        )
        for c in changes
    ]
    _send(client, queue_url, bodies, "could not queue the organization's follow-up")


def enqueue_erasure(queue_url: str, job: str, client: Any = None) -> None:
    """An "erasure" message: the job (store.records.Erasures, named by a hash, no personal
    data) goes on off the request path."""
    body = json.dumps({"kind": "erasure", "job": job})
    _send(client or aws.client("sqs"), queue_url, [body], "could not queue the erasure")
