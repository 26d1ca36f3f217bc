"""Webhook subscriptions and their delivery log: SubscriptionsTable, the only module that talks
DynamoDB for them (docs/events.md "Storage").

- subscription: pk ``SUB``, sk ``<id>``: url, events, filters, secret, and the secrets it
  replaced that are still in their grace period, each with when it stops signing
  (``previous_secrets``, newest first);
- delivery: pk ``DLV#<id>``, sk ``<event created_at>#<event id>``: status, attempts, last
  response code or error, timestamps; ``expires_at`` (TTL) after DELIVERY_LOG_DAYS.
"""

import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.errors import Conflict, NotFound, StorageUnavailable
from nps_sync.core.signing import STANDARD_PREFIX
from nps_sync.store import aws, dynamo

SUBSCRIPTIONS_PK = "SUB"
DELIVERIES_PREFIX = "DLV#"
ROTATION_GRACE_SECONDS = 24 * 3600
# Secrets still signing besides the current one: every delivery carries a signature per secret,
# so rotating more often than this within a grace period is refused rather than dropping a
# secret a subscriber may still verify with.
MAX_PREVIOUS_SECRETS = 4
DELIVERY_LOG_DAYS = 30
DELIVERY_LOG_LIMIT = 100


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return STANDARD_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_id() -> str:
    return "sub_" + secrets.token_hex(12)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    events: tuple[str, ...]
    filters: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    secret: str = ""
    # the secrets it replaced, newest first, each with when it stops signing (epoch seconds)
    previous: tuple[tuple[str, float], ...] = ()

    def signing_secrets(self, now: float) -> list[str]:
        """The current secret, and every previous one still in its grace period."""
        return [self.secret, *(secret for secret, until in self.previous if now < until)]

    def public(self) -> dict[str, Any]:
        """What the API shows: never a secret."""
        shown: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "filter": self.filters,
            "created_at": self.created_at,
        }
        if self.previous:  # from then on, only the current secret signs
            shown["previous_secret_expires_at"] = iso(max(until for _, until in self.previous))
        return shown


def _previous(item: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    found = [
        (entry["M"]["secret"]["S"], float(entry["M"]["until"]["N"]))
        for entry in item.get("previous_secrets", {}).get("L", [])
    ]
    legacy, until = item.get("previous_secret", {}).get("S"), item.get("previous_until", {})
    if legacy and "N" in until:  # written before rotations kept more than one
        found.append((legacy, float(until["N"])))
    return tuple(found)


def _subscription(item: dict[str, Any]) -> Subscription:
    return Subscription(
        id=item["sk"]["S"],
        url=item.get("url", {}).get("S", ""),
        events=tuple(item.get("events", {}).get("SS", [])),
        filters=json.loads(item.get("filters", {}).get("S", "{}")),
        created_at=item.get("created_at", {}).get("S", ""),
        secret=item.get("secret", {}).get("S", ""),
        previous=_previous(item),
    )


@dataclass(frozen=True)
class DeliveryRecord:
    subscription_id: str
    event_id: str
    event_type: str
    event_created_at: str
    status: str  # delivered | retrying | failed (left for the dead-letter queue) | blocked | …
    attempts: int
    response_code: int | None = None
    error: str | None = None
    next_attempt_at: str | None = None


class SubscriptionsStore:
    def __init__(self, table_name: str, client: Any = None, clock=time.time):
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.clock = clock

    # --- subscriptions --------------------------------------------------------------------

    def create(self, url: str, events: list[str], filters: dict[str, Any]) -> Subscription:
        subscription = Subscription(
            id=new_id(),
            url=url,
            events=tuple(sorted(set(events))),
            filters=filters,
            created_at=iso(self.clock()),
            secret=new_secret(),
        )
        self._call(
            "put_item",
            TableName=self.table_name,
            Item={
                "pk": {"S": SUBSCRIPTIONS_PK},
                "sk": {"S": subscription.id},
                "url": {"S": url},
                "events": {"SS": list(subscription.events)},
                "filters": {"S": json.dumps(filters, sort_keys=True)},
                "created_at": {"S": subscription.created_at},
                "secret": {"S": subscription.secret},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
        return subscription

    def get(self, subscription_id: str) -> Subscription:
        item = self._call(
            "get_item",
            TableName=self.table_name,
            Key=self._key(subscription_id),
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            raise NotFound(f"no subscription {subscription_id!r}")
        return _subscription(item)

    def all(self) -> list[Subscription]:
        """Every subscription (one Query over the SUB partition)."""
        return [_subscription(item) for item in self._query(SUBSCRIPTIONS_PK)]

    def routing(self) -> list[Subscription]:
        """Every subscription's id, event types and filters: what matching needs, no secret."""
        return [
            _subscription(item)
            for item in self._query(
                SUBSCRIPTIONS_PK,
                ProjectionExpression="sk, events, filters",
            )
        ]

    def delete(self, subscription_id: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key=self._key(subscription_id),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise NotFound(f"no subscription {subscription_id!r}") from error
            raise StorageUnavailable("DynamoDB delete_item failed") from error
        except BotoCoreError as error:
            raise StorageUnavailable("DynamoDB delete_item failed") from error

    def rotate(self, subscription_id: str) -> Subscription:
        """A new secret. The one it replaces keeps signing for ROTATION_GRACE_SECONDS, and so do
        the earlier ones still in their own grace period (as Svix does): a subscriber that has
        not switched yet keeps verifying whatever the number of rotations."""
        current = self.get(subscription_id)
        now = self.clock()
        kept = [(secret, until) for secret, until in current.previous if until > now]
        if len(kept) >= MAX_PREVIOUS_SECRETS:
            raise Conflict(
                f"{len(kept)} replaced secrets still sign; rotate again after "
                f"{iso(min(until for _, until in kept))}"
            )
        previous = ((current.secret, float(int(now + ROTATION_GRACE_SECONDS))), *kept)
        secret = new_secret()
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(subscription_id),
                UpdateExpression="SET secret = :new, previous_secrets = :previous"
                " REMOVE previous_secret, previous_until",
                ConditionExpression="secret = :old",
                ExpressionAttributeValues={
                    ":new": {"S": secret},
                    ":old": {"S": current.secret},
                    ":previous": {
                        "L": [
                            {"M": {"secret": {"S": old}, "until": {"N": str(int(until))}}}
                            for old, until in previous
                        ]
                    },
                },
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise StorageUnavailable("DynamoDB update_item failed") from error
            self.get(subscription_id)  # NotFound if it was deleted meanwhile
            raise Conflict(
                f"subscription {subscription_id!r} was rotated meanwhile; try again"
            ) from error
        except BotoCoreError as error:
            raise StorageUnavailable("DynamoDB update_item failed") from error
        return Subscription(**{**current.__dict__, "secret": secret, "previous": previous})

    # --- the delivery log -----------------------------------------------------------------

    def record(self, delivery: DeliveryRecord) -> None:
        now = self.clock()
        names = {"#s": "status", "#t": "event_type", "#e": "event_id", "#a": "attempts"}
        values: dict[str, Any] = {
            ":s": {"S": delivery.status},
            ":t": {"S": delivery.event_type},
            ":e": {"S": delivery.event_id},
            ":a": {"N": str(delivery.attempts)},
            ":now": {"S": iso(now)},
            ":exp": {"N": str(int(now) + DELIVERY_LOG_DAYS * 86400)},
        }
        sets = [
            "#s = :s",
            "#t = :t",
            "#e = :e",
            "#a = :a",
            "last_attempt_at = :now",
            "first_attempt_at = if_not_exists(first_attempt_at, :now)",
            "expires_at = :exp",
        ]
        removes = []
        for i, name in enumerate(("response_code", "error", "next_attempt_at")):
            names[f"#o{i}"] = name  # "error" is a reserved word
            value = getattr(delivery, name)
            if value is None:
                removes.append(f"#o{i}")
            else:
                values[f":o{i}"] = {"N": str(value)} if isinstance(value, int) else {"S": value}
                sets.append(f"#o{i} = :o{i}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self._call(
            "update_item",
            TableName=self.table_name,
            Key={
                "pk": {"S": DELIVERIES_PREFIX + delivery.subscription_id},
                "sk": {"S": f"{delivery.event_created_at}#{delivery.event_id}"},
            },
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def deliveries(self, subscription_id: str, limit: int = DELIVERY_LOG_LIMIT) -> list[dict]:
        """The subscription's last deliveries, newest event first."""
        items = self._call(
            "query",
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": DELIVERIES_PREFIX + subscription_id}},
            ScanIndexForward=False,
            Limit=limit,
        ).get("Items", [])
        shown = []
        for item in items:
            entry: dict[str, Any] = {}
            for name in (
                "event_id",
                "event_type",
                "status",
                "attempts",
                "response_code",
                "error",
                "first_attempt_at",
                "last_attempt_at",
                "next_attempt_at",
            ):
                value = item.get(name)
                if value is not None:
                    entry[name] = int(value["N"]) if "N" in value else value["S"]
            entry["event_created_at"] = item["sk"]["S"].split("#", 1)[0]
            shown.append(entry)
        return shown

    # --- plumbing -------------------------------------------------------------------------

    @staticmethod
    def _key(subscription_id: str) -> dict[str, Any]:
        return {"pk": {"S": SUBSCRIPTIONS_PK}, "sk": {"S": subscription_id}}

    def _query(self, pk: str, **extra: Any) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            **extra,
        }
        while True:
            page = self._call("query", **kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return dynamo.call(self.client, operation, **kwargs)
