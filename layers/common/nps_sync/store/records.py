"""RecordsTable access: the only module that talks DynamoDB for records.

Layout (one table, keys ``pk``/``sk``, index ``by_customer`` on ``gsi1pk``/``gsi1sk``):

- response   pk=``RESP#<provider>#<response id>``  sk=``RESP``
- profile    pk=``PROF#<provider>#<source id>``    sk=``CRM`` | ``BILLING[#<subscription>]``
- members    pk=``PROF#<provider>#<organization>`` sk=``MEMBERS`` (its contacts' ids)
- customer   pk=``CUST#<customer key>``            sk=``PROFILE`` (the merged current view)
- raw body   pk=same as its record                 sk=``RAW#<record version>``, expires by TTL

A response is written with a condition on its version, so a re-delivery or an older update
is a no-op and a newer one replaces it (the stream then carries old and new image). Profiles
are last-writer-wins per field by the source's timestamp (nps_sync.core.lww), and provider event
ids are remembered. Full layout: docs/storage.md.
"""

import json
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from nps_sync.core import identity, lww
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.lww import stamp
from nps_sync.core.models import BillingProfile, CrmProfile, Response, iso
from nps_sync.core.outcomes import CHURNED_STATUSES
from nps_sync.store import dynamo
from nps_sync.store.customers import (
    DETRACTORS_PK,
    PROFILE_SK,
    SEGMENT_ATTRIBUTES,
    VERSION,
    CustomerRecords,
)
from nps_sync.store.links import LINK_SK, Links, link_pk

CONDITION_FAILED = {"ConditionalCheckFailedException", "TransactionCanceledException"}
EVENT_MEMORY_SECONDS = 7 * 86400  # longer than any provider retries (Chargebee: ~3 days)
CRM_FIELDS = ("email", "customer_id", "account", "region", "country", "owner", "lifecycle_stage")
BILLING_FIELDS = ("email", "customer_id", "plan", "status", "subscription_id")

RESPONSE_SK = "RESP"
MEMBERS_SK = "MEMBERS"  # on an organization's pk: its contacts, so they follow it
ORGANIZATIONS = ("company", "account")  # CRM objects that are not customers
PROVIDER_CLOCK = "source_updated_at"  # a provider record's clock (nps_sync.core.lww)
REVISION = "revision"  # a provider record's write counter (the PROFILE's is profile_version)
MAX_ATTEMPTS = 5
APPLIED, DUPLICATE, STALE = "applied", "duplicate", "stale"


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
    for name in ("survey", "channel", "comment", "email", "customer_id", "person_id"):
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
        aliases = identity.aliases(
            response.customer_key, response.customer_id, response.provider, response.person_id
        )
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
            stored = True
        except ClientError:  # only the condition failure gets through _call as ClientError
            stored = False
        # Also for a duplicate: the provider's retry completes a link an earlier try left undone.
        self._settle_identity(key, aliases, [{"pk": _s(pk), "sk": _s(RESPONSE_SK)}])
        return stored

    def put_profile(
        self, profile: CrmProfile | BillingProfile, raw: Any, retention_days: int
    ) -> bool:
        """Apply a CRM/billing update: False for a re-delivered or stale event.

        One transaction remembers the event id and writes, field by field where this event is
        the newest source (nps_sync.core.lww), the provider's record of the resource and the
        customer's merged PROFILE. An organization (HubSpot company, Salesforce Account) is
        not a customer: only its record is kept, and its contacts follow it (``_follow``).
        """
        pk = profile_pk(profile.provider, profile.source_id)
        sk = _profile_sk(profile)
        self._put_raw(pk, f"RAW#{profile.event_id}", raw, retention_days)
        if _is_organization(profile):
            outcome = self._apply(self._event_marker(profile), [self._provider_write(profile)])
            if outcome != STALE:
                self._follow(profile.provider, profile.source_id)
            return outcome == APPLIED
        aliases = identity.aliases(
            profile.customer_key, profile.customer_id, profile.provider, profile.source_id
        )
        key = self._resolve(profile.customer_key, aliases)
        writes = [self._provider_write(profile, key), self._customer_write(profile, key)]
        organization = getattr(profile, "organization_id", None)
        if organization:
            writes[1].derived.update(self._from_organization(profile, organization))
            writes.append(self._membership(profile, organization))
        outcome = self._apply(self._event_marker(profile), writes)
        self._settle_identity(key, aliases, [{"pk": _s(pk), "sk": _s(sk)}])
        return outcome == APPLIED

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

    def _provider_write(self, profile: CrmProfile | BillingProfile, key: str | None = None):
        """The provider's record of one resource (a contact, a customer, a subscription): each
        resource has its own order, so each keeps its own clock. Organizations are not indexed
        under a customer."""
        is_crm = isinstance(profile, CrmProfile)
        fields = _fields(profile)
        if is_crm:
            fields["deleted"] = {"BOOL": profile.deleted}
            if getattr(profile, "organization_id", None):
                fields["organization_id"] = _s(profile.organization_id)
        always = {
            "type": _s("crm" if is_crm else "billing"),
            "provider": _s(profile.provider),
            "source_id": _s(profile.source_id),
            "customer_key": _s(key or profile.customer_key),
        }
        if key is not None:
            always["gsi1pk"] = _s(customer_pk(key))
            always["gsi1sk"] = _s(f"PROF#{profile.provider}#{profile.source_id}")
        if is_crm:
            always["object_type"] = _s(profile.object_type)
        key_ = {
            "pk": _s(profile_pk(profile.provider, profile.source_id)),
            "sk": _s(_profile_sk(profile)),
        }
        return _Write(
            key_,
            fields,
            iso(profile.source_updated_at),
            {PROVIDER_CLOCK: list(fields)},
            REVISION,
            always=always,
            renewed=getattr(profile, "renewed", False),
        )

    def _customer_write(self, profile: CrmProfile | BillingProfile, key: str) -> "_Write":
        """Into the merged PROFILE, each group of fields on its own clock."""
        fields = _fields(profile)
        write = _Write(
            {"pk": _s(customer_pk(key)), "sk": _s(PROFILE_SK)},
            fields,
            iso(profile.source_updated_at),
            None,
            VERSION,
            renewed=getattr(profile, "renewed", False),
        )
        if isinstance(profile, BillingProfile):
            write.billing = profile
        return write

    def _membership(self, profile: CrmProfile, organization: str) -> "_Write":
        """The organization's list of its contacts, so they follow it when it changes."""
        write = _Write(
            {"pk": _s(profile_pk(profile.provider, organization)), "sk": _s(MEMBERS_SK)},
            {},
            iso(profile.source_updated_at),
            {},
            REVISION,
        )
        write.members = profile.source_id
        return write

    def _from_organization(self, contact: CrmProfile, organization: str) -> dict[str, Any]:
        stored = self._get(profile_pk(contact.provider, organization), "CRM")
        return _inherited(stored, contact.source_updated_at, contact.account, contact.region)

    def _follow(self, provider: str, organization: str) -> int:
        """Give the organization's contacts its name (and its region where they have none):
        idempotent, so a re-delivered organization event completes what a failed one began."""
        members = self._get(profile_pk(provider, organization), MEMBERS_SK)
        stored = self._get(profile_pk(provider, organization), "CRM")
        followed = 0
        for contact_id in sorted((members or {}).get("contacts", {}).get("SS", [])):
            contact = self._get(profile_pk(provider, contact_id), "CRM")
            if contact is None or contact.get("organization_id", {}).get("S") != organization:
                self._call(  # erased, or moved to another organization since
                    "update_item",
                    TableName=self.table_name,
                    Key={"pk": _s(profile_pk(provider, organization)), "sk": _s(MEMBERS_SK)},
                    UpdateExpression="DELETE contacts :c",
                    ExpressionAttributeValues={":c": {"SS": [contact_id]}},
                )
                continue
            since = contact.get(stamp("organization_id"), contact.get(PROVIDER_CLOCK, _s("")))
            own = {n: contact[n]["S"] if n in contact else None for n in ("account", "region")}
            derived = _inherited(stored, since["S"], own["account"], own["region"])
            if not derived:
                continue
            key = self._resolve(contact["customer_key"]["S"], [f"{provider}:{contact_id}"])
            write = _Write(
                {"pk": _s(customer_pk(key)), "sk": _s(PROFILE_SK)}, {}, "", None, VERSION
            )
            write.derived.update(derived)
            followed += self._apply(None, [write]) == APPLIED
        return followed

    def _apply(self, marker: dict[str, Any] | None, writes: list["_Write"]) -> str:
        """Write what is newer than what is stored, in one transaction with the event marker:
        APPLIED, DUPLICATE (the event was seen) or STALE (everything it carries is older)."""
        current: dict[int, Any] = {}  # the items read after a refusal, by index in ``writes``
        for _ in range(MAX_ATTEMPTS):
            updates = [(i, w.update(current.get(i), i in current)) for i, w in enumerate(writes)]
            updates = [(i, u) for i, u in updates if not u.empty]
            if all(writes[i].members is not None for i, _ in updates):
                return STALE  # (a membership alone is not news)
            items = ([marker] if marker else []) + [
                {"Update": {"TableName": self.table_name, "Key": writes[i].key, **u.render()}}
                for i, u in updates
            ]
            try:
                if len(items) == 1:
                    self._call("update_item", **items[0]["Update"])
                else:
                    self._call("transact_write_items", TransactItems=items)
                return APPLIED
            except ClientError as error:
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    reasons = ["ConditionalCheckFailed"]
                if marker and reasons[:1] == ["ConditionalCheckFailed"]:
                    return DUPLICATE
                refused = [
                    i
                    for (i, _), code in zip(updates, reasons[1 if marker else 0 :], strict=False)
                    if code == "ConditionalCheckFailed"
                ]
                if not refused:
                    raise StorageUnavailable("DynamoDB transact_write_items failed") from error
                for i in refused:  # a late event: read, and keep only what is newer
                    current[i] = self._get(writes[i].key["pk"]["S"], writes[i].key["sk"]["S"])
        raise StorageUnavailable("the profile kept changing while it was written")

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": _s(pk), "sk": _s(sk)},
            ConsistentRead=True,
        ).get("Item")

    # --- identity -----------------------------------------------------------------------------

    def _resolve(self, key: str, aliases: list[str]) -> str:
        """An e-mail key is final; any other key may have been linked to one since."""
        return key if identity.is_email_key(key) else self.links.resolve(key, aliases)

    def _settle_identity(self, key: str, aliases: list[str], written: list[dict[str, Any]]):
        """Link the record's weaker ids to its key and move what is stored under them; then, if
        its own key was linked onward meanwhile, move the record itself (by its primary key:
        the index may not list it yet) and whatever else is under that key."""
        for alias in aliases:
            self.links.link(alias, key)
        if not identity.is_email_key(key):
            links = [{"pk": _s(link_pk(a)), "sk": _s(LINK_SK)} for a in aliases]
            self.links.settle(key, [*written, *links])

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
        """A failed condition comes through as ClientError: the callers decide what it means."""
        return dynamo.call(self.client, operation, passing=CONDITION_FAILED, **kwargs)


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


def _profile_sk(profile: CrmProfile | BillingProfile) -> str:
    if isinstance(profile, CrmProfile):
        return "CRM"
    return f"BILLING#{profile.subscription_id}" if profile.subscription_id else "BILLING"


def _is_organization(profile: CrmProfile | BillingProfile) -> bool:
    return isinstance(profile, CrmProfile) and profile.object_type in ORGANIZATIONS


def _inherited(
    organization: Mapping[str, Any] | None,
    since: datetime | str,
    account: str | None,
    region: str | None,
) -> dict[str, tuple[Any, str]]:
    """What a contact takes from its stored organization: the name as its account, the region
    where it has none of its own; each at the later of the contact's and the organization's
    time, so that a change of either is newer than what the other wrote before."""
    if organization is None:
        return {}
    since = since if isinstance(since, str) else iso(since)
    derived = {}
    for name, own in (("account", account), ("region", region)):
        if own is None and name in organization:
            at = lww.field_time(organization, name, PROVIDER_CLOCK) or ""
            derived[name] = (organization[name], max(since, at))
    return derived


@dataclass
class _Write:
    """One item of a profile write: the fields an event carries, at the event's source time,
    and the fields taken from an organization (``derived``), each at its own."""

    key: dict[str, Any]
    fields: dict[str, Any]
    at: str
    clocks: dict[str, list[str]] | None  # None: the merged PROFILE's groups
    revision: str
    always: dict[str, Any] = field(default_factory=dict)  # set with any change (the item's shape)
    renewed: bool = False
    billing: BillingProfile | None = None
    derived: dict[str, tuple[Any, str]] = field(default_factory=dict)
    members: str | None = None  # a contact to add to an organization's members

    def update(self, current: Mapping[str, Any] | None, read: bool) -> lww.Update:
        update = lww.Update()
        if self.members is not None:
            update.add("contacts", {"SS": [self.members]})
            return update
        fields = {**self.fields, **{name: value for name, (value, _) in self.derived.items()}}
        times = dict.fromkeys(self.fields, self.at)
        times.update({name: at for name, (_, at) in self.derived.items()})
        clocks = self.clocks if self.clocks is not None else lww.profile_clocks(fields)
        applied = lww.apply_newer(update, fields, times, clocks, self.revision, current, read)
        if not applied and not self.renewed:
            return lww.Update()  # nothing newer: not written at all
        if not applied:
            update.add(self.revision, {"N": "1"})  # a renewal alone changes the item too
        for name, value in self.always.items():
            update.set(name, value)
        if self.renewed:  # a renewal counts once per event, however late it arrives
            update.add("renewals", {"N": "1"})
        if self.billing is not None:
            _billing_moments(update, self.billing, applied)
        return update


def _billing_moments(update: lww.Update, profile: BillingProfile, applied: list[str]) -> None:
    """The moments revenue outcomes are counted at (docs/outcomes.md), in the same update:
    ``churned_at`` = the update that moved the status into a churned state (kept while it stays
    churned, removed when it is active again), ``renewed_at`` = the set of renewal moments,
    ``billing_since`` = the first billing update stored."""
    moment = _s(iso(profile.source_updated_at))
    update.set_if_absent("billing_since", moment)
    if "status" in applied:
        if profile.status.lower() in CHURNED_STATUSES:
            update.set_if_absent("churned_at", moment)
        else:
            update.remove("churned_at")
    if profile.renewed:
        update.add("renewed_at", {"SS": [moment["S"]]})
