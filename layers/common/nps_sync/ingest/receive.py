"""The receiving side shared by every webhook function: read, verify, normalize, store.

A provider adapter is a module with two functions:

- ``verify(request, credentials, now, settings)`` raises SignatureError unless the provider
  signed it;
- ``parse(request, settings)`` returns a ``Batch`` of canonical records (raises InvalidPayload),
  and of the records to read from the provider's API once they are stored (thin CRM events);
- optionally ``acknowledge(receipt)``, the answer when the provider expects its own (Salesforce).

Verification always runs on the raw bytes before anything is parsed.
"""

import hashlib
import importlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import msgspec

from nps_sync.core.errors import (
    Conflict,
    InvalidPayload,
    MalformedBody,
    NotConfigured,
    PayloadTooLarge,
    UnknownProvider,
)
from nps_sync.core.identity import customer_key
from nps_sync.core.models import (
    BillingProfile,
    CrmProfile,
    CustomerRef,
    Key,
    Response,
    UtcDatetime,
)
from nps_sync.core.observability import customer_ref, logger
from nps_sync.core.schema import validate
from nps_sync.core.settings import Settings
from nps_sync.core.signing import standard_verify
from nps_sync.store.records import APPLIED, CONFLICT, DUPLICATE, ERASED, STALE, RecordsStore
from nps_sync.store.secrets import provider_credentials

MAX_GENERIC_ITEMS = 500


class Adapters(Mapping[str, ModuleType]):
    """A function's provider adapters by name, each module imported when first asked for: a
    request needs one, and a provider module's import (its body schemas) is a cold start's
    cost, so a function pays for the providers it is sent (issue 17)."""

    def __init__(self, package: str, names: tuple[str, ...]):
        self.package, self.names = package, names

    def __getitem__(self, name: str) -> ModuleType:
        if name not in self.names:  # never an import of a name the request chose
            raise KeyError(name)
        return importlib.import_module(f"{self.package}.{name}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class WebhookRequest:
    body: bytes
    headers: Mapping[str, str]  # lower-cased names
    method: str = "POST"
    url: str = ""
    query: Mapping[str, str] = field(default_factory=dict)


# Record and Batch are NamedTuples: immutable like frozen dataclasses, and made in C (a frozen
# dataclass sets each field through object.__setattr__: 1 µs a Batch, on every webhook).
class Record(NamedTuple):
    """A canonical record with the provider's raw payload for it (kept, compressed)."""

    record: Response | CrmProfile | BillingProfile
    raw: Any


class Batch(NamedTuple):
    records: Sequence[Record] = ()
    ignored: int = 0  # payloads acknowledged but not stored (no NPS answer, pings, …)
    # Our generic bodies: a record that repeats a stored version with other content is a 409
    # (its sender can correct it). A provider's is left out and counted (it cannot).
    refuse_conflicts: bool = False
    # What the adapter would warn about (message, extra), such as an MRR that could not be
    # priced in full: receive() logs them, so that parse stays pure and measurable without I/O.
    warnings: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    # (object type, id) to read from the provider's API once the batch is stored (HubSpot's
    # thin events, when CRM_ENRICHMENT_QUEUE is set): receive() queues them. Found by parse,
    # from the body it has validated, so a body is parsed once.
    fetch: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Conflicted:
    """A record left out because its version is stored with other content, named as a log
    line may name it: no e-mail, comment or raw id."""

    record: str  # "rec_" + a short SHA-256 of its provider and id (a response's, an event's)
    customer: str  # core.observability.customer_ref


@dataclass(frozen=True)
class Receipt:
    accepted: int
    duplicates: int
    ignored: int
    conflicted: tuple[Conflicted, ...] = ()

    @property
    def conflicts(self) -> int:
        return len(self.conflicted)

    def body(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "conflicts": self.conflicts,
        }


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise MalformedBody("the JSON body has an object with a duplicate key")
    return result


def load_json(body: bytes) -> Any:
    """Parse strictly: valid UTF-8, no duplicate keys, no NaN, bounded nesting and numbers."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedBody("the body is not valid UTF-8") from error
    try:
        value = _DECODER.decode(text)
    except RecursionError as error:
        raise MalformedBody("the JSON body is nested too deeply") from error
    except ValueError as error:  # JSONDecodeError, and int() past the digit limit
        raise MalformedBody(f"the body is not valid JSON: {_short(error)}") from error
    _check_depth(value, body)
    return value


MAX_JSON_DEPTH = 64  # providers nest ~10 deep; json's own limit depends on the stack in use


def _check_depth(value: Any, body: bytes) -> None:
    """Refuse deep nesting here, so that nothing recursive further on (msgspec, the raw
    payload's json.dumps, the API) ever meets it: no value deeper than MAX_JSON_DEPTH (the
    body itself is at 1). Fewer opening brackets than that cannot reach it, which one count in
    C shows for provider bodies (3-30 here); any other is walked a level at a time, containers
    only (a walk of every value was a quarter to a third of a warm request)."""
    if body.count(b"[") + body.count(b"{") < MAX_JSON_DEPTH:
        return
    level, depth = ([value] if isinstance(value, dict | list) else []), 1
    while level:
        below: list[Any] = []
        for current in level:
            children = current.values() if isinstance(current, dict) else current
            if children and depth >= MAX_JSON_DEPTH:  # its values are deeper than the limit
                raise MalformedBody(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
            below.extend(child for child in children if isinstance(child, dict | list))
        level, depth = below, depth + 1


def _refuse_constant(name: str) -> Any:
    raise MalformedBody(f"the JSON body contains {name}, which JSON does not allow")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as infinity
        raise MalformedBody("the JSON body has a number too large for a float")
    return value


# One decoder for every body: json.loads with hooks builds a new one (and its scanner) a call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicate_keys,
    parse_constant=_refuse_constant,
    parse_float=_finite_float,
)


def _short(error: Exception) -> str:
    return str(error).split(":", 1)[0][:120]


def signing_secrets(credentials: Mapping[str, Any], name: str = "secret") -> list[str]:
    """The provider's secret ``name``: one string, or a list of them while it is rotated (the
    new and the old; a request verified by any is accepted). Missing, empty or not strings:
    refused (401), never a KeyError."""
    value = credentials.get(name)
    if isinstance(value, str) and value:  # the usual case, without the checks of a list
        return [value]
    secrets = [value] if isinstance(value, str) else value
    if not isinstance(secrets, list) or not secrets:
        raise NotConfigured(f"the credentials have no {name}")
    if not all(isinstance(secret, str) and secret for secret in secrets):
        raise NotConfigured(f"the credentials' {name} has an entry that is not a secret")
    return secrets


def verify_standard(
    request: WebhookRequest, credentials: Mapping[str, Any], now: float, settings: Settings
) -> None:
    """Standard Webhooks keyed with the provider's ``secret`` (or any of its list):
    Formbricks and our generic receivers."""
    standard_verify(
        signing_secrets(credentials),
        request.headers,
        request.body,
        now,
        settings.signature_tolerance_seconds,
    )


class GenericItem(msgspec.Struct, frozen=True, kw_only=True):
    """What every item of our generic bodies (DESIGN.md §5) starts with: its id and whose it is."""

    id: Key
    customer: CustomerRef


class GenericProfile(GenericItem, frozen=True, kw_only=True):
    """An item of our generic CRM and billing bodies: a version of a customer's profile."""

    updated_at: UtcDatetime

    def identity(self, key: str) -> dict[str, Any]:
        """The profile's identity fields: filed under the customer's own id (else its key),
        the item id as the event, ``updated_at`` as the version."""
        return {
            "provider": "generic",
            "source_id": self.customer.id or key,
            "customer_key": key,
            "event_id": self.id,
            "source_updated_at": self.updated_at,
            "customer_id": self.customer.id,
        }


Item = TypeVar("Item", bound=GenericItem)


def generic_batch(
    request: WebhookRequest,
    model: type[Item],
    build: Callable[[Item, str], Response | CrmProfile | BillingProfile],
) -> Batch:
    """Our generic bodies: one object or an array of them. Every item is validated first, then
    each is built into its record with its customer's key, its own raw JSON kept beside it."""
    raw = load_json(request.body)
    raws = raw if isinstance(raw, list) else [raw]
    if len(raws) > MAX_GENERIC_ITEMS:
        raise InvalidPayload(f"body: at most {MAX_GENERIC_ITEMS} items")
    # one by one: msgspec caches a Struct's checks, not a list's (1.4 µs for 2 items, not 2.4)
    items = [validate(item, model, str(i)) for i, item in enumerate(raws)]
    return Batch(
        records=[
            Record(build(item, generic_key(item.customer)), item_raw)
            for item, item_raw in zip(items, raws, strict=True)
        ],
        refuse_conflicts=True,
    )


def generic_key(customer: CustomerRef) -> str:
    key = customer_key(email=customer.email, customer_id=customer.id)
    if key is None:
        raise InvalidPayload("customer.email is not an e-mail address and customer.id is empty")
    return key


def receive(
    provider: str,
    request: WebhookRequest,
    adapters: Mapping[str, ModuleType],
    store: RecordsStore,
    settings: Settings,
    clock: Callable[[], float] = time.time,
) -> Receipt:
    adapter = adapters.get(provider)
    if adapter is None:
        raise UnknownProvider(
            f"unknown provider {provider!r}; known: {', '.join(sorted(adapters))}"
        )
    if len(request.body) > settings.max_body_bytes:
        raise PayloadTooLarge(f"the body is over {settings.max_body_bytes} bytes")
    adapter.verify(request, provider_credentials(settings, provider), clock(), settings)
    batch = adapter.parse(request, settings)
    for message, extra in batch.warnings:
        logger.warning(message, extra=dict(extra))
    prepared = store.prepare([(item.record, item.raw) for item in batch.records])
    if batch.refuse_conflicts and prepared.conflicts:
        raise Conflict(conflict_message(prepared.conflicts, stored=False))
    outcomes = store.commit(prepared, settings.raw_retention_days)
    records = [item.record for item in batch.records]
    conflicts = [r for r, outcome in zip(records, outcomes, strict=True) if outcome == CONFLICT]
    if batch.refuse_conflicts and conflicts:  # stored by another request meanwhile
        raise Conflict(conflict_message(conflicts, stored=True))
    if batch.fetch and settings.crm_enrichment_queue and settings.hubspot_api_url:
        from nps_sync.ingest.enqueue import enqueue  # what the event did not carry

        enqueue(settings.crm_enrichment_queue, provider, batch.fetch)
    return Receipt(
        accepted=outcomes.count(APPLIED),
        duplicates=outcomes.count(DUPLICATE) + outcomes.count(STALE),
        ignored=batch.ignored + outcomes.count(ERASED),  # erased: acknowledged, not stored
        conflicted=tuple(map(_conflicted, conflicts)),
    )


MAX_NAMED = 10


def conflict_message(records: list[Response | CrmProfile | BillingProfile], stored: bool) -> str:
    """Which items of a generic body conflict, and what their sender can do about it. The ids
    are the sender's own; the 409 names them, no log line does."""
    ids = [_record_id(record) for record in records]
    named = ", ".join(ids[:MAX_NAMED]) + (
        f" and {len(ids) - MAX_NAMED} more" if len(ids) > MAX_NAMED else ""
    )
    if isinstance(records[0], Response):
        what = "the id and updated_at of a stored response (or of an earlier item of this body)"
        fix = "to correct a response, send it with a later updated_at"
    else:
        what = "the id of a stored event (or of an earlier item of this body)"
        fix = "send a change as a new event, with an id of its own"
    done = (
        "The body's other items are stored (these ids were stored by another request at the "
        "same time)"
        if stored
        else "Nothing of this body was stored"
    )
    items = "1 item repeats" if len(ids) == 1 else f"{len(ids)} items repeat"
    return (
        f"{items} {what} with other content ({named}): {fix}. {done}; sending it again, "
        "corrected, is safe."
    )


def _record_id(record: Response | CrmProfile | BillingProfile) -> str:
    return record.response_id if isinstance(record, Response) else record.event_id


def _conflicted(record: Response | CrmProfile | BillingProfile) -> Conflicted:
    digest = hashlib.sha256(f"{record.provider}#{_record_id(record)}".encode()).hexdigest()
    return Conflicted(f"rec_{digest[:12]}", customer_ref(record.customer_key))
