"""A Stripe API stand-in: the Customer endpoints the destination client uses (list by e-mail,
search, retrieve, update metadata).

Answers like Stripe does (docs/destinations.md, "Stripe", has the sources): customers as the
API returns them (``cus_…``, ``object: "customer"``, ``created``, ``metadata`` of strings); a
list ``{"object": "list", "data": [...], "has_more", "url"}`` newest first, without deleted
customers; a search ``{"object": "search_result", ..., "next_page"}``; a deleted customer
retrieved as ``{"id", "object": "customer", "deleted": true}``; an unknown one a 404
``resource_missing``. Metadata: an empty value unsets a key; more than 50 keys, a key over 40
characters or a value over 500 is a 400. Every answer carries a ``Request-Id``. A wrong key is
Stripe's 401. Rate limits: ``rate`` requests per second (test mode 25, live 100) and the
Search API's own 20 per second; beyond them Stripe's 429 ``rate_limit`` body, with no
Retry-After (Stripe sends none). Stripe has no batch endpoint, so there is no batch limit to
enforce: one object per request.

    python -m local.standins.stripe --port 8026 --token sk_test_dev_stripe_key
"""

import base64
import hashlib
import itertools
import re
import threading

from local.standins.base import RateLimiter, Reply, Request, Standin, reply, serve

LIST_MAX = 100
MAX_KEYS = 50
MAX_KEY_LENGTH = 40
MAX_VALUE_LENGTH = 500
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z, the first seeded customer
DOCS = "https://stripe.com/docs/error-codes/"
RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. You can learn more about rate limits here "
    "https://stripe.com/docs/rate-limits."
)
CUSTOMER = re.compile(r"^/v1/customers/(cus_\w+)$")
METADATA = re.compile(r"^metadata\[(.*)\]$")
SEARCH_EMAIL = re.compile(r"""^\s*email\s*:\s*(['"])(.*)\1\s*$""")


def error(type_: str, message: str, code: str | None = None, param: str | None = None) -> dict:
    """Stripe's error body."""
    body: dict = {"type": type_, "message": message}
    if code:
        body["code"] = code
        body["doc_url"] = DOCS + code.replace("_", "-")
    if param:
        body["param"] = param
    return {"error": body}


def refused(message: str, code: str | None = None, param: str | None = None) -> Reply:
    """Stripe's 400 for a request it will not carry out."""
    return reply(400, error("invalid_request_error", message, code, param))


def customer_id(seed: str) -> str:
    """A ``cus_`` id with Stripe's 14 characters after the prefix, stable for a seed."""
    digest = base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()
    return "cus_" + digest[:14]


class StripeStandin(Standin):
    kind = "stripe"

    def __init__(
        self,
        token: str = "sk_test_dev_stripe_key",  # noqa: S107 - a local stand-in
        *,
        rate: tuple[int, float] | None = (25, 1.0),
        search_rate: tuple[int, float] | None = (20, 1.0),
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        super().__init__(token, rate=rate, host=host, port=port)
        self.search_limiter = RateLimiter(*search_rate) if search_rate else None
        self.customers: dict[str, dict] = {}
        self._created = itertools.count(CREATED)
        self._request_ids = itertools.count(1)
        self._ids = threading.Lock()

    # -- seeding and reading back --------------------------------------------------------

    def add(
        self,
        email: str | None,
        metadata: dict | None = None,
        *,
        object_id: str | None = None,
        created: int | None = None,
        name: str | None = None,
    ) -> str:
        """A customer as Stripe creates it; answers its id."""
        object_id = object_id or customer_id(f"{email}#{len(self.customers)}")
        self.customers[object_id] = _customer(
            object_id,
            email,
            {str(k): str(v) for k, v in (metadata or {}).items()},
            next(self._created) if created is None else created,
            name,
        )
        return object_id

    def populate(self, customers: list[dict]) -> None:
        """One Stripe customer per demo customer (local/seed.py ``customers()``), with our
        customer id in ``metadata.customer_id`` as a billing integration sets it."""
        for c in customers:
            self.add(
                c["email"],
                {"customer_id": c["id"], "plan": c.get("plan") or ""},
                object_id=customer_id(str(c["id"])),
            )

    def delete(self, object_id: str) -> None:
        """``DELETE /v1/customers/{id}``'s effect: retrieving it answers the deleted stub."""
        self.customers[object_id]["deleted"] = True

    def fields_of(self, email: str) -> dict:
        """The metadata of the newest live customer with this e-mail ({} if none)."""
        found = self._listed(email)
        return dict(found[0]["metadata"]) if found else {}

    def rate_limit(self, times: int = 1, should_retry: str | None = None) -> None:
        """The next ``times`` calls answer Stripe's 429 (optionally with Stripe-Should-Retry)."""
        headers = {"Stripe-Should-Retry": should_retry} if should_retry else {}
        self.failures.extend([Reply(429, self.error(429), headers)] * times)

    # -- Stripe's answers ----------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        answer = super().handle(request)
        with self._ids:
            request_id = f"req_{next(self._request_ids):014d}"
        return Reply(answer.status, answer.body, {"Request-Id": request_id, **answer.headers})

    def authorized(self, request: Request) -> bool:
        """Bearer, or Basic with the key as user name (Stripe takes both)."""
        header = request.headers.get("authorization") or ""
        if header == f"Bearer {self.token}":
            return True
        if header.startswith("Basic "):
            try:
                user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
            except ValueError:
                return False
            return user == self.token
        return False

    def unauthorized(self, request: Request) -> Reply:
        header = request.headers.get("authorization") or ""
        key = header.split(" ", 1)[1] if " " in header else ""
        if header.startswith("Basic "):
            try:
                key = base64.b64decode(key).decode().split(":", 1)[0]
            except ValueError:
                key = ""
        if not key:
            message = (
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY')."
            )
        else:  # Stripe shows the key's start and last four characters only
            message = f"Invalid API Key provided: {key[:8]}{'*' * 8}{key[-4:]}"
        return reply(
            401, error("invalid_request_error", message), WWW_Authenticate='Basic realm="Stripe"'
        )

    def error(self, status: int) -> dict:
        if status == 429:
            return error("invalid_request_error", RATE_LIMIT_MESSAGE, "rate_limit")
        if status >= 500:
            return error("api_error", "An unknown error occurred")
        if status == 404:
            return error("invalid_request_error", "No such customer", "resource_missing", "id")
        if status == 409:
            message = (
                "This object cannot be accessed right now because another API request or "
                "Stripe process is currently accessing it."
            )
            return error("invalid_request_error", message, "lock_timeout")
        return error("invalid_request_error", f"HTTP {status}")

    def rate_limited(self, retry_after: float) -> Reply:
        return reply(429, self.error(429))  # no Retry-After: Stripe sends none

    def route(self, request: Request) -> Reply:
        path = request.path
        if path == "/v1/customers" and request.method == "GET":
            return self._list(request)
        if path == "/v1/customers/search" and request.method == "GET":
            wait = self.search_limiter.hit() if self.search_limiter else None
            return reply(429, self.error(429)) if wait is not None else self._search(request)
        if (found := CUSTOMER.match(path)) and request.method == "GET":
            return self._retrieve(found[1])
        if (found := CUSTOMER.match(path)) and request.method == "POST":
            return self._update(found[1], request)
        message = f"Unrecognized request URL ({request.method}: {path})."
        return reply(404, error("invalid_request_error", message))

    # -- customers -----------------------------------------------------------------------

    def _listed(self, email: str | None) -> list[dict]:
        live = [
            c
            for c in self.customers.values()
            if not c.get("deleted") and (email is None or c["email"] == email)
        ]
        return sorted(live, key=lambda c: (c["created"], c["id"]), reverse=True)

    def _limit(self, request: Request) -> int | Reply:
        raw = request.arg("limit", "10") or "10"
        if not raw.isdigit() or not 1 <= int(raw) <= LIST_MAX:
            message = f"Invalid integer: {raw}; must be between 1 and {LIST_MAX}"
            return refused(message, "parameter_invalid_integer", "limit")
        return int(raw)

    def _list(self, request: Request) -> Reply:
        limit = self._limit(request)
        if isinstance(limit, Reply):
            return limit
        listed = self._listed(request.arg("email"))
        after = request.arg("starting_after")
        if after:
            ids = [c["id"] for c in listed]
            if after not in ids:
                message = f"No such customer: '{after}'"
                return refused(message, "resource_missing", "starting_after")
            listed = listed[ids.index(after) + 1 :]
        return reply(
            200,
            {
                "object": "list",
                "data": listed[:limit],
                "has_more": len(listed) > limit,
                "url": "/v1/customers",
            },
        )

    def _search(self, request: Request) -> Reply:
        """``email:'…'`` only: the one query the client could send."""
        limit = self._limit(request)
        if isinstance(limit, Reply):
            return limit
        query = SEARCH_EMAIL.match(request.arg("query") or "")
        if not query:
            message = "Invalid query: only email:'…' is supported by this stand-in"
            return refused(message, "parameter_invalid", "query")
        # an exact match (how Stripe's search treats letter case is not verified here)
        found = [c for c in self._listed(None) if c["email"] == query[2]]
        start = int(request.arg("page") or 0)
        page = found[start : start + limit]
        more = start + limit < len(found)
        return reply(
            200,
            {
                "object": "search_result",
                "data": page,
                "has_more": more,
                "next_page": str(start + limit) if more else None,
                "url": "/v1/customers/search",
            },
        )

    def _retrieve(self, object_id: str) -> Reply:
        stored = self.customers.get(object_id)
        if stored is None:
            return self._missing(object_id)
        if stored.get("deleted"):
            return reply(200, {"id": object_id, "object": "customer", "deleted": True})
        return reply(200, stored)

    def _update(self, object_id: str, request: Request) -> Reply:
        stored = self.customers.get(object_id)
        if stored is None or stored.get("deleted"):
            return self._missing(object_id)
        changes: dict[str, str] = {}
        for name, values in request.form().items():
            found = METADATA.match(name)
            if not found:
                message = f"Received unknown parameter: {name}"
                return refused(message, "parameter_unknown", name)
            key, value = found[1], values[-1]
            param = f"metadata[{key}]"
            if not key or "[" in key or "]" in key or len(key) > MAX_KEY_LENGTH:
                message = f"Metadata keys can have up to {MAX_KEY_LENGTH} characters, no brackets."
                return refused(message, "parameter_invalid_string", param)
            if len(value) > MAX_VALUE_LENGTH:
                message = f"Metadata values can have up to {MAX_VALUE_LENGTH} characters."
                return refused(message, "parameter_invalid_string", param)
            changes[key] = value
        metadata = dict(stored["metadata"])
        for key, value in changes.items():
            if value == "":
                metadata.pop(key, None)  # an empty value unsets the key
            else:
                metadata[key] = value
        if len(metadata) > MAX_KEYS:
            message = f"Metadata can have up to {MAX_KEYS} keys."
            return refused(message, "parameter_invalid_string", "metadata")
        stored["metadata"] = metadata
        return reply(200, stored)

    def _missing(self, object_id: str) -> Reply:
        message = f"No such customer: '{object_id}'"
        return reply(404, error("invalid_request_error", message, "resource_missing", "id"))


def _customer(object_id: str, email, metadata: dict, created: int, name) -> dict:
    """The fields of Stripe's Customer object (API reference, "The Customer object")."""
    return {
        "id": object_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": created,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": object_id[4:12].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def local(credentials: dict, port: int = 0) -> StripeStandin:
    """For `make run`: accepts the dev secrets' ``destinations.stripe-dev`` key."""
    return StripeStandin(credentials["api_key"], port=port)


if __name__ == "__main__":
    serve(lambda token, port: StripeStandin(token, port=port), "Stripe API stand-in")
