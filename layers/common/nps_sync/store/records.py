"""RecordsTable access: the only module that talks DynamoDB for records.

Layout (one table, keys ``pk``/``sk``, index ``by_customer`` on ``gsi1pk``/``gsi1sk``):

- response   pk=``RESP#<provider>#<response id>``  sk=``RESP``
- profile    pk=``PROF#<provider>#<source id>``    sk=``CRM`` | ``BILLING[#<subscription>]``
- members    pk=``PROF#<provider>#<organization>`` sk=``MEMBERS`` (its contacts' ids)
- customer   pk=``CUST#<customer key>``            sk=``PROFILE`` (the merged current view)
- raw body   pk=same as its record                 sk=``RAW#<record version>#<content hash>``,
  expires by TTL

A response is written with a condition on its version, so a re-delivery or an older update
is a no-op and a newer one replaces it (the stream then carries old and new image). Profiles
are last-writer-wins per field by the source's timestamp (nps_sync.core.lww), and provider event
ids are remembered. Responses and event markers keep the hash of what their version said, so a
delivery of a stored version with other content is a conflict, not a duplicate. A body's
records are read together and written in as few calls as DynamoDB allows (``prepare``,
``commit``). Full layout and the calls a request costs: docs/storage.md.
"""

import contextlib
import hashlib
import json
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from nps_sync.core import identity, lww
from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.lww import stamp
from nps_sync.core.models import BillingProfile, CrmProfile, Response, iso, stated
from nps_sync.core.observability import logger, metrics
from nps_sync.core.outcomes import CHURNED_STATUSES
from nps_sync.store import aws, dynamo
from nps_sync.store.customers import (
    DETRACTORS_PK,
    PROFILE_SK,
    SEGMENT_ATTRIBUTES,
    VERSION,
    CustomerRecords,
)
from nps_sync.store.dynamo import item_key
from nps_sync.store.links import LINK_SK, Links, link_pk

CONDITION_FAILED = {"ConditionalCheckFailedException", "TransactionCanceledException"}
EVENT_MEMORY_SECONDS = 7 * 86400  # longer than any provider retries (Chargebee: ~3 days)
# An erased response's tombstone lasts as long: past every provider's retry horizon
# (docs/identity.md "Erasure"), so a re-delivery of it is not stored again.
ERASURE_MEMORY_SECONDS = EVENT_MEMORY_SECONDS
TOMBSTONE_SK = "TOMB"
CRM_FIELDS = ("email", "customer_id", "account", "region", "country", "owner", "lifecycle_stage")
BILLING_FIELDS = ("email", "customer_id", "plan", "status", "subscription_id")

RESPONSE_SK = "RESP"
MEMBERS_SK = "MEMBERS"  # on an organization's pk: its contacts, so they follow it
ORGANIZATIONS = ("company", "account")  # CRM objects that are not customers
PROVIDER_CLOCK = "source_updated_at"  # a provider record's clock (nps_sync.core.lww)
REVISION = "revision"  # a provider record's write counter (the PROFILE's is profile_version)
MAX_ATTEMPTS = 5
FOLLOW_PAGE = 100  # contacts per page of an organization's follow-up (BatchGetItem's limit)
FOLLOWED_REVISION, FOLLOWED_AFTER = "followed_revision", "followed_after"  # on MEMBERS
APPLIED, DUPLICATE, STALE, CONFLICT = "applied", "duplicate", "stale", "conflict"
ERASED = "erased"  # a re-delivery of an erased response: acknowledged, not stored
ERASED_METRIC = "WebhookErasedRedeliveries"
CONTENT_HASH = "content_hash"  # on responses and event markers: what the version said
AnyRecord = Response | CrmProfile | BillingProfile
GENERIC = "generic"  # the provider name of our own documented bodies


def response_pk(provider: str, response_id: str) -> str:
    return f"RESP#{provider}#{response_id}"


def customer_pk(customer_key: str) -> str:
    return f"CUST#{customer_key}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def tombstone_key(record_pk: str) -> dict[str, Any]:
    """The tombstone of an erased record, named by a hash of its pk (``RESP#<provider>#<id>``):
    it holds no personal data, only that this id was erased and until when."""
    digest = hashlib.sha256(record_pk.encode()).hexdigest()[:40]
    return {"pk": _s(f"TOMB#{digest}"), "sk": _s(TOMBSTONE_SK)}


def tombstone_item(record_pk: str, now: float) -> dict[str, Any]:
    return {
        **tombstone_key(record_pk),
        "type": _s("tombstone"),
        "expires_at": {"N": str(int(now) + ERASURE_MEMORY_SECONDS)},
    }


def _erased(tombstone: Mapping[str, Any] | None, now: float) -> bool:
    """A tombstone in force (DynamoDB's TTL deletes an expired one within days, not at once)."""
    return bool(tombstone) and int(tombstone.get("expires_at", {"N": "0"})["N"]) > now


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
    return msgspec.convert(fields, Response)


def compress(raw: Any) -> bytes:
    return zlib.compress(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode(), 6)


def decompress(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


def content_hash(record: AnyRecord) -> str:
    """What a record says, as a short SHA-256 of its canonical fields: two deliveries of one
    version (a response's id and updated_at, a profile event's id) are one delivery when it
    matches, a conflict when not. Left out: the customer key (derived from the fields, and
    resolved through links that change), the category (derived from the score) and fields
    at their defaults, so that a field added to the models later keeps the hashes of the
    records that do not set it (a response's category is a property: never among them)."""
    fields = stated(record)
    del fields["customer_key"]
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Seen:
    """A version as stored: a response's ``updated_at`` ("" for an event, whose id is its
    version) and its content hash (None on items stored before hashes were)."""

    version: str
    digest: str | None


def _seen_of(item: Mapping[str, Any] | None) -> _Seen | None:
    if not item:
        return None
    digest = item.get(CONTENT_HASH, {}).get("S")
    return _Seen(item.get("updated_at", {}).get("S", ""), digest)


def _compare(new: _Seen, stored: _Seen | None) -> str:
    if stored is None or stored.version < new.version:
        return APPLIED
    if stored.version > new.version:
        return STALE
    if stored.digest is None or stored.digest == new.digest:
        return DUPLICATE  # (an item stored without a hash: the same version is all we know)
    return CONFLICT


@dataclass
class _Entry:
    """One record of a body on its way in."""

    record: AnyRecord
    raw: Any
    digest: str
    key: str  # its customer key, resolved through the links by ``prepare``
    aliases: list[str]  # its weaker ids, linked to the key
    person: bool  # a customer's record, not an organization's (which has no identity)
    outcome: str = APPLIED

    @property
    def is_response(self) -> bool:
        return isinstance(self.record, Response)

    @property
    def resolves(self) -> bool:
        """Its key may be an alias that is linked to a better one."""
        return self.person and not identity.is_email_key(self.record.customer_key)

    @property
    def lookups(self) -> list[str]:
        """The ids whose links are read for it."""
        return [self.record.customer_key, *self.aliases] if self.resolves else self.aliases

    @property
    def seen(self) -> dict[str, Any]:
        """The item that tells whether this version is stored: the response, or the event
        marker of a profile event."""
        return self.record_key if self.is_response else _marker_key(self.record)

    @property
    def record_key(self) -> dict[str, Any]:
        record = self.record
        if isinstance(record, Response):
            return {
                "pk": _s(response_pk(record.provider, record.response_id)),
                "sk": _s(RESPONSE_SK),
            }
        return {
            "pk": _s(profile_pk(record.provider, record.source_id)),
            "sk": _s(_profile_sk(record)),
        }

    @property
    def version(self) -> str:
        return iso(self.record.updated_at) if self.is_response else ""

    @property
    def raw_version(self) -> str:
        return self.version if self.is_response else self.record.event_id

    def decide(self, stored: _Seen | None) -> bool:
        """Its outcome against the stored version: True when it is applied."""
        self.outcome = _compare(_Seen(self.version, self.digest), stored)
        return self.outcome == APPLIED


def _entry(record: AnyRecord, raw: Any) -> _Entry:
    if isinstance(record, Response):
        ids = (record.customer_id, record.provider, record.person_id)
    elif _is_organization(record):
        return _Entry(record, raw, content_hash(record), record.customer_key, [], False)
    elif record.provider == GENERIC:
        # our generic bodies key a customer by e-mail or own id, never by a provider id, so a
        # link from "generic:<id>" would cost a write and a Query per customer and serve none
        ids = (record.customer_id, None, None)
    else:
        ids = (record.customer_id, record.provider, record.source_id)
    aliases = identity.aliases(record.customer_key, *ids)
    return _Entry(record, raw, content_hash(record), record.customer_key, aliases, True)


def _pages(keys: int) -> int:
    """BatchGetItem calls for this many distinct keys (one GetItem for one)."""
    return -(-keys // dynamo.BATCH_GET_KEYS)


def _fold(group: list[_Entry], stored: Mapping[str, Any] | None) -> _Entry | None:
    """Decide the deliveries of one response (or one event) in body order, each against the
    stored item or the one before it in the body that it replaced: the newest applied one."""
    current, newest = _seen_of(stored), None
    for e in group:
        if e.decide(current):
            current, newest = _Seen(e.version, e.digest), e
    return newest


def _newest(group: list[_Entry]) -> _Entry | None:
    return next((e for e in reversed(group) if e.outcome == APPLIED), None)


@dataclass
class Prepared:
    """A body's records as ``RecordsStore.prepare`` read them, each with its planned
    outcome, and the identity links it read."""

    entries: list[_Entry]
    links: dict[str, Any]
    profiles: dict[str, Any] = field(default_factory=dict)  # customer key -> PROFILE (or None)

    @property
    def conflicts(self) -> list[AnyRecord]:
        """The records that repeat a stored version's id with other content."""
        return [e.record for e in self.entries if e.outcome == CONFLICT]


def _link_key(alias: str) -> dict[str, Any]:
    return {"pk": _s(link_pk(alias)), "sk": _s(LINK_SK)}


def _profile_key(customer_key: str) -> dict[str, Any]:
    return {"pk": _s(customer_pk(customer_key)), "sk": _s(PROFILE_SK)}


def _marker_key(profile: CrmProfile | BillingProfile) -> dict[str, Any]:
    return {"pk": _s(f"EVT#{profile.provider}#{profile.event_id}"), "sk": _s("EVT")}


@dataclass(frozen=True)
class OrganizationChange:
    """An organization's record was stored: its contacts are to follow it (``follow``)."""

    provider: str
    organization: str
    version: str  # the change's source time (the consumer follows the stored revision)


class RecordsStore:
    def __init__(
        self,
        table_name: str,
        client: Any = None,
        clock=time.time,
        organizations: Callable[[list[OrganizationChange]], Any] | None = None,
    ):
        """``organizations`` queues the follow-up of changed organizations (off the request
        path); without it they are followed at once (the queue's consumer itself, tests)."""
        self.table_name = table_name
        self.organizations = organizations
        self.client = client or aws.client("dynamodb")
        self.clock = clock
        self.customers = CustomerRecords(table_name, self.client)
        self.links = Links(self.customers, clock)

    def put(self, record: AnyRecord, raw: Any, retention_days: int) -> bool:
        """Store one record: False when this version (or a newer one) is stored already, or
        when it conflicts with the stored one (see ``prepare``)."""
        return self.put_all([(record, raw)], retention_days)[0] == APPLIED

    put_response = put_profile = put

    def put_all(self, records: Sequence[tuple[AnyRecord, Any]], retention_days: int) -> list[str]:
        """Store a body's records: their outcomes, in order (``commit``)."""
        return self.commit(self.prepare(records), retention_days)

    def prepare(self, records: Sequence[tuple[AnyRecord, Any]]) -> "Prepared":
        """Read what a body's records are compared with, all together: the stored responses
        and event markers, the identity links. Each record gets its planned outcome: APPLIED
        (new, or a newer version), STALE (older than the stored version), DUPLICATE (the
        stored version, same content) or CONFLICT (the stored version's id, other content);
        or ERASED: a response erased within ERASURE_MEMORY_SECONDS (its tombstone is read with
        the rest, no extra call unless it takes the batch over 100 keys). Nothing is written."""
        entries = [_entry(record, raw) for record, raw in records]
        tombstones = [tombstone_key(e.record_key["pk"]["S"]) for e in entries if e.is_response]
        # the PROFILE a response is stamped from, when its key needs no resolving: in the same
        # call (a response's first request makes one read, not two)
        stamped = {e.key for e in entries if e.is_response and not e.resolves}
        keys = {
            item_key(key): key
            for key in [e.seen for e in entries]
            + [_link_key(a) for e in entries for a in e.lookups]
            + tombstones
            + [_profile_key(key) for key in stamped]
        }
        # and, where they fit in the calls made anyway, those of keys that may be aliases: the
        # one wanted unless a link names another key (which is then read when writing)
        maybe = {e.key for e in entries if e.is_response and e.resolves} - stamped
        if _pages(len(keys) + len(maybe)) == _pages(len(keys)):
            stamped |= maybe
            keys.update((item_key(_profile_key(key)), _profile_key(key)) for key in maybe)
        found = dynamo.get_all(self.client, self.table_name, keys.values())
        now = self.clock()
        for e in entries:  # erased: nothing of it is stored again, not even its identity
            tombstone = found.get(item_key(tombstone_key(e.seen["pk"]["S"])))
            if e.is_response and _erased(tombstone, now):
                e.outcome = ERASED
        links = {a: found.get(item_key(_link_key(a))) for e in entries for a in e.lookups}
        self._follow_links(links, {a for e in entries if e.resolves for a in e.lookups})
        for e in entries:
            if e.resolves:
                e.key = self.links.resolve(e.key, e.aliases, links)
        seen: dict[tuple[str, str], list[_Entry]] = {}
        for e in entries:
            if e.outcome != ERASED:
                seen.setdefault(item_key(e.seen), []).append(e)
        for key, group in seen.items():
            _fold(group, found.get(key))
        profiles = {key: found.get(item_key(_profile_key(key))) for key in stamped}
        return Prepared(entries, links, profiles)

    def commit(self, prepared: "Prepared", retention_days: int) -> list[str]:
        """Write what ``prepare`` planned: the raw payloads (a stale version's too, and a
        conflicting one's beside the first), the responses (each conditional on the version
        stored, so a concurrent request's newer version wins and a repeated one is told
        apart), each profile event's transaction; then the identity links. A condition that
        fails because another request wrote meanwhile decides the outcome anew. Outcomes in
        order; a duplicate's links are settled too (a retry completes what a failed one
        left undone), a conflict's are not (its content is not taken)."""
        erased = [e for e in prepared.entries if e.outcome == ERASED]
        entries = [e for e in prepared.entries if e.outcome != ERASED]
        self._put_raws([e for e in entries if e.outcome != DUPLICATE], retention_days)
        self._write_responses([e for e in entries if e.is_response], prepared.profiles)
        self._write_profiles([e for e in entries if not e.is_response])
        self._settle_identities([e for e in entries if e.outcome != CONFLICT], prepared.links)
        if erased:  # the provider retries until it gets a 2xx: it gets one, and it is counted
            metrics.add_metric(name=ERASED_METRIC, unit="Count", value=len(erased))
            logger.info("erased responses again, not stored", extra={"records": len(erased)})
        return [e.outcome for e in prepared.entries]

    # --- response writes --------------------------------------------------------------------

    def _write_responses(self, entries: list["_Entry"], read: Mapping[str, Any]) -> None:
        """The newest version of each response in the body, conditional on what is stored;
        a refused one is decided again against the item it was refused by. ``read``: the
        PROFILEs ``prepare`` read already (the others are read here)."""
        by_pk: dict[tuple[str, str], list[_Entry]] = {}
        for e in entries:
            by_pk.setdefault(item_key(e.seen), []).append(e)
        pending = {key: e for key, e in ((k, _newest(g)) for k, g in by_pk.items()) if e}
        unread = {e.key for e in pending.values()} - read.keys()
        profiles = {**{k: v for k, v in read.items() if v}, **self._profiles(unread)}
        for _ in range(MAX_ATTEMPTS):
            if not pending:
                return
            order = list(pending)
            refused = dynamo.write_all_if(
                self.client,
                [self._response_put(pending[k], profiles.get(pending[k].key)) for k in order],
            )
            pending = {}
            for key, stored in zip(order, refused, strict=True):
                if stored is None:
                    continue
                newest = _fold(by_pk[key], stored or self._get(*key))
                if newest is not None:
                    pending[key] = newest
        raise StorageUnavailable("the response kept changing while it was written")

    def _profiles(self, keys: set[str]) -> dict[str, Any]:
        """The customers' PROFILEs, whose segment attributes a response is stamped with."""
        found = dynamo.get_all(self.client, self.table_name, map(_profile_key, sorted(keys)))
        return {pk.removeprefix("CUST#"): item for (pk, _), item in found.items()}

    def _response_put(self, e: "_Entry", profile: Mapping[str, Any] | None) -> dict[str, Any]:
        response = e.record
        if e.key != response.customer_key:
            response = msgspec.structs.replace(response, customer_key=e.key)
        item = response_item(response)
        item[CONTENT_HASH] = _s(e.digest)
        for name in (*SEGMENT_ATTRIBUTES, VERSION):
            if profile and name in profile:
                item[name] = profile[name]
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk) OR updated_at < :u",
                "ExpressionAttributeValues": {":u": _s(e.version)},
            }
        }

    # --- profile writes ---------------------------------------------------------------------

    def _write_profiles(self, entries: list["_Entry"]) -> None:
        """Apply CRM/billing updates (``_apply_all``): each APPLIED, or STALE, DUPLICATE or
        CONFLICT when another request stored its event meanwhile.

        One transaction per event remembers the event id (and its content hash) and writes,
        field by field where this event is the newest source (nps_sync.core.lww), the
        provider's record of the resource and the customer's merged PROFILE. An organization
        (HubSpot company, Salesforce Account) is not a customer: only its record is kept, and
        its contacts follow it (``follow``): queued through ``organizations`` when the store
        has it (the receivers: the request pays for the organization's record only), else at
        once. A re-delivered event queues it again, and that completes what a failed one began.
        """
        applied = [e for e in entries if e.outcome == APPLIED]
        jobs = [_Job(self._event_marker(e.record, e.digest), self._writes(e)) for e in applied]
        for e, outcome in zip(applied, self._apply_all(jobs), strict=True):
            e.outcome = outcome
        changed = [
            OrganizationChange(
                e.record.provider, e.record.source_id, iso(e.record.source_updated_at)
            )
            for e in entries
            if not e.person and e.outcome != STALE
        ]
        if self.organizations is None:
            for change in changed:
                self.follow(change.provider, change.organization)
        elif changed:
            self.organizations(changed)

    def _writes(self, e: "_Entry") -> list["_Write"]:
        profile = e.record
        if _is_organization(profile):
            return [self._provider_write(profile)]
        writes = [self._provider_write(profile, e.key), self._customer_write(profile, e.key)]
        organization = getattr(profile, "organization_id", None)
        if organization:
            writes[1].derived.update(self._from_organization(profile, organization))
            writes.append(self._membership(profile, organization))
        return writes

    def _event_marker(self, profile: CrmProfile | BillingProfile, digest: str) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    **_marker_key(profile),
                    "type": _s("event"),
                    CONTENT_HASH: _s(digest),
                    "expires_at": {"N": str(int(self.clock()) + EVENT_MEMORY_SECONDS)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
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

    def follow(self, provider: str, organization: str, page_size: int = FOLLOW_PAGE) -> int:
        """Give the organization's contacts its name (and its region where they have none), off
        the request path (the enrichment queue's "follow" messages), resumably: its members in
        id order, a page at a time, the last contact done recorded on MEMBERS for the
        organization's revision, conditionally. A redelivery continues after that contact; a
        newer revision starts again from the first (each contact ends with the newest name:
        the derived fields are last-writer-wins by the organization's time), and the older
        follow stops at its next page, its progress refused. The contacts followed.

        Calls: one BatchGetItem (MEMBERS and the organization), then per page of
        ``page_size`` contacts one BatchGetItem of their records, one of their identity links
        (those not keyed by e-mail), one TransactWriteItems of their PROFILEs (2 WCU each) and
        one UpdateItem of the progress: ~0.04 calls per contact at 100 a page."""
        members_key = {"pk": _s(profile_pk(provider, organization)), "sk": _s(MEMBERS_SK)}
        org_key = {"pk": members_key["pk"], "sk": _s("CRM")}
        found = dynamo.get_all(self.client, self.table_name, [members_key, org_key])
        members, stored = found.get(item_key(members_key)), found.get(item_key(org_key))
        if not members or not stored:
            return 0
        revision = stored.get(REVISION, {"N": "0"})["N"]
        done = members.get(FOLLOWED_REVISION, {}).get("N")
        after = members.get(FOLLOWED_AFTER, {}).get("S") if done == revision else None
        if done is not None and int(done) > int(revision):
            return 0  # (cannot happen: revisions only grow)
        contacts = sorted(members.get("contacts", {}).get("SS", []))
        todo = [c for c in contacts if after is None or c > after]
        followed = 0
        for start in range(0, len(todo), page_size):
            page = todo[start : start + page_size]
            done_here, gone = self._follow_page(provider, organization, stored, page)
            followed += done_here
            if not self._progress(members_key, revision, after, page[-1], gone):
                break  # a newer revision is being followed, or another consumer is ahead
            after = page[-1]
        return followed

    def _follow_page(
        self, provider: str, organization: str, stored: Mapping[str, Any], page: list[str]
    ) -> tuple[int, list[str]]:
        """One page of ``follow``: the PROFILE writes of the contacts still in the organization.
        The contacts followed, and the ones gone (erased, or moved to another organization)."""
        keys = [{"pk": _s(profile_pk(provider, c)), "sk": _s("CRM")} for c in page]
        records = dynamo.get_all(self.client, self.table_name, keys)
        gone, contacts = [], []
        for contact_id, key in zip(page, keys, strict=True):
            contact = records.get(item_key(key))
            if contact is None or contact.get("organization_id", {}).get("S") != organization:
                gone.append(contact_id)
            else:
                contacts.append((contact_id, contact))
        aliases = {
            f"{provider}:{c}": item["customer_key"]["S"]
            for c, item in contacts
            if not identity.is_email_key(item["customer_key"]["S"])  # (an e-mail key is final)
        }
        wanted = {a for pair in aliases.items() for a in pair}
        links = {}
        if wanted:
            found = dynamo.get_all(self.client, self.table_name, map(_link_key, sorted(wanted)))
            links = {a: found.get(item_key(_link_key(a))) for a in wanted}
            self._follow_links(links, wanted)
        jobs = []
        for contact_id, contact in contacts:
            since = contact.get(stamp("organization_id"), contact.get(PROVIDER_CLOCK, _s("")))
            own = {n: contact[n]["S"] if n in contact else None for n in ("account", "region")}
            derived = _inherited(stored, since["S"], own["account"], own["region"])
            if not derived:
                continue
            key = contact["customer_key"]["S"]
            if not identity.is_email_key(key):
                key = self.links.resolve(key, [f"{provider}:{contact_id}"], links)
            write = _Write(_profile_key(key), {}, "", None, VERSION)
            write.derived.update(derived)
            jobs.append(_Job(None, [write]))
        return sum(outcome == APPLIED for outcome in self._apply_all(jobs)), gone

    def _progress(
        self, key: dict[str, Any], revision: str, after: str | None, last: str, gone: list[str]
    ) -> bool:
        """Record on MEMBERS that the contacts up to ``last`` follow ``revision`` (and drop the
        ones gone), if it still says what this follow read: False when it does not."""
        values: dict[str, Any] = {":r": {"N": revision}, ":last": _s(last)}
        if after is None:
            condition = "attribute_not_exists(#r) OR #r < :r"
        else:
            condition = "#r = :r AND #a = :after"
            values[":after"] = _s(after)
        expression = "SET #r = :r, #a = :last"
        if gone:
            expression += " DELETE contacts :gone"
            values[":gone"] = {"SS": gone}
        return dynamo.update_if(
            self.client,
            TableName=self.table_name,
            Key=key,
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#r": FOLLOWED_REVISION, "#a": FOLLOWED_AFTER},
            ExpressionAttributeValues=values,
        )

    def _apply(self, marker: dict[str, Any] | None, writes: list["_Write"]) -> str:
        """Write what is newer than what is stored, in one transaction with the event marker:
        APPLIED, DUPLICATE (the event was seen), CONFLICT (it was seen with other content) or
        STALE (everything it carries is older)."""
        return self._apply_all([_Job(marker, writes)])[0]

    def _apply_all(self, jobs: list["_Job"]) -> list[str]:
        """Several events' transactions (``_apply``) in as few calls as DynamoDB allows: up to
        100 items a call, and no item twice in a round (an event on an item that an earlier
        one writes waits for the next round, so a body's events on one item apply in order).
        A refusal cancels the whole call: the refused event reads what refused it and is
        tried again (a late event), the others of the call are sent again as they were."""
        pending = list(jobs)
        while pending:
            for job in pending:
                job.plan(self.table_name)
            pending = [job for job in pending if job.outcome is None]
            for call in _calls(pending):
                self._transact(call)
            pending = [job for job in pending if job.outcome is None]
        return [job.outcome for job in jobs]

    def _transact(self, jobs: list["_Job"]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            if len(items) == 1:
                self._call("update_item", **items[0]["Update"])
            else:
                self._call("transact_write_items", TransactItems=items)
        except ClientError as error:
            reasons = error.response.get("CancellationReasons") or []
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                reasons = [{"Code": "ConditionalCheckFailed"}]
            if len(reasons) != len(items):
                raise StorageUnavailable("DynamoDB transact_write_items failed") from error
            for job in jobs:
                mine, reasons = reasons[: len(job.items)], reasons[len(job.items) :]
                for i in job.refused(mine):  # a late event: read, and keep only what is newer
                    job.current[i] = self._get(*item_key(job.writes[i].key))
        else:
            for job in jobs:
                job.outcome = APPLIED

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": _s(pk), "sk": _s(sk)},
            ConsistentRead=True,
        ).get("Item")

    # --- identity and raw payloads --------------------------------------------------------

    def _follow_links(self, links: dict[str, Any], aliases: set[str]) -> None:
        """Read, in rounds, the links that the links of ``aliases`` point to (an own id linked
        to an e-mail after a provider id to the own id), so that resolving reads nothing."""
        for _ in range(3):
            aliases = {links[a]["customer_key"]["S"] for a in aliases if links.get(a)}
            unread = sorted(aliases - links.keys())
            if not unread:
                return
            found = dynamo.get_all(self.client, self.table_name, map(_link_key, unread))
            links.update({a: found.get(item_key(_link_key(a))) for a in unread})

    def _settle_identities(self, entries: list["_Entry"], known: dict[str, Any]) -> None:
        """Link the records' weaker ids to their keys and move what is stored under them; then,
        for a record under a key that may be an alias, if that key was linked onward meanwhile
        (read again now, after the writes), move the record itself (by its primary key: the
        index may not list it yet) and whatever else is under that key."""
        people = [e for e in entries if e.person]
        self.links.link_all([(alias, e.key) for e in people for alias in e.aliases], known)
        written: dict[str, list[dict[str, Any]]] = {}
        for e in people:
            if not identity.is_email_key(e.key):
                keys = [e.record_key, *map(_link_key, e.aliases)]
                written.setdefault(e.key, []).extend(keys)
        if not written:
            return
        # A key something was written under now is read again, and so is one linked just now;
        # one whose record was stored before (a re-delivery, a stale version) was read after
        # that write already, by ``prepare``: its link as read there decides.
        again = {e.key for e in people if e.outcome == APPLIED}
        again.update(alias for e in people for alias in e.aliases)
        unread = [key for key in written if key in again or key not in known]
        found = dynamo.get_all(self.client, self.table_name, map(_link_key, unread))
        fresh = {key: found.get(item_key(_link_key(key))) for key in unread}
        fresh.update({key: known[key] for key in written if key not in fresh})
        for key, keys in written.items():
            self.links.settle(key, keys, fresh)

    def _put_raws(self, entries: list["_Entry"], retention_days: int) -> None:
        """Each record's raw payload beside it, named by its version and content hash, so a
        repeated delivery writes the same item again and a conflicting one writes its own."""
        now = self.clock()
        dynamo.put_all(
            self.client,
            self.table_name,
            [
                {
                    "pk": e.record_key["pk"],
                    "sk": _s(f"RAW#{e.raw_version}#{e.digest}"),
                    "type": _s("raw"),
                    "raw": {"B": compress(e.raw)},
                    "received_at": _s(iso(datetime.fromtimestamp(now, UTC))),
                    "expires_at": {"N": str(int(now) + retention_days * 86400)},
                }
                for e in entries
            ],
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


@dataclass
class _Job:
    """One event's transaction: its marker and item writes, planned again after a refusal
    with the items read then (``current``, by index in ``writes``)."""

    marker: dict[str, Any] | None
    writes: list[_Write]
    current: dict[int, Any] = field(default_factory=dict)
    outcome: str | None = None
    attempts: int = 0
    updates: list[tuple[int, lww.Update]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    def plan(self, table: str) -> None:
        updates = [
            (i, w.update(self.current.get(i), i in self.current)) for i, w in enumerate(self.writes)
        ]
        self.updates = [(i, u) for i, u in updates if not u.empty]
        if all(self.writes[i].members is not None for i, _ in self.updates):
            self.outcome = STALE  # (a membership alone is not news)
            return
        self.items = ([self.marker] if self.marker else []) + [
            {"Update": {"TableName": table, "Key": self.writes[i].key, **u.render()}}
            for i, u in self.updates
        ]

    @property
    def keys(self) -> set[tuple[str, str]]:
        """The items its transaction writes."""
        keys = {item_key(self.writes[i].key) for i, _ in self.updates}
        if self.marker:
            keys.add(item_key(self.marker["Put"]["Item"]))
        return keys

    def refused(self, reasons: list[dict[str, Any]]) -> list[int]:
        """Its part of a cancelled call: decides a seen event, else the writes to read again."""
        codes = [r.get("Code", "None") for r in reasons]
        if self.marker and codes[0] == "ConditionalCheckFailed":
            digest = self.marker["Put"]["Item"][CONTENT_HASH]["S"]
            stored = _seen_of(reasons[0].get("Item")) or _Seen("", None)
            self.outcome = _compare(_Seen("", digest), stored)
            return []
        refused = [
            i
            for (i, _), code in zip(self.updates, codes[1 if self.marker else 0 :], strict=True)
            if code == "ConditionalCheckFailed"
        ]
        if not refused and any(code != "None" for code in codes):
            raise StorageUnavailable(f"DynamoDB transact_write_items: {', '.join(codes)}")
        self.attempts += 1  # (also when cancelled for another event's sake: sent again as is)
        if self.attempts >= MAX_ATTEMPTS:
            raise StorageUnavailable("the profile kept changing while it was written")
        return refused


def _calls(jobs: list[_Job]) -> list[list[_Job]]:
    """This round's calls: jobs in order, up to 100 items a call, none on an item an earlier
    job of the round writes (that one waits for the next round)."""
    calls: list[list[_Job]] = []
    size, taken = dynamo.TRANSACTION_ITEMS, set()
    for job in jobs:
        if job.keys & taken:
            continue
        taken |= job.keys
        if size + len(job.items) > dynamo.TRANSACTION_ITEMS:
            calls.append([])
            size = 0
        calls[-1].append(job)
        size += len(job.items)
    return calls


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


# --- erasure --------------------------------------------------------------------------------

ERASURE_SK = "JOB"
ERASURE_PAGE = 25  # index entries listed per page of an erasure
ERASURE_KINDS = {"RESP#": "responses", "PROF#": "provider_profiles", "ID#": "identity_links"}
ERASURE_COUNTS = (*ERASURE_KINDS.values(), "raw_payloads", "profile_items")
_ROOM = dynamo.TRANSACTION_ITEMS - 1  # a page's deletes and tombstones; one more: its progress


def erasure_job_id(customer_key: str) -> str:
    """An erasure's id, a hash of the customer key: the queue message naming it holds no
    personal data."""
    return hashlib.sha256(customer_key.encode()).hexdigest()[:40]


def _job_key(job: str) -> dict[str, Any]:
    return {"pk": _s(f"ERASURE#{job}"), "sk": _s(ERASURE_SK)}


@dataclass(frozen=True)
class ErasureProgress:
    """Where an erasure is: ``complete`` once nothing of the customer is left; ``deleted``
    counts per kind so far; ``calls``: the DynamoDB calls this run made."""

    job: str
    complete: bool
    deleted: dict[str, int]
    calls: int = 0


@dataclass
class _JobState:
    keys: list[str]
    position: int
    cursor: dict[str, Any] | None
    counts: dict[str, int]
    step: int

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> "_JobState":
        return cls(
            keys=[k["S"] for k in item["keys"]["L"]],
            position=int(item["position"]["N"]),
            cursor=item["cursor"]["M"] if "cursor" in item else None,
            counts={name: int(v["N"]) for name, v in item["counts"]["M"].items()},
            step=int(item["step"]["N"]),
        )


class Erasures:
    """Erasure of a customer as a resumable job (item ``ERASURE#<id>``/``JOB``): the customer
    keys to erase (the customer, its aliases and provider ids, growing as records name more),
    which one it is at and the index position within it. Each page is one transaction: the
    page's items deleted (record, raw payloads), a tombstone per response (``tombstone_item``),
    and the job's progress, conditional on the step it read. So a page is applied whole or
    not at all, a retry continues after the last page applied, and two runs of one job never
    apply a page twice (the second's condition fails; it reads the job and goes on). The
    customers' own partitions (``CUST#<key>``: PROFILE, …) go last, with the job itself.

    Calls per page: one Query of by_customer (up to ERASURE_PAGE entries), one consistent
    Query per listed record's partition (keys only), a GetItem per alias the page's records
    name that the job did not know (rare), one TransactWriteItems: ~1.1 calls per record."""

    def __init__(self, table_name: str, client: Any = None, clock=time.time):
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.clock = clock

    def start(self, keys: Sequence[str]) -> str:
        """Create the job of erasing ``keys`` (the customer first), or keep the one under way
        (a repeated DELETE continues it). Its id."""
        job = erasure_job_id(keys[0])
        with contextlib.suppress(ClientError):  # under way: it goes on from where it is
            self._call(
                "put_item",
                TableName=self.table_name,
                Item={
                    **_job_key(job),
                    "type": _s("erasure"),
                    "keys": {"L": [_s(k) for k in dict.fromkeys(keys)]},
                    "position": {"N": "0"},
                    "counts": {"M": {name: {"N": "0"} for name in ERASURE_COUNTS}},
                    "step": {"N": "0"},
                    "started_at": _s(iso(datetime.fromtimestamp(self.clock(), UTC))),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        return job

    def status(self, customer_key: str) -> ErasureProgress | None:
        """The erasure under way for the customer, None when there is none (never started, or
        complete: a complete job is deleted with the last of the customer's items)."""
        job = erasure_job_id(customer_key)
        item = self._get_job(job)
        if item is None:
            return None
        return ErasureProgress(job, False, _JobState.of(item).counts)

    def run(self, job: str, max_calls: int) -> ErasureProgress:
        """Go on with the job for at most ``max_calls`` DynamoDB calls (a partition's extra
        pages aside, which only a record with over 1 MB of raw payloads has)."""
        calls = [0]
        item = self._get_job(job, calls)
        if item is None:
            return ErasureProgress(job, True, dict.fromkeys(ERASURE_COUNTS, 0), calls[0])
        state = _JobState.of(item)
        while True:
            left = max_calls - calls[0]
            if state.position >= len(state.keys):
                if left < len(state.keys) + 1:
                    break
                if self._finish(job, state, calls):
                    return ErasureProgress(job, True, state.counts, calls[0])
                state = self._reload(job, calls)
                if state is None:
                    return ErasureProgress(job, True, {}, calls[0])
                continue
            if left < 4:  # a Query, a partition, an alias read, the transaction
                break
            if not self._page(job, state, min(ERASURE_PAGE, left - 3), calls):
                state = self._reload(job, calls)  # another run applied this page: go on
                if state is None:
                    return ErasureProgress(job, True, {}, calls[0])
        return ErasureProgress(job, False, state.counts, calls[0])

    def _page(self, job: str, state: _JobState, limit: int, calls: list[int]) -> bool:
        """One page of the key the job is at; False when another run had moved on."""
        key = state.keys[state.position]
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "by_customer",
            "KeyConditionExpression": "gsi1pk = :c",
            "ExpressionAttributeValues": {":c": _s(customer_pk(key))},
            "Limit": limit,
        }
        if state.cursor:
            kwargs["ExclusiveStartKey"] = state.cursor
        page = self._call("query", **kwargs)
        calls[0] += 1
        listed, more = page.get("Items", []), page.get("LastEvaluatedKey")
        keys = set(state.keys)
        actions: dict[tuple[str, str], dict[str, Any]] = {}
        counts = dict(state.counts)
        named: list[str] = []
        used = 0
        now = self.clock()
        for entry in listed:
            stored = self._partition(entry["pk"]["S"], calls)
            owner = next((i for i in stored if i["sk"]["S"] == entry["sk"]["S"]), None)
            if owner is not None and owner.get("customer_key", {}).get("S") not in keys:
                used += 1  # moved to someone else meanwhile (a lagging index listed it)
                continue
            mine = [i for i in stored if item_key(i) not in actions]
            if entry["pk"]["S"].startswith("RESP#"):
                tomb = tombstone_item(entry["pk"]["S"], now)
                if item_key(tomb) not in actions:
                    mine.append(tomb)
            if used and len(actions) + len(mine) > _ROOM:
                break  # the next page starts at this entry
            raws = [i for i in mine if i["sk"]["S"].startswith("RAW#")]
            if len(mine) > _ROOM:  # a record with more raw payloads than a transaction holds
                calls[0] += -(-len(raws) // dynamo.BATCH_WRITE_ITEMS)
                self._delete(raws)
                counts["raw_payloads"] += len(raws)
                mine, raws = [i for i in mine if i not in raws], []
            kind = next(
                (v for k, v in ERASURE_KINDS.items() if entry["gsi1sk"]["S"].startswith(k)), None
            )
            for i in mine:
                if i.get("type", {}).get("S") == "tombstone":
                    actions[item_key(i)] = {"Put": {"TableName": self.table_name, "Item": i}}
                    continue
                actions[item_key(i)] = {
                    "Delete": {
                        "TableName": self.table_name,
                        "Key": {"pk": i["pk"], "sk": i["sk"]},
                    }
                }
                if i["sk"]["S"].startswith("RAW#"):
                    counts["raw_payloads"] += 1
                elif kind is not None:
                    counts[kind] += 1
            named.extend(_named_aliases(entry, owner))
            used += 1
        cursor = None
        position = state.position
        if used < len(listed):
            cursor = _index_key(listed[used - 1])
        elif more:
            cursor = more
        else:
            position += 1
        added = self._aliases(named, keys, calls)
        job_update = self._progress(job, state, [*state.keys, *added], position, cursor, counts)
        ok = self._transact([*actions.values(), job_update], calls)
        if ok:
            state.keys, state.position, state.cursor = [*state.keys, *added], position, cursor
            state.counts, state.step = counts, state.step + 1
        return ok

    def _finish(self, job: str, state: _JobState, calls: list[int]) -> bool:
        """The customers' own partitions and the job itself, together."""
        items = [i for key in state.keys for i in self._partition(customer_pk(key), calls)]
        counts = dict(state.counts)
        counts["profile_items"] += len(items)
        while len(items) > _ROOM:  # (a customer key with very many items of its own)
            chunk, items = items[:_ROOM], items[_ROOM:]
            self._delete(chunk)
            calls[0] += -(-len(chunk) // dynamo.BATCH_WRITE_ITEMS)
        deletes = [
            {"Delete": {"TableName": self.table_name, "Key": {"pk": i["pk"], "sk": i["sk"]}}}
            for i in items
        ]
        done = {
            "Delete": {
                "TableName": self.table_name,
                "Key": _job_key(job),
                "ConditionExpression": "step = :step",
                "ExpressionAttributeValues": {":step": {"N": str(state.step)}},
            }
        }
        if self._transact([*deletes, done], calls):
            state.counts = counts
            return True
        return False

    def _progress(
        self,
        job: str,
        state: _JobState,
        keys: list[str],
        position: int,
        cursor: dict[str, Any] | None,
        counts: dict[str, int],
    ) -> dict[str, Any]:
        expression = "SET #k = :k, #p = :p, #c = :c, #s = :next"
        values: dict[str, Any] = {
            ":k": {"L": [_s(k) for k in keys]},
            ":p": {"N": str(position)},
            ":c": {"M": {name: {"N": str(n)} for name, n in counts.items()}},
            ":next": {"N": str(state.step + 1)},
            ":step": {"N": str(state.step)},
        }
        names = {"#k": "keys", "#p": "position", "#c": "counts", "#s": "step", "#u": "cursor"}
        if cursor is None:
            expression += " REMOVE #u"
        else:
            expression += ", #u = :u"
            values[":u"] = {"M": cursor}
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _job_key(job),
                "UpdateExpression": expression,
                "ConditionExpression": "#s = :step",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _aliases(self, named: list[str], keys: set[str], calls: list[int]) -> list[str]:
        """The ids the page's records name that belong to this customer as well: unlinked
        (a link that was never written), or linked into the erasure. An id linked to another
        customer is left alone: a merge is an operator's call, and so is erasing that one."""
        fresh = sorted(set(named) - keys)
        if not fresh:
            return []
        added = []
        for alias in fresh:  # (GetItem each: a page's records rarely name a new one)
            calls[0] += 1
            link = self._call(
                "get_item", TableName=self.table_name, Key=_link_key(alias), ConsistentRead=True
            ).get("Item")
            if link is None or link.get("customer_key", {}).get("S") in keys:
                added.append(alias)
        return added

    def _transact(self, actions: list[dict[str, Any]], calls: list[int]) -> bool:
        """All of ``actions`` or none; False when the job's condition (the last) failed."""
        calls[0] += 1
        try:
            self._call(
                "transact_write_items",
                passing=("TransactionCanceledException",),
                TransactItems=actions,
            )
        except ClientError as error:
            reasons = error.response.get("CancellationReasons") or []
            if reasons and reasons[-1].get("Code") == "ConditionalCheckFailed":
                return False
            raise StorageUnavailable("DynamoDB transact_write_items was cancelled") from error
        return True

    def _partition(self, pk: str, calls: list[int]) -> list[dict[str, Any]]:
        """Every item under ``pk``: keys, and the owner (customer_key) and kind of each."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(pk)},
            "ProjectionExpression": "pk, sk, customer_key, #t",
            "ExpressionAttributeNames": {"#t": "type"},
            "ConsistentRead": True,
        }
        items = []
        while True:
            page = self._call("query", **kwargs)
            calls[0] += 1
            items.extend(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _delete(self, items: list[dict[str, Any]]) -> None:
        CustomerRecords(self.table_name, self.client).delete(items)

    def _get_job(self, job: str, calls: list[int] | None = None) -> dict[str, Any] | None:
        if calls is not None:
            calls[0] += 1
        return self._call(
            "get_item", TableName=self.table_name, Key=_job_key(job), ConsistentRead=True
        ).get("Item")

    def _reload(self, job: str, calls: list[int]) -> _JobState | None:
        item = self._get_job(job, calls)
        return _JobState.of(item) if item else None

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        passing = kwargs.pop("passing", ("ConditionalCheckFailedException",))
        return dynamo.call(self.client, operation, passing=passing, **kwargs)


def _index_key(item: Mapping[str, Any]) -> dict[str, Any]:
    """The by_customer position of an item (an ExclusiveStartKey)."""
    return {name: item[name] for name in ("pk", "sk", "gsi1pk", "gsi1sk")}


def _named_aliases(entry: Mapping[str, Any], owner: Mapping[str, Any] | None) -> list[str]:
    """The ids a listed item names its customer by, besides its key: a link's alias, a
    record's own customer id and provider id (docs/identity.md)."""
    index_key = entry["gsi1sk"]["S"]
    if index_key.startswith("ID#"):
        return [index_key.removeprefix("ID#")]
    if owner is None:
        return []
    text = {name: value["S"] for name, value in entry.items() if "S" in value}
    provider = text.get("provider")
    if entry["pk"]["S"].startswith("RESP#"):
        provider_id = text.get("person_id")
    else:
        provider_id = text.get("source_id")
    if provider == GENERIC:
        provider, provider_id = None, None
    key = text.get("customer_key", "")
    return identity.aliases(key, text.get("customer_id"), provider, provider_id)
