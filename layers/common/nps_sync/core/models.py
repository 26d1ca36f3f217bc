"""Canonical records that every provider adapter normalizes into."""

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    model_validator,
)

Score = Annotated[int, Field(ge=0, le=10, strict=True)]
Key = Annotated[str, Field(min_length=1, max_length=512)]


# What a provider may say happened: nothing we store predates 2000, and a clock more than a
# day ahead of ours is a sender's mistake, not an answer from the future.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:  # converted already (a canonical record built from another)
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError as error:  # 9999-12-31T23:00-05:00 is in the year 10000 in UTC
        raise ValueError("is outside the range of dates") from error


def _happened(value: datetime) -> datetime:
    """Refuse times no real event has (the message names the bound, never the value); in UTC
    first, in the same validator: one Python call a value, not two (every record has 1-2)."""
    if value.tzinfo is not UTC:  # _to_utc inlined, for the same reason
        value = _to_utc(value)
    if value < EARLIEST:
        raise ValueError(f"is before {EARLIEST:%Y-%m-%d}")
    if value > datetime.now(UTC) + FUTURE_SKEW:
        raise ValueError("is more than a day in the future")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
# When something happened (an answer, an update at the source): bounded, see EARLIEST.
EventTime = Annotated[AwareDatetime, AfterValidator(_happened)]


# The canonical models are built when first used (pydantic's defer_build): a webhook function
# validates one kind of record, and building the others cost its cold start ~10 ms. The
# receivers build theirs at init (nps_sync.web.receivers.handler), inside a SnapStart snapshot.
DEFERRED = ConfigDict(defer_build=True)


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


class CustomerRef(BaseModel):
    """How our generic bodies name a customer: at least one of e-mail and own id."""

    model_config = DEFERRED

    email: Annotated[str, Field(max_length=320)] | None = None
    id: Key | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "CustomerRef":
        if not (self.email or self.id):
            raise ValueError("customer needs at least one of email and id")
        return self


class Response(BaseModel):
    """One NPS answer. ``updated_at`` is the provider's version of it: a later one replaces."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    provider: Key
    response_id: Key
    customer_key: Key
    score: Score
    submitted_at: EventTime
    updated_at: EventTime
    survey: Key | None = None
    channel: Key | None = None
    comment: Annotated[str, Field(max_length=20_000)] | None = None
    email: Key | None = None
    customer_id: Key | None = None
    person_id: Key | None = None  # the provider's id of the respondent (Delighted, Formbricks)

    @computed_field
    @property
    def category(self) -> Category:
        return category_of(self.score)


def iso(value: datetime) -> str:
    """Fixed-width UTC ISO 8601, so that stored timestamps compare correctly as strings."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Money(BaseModel):
    """An amount in the currency's minor units (cents), with its ISO 4217 code upper-cased."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    amount: int
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class CrmProfile(BaseModel):
    """A CRM contact/company/account as one provider knows it. None means "not in this event":
    the stored value stays as it was."""

    model_config = ConfigDict(frozen=True, defer_build=True)

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


class BillingProfile(BaseModel):
    """A billing customer/subscription as one provider knows it; None = unchanged."""

    model_config = ConfigDict(frozen=True, defer_build=True)

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
    renewed: bool = (
        False  # this event is a renewal (invoice.paid for a cycle, subscription_renewed)
    )


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
