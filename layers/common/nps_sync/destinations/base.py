"""What every destination client offers; the delivery core (coalescing, identity, retries)
is written once against this, each provider only maps it to its API.

Clients do not retry or sleep: a 429, a 5xx or a network failure raises ``Retryable`` (with
the provider's Retry-After when it gave one) and the queue's redelivery does the waiting, so a
Lambda never idles on a rate limit. Reasons in results and errors never carry personal data.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

PERSON = "person"  # HubSpot contact, Salesforce Contact, Stripe/Chargebee customer
ORGANIZATION = "organization"  # HubSpot company, Salesforce Account (billing has none)
Level = Literal["person", "organization"]

Value = str | int | float | bool | None  # None clears the field

WRITTEN = "written"
UNCHANGED = "unchanged"  # the destination held these values already: nothing sent
SKIPPED = "skipped"  # no object to write to (no link, no match): logged, not retried
FAILED = "failed"  # refused for a reason a retry will not fix (a missing field, a 400)


class DestinationError(Exception):
    """The provider refused for a reason retrying will not fix (401, 403, 400, bad shape)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Retryable(DestinationError):
    """Rate limited (429), the provider failing (5xx) or the network: try again later."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Target:
    """One object in the destination. ``object_id`` comes from our identity links; without
    it the client looks the object up by ``email`` (a person) or ``name`` (an organization)."""

    level: Level
    key: str  # our customer key, or the account name for an organization
    object_id: str | None = None
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Write:
    target: Target  # with object_id set
    values: Mapping[str, Value]  # provider field name -> value


@dataclass(frozen=True)
class Result:
    write: Write
    status: str  # WRITTEN, UNCHANGED, SKIPPED or FAILED
    reason: str | None = None


@dataclass(frozen=True)
class FieldSpec:
    """A field we write, for ``check`` (HubSpot creates missing properties from it)."""

    name: str  # the provider's field name (the destination's mapping)
    type: Literal["number", "text", "date", "bool"]
    label: str


@dataclass(frozen=True)
class Check:
    ok: bool
    missing: list[str] = field(default_factory=list)  # "<level>.<field>" not present
    created: list[str] = field(default_factory=list)  # created by the check (HubSpot)
    message: str = ""


class Client(Protocol):
    kind: str  # "hubspot", "salesforce", "stripe", "chargebee"
    batch_limit: int  # objects per write call (the API's documented limit)
    levels: tuple[Level, ...]  # what it can write: billing has no organization

    def lookup(self, targets: Sequence[Target]) -> dict[str, str]:
        """Object ids found for targets without one, by target key; absent: no match."""
        ...

    def current(
        self, level: Level, object_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """The values the destination holds now, by object id, as ``write`` would send them
        (so equal means unchanged); an id it does not have is absent."""
        ...

    def write(self, writes: Sequence[Write]) -> list[Result]:
        """Write each, batched to ``batch_limit`` per call; one result per write, in order.
        A whole call refused with 429/5xx raises Retryable; per-object refusals are results."""
        ...

    def check(self, specs: Mapping[Level, Sequence[FieldSpec]], create: bool = True) -> Check:
        """Credentials work and every field exists (created when the API allows and
        ``create``); ``missing`` names any that does not."""
        ...


def text_value(value: Value) -> str:
    """A value as the form/string APIs hold it (HubSpot properties, Stripe metadata, Chargebee
    custom fields): ``true``/``false``, whole floats without ``.0``; an empty string clears."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
