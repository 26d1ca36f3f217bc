"""Canonical records that every provider adapter normalizes into."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, get_args

import msgspec

from nps_sync.core.errors import InvalidPayload

# Types of the providers' body schemas (nps_sync.ingest.receive.validate checks them in C).
# The canonical records below check their own values, however they are built.
Score = Annotated[int, msgspec.Meta(ge=0, le=10)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
UtcDatetime = Annotated[datetime, msgspec.Meta(tz=True)]  # stored in UTC by the record
# When something happened (an answer, an update at the source): bounded by the record, see
# EARLIEST. A distinct Annotated (its description), so that a record tells the two apart.
EventTime = Annotated[datetime, msgspec.Meta(tz=True, description="when it happened")]
COMMENT_LENGTH = 20_000
Comment = Annotated[str, msgspec.Meta(max_length=COMMENT_LENGTH)]


# What a provider may say happened: nothing we store predates 2000, and a clock more than a
# day ahead of ours is a sender's mistake, not an answer from the future.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)


def _invalid(name: str, rule: str) -> InvalidPayload:
    """The message names the field and the rule, never the value (it may be personal data)."""
    return InvalidPayload(f"{name}: {rule}")


def _checked(model: type) -> Callable[[Any], None]:
    """A canonical record's check, made once per model: its fields' types and constraints
    (Key, Score, …, as annotated) checked by msgspec in C over the record as a tuple, which
    costs a tenth of checking them in Python; then its times in UTC, those that happened
    (EventTime) within bounds. The message names the field and the rule, never the value."""
    fields = msgspec.structs.fields(model)
    names = [f.name for f in fields]
    shape = msgspec.defstruct(
        f"{model.__name__}Check", [(f.name, f.type) for f in fields], array_like=True
    )
    # Kept as msgspec made them: a time given as RFC 3339 text, money given as a mapping.
    # Times are then stored in UTC, and those that happened bounded.
    made = [
        (i, f.name, _is_time(f.type), f.type is EventTime)
        for i, f in enumerate(fields)
        if _is_time(f.type) or _holds_struct(f)
    ]
    position = re.compile(r"\$\[(\d+)\]")
    astuple, convert, keep = msgspec.structs.astuple, msgspec.convert, msgspec.structs.force_setattr

    def check(record: Any) -> None:
        values = astuple(record)
        try:
            checked = convert(values, shape)
        except msgspec.ValidationError as error:
            rule, _, path = str(error).partition(" - at `")
            found = position.match(path)
            raise _invalid(names[int(found[1])] if found else model.__name__, rule) from None
        latest = None
        for index, name, time, happened in made:
            value = getattr(checked, name)
            if value is None:
                continue
            if time and value.tzinfo is not UTC:
                try:
                    value = value.astimezone(UTC)
                except OverflowError:  # 9999-12-31T23:00-05:00 is in the year 10000 in UTC
                    raise _invalid(name, "is outside the range of dates") from None
            if value is not values[index]:
                keep(record, name, value)
            if happened:
                if value < EARLIEST:
                    raise _invalid(name, f"is before {EARLIEST:%Y-%m-%d}")
                latest = latest or datetime.now(UTC) + FUTURE_SKEW
                if value > latest:
                    raise _invalid(name, "is more than a day in the future")

    return check


def _holds_struct(field: Any) -> bool:
    return any(
        isinstance(t, type) and issubclass(t, msgspec.Struct)
        for t in (field.type, *get_args(field.type))
    )


def _is_time(annotation: Any) -> bool:
    return annotation in (EventTime, UtcDatetime, UtcDatetime | None, EventTime | None)


class Category(StrEnum):
    PROMOTER = "promoter"
    PASSIVE = "passive"
    DETRACTOR = "detractor"


def category_of(score: int) -> Category:
    if score >= 9:
        return Category.PROMOTER
    if score >= 7:
        return Category.PASSIVE
    return Category.DETRACTOR


# The canonical records are msgspec Structs, not pydantic models: importing pydantic alone
# took a webhook's whole cold-start budget (docs/decisions.md). Built with keywords, they check
# their values in __post_init__ (a Struct's own __init__ checks nothing), so a record is valid
# however it was made; a value that is not raises InvalidPayload (400).


class CustomerRef(msgspec.Struct, frozen=True, kw_only=True):
    """How our generic bodies name a customer: at least one of e-mail and own id."""

    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    id: Key | None = None

    def __post_init__(self) -> None:
        if not (self.email or self.id):  # a ValueError: msgspec adds where (``0.customer``)
            raise ValueError("needs at least one of email and id")


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """One NPS answer. ``updated_at`` is the provider's version of it: a later one replaces."""

    provider: Key
    response_id: Key
    customer_key: Key
    score: Score
    submitted_at: EventTime
    updated_at: EventTime
    survey: Key | None = None
    channel: Key | None = None
    comment: Comment | None = None
    email: Key | None = None
    customer_id: Key | None = None
    person_id: Key | None = None  # the provider's id of the respondent (Delighted, Formbricks)

    def __post_init__(self) -> None:
        _CHECKS[Response](self)

    @property
    def category(self) -> Category:
        return category_of(self.score)


def iso(value: datetime) -> str:
    """Fixed-width UTC ISO 8601, so that stored timestamps compare correctly as strings."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Money(msgspec.Struct, frozen=True, kw_only=True):
    """An amount in the currency's minor units (cents), with its ISO 4217 code upper-cased."""

    amount: int
    currency: str

    def __post_init__(self) -> None:  # two fields: checked directly, a third of _checked's cost
        if type(self.amount) is not int:
            raise _invalid("amount", "must be a whole number of minor units")
        if type(self.currency) is not str or not _CURRENCY.fullmatch(self.currency):
            raise _invalid("currency", "must be a three-letter ISO 4217 code, upper-cased")


_CURRENCY = re.compile(r"[A-Z]{3}")


class CrmProfile(msgspec.Struct, frozen=True, kw_only=True):
    """A CRM contact/company/account as one provider knows it. None means "not in this event":
    the stored value stays as it was."""

    provider: Key
    source_id: Key  # the provider's id of the object (HubSpot contact id, Salesforce Id, …)
    object_type: Key = "contact"  # contact | company | account
    customer_key: Key
    event_id: Key  # the provider's event/notification id: a re-delivery is a no-op
    source_updated_at: EventTime
    email: Key | None = None
    customer_id: Key | None = None
    account: Key | None = None
    region: Key | None = None
    country: Key | None = None
    owner: Key | None = None
    lifecycle_stage: Key | None = None
    properties: dict[str, str] | None = None
    deleted: bool = False
    organization_id: Key | None = None  # a contact's Salesforce Account, by its Id

    def __post_init__(self) -> None:
        _CHECKS[CrmProfile](self)


class BillingProfile(msgspec.Struct, frozen=True, kw_only=True):
    """A billing customer/subscription as one provider knows it; None = unchanged."""

    provider: Key
    source_id: Key  # the provider's customer id (Stripe cus_…, Chargebee customer id)
    customer_key: Key
    event_id: Key
    source_updated_at: EventTime
    email: Key | None = None
    customer_id: Key | None = None
    plan: Key | None = None
    status: Key | None = None  # active, trialing, past_due, canceled, …
    mrr: Money | None = None  # normalized to one month, after quantity and discounts
    renews_at: UtcDatetime | None = None
    subscription_id: Key | None = None
    # this event is a renewal (invoice.paid for a cycle, subscription_renewed)
    renewed: bool = False

    def __post_init__(self) -> None:
        _CHECKS[BillingProfile](self)


_CHECKS = {model: _checked(model) for model in (Response, CrmProfile, BillingProfile)}
CanonicalRecord = Response | CrmProfile | BillingProfile
_DEFAULTS = {
    model: {f.name: f.default for f in msgspec.structs.fields(model)}
    for model in (Response, CrmProfile, BillingProfile)
}


def as_json(record: CanonicalRecord) -> dict[str, Any]:
    """Every field as JSON values (times as RFC 3339), a response's category included."""
    fields = msgspec.to_builtins(record)
    if type(record) is Response:
        fields["category"] = record.category.value
    return fields


def stated(record: CanonicalRecord) -> dict[str, Any]:
    """The fields a record sets, as JSON values: those at their defaults are left out, so
    that a field added later keeps the content hashes of records that do not set it."""
    defaults = _DEFAULTS[type(record)]
    return {
        name: value
        for name, value in msgspec.to_builtins(record).items()
        if value != defaults[name]
    }


# --- records as stored --------------------------------------------------------------------
#
# Read once from an item or a stream image (the same DynamoDB JSON) by nps_sync.store.items,
# then passed on: aggregation, events, outcomes, reconcile and the API read these, never the
# item. Frozen slotted dataclasses, not pydantic: the values were validated on the way in, and
# the aggregator builds two per stream record and reads them often (measured: 3.9 µs to build
# a response against 4.6 µs, 22 ns per attribute read against 41 ns); frozen because a batch
# shares them between the stamps, the outcome step and the events (~2 µs a record).
# Text is as stored ("" stays ""), None where the attribute is absent; a number that is not an
# integer reads as None. ``item`` is the DynamoDB JSON read, for store/ only: a segment stamp
# copies the profile's values as stored.


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A survey response item (``RESP#<provider>#<id>``/``RESP``, docs/storage.md), with the
    segment attributes of its customer stamped on it."""

    pk: str
    provider: str | None = None
    response_id: str | None = None
    customer_key: str | None = None
    score: int | None = None
    category: str | None = None
    submitted_at: str | None = None  # fixed-width UTC ISO strings, as stored (models.iso)
    updated_at: str | None = None
    survey: str | None = None
    channel: str | None = None
    comment: str | None = None
    email: str | None = None
    customer_id: str | None = None
    person_id: str | None = None
    plan: str | None = None
    region: str | None = None
    account: str | None = None
    mrr_amount: int | None = None
    mrr_currency: str | None = None
    profile_version: int | None = None
    item: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def attribute(self, name: str) -> str | None:
        """An attribute as text (a dimension's value): None when absent or empty."""
        return _as_text(self, RESPONSE_ATTRIBUTES, name)

    def stamp_behind(self, profile: "StoredProfile") -> bool:
        """Is the stamped profile_version older than the profile's? (docs/aggregation.md)"""
        current = profile.profile_version
        return current is not None and (
            self.profile_version is None or self.profile_version < current
        )


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """A customer's merged profile item (``CUST#<key>``/``PROFILE``): segment attributes,
    billing inputs of the revenue outcomes and the aggregator's derived ``outcome`` state
    (docs/outcomes.md)."""

    customer_key: str
    email: str | None = None
    customer_id: str | None = None
    plan: str | None = None
    region: str | None = None
    country: str | None = None
    account: str | None = None
    owner: str | None = None
    lifecycle_stage: str | None = None
    status: str | None = None
    subscription_id: str | None = None
    mrr_amount: int | None = None
    mrr_currency: str | None = None
    renews_at: str | None = None
    profile_version: int | None = None
    billing_updated_at: str | None = None
    billing_since: str | None = None
    churned_at: str | None = None
    renewed_at: tuple[str, ...] = ()  # the string set, in the order it was read
    renewals: int | None = None
    outcome: Mapping[str, Any] = field(default_factory=dict, hash=False)  # plain state
    at_risk: Mapping[str, str] = field(default_factory=dict, hash=False)  # its at-risk keys
    item: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def attribute(self, name: str) -> str | None:
        """A text or number attribute as text (a dimension's value): None when absent or
        empty."""
        return _as_text(self, PROFILE_ATTRIBUTES, name)


def _as_text(record: Any, names: frozenset[str], name: str) -> str | None:
    if name not in names:
        return None
    value = getattr(record, name)
    return None if value is None or value == "" else str(value)


_NOT_TEXT = {"item", "outcome", "at_risk", "renewed_at"}
RESPONSE_ATTRIBUTES = frozenset(f.name for f in fields(StoredResponse)) - _NOT_TEXT
PROFILE_ATTRIBUTES = frozenset(f.name for f in fields(StoredProfile)) - _NOT_TEXT
