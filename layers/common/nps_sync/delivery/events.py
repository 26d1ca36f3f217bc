"""Outgoing events (docs/events.md): what a batch of RecordsTable changes tells the subscribers.

Pure: every event is a function of stream images, read as models.StoredResponse (and, for
``aggregate.updated``, of an aggregate write the aggregator applied), so processing the same
stream record again yields the same event with the same id, and subscribers de-duplicate on
it (``webhook-id``).
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nps_sync.core.aggregates import AggregateKey, Counts
from nps_sync.core.models import StoredResponse
from nps_sync.core.nps import nps

RESPONSE_RECEIVED = "response.received"
DETRACTOR_ALERT = "detractor.alert"
CUSTOMER_NPS_CHANGED = "customer.nps_changed"
AGGREGATE_UPDATED = "aggregate.updated"
EVENT_TYPES = (RESPONSE_RECEIVED, DETRACTOR_ALERT, CUSTOMER_NPS_CHANGED, AGGREGATE_UPDATED)
VERSION = 1
SOURCE = "nps-sync"
# Characters of a comment an event carries; a longer one is cut there, with
# ``comment_truncated`` true (the whole text: GET /customers/{key}). So that the largest
# possible event (every other field at its 512-character bound too, all characters escaped
# to 6 bytes) stays under 64 KB: one EventBridge billing unit, a quarter of what a PutEvents
# request or an SQS message holds (docs/events.md "Size").
COMMENT_LIMIT = 4_000
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


def _shown(value: str | None) -> str | None:
    return value or None  # an empty attribute is shown as absent


def is_new_version(old: StoredResponse | None, new: StoredResponse | None) -> bool:
    """A response stored or replaced by its provider (not a segment re-stamp, not a move)."""
    if new is None or new.score is None:
        return False
    return old is None or _shown(old.updated_at) != _shown(new.updated_at)


def _comment(value: str | None) -> tuple[str | None, bool]:
    """The comment as an event carries it, and whether it was cut."""
    shown = _shown(value)
    if shown is None or len(shown) <= COMMENT_LIMIT:
        return shown, False
    return shown[:COMMENT_LIMIT], True


def _response_data(new: StoredResponse) -> dict[str, Any]:
    comment, truncated = _comment(new.comment)
    data: dict[str, Any] = {
        "response_id": _shown(new.response_id),
        "provider": _shown(new.provider),
        "customer_key": _shown(new.customer_key),
        "email": _shown(new.email),
        "score": new.score,
        "category": _shown(new.category),
        "submitted_at": _shown(new.submitted_at),
        "updated_at": _shown(new.updated_at),
        "survey": _shown(new.survey),
        "channel": _shown(new.channel),
        "comment": comment,
        "comment_truncated": truncated,
        "plan": _shown(new.plan),
        "region": _shown(new.region),
        "account": _shown(new.account),
    }
    amount = new.mrr_amount
    data["mrr"] = (
        {"amount": amount, "currency": _shown(new.mrr_currency)} if amount is not None else None
    )
    return data


def response_events(
    index: int, old: StoredResponse | None, new: StoredResponse | None, created: float | None
) -> list[Event]:
    """response.received and, for a response that becomes a detractor, detractor.alert."""
    if not is_new_version(old, new):
        return []
    assert new is not None
    pk, version, at = new.pk, new.updated_at or "", timestamp(created)
    data = _response_data(new)
    events = [Event(event_id(RESPONSE_RECEIVED, pk, version), RESPONSE_RECEIVED, at, data, index)]
    was_detractor = old is not None and old.category == "detractor"
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
                "comment_truncated",
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


def _latest_key(response: StoredResponse) -> tuple[str, str]:
    return (response.submitted_at or "", response.pk)


def customer_change(
    index: int,
    old: StoredResponse | None,
    new: StoredResponse | None,
    others: Iterable[StoredResponse],
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
    pk = new.pk
    rest = [o for o in others if o.pk != pk]
    previous = max(rest, key=_latest_key, default=None)
    if previous is not None and _latest_key(previous) > _latest_key(new):
        return None  # an older answer arrived late: the latest score is still the other one
    same_customer = old is not None and _shown(old.customer_key) == _shown(new.customer_key)
    if same_customer and (previous is None or _latest_key(old) > _latest_key(previous)):
        previous = old
    before = _summary(previous)
    after = _summary(new)
    if before is not None and before["score"] == after["score"]:
        return None
    return Event(
        event_id(CUSTOMER_NPS_CHANGED, pk, new.updated_at or ""),
        CUSTOMER_NPS_CHANGED,
        timestamp(created),
        {
            "customer_key": _shown(new.customer_key),
            "email": _shown(new.email),
            "old": before,
            "new": after,
            "plan": _shown(new.plan),
            "region": _shown(new.region),
            "account": _shown(new.account),
        },
        index,
    )


def _summary(response: StoredResponse | None) -> dict[str, Any] | None:
    if response is None:
        return None
    return {
        "score": response.score,
        "category": _shown(response.category),
        "response_id": _shown(response.response_id),
        "submitted_at": _shown(response.submitted_at),
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
