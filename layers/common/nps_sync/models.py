"""Canonical records that every provider adapter normalizes into."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

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


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


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

    email: Annotated[str, Field(max_length=320)] | None = None
    id: Key | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "CustomerRef":
        if not (self.email or self.id):
            raise ValueError("customer needs at least one of email and id")
        return self


class Response(BaseModel):
    """One NPS answer. ``updated_at`` is the provider's version of it: a later one replaces."""

    model_config = ConfigDict(frozen=True)

    provider: Key
    response_id: Key
    customer_key: Key
    score: Score
    submitted_at: UtcDatetime
    updated_at: UtcDatetime
    survey: Key | None = None
    channel: Key | None = None
    comment: Annotated[str, Field(max_length=20_000)] | None = None
    email: Key | None = None
    customer_id: Key | None = None

    @computed_field
    @property
    def category(self) -> Category:
        return category_of(self.score)


def iso(value: datetime) -> str:
    """Fixed-width UTC ISO 8601, so that stored timestamps compare correctly as strings."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
