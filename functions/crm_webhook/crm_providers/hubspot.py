"""HubSpot Webhooks API: signature v3, a JSON array of up to 100 thin events.

Each event names one object and at most one changed property, so a profile from an event
carries that one field; parse also lists, in ``Batch.fetch``, the objects whose full record
must be read (nps_sync.ingest.hubspot) off the request path (``needs_fetch`` for a decoded
body). Association changes and merges carry nothing
storable themselves: they are counted as ignored and only trigger a fetch. A company is not a
customer: it is stored as an organization, and its contacts take its name and region when
they are read again (nps_sync.ingest.enrichment).

The signed URI is the URL HubSpot called. Behind a proxy or a custom domain ours differs, so
``credentials["target_url"]`` (the URL registered with HubSpot) wins when set.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from nps_sync.core.identity import customer_key
from nps_sync.core.models import CrmProfile
from nps_sync.core.signing import hubspot_verify
from nps_sync.ingest.hubspot import (
    CONTACT_PROPERTIES,
    PropertyNames,
    hubspot_property_names,
    profile_fields,
    provider_id,
)
from nps_sync.ingest.receive import Batch, Record, load_json, signing_secrets, validate

OBJECT_TYPE_IDS = {"0-1": "contact", "0-2": "company"}
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def verify(request, credentials, now, settings) -> None:
    hubspot_verify(
        signing_secrets(credentials, "client_secret"),
        request.headers,
        request.method,
        credentials.get("target_url") or request.url,
        request.body,
        now,
        settings.signature_tolerance_seconds,
    )


# A whole number below 10**20 (bounds past int64 are checked by Event) or up to 20 digits;
# ``\Z``, not ``$``, which would take a trailing newline
ObjectId = (
    Annotated[int, msgspec.Meta(ge=0)] | Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,20}\Z")]
)
OBJECT_ID_LIMIT = 10**20
ID_FIELDS = ("objectId", "fromObjectId", "toObjectId", "primaryObjectId")
Millis = Annotated[int, msgspec.Meta(ge=0, le=MAX_MS)]
Text = Annotated[str, msgspec.Meta(max_length=65_536)]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook event; fields HubSpot adds later are kept in the raw payload only."""

    eventId: int  # noqa: N815 - HubSpot's field names, kept for readable errors
    subscriptionId: int  # noqa: N815
    occurredAt: Millis  # noqa: N815
    subscriptionType: Annotated[str, msgspec.Meta(max_length=100)]  # noqa: N815
    objectId: ObjectId | None = None  # noqa: N815
    objectTypeId: Annotated[str, msgspec.Meta(max_length=20)] | None = None  # noqa: N815
    propertyName: Annotated[str, msgspec.Meta(max_length=256)] | None = None  # noqa: N815
    propertyValue: Text | int | float | bool | None = None  # noqa: N815
    fromObjectId: ObjectId | None = None  # noqa: N815
    toObjectId: ObjectId | None = None  # noqa: N815
    fromObjectTypeId: Annotated[str, msgspec.Meta(max_length=20)] | None = None  # noqa: N815
    toObjectTypeId: Annotated[str, msgspec.Meta(max_length=20)] | None = None  # noqa: N815
    associationType: Annotated[str, msgspec.Meta(max_length=100)] | None = None  # noqa: N815
    primaryObjectId: ObjectId | None = None  # noqa: N815

    def __post_init__(self) -> None:
        """msgspec takes no integer bound past int64: an id given as a number is bounded
        here (raised inside validate(), so it is refused as the other rules are)."""
        ids = (self.objectId, self.fromObjectId, self.toObjectId, self.primaryObjectId)
        for name, value in zip(ID_FIELDS, ids, strict=True):
            if type(value) is int and value >= OBJECT_ID_LIMIT:
                raise ValueError(f"{name}: must be below 10**20")

    @property
    def object_type(self) -> str | None:
        prefix = self.subscriptionType.split(".", 1)[0]
        if prefix == "object":
            return OBJECT_TYPE_IDS.get(self.objectTypeId or "")
        return prefix if prefix in ("contact", "company") else None

    @property
    def action(self) -> str:
        return self.subscriptionType.rpartition(".")[2]

    @property
    def event_id(self) -> str:
        """``eventId`` alone is not unique: HubSpot's own dedupe key is this tuple."""
        return f"{self.subscriptionId}-{self.eventId}-{self.objectId}-{self.occurredAt}"


Events = Annotated[list[Event], msgspec.Meta(max_length=100)]


def parse(request, settings) -> Batch:
    raw = load_json(request.body)
    events = validate(raw, Events)
    names = hubspot_property_names(settings)
    records, ignored = [], 0
    for event, event_raw in zip(events, raw, strict=True):
        profile = _profile(event, names)
        if profile is None:
            ignored += 1
        else:
            records.append(Record(profile, event_raw))
    fetch = tuple(_targets(events, names)) if settings.crm_enrichment_queue else ()
    return Batch(records=records, ignored=ignored, fetch=fetch)


def _profile(event: Event, names: PropertyNames) -> CrmProfile | None:
    object_type = event.object_type
    if object_type is None or event.objectId is None:
        return None  # another object type, or an event without one object (associations)
    fields: dict[str, Any] = {}
    action = event.action
    if action in ("deletion", "privacyDeletion"):
        fields["deleted"] = True
    elif action == "propertyChange":
        if event.propertyName is None:
            return None
        fields = profile_fields(object_type, {event.propertyName: event.propertyValue}, names)
        if not fields:
            return None  # a property we do not keep, or one that was cleared
    elif action not in ("creation", "restore"):
        return None  # merge, associationChange, …: only a fetch can tell what changed
    source_id = provider_id(object_type, str(event.objectId))
    return CrmProfile(
        provider="hubspot",
        source_id=source_id,
        object_type=object_type,
        customer_key=customer_key(fields.get("email"), None, "hubspot", source_id),
        event_id=event.event_id,
        source_updated_at=datetime.fromtimestamp(event.occurredAt / 1000, UTC),
        **fields,
    )


def needs_fetch(events: Any, settings=None) -> list[tuple[str, str]]:
    """(object_type, object_id) whose full record should be read, in event order, once each.

    Contacts: on creation, restore, merge, association with a company, and any property
    change other than e-mail (the event alone does not say whose e-mail it is). Companies:
    on creation, restore and merge, and on a change of what their contacts take from them
    (the name, the region property): reading a company also reads its contacts again.
    Objects deleted in the same batch are left out.
    """
    names = hubspot_property_names(settings) if settings is not None else PropertyNames()
    return _targets(validate(events, Events), names)


def _targets(events: list[Event], names: PropertyNames) -> list[tuple[str, str]]:
    inherited = {"name", *([names.region] if names.region else [])}
    wanted: dict[tuple[str, str], None] = {}
    deleted: set[tuple[str, str]] = set()
    for event in events:
        target = _fetch_target(event, inherited, frozenset(names.extra))
        if target is not None:
            wanted[target] = None
        if event.object_type and event.action in ("deletion", "privacyDeletion"):
            deleted.add((event.object_type, str(event.objectId)))
    return [target for target in wanted if target not in deleted]


def _fetch_target(
    event: Event, inherited: set[str], extra: frozenset[str] = frozenset()
) -> tuple[str, str] | None:
    object_type, action = event.object_type, event.action
    if action == "associationChange":
        contact = _associated_contact(event)
        return ("contact", contact) if contact else None
    if object_type is None:
        return None
    if action == "merge" and event.primaryObjectId is not None:
        return (object_type, str(event.primaryObjectId))
    if event.objectId is None:
        return None
    changed = event.propertyName if action == "propertyChange" else None
    # Only a property we read is worth a fetch: a change of any other one, such as the
    # NPS fields our own write-back sets (docs/destinations.md "Echoes"), has nothing for us.
    read = changed in CONTACT_PROPERTIES or changed in inherited or changed in extra
    needed = (
        action in ("creation", "restore")
        or (object_type == "contact" and changed is not None and changed != "email" and read)
        or (object_type == "company" and changed in inherited)
    )
    return (object_type, str(event.objectId)) if needed else None


def _associated_contact(event: Event) -> str | None:
    """The contact side of a contact-company association (its account may have changed)."""
    kind = (event.associationType or "").upper()
    sides = (event.fromObjectTypeId, event.toObjectTypeId)
    if kind.startswith("CONTACT_TO_COMPANY") or sides == ("0-1", "0-2"):
        contact = event.fromObjectId
    elif kind.startswith("COMPANY_TO_CONTACT") or sides == ("0-2", "0-1"):
        contact = event.toObjectId
    else:
        return None
    return None if contact is None else str(contact)
