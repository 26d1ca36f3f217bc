"""RecordsTable access: the only module that talks DynamoDB for records.

Layout (one table, keys ``pk``/``sk``, index ``by_customer`` on ``gsi1pk``/``gsi1sk``):

- response   pk=``RESP#<provider>#<response id>``  sk=``RESP``
- raw body   pk=same as its record                 sk=``RAW#<record version>``, expires by TTL

A response is written with a condition on its version, so a re-delivery or an older update
is a no-op and a newer one replaces it (the stream then carries old and new image).
"""

import json
import time
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .errors import StorageUnavailable
from .models import Response, iso

RESPONSE_SK = "RESP"


def response_pk(provider: str, response_id: str) -> str:
    return f"RESP#{provider}#{response_id}"


def customer_pk(customer_key: str) -> str:
    return f"CUST#{customer_key}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def response_item(response: Response) -> dict[str, Any]:
    item = {
        "pk": _s(response_pk(response.provider, response.response_id)),
        "sk": _s(RESPONSE_SK),
        "type": _s("response"),
        "gsi1pk": _s(customer_pk(response.customer_key)),
        "gsi1sk": _s(
            f"RESP#{iso(response.submitted_at)}#{response.provider}#{response.response_id}"
        ),
        "provider": _s(response.provider),
        "response_id": _s(response.response_id),
        "customer_key": _s(response.customer_key),
        "score": {"N": str(response.score)},
        "category": _s(response.category.value),
        "submitted_at": _s(iso(response.submitted_at)),
        "updated_at": _s(iso(response.updated_at)),
    }
    for name in ("survey", "channel", "comment", "email", "customer_id"):
        value = getattr(response, name)
        if value is not None:
            item[name] = _s(value)
    return item


def response_from_item(item: Mapping[str, Any]) -> Response:
    fields = {name: value["S"] for name, value in item.items() if "S" in value}
    fields["score"] = int(item["score"]["N"])
    return Response.model_validate(fields)


def compress(raw: Any) -> bytes:
    return zlib.compress(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode(), 6)


def decompress(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


class RecordsStore:
    def __init__(self, table_name: str, client: Any = None, clock=time.time):
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb")
        self.clock = clock

    def put_response(self, response: Response, raw: Any, retention_days: int) -> bool:
        """Store or replace; False when this version (or a newer one) is already stored."""
        pk = response_pk(response.provider, response.response_id)
        self._call(
            "put_item",
            TableName=self.table_name,
            Item={
                "pk": _s(pk),
                "sk": _s(f"RAW#{iso(response.updated_at)}"),
                "type": _s("raw"),
                "raw": {"B": compress(raw)},
                "received_at": _s(iso(datetime.fromtimestamp(self.clock(), UTC))),
                "expires_at": {"N": str(int(self.clock()) + retention_days * 86400)},
            },
        )
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item=response_item(response),
                ConditionExpression="attribute_not_exists(pk) OR updated_at < :u",
                ExpressionAttributeValues={":u": _s(iso(response.updated_at))},
            )
        except ClientError:  # only the condition failure gets through _call as ClientError
            return False
        return True

    def get_response(self, provider: str, response_id: str) -> Response | None:
        item = self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": _s(response_pk(provider, response_id)), "sk": _s(RESPONSE_SK)},
            ConsistentRead=True,
        ).get("Item")
        return response_from_item(item) if item else None

    def raw_payloads(self, provider: str, response_id: str) -> list[Any]:
        items = self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :raw)",
            ExpressionAttributeValues={
                ":pk": _s(response_pk(provider, response_id)),
                ":raw": _s("RAW#"),
            },
        )["Items"]
        return [decompress(item["raw"]["B"]) for item in items]

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**kwargs)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise
            raise StorageUnavailable(f"DynamoDB {operation} failed") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB {operation} failed") from error
