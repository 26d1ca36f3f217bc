"""Settings: one model, read once from the environment.

In the cloud the values come from template.yaml (parameters -> Globals environment); locally the
runtime fills the same parameters from local/settings.json. A missing variable fails at start
with the variable's name instead of a KeyError deep inside a request.
"""

import json
import os
import re
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from typing import Annotated, Any, Self

import msgspec

from nps_sync.core.aggregates import DEFAULT_DIMENSIONS, READ_DIMENSIONS
from nps_sync.core.periods import GRANULARITIES

Text = Annotated[str, msgspec.Meta(min_length=1)]


def _env(name: str, default: Any = msgspec.NODEFAULT, **kwargs: Any) -> Any:
    return msgspec.field(name=name, default=default, **kwargs)


# A msgspec Struct, not a pydantic model: every webhook function reads its settings on a cold
# start, and pydantic's import alone was that start's whole budget (docs/decisions.md).
class Settings(msgspec.Struct, frozen=True, kw_only=True):
    records_table: Text = _env("RECORDS_TABLE")
    # the SSM SecureString of the secrets document (template parameter SecretsParameterName)
    secrets_parameter: str | None = _env("SECRETS_PARAMETER", None)
    secrets_file: str | None = _env("NPS_SYNC_SECRETS_FILE", None)
    # Which question is the NPS question, per provider: Typeform field refs of opinion_scale
    # questions (fields of type "nps" are found without it), Formbricks question ids. JSON.
    nps_questions: dict[str, list[str]] = _env("NPS_QUESTIONS", default_factory=dict)
    # Which open question holds the comment, per provider (Typeform refs, Formbricks ids).
    comment_questions: dict[str, list[str]] = _env("COMMENT_QUESTIONS", default_factory=dict)
    # Which CRM field holds the region, account, … per provider (nps_sync/crm_fields.py).
    crm_fields: dict[str, dict[str, Any]] = _env("CRM_FIELDS", default_factory=dict)
    # HubSpot events are thin: the CRM receiver queues reads of the full record here.
    crm_enrichment_queue: str | None = _env("CRM_ENRICHMENT_QUEUE", None)
    hubspot_api_url: str = _env("HUBSPOT_API_URL", "https://api.hubapi.com")
    raw_retention_days: Annotated[int, msgspec.Meta(ge=1)] = _env("RAW_RETENTION_DAYS", 400)
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = _env("MAX_BODY_BYTES", 256 * 1024)
    signature_tolerance_seconds: Annotated[int, msgspec.Meta(ge=1)] = _env(
        "SIGNATURE_TOLERANCE_SECONDS", 300
    )

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Self:
        """The settings from environment-style names and text values (numbers and booleans
        as text, the JSON ones as JSON text or already decoded); a missing or invalid one
        fails with its variable's name, never its value."""
        given = {name: values[name] for name in _names(cls) if name in values}
        for name, read in _READERS.items():
            if name in given and isinstance(given[name], str):
                try:
                    given[name] = read(given[name])
                except ValueError as error:
                    raise InvalidSettings(f"{name}: {error}") from None
        try:
            return msgspec.convert(given, cls, strict=False)
        except msgspec.ValidationError as error:
            raise InvalidSettings(str(error)) from None


class InvalidSettings(ValueError):
    """A deployment error: the function cannot start until the template's values are fixed."""


@cache
def _names(cls: type) -> frozenset[str]:
    return frozenset(f.encode_name for f in msgspec.structs.fields(cls))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError("is not valid JSON") from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.of(os.environ)


# --- the aggregation side (aggregator, API, reconcile) ---------------------------------


class AggregateSettings(Settings, frozen=True, kw_only=True):
    aggregates_table: Text = _env("AGGREGATES_TABLE")
    # Comma-separated; "overall" plus response attributes (template parameter
    # AggregateDimensions).
    aggregate_dimensions: tuple[str, ...] = _env("AGGREGATE_DIMENSIONS", DEFAULT_DIMENSIONS)
    # Answered on read from an index of the responses instead (template parameter
    # ReadDimensions; only those with an index of the responses, READ_DIMENSIONS).
    read_dimensions: tuple[str, ...] = _env("READ_DIMENSIONS", READ_DIMENSIONS)

    @property
    def queryable_dimensions(self) -> tuple[str, ...]:
        """What GET /nps accepts: counted ones, then those answered on read."""
        return self.aggregate_dimensions + tuple(
            d for d in self.read_dimensions if d not in self.aggregate_dimensions
        )


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _dimension_names(value: str) -> tuple[str, ...]:
    names = _split(value)
    for name in names:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
            raise ValueError("dimension names are lower-case identifiers")
    return tuple(dict.fromkeys(names))


def _counted(value: str) -> tuple[str, ...]:
    names = _dimension_names(value)
    if not names:
        raise ValueError("at least one dimension is needed")
    return names


def _indexed(value: str) -> tuple[str, ...]:
    names = _dimension_names(value)
    if any(name not in READ_DIMENSIONS for name in names):
        raise ValueError(f"only {', '.join(READ_DIMENSIONS)} can be answered on read")
    return names


def _granularities(value: str) -> tuple[str, ...]:
    names = _split(value)
    unknown = [g for g in names if g not in GRANULARITIES]
    if unknown:
        raise ValueError(f"unknown granularities {unknown}; known: {list(GRANULARITIES)}")
    return tuple(dict.fromkeys(names))


@lru_cache(maxsize=1)
def aggregate_settings() -> AggregateSettings:
    return AggregateSettings.of(os.environ)


# --- the fan-out (aggregator, API, delivery) -------------------------------------------


class FanoutSettings(Settings, frozen=True, kw_only=True):
    subscriptions_table: str | None = _env("SUBSCRIPTIONS_TABLE", None)
    event_bus_name: str | None = _env("EVENT_BUS_NAME", None)
    delivery_queue_url: str | None = _env("DELIVERY_QUEUE_URL", None)
    # CRM/billing write-back (docs/destinations.md): DestinationFunction's queue.
    destination_queue_url: str | None = _env("DESTINATION_QUEUE_URL", None)
    # aggregate.updated only for these granularities (template parameter EventGranularities).
    event_granularities: tuple[str, ...] = _env("EVENT_GRANULARITIES", ("all", "month"))
    # Local mode: subscribers on loopback (http://127.0.0.1, localhost) are allowed.
    allow_local_subscribers: bool = _env("ALLOW_LOCAL_SUBSCRIBERS", False)
    # One delivery's deadline: connecting, sending and the answer together.
    delivery_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=20)] = _env(
        "DELIVERY_TIMEOUT_SECONDS", 10.0
    )


class DestinationSettings(FanoutSettings, frozen=True, kw_only=True):
    """Each destination kind's API base URL (a sandbox, or a local stand-in). Credentials are
    in the provider secrets, under the key a destination names (docs/destinations.md)."""

    hubspot_url: str = _env("HUBSPOT_DESTINATION_URL", "https://api.hubapi.com")
    # Salesforce has no public base: an org's instance URL (the secret may name its own).
    salesforce_url: str = _env("SALESFORCE_URL", "")
    salesforce_api_version: str = _env("SALESFORCE_API_VERSION", "v62.0")
    stripe_url: str = _env("STRIPE_URL", "https://api.stripe.com")
    # Chargebee's base is per site, https://{site}.chargebee.com: the secret names the site
    chargebee_url: str = _env("CHARGEBEE_URL", "")


# How a variable's text becomes its value, before its type is checked; the rest are read by
# msgspec (numbers and booleans from text).
_READERS: dict[str, Callable[[str], Any]] = {
    "NPS_QUESTIONS": _json,
    "COMMENT_QUESTIONS": _json,
    "CRM_FIELDS": _json,
    "AGGREGATE_DIMENSIONS": _counted,
    "READ_DIMENSIONS": _indexed,
    "EVENT_GRANULARITIES": _granularities,
}


@lru_cache(maxsize=1)
def destination_settings() -> DestinationSettings:
    return DestinationSettings.of(os.environ)


@lru_cache(maxsize=1)
def fanout_settings() -> FanoutSettings:
    return FanoutSettings.of(os.environ)
