"""A Chargebee API v2 stand-in: the customer endpoints the destination client uses (list by
e-mail, retrieve, update with custom fields and ``meta_data``) and the custom field configs
``check`` reads.

Answers like Chargebee does (docs/destinations.md, "Chargebee", has the sources): paths under
``/api/v2``; HTTP Basic auth with the API key as the user and an empty password (a wrong key
is Chargebee's 401 ``api_authentication_failed``); form-encoded bodies; a list is
``{"list": [{"customer": {...}}], "next_offset": "..."}`` (``limit`` 1 to 100, more is a 400
``param_wrong_value``), without deleted customers; a customer is ``{"customer": {...}}`` with
its custom fields at the top level (absent when unset) and ``meta_data`` a JSON object; an
unknown customer a 404 ``resource_not_found``. Every error body carries ``message``, ``type``,
``api_error_code``, ``param`` where one is at fault, and the legacy ``error_code``,
``error_msg``, ``http_status_code``. Rate limit: ``rate`` requests per minute (test sites 150;
live 150/1,000/3,500 by plan); beyond it the 429 ``api_request_limit_exceeded`` (type
``operation_failed``) with a Retry-After. Chargebee has no batch customer update, so there is
no batch limit to enforce beyond the list's ``limit``.

The site's customer custom fields are ``custom_fields`` (default: every ``cf_nps_*`` one of
ours); ``omit`` leaves some out, so a test shows ``check`` naming them. A ``cf_`` parameter
the site does not have is refused with a 400 naming it in ``param`` (the error's exact
``api_error_code`` is not documented; ``param_wrong_value`` stands in).

    python -m local.standins.chargebee --port 8027 --token dev-chargebee-api-key
"""

import base64
import itertools
import json
import re
import threading

from local.standins.base import Reply, Request, Standin, reply, serve

API = "/api/v2"
LIST_MAX = 100
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z, the first seeded customer
OUR_FIELDS = (
    "cf_nps_score",
    "cf_nps_category",
    "cf_nps_answered_at",
    "cf_nps_survey",
    "cf_nps_channel",
    "cf_nps_comment",
)
FIELD_TYPES = {"cf_nps_score": "long"}  # the rest are single-line text fields
STANDARD = {"first_name", "last_name", "email", "phone", "company", "locale"}
CUSTOMER = re.compile(rf"^{API}/customers/([^/]+)$")
LIMIT_MESSAGE = (
    "Sorry, access has been blocked temporarily due to request count exceeding acceptable "
    "limits. Please try after some time."
)


def error(
    status: int, type_: str | None, code: str, message: str, param: str | None = None
) -> dict:
    """Chargebee's error body (the current attributes and the legacy ones)."""
    body: dict = {"message": message, "api_error_code": code}
    if type_:
        body["type"] = type_
    if param:
        body["param"] = param
    body.update({"error_code": code, "error_msg": message, "http_status_code": status})
    return body


def refused(message: str, param: str | None = None, code: str = "param_wrong_value") -> Reply:
    return reply(400, error(400, "invalid_request", code, message, param))


class ChargebeeStandin(Standin):
    kind = "chargebee"

    def __init__(
        self,
        token: str = "dev-chargebee-api-key",  # noqa: S107 - a local stand-in
        *,
        custom_fields: tuple[str, ...] = OUR_FIELDS,
        omit: tuple[str, ...] = (),  # custom fields the site lacks (``check`` names them)
        rate: tuple[int, float] | None = (150, 60.0),
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        super().__init__(token, rate=rate, host=host, port=port)
        self.custom_fields = [name for name in custom_fields if name not in omit]
        self.customers: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._seq_lock = threading.Lock()

    # -- seeding and reading back ------------------------------------------------------------

    def add(self, email: str, customer_id: str | None = None, **fields) -> str:
        """A customer (custom fields and ``meta_data`` among ``fields``); its id."""
        with self._seq_lock:
            n = next(self._ids)
        customer_id = customer_id or f"cb-{n:06d}"
        self.customers[customer_id] = {
            "id": customer_id,
            "email": email,
            "auto_collection": "on",
            "net_term_days": 0,
            "allow_direct_debit": False,
            "created_at": CREATED + n,
            "taxability": "taxable",
            "updated_at": CREATED + n,
            "pii_cleared": "active",
            "channel": "web",
            "resource_version": (CREATED + n) * 1000,
            "deleted": False,
            "object": "customer",
            "card_status": "no_card",
            "promotional_credits": 0,
            "refundable_credits": 0,
            "excess_payments": 0,
            "unbilled_charges": 0,
            "preferred_currency_code": "USD",
            **fields,
        }
        return customer_id

    def populate(self, customers: list[dict]) -> None:
        """One Chargebee customer per demo customer (local/seed.py ``customers()``), with our
        customer id as its id (as the billing webhooks of the demo data name it)."""
        for c in customers:
            if c["id"] not in self.customers:
                extra = {"company": c["account"]} if c.get("account") else {}
                self.add(c["email"], c["id"], **extra)

    def fields_of(self, email: str) -> dict:
        """Custom fields and ``meta_data`` of the oldest customer with this e-mail ({} if
        none), as ``{"cf_nps_score": …, "meta_data": {…}}``."""
        found = self._matching(email)
        if not found:
            return {}
        customer = found[0]
        held = {k: v for k, v in customer.items() if k.startswith("cf_")}
        held["meta_data"] = dict(customer.get("meta_data") or {})
        return held

    def rate_limit(self, times: int = 1, retry_after: str = "60") -> None:
        """The next ``times`` calls answer Chargebee's 429."""
        body = error(429, "operation_failed", "api_request_limit_exceeded", LIMIT_MESSAGE)
        self.failures.extend([Reply(429, body, {"Retry-After": retry_after})] * times)

    # -- Chargebee's answers ---------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization") or ""
        if not header.startswith("Basic "):
            return False
        try:
            user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.token

    def unauthorized(self, request: Request) -> Reply:
        message = "Sorry, authentication failed. Invalid api key"
        return reply(401, error(401, None, "api_authentication_failed", message))

    def error(self, status: int) -> dict:
        if status == 429:
            return error(429, "operation_failed", "api_request_limit_exceeded", LIMIT_MESSAGE)
        if status == 404:
            message = "Sorry, we couldn't find that resource"
            return error(404, "invalid_request", "resource_not_found", message)
        if status >= 500:
            message = "Sorry, something went wrong when trying to process the request."
            return error(status, None, "internal_error", message)
        return error(status, "invalid_request", "param_wrong_value", f"HTTP {status}")

    def rate_limited(self, retry_after: float) -> Reply:
        body = error(429, "operation_failed", "api_request_limit_exceeded", LIMIT_MESSAGE)
        return reply(429, body, Retry_After=str(max(1, round(retry_after))))

    def route(self, request: Request) -> Reply:
        path = request.path
        if path == f"{API}/customers" and request.method == "GET":
            return self._list(request)
        if (found := CUSTOMER.match(path)) and request.method == "GET":
            return self._retrieve(found[1])
        if (found := CUSTOMER.match(path)) and request.method == "POST":
            return self._update(found[1], request.form())
        if path == f"{API}/custom_field_configs" and request.method == "GET":
            return self._configs(request)
        return reply(404, self.error(404))

    # -- customers ---------------------------------------------------------------------------

    def _matching(self, email: str) -> list[dict]:
        found = [
            c
            for c in self.customers.values()
            if not c.get("deleted") and (c.get("email") or "").lower() == email.lower()
        ]
        return sorted(found, key=lambda c: (c["created_at"], c["id"]))

    def _list(self, request: Request) -> Reply:
        limit_text = request.arg("limit", "10") or "10"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= LIST_MAX:
            return refused(f"limit : must be between 1 and {LIST_MAX}", "limit")
        limit = int(limit_text)
        offset_text = request.arg("offset", "0") or "0"
        if not offset_text.isdigit():
            return refused("offset : invalid value", "offset")
        start = int(offset_text)
        email = request.arg("email[is]")
        matched = (
            self._matching(email)
            if email is not None
            else sorted(
                (c for c in self.customers.values() if not c.get("deleted")),
                key=lambda c: (c["created_at"], c["id"]),
            )
        )
        page = matched[start : start + limit]
        answer: dict = {"list": [{"customer": dict(c)} for c in page]}
        if start + limit < len(matched):
            answer["next_offset"] = str(start + limit)
        return reply(200, answer)

    def _retrieve(self, customer_id: str) -> Reply:
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            return reply(404, self.error(404))
        return reply(200, {"customer": dict(customer)})

    def _update(self, customer_id: str, form: dict[str, list[str]]) -> Reply:
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            return reply(404, self.error(404))
        changes: dict = {}
        for name, values in form.items():
            value = values[-1]
            if name.startswith("cf_"):
                if name not in self.custom_fields:
                    return refused(f"{name} : is not a custom field of this site", name)
                if value and FIELD_TYPES.get(name) == "long" and not _is_long(value):
                    return refused(f"{name} : invalid value", name)
                changes[name] = value or None
            elif name == "meta_data":
                try:
                    meta = json.loads(value) if value else {}
                except ValueError:
                    meta = None
                if not isinstance(meta, dict):
                    return refused("meta_data : invalid JSON object", "meta_data")
                changes["meta_data"] = meta
            elif name in STANDARD:
                changes[name] = value or None
            else:
                return refused(f"{name} : is an unknown parameter", name)
        for name, value in changes.items():
            if value is None:
                customer.pop(name, None)  # unset: absent from the answers
            else:
                customer[name] = value
        customer["updated_at"] += 1
        customer["resource_version"] = customer["updated_at"] * 1000
        return reply(200, {"customer": dict(customer)})

    def _configs(self, request: Request) -> Reply:
        entity = request.arg("entity_type", "customer")
        configs = (
            [
                {
                    "custom_field_config": {
                        "entity_type": "customer",
                        "api_name": name,
                        "display_name": name.removeprefix("cf_").replace("_", " ").title(),
                        "field_datatype": FIELD_TYPES.get(name, "string"),
                        "edit_ui": "text",
                        "required": False,
                        "props": "{}",
                        "field_order": order,
                        "status": "active",
                    }
                }
                for order, name in enumerate(self.custom_fields, 1)
            ]
            if entity == "customer"
            else []
        )
        limit_text = request.arg("limit", "10") or "10"
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= LIST_MAX:
            return refused(f"limit : must be between 1 and {LIST_MAX}", "limit")
        limit, start = int(limit_text), int(request.arg("offset", "0") or "0")
        answer: dict = {"list": configs[start : start + limit]}
        if start + limit < len(configs):
            answer["next_offset"] = str(start + limit)
        return reply(200, answer)


def _is_long(text: str) -> bool:
    return text.lstrip("-").isdigit()


def local(credentials: dict, port: int = 0) -> ChargebeeStandin:
    """For `make run`: accepts the dev secrets' ``destinations.chargebee-dev`` API key."""
    return ChargebeeStandin(credentials["api_key"], port=port)


if __name__ == "__main__":
    serve(lambda token, port: ChargebeeStandin(token, port=port), "Chargebee API v2 stand-in")
