"""Outgoing events (docs/events.md): what a batch of RecordsTable changes tells the subscribers.

Pure: every event is a function of stream images (and, for ``aggregate.updated``, of an
aggregate write the aggregator applied), so processing the same stream record again yields the
same event with the same id, and subscribers de-duplicate on it (``webhook-id``).
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nps_sync.core.aggregates import AggregateKey, Counts, Image, is_response
from nps_sync.core.nps import nps

RESPONSE_RECEIVED = "response.received"
DETRACTOR_ALERT = "detractor.alert"
CUSTOMER_NPS_CHANGED = "customer.nps_changed"
AGGREGATE_UPDATED = "aggregate.updated"
EVENT_TYPES = (RESPONSE_RECEIVED, DETRACTOR_ALERT, CUSTOMER_NPS_CHANGED, AGGREGATE_UPDATED)
VERSION = 1
SOURCE = "nps-sync"
# Response attributes a subscription filter can name (besides an aggregate's dimension).
FILTERABLE = ("plan", "region", "account", "channel", "survey", "provider", "category")


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created_at: str
    data: dict[str, Any]
    index: int = field(default=0, compare=False)  # the stream record it comes from, in its batch

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "created_at": self.created_at,
            "version": VERSION,
            "data": self.data,
        }

    def to_json(self) -> str:
        return json.dumps(self.body(), separators=(",", ":"), ensure_ascii=False)

    def attributes(self) -> dict[str, str]:
        """What a subscription filter is matched against."""
        if self.type == AGGREGATE_UPDATED:
            return {self.data["dimension"]: self.data["value"]}
        found = {name: self.data.get(name) for name in FILTERABLE}
        return {name: str(value) for name, value in found.items() if value is not None}


def event_id(event_type: str, *parts: str) -> str:
    """``evt_`` + a hash of what identifies the change: the same change, the same id."""
    digest = hashlib.sha256("\x1f".join((event_type, *parts)).encode()).hexdigest()
    return "evt_" + digest[:32]


def timestamp(epoch_seconds: float | None) -> str:
    """ISO 8601 UTC; the stream record's creation time, so a re-derived event is identical."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC) if epoch_seconds else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(image: Image | None, name: str) -> str | None:
    value = (image or {}).get(name)
    if not value:
        return None
    text = value.get("S", value.get("N"))
    return str(text) if text not in (None, "") else None


def _int(image: Image | None, name: str) -> int | None:
    text = _text(image, name)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def is_new_version(old: Image | None, new: Image | None) -> bool:
    """A response stored or replaced by its provider (not a segment re-stamp, not a move)."""
    if not is_response(new) or _int(new, "score") is None:
        return False
    return old is None or _text(old, "updated_at") != _text(new, "updated_at")


def _response_data(new: Image) -> dict[str, Any]:
    data: dict[str, Any] = {
        "response_id": _text(new, "response_id"),
        "provider": _text(new, "provider"),
        "customer_key": _text(new, "customer_key"),
        "email": _text(new, "email"),
        "score": _int(new, "score"),
        "category": _text(new, "category"),
        "submitted_at": _text(new, "submitted_at"),
        "updated_at": _text(new, "updated_at"),
        "survey": _text(new, "survey"),
        "channel": _text(new, "channel"),
        "comment": _text(new, "comment"),
        "plan": _text(new, "plan"),
        "region": _text(new, "region"),
        "account": _text(new, "account"),
    }
    amount = _int(new, "mrr_amount")
    data["mrr"] = (
        {"amount": amount, "currency": _text(new, "mrr_currency")} if amount is not None else None
    )
    return data


def response_events(
    index: int, old: Image | None, new: Image | None, created: float | None
) -> list[Event]:
    """response.received and, for a response that becomes a detractor, detractor.alert."""
    if not is_new_version(old, new):
        return []
    assert new is not None
    pk, version, at = _text(new, "pk") or "", _text(new, "updated_at") or "", timestamp(created)
    data = _response_data(new)
    events = [Event(event_id(RESPONSE_RECEIVED, pk, version), RESPONSE_RECEIVED, at, data, index)]
    was_detractor = old is not None and _text(old, "category") == "detractor"
    if data["category"] == "detractor" and not was_detractor:
        alert = {
            name: data[name]
            for name in (
                "response_id",
                "provider",
                "customer_key",
                "email",
                "score",
                "comment",
                "survey",
                "channel",
                "plan",
                "region",
                "account",
                "submitted_at",
            )
        }
        alert["mrr_at_risk"] = data["mrr"]
        events.append(
            Event(event_id(DETRACTOR_ALERT, pk, version), DETRACTOR_ALERT, at, alert, index)
        )
    return events


def _latest_key(image: Image) -> tuple[str, str]:
    return (_text(image, "submitted_at") or "", _text(image, "pk") or "")


def customer_change(
    index: int,
    old: Image | None,
    new: Image | None,
    others: Iterable[Image],
    created: float | None,
) -> Event | None:
    """customer.nps_changed, when this response version changes its customer's latest score.

    ``others``: the customer's stored responses (this one among them or not). The latest one is
    the last submitted; before this version it was either this response's old image (a replaced
    latest response) or the latest of the others.
    """
    if not is_new_version(old, new):
        return None
    assert new is not None
    pk = _text(new, "pk")
    rest = [o for o in others if _text(o, "pk") != pk]
    previous = max(rest, key=_latest_key, default=None)
    if previous is not None and _latest_key(previous) > _latest_key(new):
        return None  # an older answer arrived late: the latest score is still the other one
    same_customer = old is not None and _text(old, "customer_key") == _text(new, "customer_key")
    if same_customer and (previous is None or _latest_key(old) > _latest_key(previous)):
        previous = old
    before = _summary(previous)
    after = _summary(new)
    if before is not None and before["score"] == after["score"]:
        return None
    return Event(
        event_id(CUSTOMER_NPS_CHANGED, pk or "", _text(new, "updated_at") or ""),
        CUSTOMER_NPS_CHANGED,
        timestamp(created),
        {
            "customer_key": _text(new, "customer_key"),
            "email": _text(new, "email"),
            "old": before,
            "new": after,
            **{name: _text(new, name) for name in ("plan", "region", "account")},
        },
        index,
    )


def _summary(image: Image | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {
        "score": _int(image, "score"),
        "category": _text(image, "category"),
        "response_id": _text(image, "response_id"),
        "submitted_at": _text(image, "submitted_at"),
    }


def aggregate_event(
    key: AggregateKey,
    before: Counts,
    after: Counts,
    lane: str,
    mark: str,
    index: int,
    created: float | None,
) -> Event | None:
    """aggregate.updated, when an applied write moved the aggregate's NPS."""
    old = nps(before.promoters, before.passives, before.detractors)
    new = nps(after.promoters, after.passives, after.detractors)
    if old == new:
        return None
    return Event(
        event_id(AGGREGATE_UPDATED, str(key), lane, mark),
        AGGREGATE_UPDATED,
        timestamp(created),
        {
            "dimension": key.dimension,
            "value": key.value,
            "granularity": key.granularity,
            "period": key.period,
            "old_nps": old,
            "new_nps": new,
            "n": after.n,
            "promoters": after.promoters,
            "passives": after.passives,
            "detractors": after.detractors,
        },
        index,
    )


def matches(event: Event, types: Iterable[str], filters: Mapping[str, Any]) -> bool:
    """A subscription's event types and filter: every filter name must have (one of) its
    values among the event's attributes (docs/events.md "Filters")."""
    if event.type not in set(types):
        return False
    attributes = event.attributes()
    for name, wanted in filters.items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if attributes.get(name) not in {str(v) for v in allowed}:
            return False
    return True
