"""DynamoDB calls of the storage adapters, in one place: a failure that may pass becomes
StorageUnavailable (a webhook answers 503, a stream or queue batch is retried), and Query and
Scan results are followed page by page."""

from collections.abc import Collection, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.errors import StorageUnavailable


def call(client: Any, operation: str, *, passing: Collection[str] = (), **kwargs: Any) -> dict:
    """``passing``: error codes the caller handles itself (a failed condition, say)."""
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] in passing:
            raise
        raise StorageUnavailable(f"DynamoDB {operation} failed") from error
    except BotoCoreError as error:
        raise StorageUnavailable(f"DynamoDB {operation} failed") from error


def pages(client: Any, operation: str, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item of a Query or Scan, page by page (botocore's paginator follows
    LastEvaluatedKey); a failure on any page is StorageUnavailable like a single call's."""
    try:
        for page in client.get_paginator(operation).paginate(**kwargs):
            yield from page.get("Items", [])
    except (ClientError, BotoCoreError) as error:
        raise StorageUnavailable(f"DynamoDB {operation} failed") from error


def update_if(client: Any, **kwargs: Any) -> bool:
    """A conditional UpdateItem: False when its condition does not hold."""
    try:
        call(client, "update_item", passing=("ConditionalCheckFailedException",), **kwargs)
    except ClientError:
        return False
    return True
