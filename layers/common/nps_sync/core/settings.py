"""Settings: one model, read once from the environment.

In the cloud the values come from template.yaml (parameters -> Globals environment); locally the
runtime fills the same parameters from local/settings.json. A missing variable fails at start
with the variable's name instead of a KeyError deep inside a request.
"""

import os
import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, Json, field_validator

from nps_sync.core.aggregates import DEFAULT_DIMENSIONS, READ_DIMENSIONS
from nps_sync.core.periods import GRANULARITIES


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, validate_default=True)

    records_table: str = Field(alias="RECORDS_TABLE", min_length=1)
    # the SSM SecureString of the secrets document (template parameter SecretsParameterName)
    secrets_parameter: str | None = Field(default=None, alias="SECRETS_PARAMETER")
    secrets_file: str | None = Field(default=None, alias="NPS_SYNC_SECRETS_FILE")
    # Which question is the NPS question, per provider: Typeform field refs of opinion_scale
    # questions (fields of type "nps" are found without it), Formbricks question ids.
    nps_questions: Json[dict[str, list[str]]] = Field(default="{}", alias="NPS_QUESTIONS")
    # Which open question holds the comment, per provider (Typeform refs, Formbricks ids).
    comment_questions: Json[dict[str, list[str]]] = Field(default="{}", alias="COMMENT_QUESTIONS")
    # Which CRM field holds the region, account, … per provider (nps_sync/crm_fields.py).
    crm_fields: Json[dict[str, dict[str, Any]]] = Field(default="{}", alias="CRM_FIELDS")
    # HubSpot events are thin: the CRM receiver queues reads of the full record here.
    crm_enrichment_queue: str | None = Field(default=None, alias="CRM_ENRICHMENT_QUEUE")
    hubspot_api_url: str = Field(default="https://api.hubapi.com", alias="HUBSPOT_API_URL")
    raw_retention_days: int = Field(default=400, alias="RAW_RETENTION_DAYS", ge=1)
    max_body_bytes: int = Field(default=256 * 1024, alias="MAX_BODY_BYTES", ge=1024)
    signature_tolerance_seconds: int = Field(default=300, alias="SIGNATURE_TOLERANCE_SECONDS", ge=1)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.model_validate(dict(os.environ))


# --- the aggregation side (aggregator, API, reconcile) ---------------------------------


class AggregateSettings(Settings):
    # Built on first use, as FanoutSettings: the webhook receivers read Settings only.
    model_config = ConfigDict(defer_build=True)

    aggregates_table: str = Field(alias="AGGREGATES_TABLE", min_length=1)
    # Comma-separated; "overall" plus response attributes (template parameter
    # AggregateDimensions).
    aggregate_dimensions: tuple[str, ...] = Field(
        default=DEFAULT_DIMENSIONS, alias="AGGREGATE_DIMENSIONS"
    )

    # Answered on read from an index of the responses instead (template parameter
    # ReadDimensions; only those with an index of the responses, READ_DIMENSIONS).
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
            if name not in READ_DIMENSIONS:
                raise ValueError(f"only {', '.join(READ_DIMENSIONS)} can be answered on read")
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


# --- the fan-out (aggregator, API, delivery) -------------------------------------------


class FanoutSettings(Settings):
    model_config = ConfigDict(defer_build=True)

    subscriptions_table: str | None = Field(default=None, alias="SUBSCRIPTIONS_TABLE")
    event_bus_name: str | None = Field(default=None, alias="EVENT_BUS_NAME")
    delivery_queue_url: str | None = Field(default=None, alias="DELIVERY_QUEUE_URL")
    # CRM/billing write-back (docs/destinations.md): DestinationFunction's queue.
    destination_queue_url: str | None = Field(default=None, alias="DESTINATION_QUEUE_URL")
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


class DestinationSettings(FanoutSettings):
    """Each destination kind's API base URL (a sandbox, or a local stand-in). Credentials are
    in the provider secrets, under the key a destination names (docs/destinations.md)."""

    hubspot_url: str = Field(default="https://api.hubapi.com", alias="HUBSPOT_DESTINATION_URL")

    # Salesforce has no public base: an org's instance URL (the secret may name its own).
    salesforce_url: str = Field(default="", alias="SALESFORCE_URL")
    salesforce_api_version: str = Field(default="v62.0", alias="SALESFORCE_API_VERSION")
    stripe_url: str = Field(default="https://api.stripe.com", alias="STRIPE_URL")
    # Chargebee's base is per site, https://{site}.chargebee.com: the secret names the site
    chargebee_url: str = Field(default="", alias="CHARGEBEE_URL")


@lru_cache(maxsize=1)
def destination_settings() -> DestinationSettings:
    return DestinationSettings.model_validate(dict(os.environ))


@lru_cache(maxsize=1)
def fanout_settings() -> FanoutSettings:
    return FanoutSettings.model_validate(dict(os.environ))
