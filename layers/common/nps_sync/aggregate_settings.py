"""Settings of the aggregation side (aggregator, API, reconcile): the common ones plus its own."""

import os
import re
from functools import lru_cache

from pydantic import Field, field_validator

from .aggregates import DEFAULT_DIMENSIONS
from .config import Settings


class AggregateSettings(Settings):
    aggregates_table: str = Field(alias="AGGREGATES_TABLE", min_length=1)
    # Comma-separated; "overall" plus response attributes (template parameter
    # AggregateDimensions).
    aggregate_dimensions: tuple[str, ...] = Field(
        default=DEFAULT_DIMENSIONS, alias="AGGREGATE_DIMENSIONS"
    )

    @field_validator("aggregate_dimensions", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
                raise ValueError(f"dimension names are lower-case identifiers, not {name!r}")
        if not value:
            raise ValueError("at least one dimension is needed")
        return tuple(dict.fromkeys(value))


@lru_cache(maxsize=1)
def aggregate_settings() -> AggregateSettings:
    return AggregateSettings.model_validate(dict(os.environ))
