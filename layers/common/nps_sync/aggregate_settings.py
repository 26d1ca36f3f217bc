"""Settings of the aggregation side (aggregator, API, reconcile): the common ones plus its own."""

import os
import re
from functools import lru_cache

from pydantic import Field, field_validator

from .aggregates import DEFAULT_DIMENSIONS
from .config import Settings
from .response_index import READ_DIMENSIONS, READ_INDEXES


class AggregateSettings(Settings):
    aggregates_table: str = Field(alias="AGGREGATES_TABLE", min_length=1)
    # Comma-separated; "overall" plus response attributes (template parameter
    # AggregateDimensions).
    aggregate_dimensions: tuple[str, ...] = Field(
        default=DEFAULT_DIMENSIONS, alias="AGGREGATE_DIMENSIONS"
    )

    # Answered on read from an index of the responses instead (template parameter
    # ReadDimensions; only those with an index in READ_INDEXES).
    read_dimensions: tuple[str, ...] = Field(default=READ_DIMENSIONS, alias="READ_DIMENSIONS")

    @field_validator("aggregate_dimensions", mode="before")
    @classmethod
    def _split(cls, value):
        value = _names(value)
        if not value:
            raise ValueError("at least one dimension is needed")
        return value

    @field_validator("read_dimensions", mode="before")
    @classmethod
    def _indexed(cls, value):
        value = _names(value)
        for name in value:
            if name not in READ_INDEXES:
                raise ValueError(f"only {', '.join(READ_INDEXES)} can be answered on read")
        return value

    @property
    def queryable_dimensions(self) -> tuple[str, ...]:
        """What GET /nps accepts: counted ones, then those answered on read."""
        return self.aggregate_dimensions + tuple(
            d for d in self.read_dimensions if d not in self.aggregate_dimensions
        )


def _names(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    for name in value:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            raise ValueError(f"dimension names are lower-case identifiers, not {name!r}")
    return tuple(dict.fromkeys(value))


@lru_cache(maxsize=1)
def aggregate_settings() -> AggregateSettings:
    return AggregateSettings.model_validate(dict(os.environ))
