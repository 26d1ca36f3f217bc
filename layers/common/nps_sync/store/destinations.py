"""CRM and billing destinations and their write log: SubscriptionsTable beside the webhook
subscriptions (docs/destinations.md "Storage"), the only module that talks DynamoDB for them.

- destination: pk ``DST``, sk ``<id>``: kind, where its credentials live (a key of the
  provider secrets: never the credentials themselves), field mapping, options, filter;
  ``last_success_at`` / ``last_failure_at`` kept current by the writer (the dashboard's health);
- write log: pk ``DLW#<id>``, sk ``<time>#<n>``: per object written, skipped or failed: its
  level, the provider's object id, status and reason (no e-mail, no comment); ``expires_at``
  (TTL) after LOG_DAYS.
"""

import json
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nps_sync.core.errors import NotFound
from nps_sync.store import aws, dynamo
from nps_sync.store.subscriptions import iso

DESTINATIONS_PK = "DST"
LOG_PREFIX = "DLW#"
LOG_DAYS = 30
LOG_LIMIT = 100
KINDS = ("hubspot", "salesforce", "stripe", "chargebee")


def new_id() -> str:
    return "dst_" + secrets.token_hex(12)


@dataclass(frozen=True)
class Destination:
    id: str
    kind: str
    credentials: str  # the key in the provider secrets that holds this destination's secret
    fields: dict[str, str] = field(default_factory=dict)  # logical field -> provider field
    include_comment: bool = False
    window_days: int = 90  # an account's NPS over this many days
    filters: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    last_success_at: str | None = None
    last_failure_at: str | None = None

    @property
    def events(self) -> tuple[str, ...]:
        """What fan-out routes to it (a Subscription's ``events``, for ``matches``)."""
        return ("response.received",)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "credentials": self.credentials,
            "fields": self.fields,
            "include_comment": self.include_comment,
            "window_days": self.window_days,
            "filter": self.filters,
            "created_at": self.created_at,
            "last_success_at": self.last_success_at,
            "last_failure_at": self.last_failure_at,
        }


@dataclass(frozen=True)
class WriteRecord:
    destination_id: str
    level: str
    object_id: str | None
    status: str  # written | unchanged | skipped | failed | retrying | dead_lettered | cleared
    reason: str | None = None
    attempts: int = 1


def _destination(item: Mapping[str, Any]) -> Destination:
    def text(name: str) -> str | None:
        return item.get(name, {}).get("S")

    return Destination(
        id=item["sk"]["S"],
        kind=text("kind") or "",
        credentials=text("credentials") or "",
        fields=json.loads(text("fields") or "{}"),
        include_comment=item.get("include_comment", {}).get("BOOL", False),
        window_days=int(item.get("window_days", {}).get("N", "90")),
        filters=json.loads(text("filters") or "{}"),
        created_at=text("created_at") or "",
        last_success_at=text("last_success_at"),
        last_failure_at=text("last_failure_at"),
    )


class DestinationsStore:
    def __init__(self, table_name: str, client: Any = None, clock=time.time):
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.clock = clock

    def create(
        self,
        kind: str,
        credentials: str,
        fields: Mapping[str, str],
        include_comment: bool,
        window_days: int,
        filters: Mapping[str, Any],
    ) -> Destination:
        destination = Destination(
            id=new_id(),
            kind=kind,
            credentials=credentials,
            fields=dict(fields),
            include_comment=include_comment,
            window_days=window_days,
            filters=dict(filters),
            created_at=iso(self.clock()),
        )
        self._call(
            "put_item",
            TableName=self.table_name,
            Item={
                **self._key(destination.id),
                "kind": {"S": kind},
                "credentials": {"S": credentials},
                "fields": {"S": json.dumps(destination.fields, sort_keys=True)},
                "include_comment": {"BOOL": include_comment},
                "window_days": {"N": str(window_days)},
                "filters": {"S": json.dumps(destination.filters, sort_keys=True)},
                "created_at": {"S": destination.created_at},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        return destination

    def get(self, destination_id: str) -> Destination:
        item = self._call("get_item", TableName=self.table_name, Key=self._key(destination_id)).get(
            "Item"
        )
        if item is None:
            raise NotFound("no such destination")
        return _destination(item)

    def all(self) -> list[Destination]:
        return [_destination(item) for item in self._query(DESTINATIONS_PK)]

    def delete(self, destination_id: str) -> None:
        if not dynamo.update_if(
            self.client,
            TableName=self.table_name,
            Key=self._key(destination_id),
            UpdateExpression="REMOVE kind",
            ConditionExpression="attribute_exists(pk)",
        ):
            raise NotFound("no such destination")
        self._call("delete_item", TableName=self.table_name, Key=self._key(destination_id))

    def record(self, records: Iterable[WriteRecord]) -> None:
        """The write log, and the destination's last success/failure (its health)."""
        now = self.clock()
        stamp = iso(now)
        items, ok, failed = [], {}, {}
        for n, record in enumerate(records):
            item = {
                "pk": {"S": LOG_PREFIX + record.destination_id},
                # newest first to the microsecond: the log reads in the order it was written
                "sk": {"S": f"{stamp}#{int(now * 1e6):017d}#{n:05d}#{secrets.token_hex(3)}"},
                "level": {"S": record.level},
                "status": {"S": record.status},
                "attempts": {"N": str(record.attempts)},
                "expires_at": {"N": str(int(now) + LOG_DAYS * 86400)},
            }
            if record.object_id:
                item["object_id"] = {"S": record.object_id}
            if record.reason:
                item["reason"] = {"S": record.reason[:500]}
            items.append(item)
            target = failed if record.status in ("failed", "retrying", "dead_lettered") else ok
            target[record.destination_id] = stamp
        dynamo.put_all(self.client, self.table_name, items)
        for name, seen in (("last_success_at", ok), ("last_failure_at", failed)):
            for destination_id, at in seen.items():
                dynamo.update_if(
                    self.client,
                    TableName=self.table_name,
                    Key=self._key(destination_id),
                    UpdateExpression=f"SET {name} = :t",
                    ConditionExpression="attribute_exists(kind)",
                    ExpressionAttributeValues={":t": {"S": at}},
                )

    def log(self, destination_id: str, limit: int = LOG_LIMIT) -> list[dict[str, Any]]:
        """Newest first."""
        items = self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": LOG_PREFIX + destination_id}},
            ScanIndexForward=False,
            Limit=limit,
        ).get("Items", [])
        return [
            {
                "at": item["sk"]["S"].split("#", 1)[0],
                "level": item["level"]["S"],
                "status": item["status"]["S"],
                "attempts": int(item["attempts"]["N"]),
                "object_id": item.get("object_id", {}).get("S"),
                "reason": item.get("reason", {}).get("S"),
            }
            for item in items
        ]

    def health(self, destination: Destination, day: float = 86400) -> dict[str, Any]:
        """Last success, and failures in the last day (from the newest LOG_LIMIT entries)."""
        since = iso(self.clock() - day)
        recent = [e for e in self.log(destination.id) if e["at"] >= since]
        return {
            "last_success_at": destination.last_success_at,
            "last_failure_at": destination.last_failure_at,
            "failures_last_day": sum(
                e["status"] in ("failed", "retrying", "dead_lettered") for e in recent
            ),
            "writes_last_day": sum(e["status"] == "written" for e in recent),
        }

    @staticmethod
    def _key(destination_id: str) -> dict[str, Any]:
        return {"pk": {"S": DESTINATIONS_PK}, "sk": {"S": destination_id}}

    def _query(self, pk: str) -> Iterator[dict[str, Any]]:
        return dynamo.pages(
            self.client,
            "query",
            {
                "TableName": self.table_name,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": pk}},
            },
        )

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return dynamo.call(self.client, operation, **kwargs)
