"""Stripe as a destination: our NPS fields as metadata keys on the Customer
(``POST /v1/customers/{id}`` with ``metadata[nps_score]=9``). Facts and sources:
docs/destinations.md, "Stripe".

Stripe has no batch update ("The Stripe API doesn't support bulk updates. You can work on only
one object per request"), so every write is one call and ``batch_limit`` is 1. Metadata values
are strings (at most 50 keys, a key at most 40 characters and without square brackets, a value
at most 500 characters); posting an empty value unsets a key, which is how an erasure clears.
Metadata needs no field creation: a key exists once it is written.

E-mail lookups use the list endpoint (``GET /v1/customers?email=``: exact, case-sensitive,
strongly consistent), not the Search API, which is eventually consistent (up to an hour behind
during outages), unavailable to accounts in India and has its own lower rate limit. A customer
found by the lookup is kept for this client's life so ``current`` does not read it again.
"""

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from nps_sync.destinations.base import (
    FAILED,
    PERSON,
    SKIPPED,
    UNCHANGED,
    WRITTEN,
    Check,
    DestinationError,
    FieldSpec,
    Level,
    Result,
    Retryable,
    Target,
    Value,
    Write,
    text_value,
)
from nps_sync.destinations.http import Answer, Api, bearer

BATCH_LIMIT = 1  # no bulk update in Stripe's API
LIST_LIMIT = 10  # customers per e-mail lookup (1..100); the newest is picked
MAX_KEYS = 50
MAX_KEY_LENGTH = 40
MAX_VALUE_LENGTH = 500
ERRORS = tuple(range(400, 600))  # every error answer is mapped here (Stripe-Should-Retry)
GONE = "the Stripe customer no longer exists (deleted or resource_missing)"


def wire(value: Value) -> str:
    """Stripe's form of a metadata value (base.text_value), cut to 500 characters."""
    return text_value(value)[:MAX_VALUE_LENGTH]


def bad_key(name: str) -> bool:
    return len(name) > MAX_KEY_LENGTH or "[" in name or "]" in name or not name


class StripeDestination:
    kind = "stripe"
    batch_limit = BATCH_LIMIT
    levels: tuple[Level, ...] = (PERSON,)

    def __init__(self, api_key: str, base_url: str = "https://api.stripe.com", **options):
        self.api = Api(base_url, bearer(api_key), **options)
        self._listed: dict[str, dict[str, Any]] = {}  # customer id -> as the lookup listed it
        self._metadata: dict[str, dict[str, str]] = {}  # customer id -> metadata last read

    def lookup(self, targets: Sequence[Target]) -> dict[str, str]:
        """One list call per distinct e-mail. Several customers with the e-mail: the most
        recently created (ties: the greater id), as the list's own newest-first order does."""
        found: dict[str, str] = {}
        by_email: dict[str, str | None] = {}
        for target in targets:
            if target.level != PERSON or not target.email:
                continue
            if target.email not in by_email:
                by_email[target.email] = self._newest(target.email)
            if by_email[target.email]:
                found[target.key] = by_email[target.email]  # type: ignore[assignment]
        return found

    def _newest(self, email: str) -> str | None:
        answer = self._call(
            "GET", "/v1/customers", query={"email": email, "limit": str(LIST_LIMIT)}
        )
        listed = [
            c
            for c in (answer.body or {}).get("data") or []
            if isinstance(c, dict) and c.get("id") and not c.get("deleted")
        ]
        if not listed:
            return None
        newest = max(listed, key=lambda c: (int(c.get("created") or 0), str(c["id"])))
        self._listed[str(newest["id"])] = newest
        return str(newest["id"])

    def current(
        self, level: Level, object_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Metadata values as Stripe holds them (strings; None when unset); a deleted or
        missing customer is absent. One ``GET /v1/customers/{id}`` per id not just listed."""
        held: dict[str, dict[str, Any]] = {}
        if level != PERSON:
            return held
        for object_id in dict.fromkeys(object_ids):
            customer = self._listed.pop(object_id, None) or self._retrieve(object_id)
            if customer is None or customer.get("deleted"):
                continue
            metadata = {str(k): str(v) for k, v in (customer.get("metadata") or {}).items()}
            self._metadata[object_id] = metadata
            held[object_id] = {name: metadata.get(name) for name in fields}
        return held

    def _retrieve(self, object_id: str) -> dict[str, Any] | None:
        answer = self._call("GET", f"/v1/customers/{quote(object_id, safe='')}", missing_ok=True)
        return answer.body if answer.status == 200 and isinstance(answer.body, dict) else None

    def write(self, writes: Sequence[Write]) -> list[Result]:
        return [self._update(write) for write in writes]

    def _update(self, write: Write) -> Result:
        object_id = write.target.object_id
        if write.target.level != PERSON or not object_id:
            return Result(write, FAILED, "Stripe customers only, with a customer id")
        refused = sorted(name for name in write.values if bad_key(name))
        if refused:
            reason = f"metadata keys over {MAX_KEY_LENGTH} characters or with brackets"
            return Result(write, FAILED, f"{reason}: {', '.join(refused)}")
        values = {name: wire(value) for name, value in write.values.items()}
        held = self._metadata.get(object_id)
        if held is not None:
            if all(held.get(k, "") == v for k, v in values.items()):
                return Result(write, UNCHANGED)  # e.g. a comment held cut to 500 characters
            kept = {k for k in held if values.get(k, held[k]) != ""}
            if len(kept | {k for k, v in values.items() if v}) > MAX_KEYS:
                return Result(write, FAILED, f"the customer would exceed {MAX_KEYS} metadata keys")
        answer = self._call(
            "POST",
            f"/v1/customers/{quote(object_id, safe='')}",
            form_body=[(f"metadata[{k}]", v) for k, v in values.items()],
            missing_ok=True,
            refusal_ok=True,
        )
        if answer.status == 404:
            return Result(write, SKIPPED, GONE)
        if answer.status >= 400:
            return Result(write, FAILED, _reason(answer.body))
        if isinstance(answer.body, dict):
            self._metadata[object_id] = {
                str(k): str(v) for k, v in (answer.body.get("metadata") or {}).items()
            }
        return Result(write, WRITTEN)

    def check(self, specs: Mapping[Level, Sequence[FieldSpec]], create: bool = True) -> Check:
        """The key works (one list call); metadata keys need no creation, only a name Stripe
        accepts (40 characters, no brackets) and no more than 50 of them."""
        self._call("GET", "/v1/customers", query={"limit": "1"})
        names = [spec.name for level, fields in specs.items() for spec in fields]
        missing = [
            f"{level}.{spec.name}"
            for level, fields in specs.items()
            for spec in fields
            if level != PERSON or bad_key(spec.name)
        ]
        if len(set(names)) > MAX_KEYS:
            message = f"Stripe allows {MAX_KEYS} metadata keys; {len(set(names))} are mapped"
            return Check(ok=False, missing=missing, message=message)
        if missing:
            message = (
                f"not usable as Stripe metadata keys (at most {MAX_KEY_LENGTH} characters, "
                "no brackets, customers only): " + ", ".join(missing)
            )
            return Check(ok=False, missing=missing, message=message)
        return Check(ok=True, message="ok: metadata keys need no creation in Stripe")

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        form_body: list[tuple[str, str]] | None = None,
        missing_ok: bool = False,
        refusal_ok: bool = False,
    ) -> Answer:
        """An answer below 400, a 404 ``resource_missing`` (``missing_ok``) or a 400 refusing
        this object (``refusal_ok``); otherwise the error ``_error`` maps it to."""
        answer = self.api.request(method, path, query=query, form_body=form_body, expect=ERRORS)
        if answer.status < 400:
            return answer
        error = _error(method, path, answer)
        if missing_ok and answer.status == 404 and _code(answer.body) == "resource_missing":
            return answer
        if refusal_ok and answer.status == 400 and not isinstance(error, Retryable):
            return answer
        raise error


def _fields(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _code(body: Any) -> str | None:
    return _fields(body).get("code")


def _reason(body: Any) -> str:
    """Type, code and param only: Stripe's message can quote the value sent."""
    error = _fields(body)
    reason = f"{error.get('type') or 'invalid_request_error'}: {error.get('code') or 'refused'}"
    return f"{reason} ({error['param']})" if error.get("param") else reason


def _error(method: str, path: str, answer: Answer) -> DestinationError:
    """Stripe-Should-Retry decides when Stripe sends it (stripe-python's ``_should_retry``);
    otherwise 429, 409 (lock_timeout) and 5xx can be retried, other 4xx cannot."""
    headers = {name.lower(): value for name, value in answer.headers.items()}
    if path.startswith("/v1/customers/") and path != "/v1/customers/search":
        path = "/v1/customers/{id}"
    request_id = headers.get("request-id")
    message = f"{method} {path}: HTTP {answer.status} {_reason(answer.body)}"
    if request_id:
        message += f" [{request_id}]"
    should = headers.get("stripe-should-retry")
    if should == "false":
        return DestinationError(message, answer.status)
    if should == "true" or answer.status in (409, 429) or answer.status >= 500:
        return Retryable(message, answer.status)  # Stripe sends no Retry-After
    return DestinationError(message, answer.status)


def from_credentials(base_url: str, credentials: Mapping[str, str], settings: Any = None):
    """``{"api_key": "sk_…"}`` or a restricted key ``rk_…`` with Customers write access."""
    key = credentials.get("api_key")
    if not key:
        raise DestinationError("Stripe credentials need api_key")
    if key.startswith("pk_"):
        raise DestinationError("a Stripe publishable key cannot read or write customers")
    return StripeDestination(key, base_url)
