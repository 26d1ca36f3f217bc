"""RecordsTable access: the only module that talks DynamoDB for records.

Layout (one table, keys ``pk``/``sk``, index ``by_customer`` on ``gsi1pk``/``gsi1sk``):

- response   pk=``RESP#<provider>#<response id>``  sk=``RESP``
- profile    pk=``PROF#<provider>#<source id>``    sk=``CRM`` | ``BILLING``
- customer   pk=``CUST#<customer key>``            sk=``PROFILE`` (the merged current view)
- raw body   pk=same as its record                 sk=``RAW#<record version>``, expires by TTL

A response is written with a condition on its version, so a re-delivery or an older update
is a no-op and a newer one replaces it (the stream then carries old and new image). Profiles
are last-writer-wins by the source's timestamp, and provider event ids are remembered.
Full layout: docs/storage.md.
"""

import json
import time
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from . import identity
from .customer_records import (
    DETRACTORS_PK,
    PROFILE_SK,
    SEGMENT_ATTRIBUTES,
    VERSION,
    CustomerRecords,
)
from .errors import StorageUnavailable
from .links import GROUP_FIELDS, Links
from .models import BillingProfile, CrmProfile, Response, iso
from .outcomes import CHURNED_STATUSES

CONDITION_FAILED = {"ConditionalCheckFailedException", "TransactionCanceledException"}
EVENT_MEMORY_SECONDS = 7 * 86400  # longer than any provider retries (Chargebee: ~3 days)
CRM_FIELDS = ("email", "customer_id", "account", "region", "country", "owner", "lifecycle_stage")
BILLING_FIELDS = ("email", "customer_id", "plan", "status", "subscription_id")

RESPONSE_SK = "RESP"


def response_pk(provider: str, response_id: str) -> str:
    return f"RESP#{provider}#{response_id}"


def customer_pk(customer_key: str) -> str:
    return f"CUST#{customer_key}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def profile_pk(provider: str, source_id: str) -> str:
    return f"PROF#{provider}#{source_id}"


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
    if response.category.value == "detractor":  # the sparse index recent_detractors
        item["gsi2pk"] = _s(DETRACTORS_PK)
        item["gsi2sk"] = _s(f"{iso(response.submitted_at)}#{item['pk']['S']}")
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
        self.customers = CustomerRecords(table_name, self.client)
        self.links = Links(self.customers)

    def put(
        self, record: Response | CrmProfile | BillingProfile, raw: Any, retention_days: int
    ) -> bool:
        if isinstance(record, Response):
            return self.put_response(record, raw, retention_days)
        return self.put_profile(record, raw, retention_days)

    def put_response(self, response: Response, raw: Any, retention_days: int) -> bool:
        """Store or replace; False when this version (or a newer one) is already stored."""
        aliases = identity.aliases(response.customer_key, response.customer_id)
        key = self._resolve(response.customer_key, aliases)
        if key != response.customer_key:
            response = response.model_copy(update={"customer_key": key})
        pk = response_pk(response.provider, response.response_id)
        self._put_raw(pk, f"RAW#{iso(response.updated_at)}", raw, retention_days)
        item = response_item(response)
        profile = self.customers.profile(key)
        for name in (*SEGMENT_ATTRIBUTES, VERSION):
            if profile and name in profile:
                item[name] = profile[name]
        try:
            self._call(
                "put_item",
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR updated_at < :u",
                ExpressionAttributeValues={":u": _s(iso(response.updated_at))},
            )
        except ClientError:  # only the condition failure gets through _call as ClientError
            return False
        self._settle_identity(key, aliases)
        return True

    def put_profile(
        self, profile: CrmProfile | BillingProfile, raw: Any, retention_days: int
    ) -> bool:
        """Apply a CRM/billing update: False for a re-delivered or stale event.

        One transaction remembers the event id, updates the provider's profile (last writer
        by source timestamp wins) and folds the fields into the customer's merged PROFILE.
        """
        aliases = identity.aliases(
            profile.customer_key, profile.customer_id, profile.provider, profile.source_id
        )
        key = self._resolve(profile.customer_key, aliases)
        pk = profile_pk(profile.provider, profile.source_id)
        self._put_raw(pk, f"RAW#{profile.event_id}", raw, retention_days)
        writes = [
            self._event_marker(profile),
            self._profile_update(profile, key, pk),
            self._customer_update(profile, key),
        ]
        stored = self._transact(writes)
        if stored is None:  # only the merged view was newer: keep the provider's record
            stored = self._transact(writes[:2])
        if stored:
            self._settle_identity(key, aliases)
        return bool(stored)

    # --- profile writes ---------------------------------------------------------------------

    def _event_marker(self, profile: CrmProfile | BillingProfile) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    "pk": _s(f"EVT#{profile.provider}#{profile.event_id}"),
                    "sk": _s("EVT"),
                    "type": _s("event"),
                    "expires_at": {"N": str(int(self.clock()) + EVENT_MEMORY_SECONDS)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _profile_update(
        self, profile: CrmProfile | BillingProfile, key: str, pk: str
    ) -> dict[str, Any]:
        """The provider's record of one resource (a contact, a customer, a subscription):
        each resource has its own order, so each keeps its own last-writer-wins timestamp."""
        is_crm = isinstance(profile, CrmProfile)
        fields = _fields(profile)
        fields.update(
            type=_s("crm" if is_crm else "billing"),
            provider=_s(profile.provider),
            source_id=_s(profile.source_id),
            customer_key=_s(key),
            gsi1pk=_s(customer_pk(key)),
            gsi1sk=_s(f"PROF#{profile.provider}#{profile.source_id}"),
            source_updated_at=_s(iso(profile.source_updated_at)),
        )
        if is_crm:
            fields.update(object_type=_s(profile.object_type), deleted={"BOOL": profile.deleted})
            sk = "CRM"
        else:
            sk = f"BILLING#{profile.subscription_id}" if profile.subscription_id else "BILLING"
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": _s(pk), "sk": _s(sk)},
                **_update(fields, "source_updated_at", getattr(profile, "renewed", False)),
            }
        }

    def _customer_update(self, profile: CrmProfile | BillingProfile, key: str) -> dict[str, Any]:
        """Fold into the merged PROFILE: each group of fields is last-writer-wins on its own."""
        fields = _fields(profile)
        stamp = _group_stamp(fields)
        fields[stamp] = _s(iso(profile.source_updated_at))
        update = _update(fields, stamp, getattr(profile, "renewed", False), version=True)
        if isinstance(profile, BillingProfile):
            _billing_moments(update, profile)
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": _s(customer_pk(key)), "sk": _s(PROFILE_SK)},
                **update,
            }
        }

    def _transact(self, writes: list[dict[str, Any]]) -> bool | None:
        """True if applied, False if the event was seen or is stale, None if only the
        merged view refused it."""
        try:
            self._call("transact_write_items", TransactItems=writes)
        except ClientError as error:
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"] or reasons[1:2] == [
                "ConditionalCheckFailed"
            ]:
                return False
            if reasons[2:3] == ["ConditionalCheckFailed"]:
                return None
            raise StorageUnavailable("DynamoDB transact_write_items failed") from error
        return True

    # --- identity -----------------------------------------------------------------------------

    def _resolve(self, key: str, aliases: list[str]) -> str:
        """An e-mail key is final; any other key may have been linked to one since."""
        return key if identity.is_email_key(key) else self.links.resolve(key, aliases)

    def _settle_identity(self, key: str, aliases: list[str]) -> None:
        if identity.is_email_key(key) or not any(self.links.linked(a) for a in aliases):
            for alias in aliases:
                self.links.link(alias, key)
        if not identity.is_email_key(key):
            self.links.settle(key)

    def _put_raw(self, pk: str, sk: str, raw: Any, retention_days: int) -> None:
        self._call(
            "put_item",
            TableName=self.table_name,
            Item={
                "pk": _s(pk),
                "sk": _s(sk),
                "type": _s("raw"),
                "raw": {"B": compress(raw)},
                "received_at": _s(iso(datetime.fromtimestamp(self.clock(), UTC))),
                "expires_at": {"N": str(int(self.clock()) + retention_days * 86400)},
            },
        )

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
            if error.response["Error"]["Code"] in CONDITION_FAILED:
                raise
            raise StorageUnavailable(f"DynamoDB {operation} failed") from error
        except BotoCoreError as error:
            raise StorageUnavailable(f"DynamoDB {operation} failed") from error


def _fields(profile: CrmProfile | BillingProfile) -> dict[str, Any]:
    """The attributes an event carries; absent ones are left as they are."""
    names = CRM_FIELDS if isinstance(profile, CrmProfile) else BILLING_FIELDS
    fields = {n: _s(getattr(profile, n)) for n in names if getattr(profile, n) is not None}
    if isinstance(profile, CrmProfile):  # one attribute each: a change merges key by key
        fields.update({f"prop:{k}": _s(v) for k, v in (profile.properties or {}).items()})
    if isinstance(profile, BillingProfile):
        if profile.mrr is not None:
            fields["mrr_amount"] = {"N": str(profile.mrr.amount)}
            fields["mrr_currency"] = _s(profile.mrr.currency)
        if profile.renews_at is not None:
            fields["renews_at"] = _s(iso(profile.renews_at))
    return fields


def _group_stamp(fields: dict[str, Any]) -> str:
    """The first group the event touches: its identity fields ride along with it."""
    return next(
        (stamp for stamp, names in GROUP_FIELDS.items() if any(n in fields for n in names)),
        "identity_updated_at",
    )


def _billing_moments(update: dict[str, Any], profile: BillingProfile) -> None:
    """The moments revenue outcomes are counted at (docs/outcomes.md), in the same update:
    ``churned_at`` = the update that moved the status into a churned state (kept while it stays
    churned, removed when it is active again), ``renewed_at`` = the set of renewal moments,
    ``billing_since`` = the first billing update stored."""
    values = update["ExpressionAttributeValues"]
    values[":moment"] = _s(iso(profile.source_updated_at))
    sets = ["billing_since = if_not_exists(billing_since, :moment)"]
    removes = []
    if profile.status is not None:
        if profile.status.lower() in CHURNED_STATUSES:
            sets.append("churned_at = if_not_exists(churned_at, :moment)")
        else:
            removes.append("churned_at")
    expression = update["UpdateExpression"].replace("SET ", "SET " + ", ".join(sets) + ", ", 1)
    if profile.renewed:
        values[":renewed"] = {"SS": [values[":moment"]["S"]]}
        expression += ", renewed_at :renewed"  # the ADD clause ends the expression
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    update["UpdateExpression"] = expression


def _update(
    fields: dict[str, Any], stamp: str, renewals: bool = False, version: bool = False
) -> dict[str, Any]:
    """SET the given attributes, last-writer-wins on ``stamp`` (one of them); placeholders are
    numbered because attribute names (CRM property names) may hold any character."""
    names = {f"#a{i}": name for i, name in enumerate(fields)}
    values = {f":v{i}": value for i, value in enumerate(fields.values())}
    expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(fields)))
    adds = (["renewals :one"] if renewals else []) + ([f"{VERSION} :one"] if version else [])
    if adds:
        expression += " ADD " + ", ".join(adds)
        values[":one"] = {"N": "1"}
    names["#ts"], values[":ts"] = stamp, fields[stamp]
    return {
        "UpdateExpression": expression,
        "ConditionExpression": "attribute_not_exists(#ts) OR #ts <= :ts",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
