"""Settings of the fan-out (aggregator, API, delivery): the common ones plus its own."""

import os
from functools import lru_cache

from pydantic import Field, field_validator

from .config import Settings
from .periods import GRANULARITIES


class FanoutSettings(Settings):
    subscriptions_table: str | None = Field(default=None, alias="SUBSCRIPTIONS_TABLE")
    event_bus_name: str | None = Field(default=None, alias="EVENT_BUS_NAME")
    delivery_queue_url: str | None = Field(default=None, alias="DELIVERY_QUEUE_URL")
    # aggregate.updated only for these granularities (template parameter EventGranularities).
    event_granularities: tuple[str, ...] = Field(
        default=("all", "month"), alias="EVENT_GRANULARITIES"
    )
    # Local mode: subscribers on loopback (http://127.0.0.1, localhost) are allowed.
    allow_local_subscribers: bool = Field(default=False, alias="ALLOW_LOCAL_SUBSCRIBERS")
    # One delivery's deadline: connecting, sending and the answer together.
    delivery_timeout_seconds: float = Field(
        default=10.0, alias="DELIVERY_TIMEOUT_SECONDS", gt=0, le=20
    )

    @field_validator("event_granularities", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [g for g in value if g not in GRANULARITIES]
        if unknown:
            raise ValueError(f"unknown granularities {unknown}; known: {list(GRANULARITIES)}")
        return tuple(dict.fromkeys(value))


@lru_cache(maxsize=1)
def fanout_settings() -> FanoutSettings:
    return FanoutSettings.model_validate(dict(os.environ))
