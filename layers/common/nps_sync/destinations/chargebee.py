"""Chargebee as a destination: customer custom fields (names starting ``cf_``) or keys of the
customer's ``meta_data`` (any other name), through API v2 with form-encoded bodies and the API
key as the Basic-auth user. Facts and sources: docs/destinations.md, "Chargebee".

Chargebee has no batch customer update, so ``batch_limit`` is 1: one ``POST
/customers/{id}`` per changed customer. ``meta_data`` is sent as one JSON object that takes
the place of the one held, so it is read, merged and written (the read ``current`` made for
the comparison is reused, else one is made); our keys are set, a cleared key is removed, other
keys are kept as they were. Custom fields are created in the Chargebee UI only; ``check`` lists
the site's customer custom fields and names any missing.
"""

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from nps_sync.destinations.base import (
    FAILED,
    PERSON,
    WRITTEN,
    Check,
    DestinationError,
    FieldSpec,
    Level,
    Result,
    Target,
    Write,
    text_value,
)
from nps_sync.destinations.http import Api, basic

API = "/api/v2"
PAGE = 100  # the largest ``limit`` of a list call
CUSTOM = "cf_"


def is_custom(name: str) -> bool:
    return name.startswith(CUSTOM)


wire = text_value  # Chargebee's form of a value (an empty string clears)


class ChargebeeDestination:
    kind = "chargebee"
    batch_limit = 1  # no batch customer update in API v2
    levels: tuple[Level, ...] = (PERSON,)

    def __init__(self, api_key: str, base_url: str, **options):
        base = base_url.rstrip("/")
        self.api = Api(base if base.endswith(API) else base + API, basic(api_key), **options)
        self._meta: dict[str, dict[str, Any]] = {}  # meta_data read by ``current``, per id

    def lookup(self, targets: Sequence[Target]) -> dict[str, str]:
        """One list call per e-mail (``email[is]``; deleted customers are not listed). Chargebee
        lets several customers share an e-mail: the oldest (``created_at``, then id) wins, so
        the same customer is chosen every time."""
        found: dict[str, str] = {}
        for target in targets:
            if target.level != PERSON or not target.email:
                continue
            customers = self._list({"email[is]": target.email})
            if customers:
                oldest = min(customers, key=lambda c: (c.get("created_at") or 0, str(c["id"])))
                found[target.key] = str(oldest["id"])
        return found

    def _list(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        customers: list[dict[str, Any]] = []
        query = {**filters, "limit": str(PAGE)}
        while True:
            body = self.api.request("GET", "/customers", query=query).body or {}
            customers += [
                entry["customer"]
                for entry in body.get("list") or []
                if isinstance(entry, dict) and isinstance(entry.get("customer"), dict)
            ]
            if not body.get("next_offset"):
                return customers
            query["offset"] = str(body["next_offset"])

    def current(
        self, level: Level, object_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """One retrieve per customer (no batch read); a customer Chargebee does not have (404)
        is absent. A custom field that is not set is absent from Chargebee's answer: None."""
        held: dict[str, dict[str, Any]] = {}
        self._meta = {}
        for object_id in object_ids:
            customer = self._retrieve(object_id)
            if customer is None:
                continue
            meta = _meta(customer)
            self._meta[str(object_id)] = meta
            held[str(object_id)] = {
                name: customer.get(name) if is_custom(name) else meta.get(name) for name in fields
            }
        return held

    def _retrieve(self, object_id: str) -> dict[str, Any] | None:
        answer = self.api.request("GET", _path(object_id), expect=(404,))
        if answer.status == 404:
            return None
        customer = (answer.body or {}).get("customer") if isinstance(answer.body, dict) else None
        if not isinstance(customer, dict):
            raise DestinationError("GET /customers/{id}: no customer in the answer", answer.status)
        return customer

    def write(self, writes: Sequence[Write]) -> list[Result]:
        return [self._update(write) for write in writes]

    def _update(self, write: Write) -> Result:
        object_id = str(write.target.object_id)
        pairs = [(k, wire(v)) for k, v in write.values.items() if is_custom(k)]
        keys = {k: v for k, v in write.values.items() if not is_custom(k)}
        if keys:
            meta = self._meta.pop(object_id, None)
            if meta is None:
                customer = self._retrieve(object_id)
                if customer is None:
                    return Result(write, FAILED, "resource_not_found")
                meta = _meta(customer)
            merged = {k: v for k, v in meta.items() if k not in keys}
            merged.update({k: v for k, v in keys.items() if v is not None})
            pairs.append(("meta_data", json.dumps(merged, separators=(",", ":"))))
        answer = self.api.request("POST", _path(object_id), form_body=pairs, expect=(400, 404))
        if answer.status in (400, 404):
            return Result(write, FAILED, _reason(answer.body, answer.status))
        return Result(write, WRITTEN)

    def check(self, specs: Mapping[Level, Sequence[FieldSpec]], create: bool = True) -> Check:
        """Credentials work (a 401 raises) and every ``cf_`` field is one of the site's
        customer custom fields (``GET /custom_field_configs``; there is no API that creates
        one, so ``create`` changes nothing). ``meta_data`` keys need nothing."""
        wanted = [spec.name for spec in specs.get(PERSON, ()) if is_custom(spec.name)]
        if not wanted:
            self.api.request("GET", "/customers", query={"limit": "1"})
            return Check(ok=True, message="ok")
        configured = self._custom_fields()
        if configured is None:
            message = "the site does not list its custom fields; check them in Settings"
            return Check(ok=False, message=message)
        missing = [f"{PERSON}.{name}" for name in wanted if name not in configured]
        if missing:
            message = "missing (create in Settings > Configure Chargebee > Custom Fields): "
            return Check(ok=False, missing=missing, message=message + ", ".join(missing))
        return Check(ok=True, message="ok")

    def _custom_fields(self) -> set[str] | None:
        """The api names of the active customer custom fields, each with its ``cf_`` prefix;
        None when the endpoint is not there (404)."""
        names: set[str] = set()
        query = {"entity_type": "customer", "limit": str(PAGE)}
        while True:
            answer = self.api.request("GET", "/custom_field_configs", query=query, expect=(404,))
            if answer.status == 404:
                return None
            body = answer.body if isinstance(answer.body, dict) else {}
            for entry in body.get("list") or []:
                config = entry.get("custom_field_config") if isinstance(entry, dict) else None
                if not isinstance(config, dict) or not config.get("api_name"):
                    continue
                if config.get("entity_type", "customer") != "customer":
                    continue
                if config.get("status", "active") != "active":
                    continue
                name = str(config["api_name"])
                names.add(name if is_custom(name) else CUSTOM + name)
            if not body.get("next_offset"):
                return names
            query["offset"] = str(body["next_offset"])


def _path(object_id: str) -> str:
    return "/customers/" + urllib.parse.quote(str(object_id), safe="")


def _meta(customer: Mapping[str, Any]) -> dict[str, Any]:
    """The customer's ``meta_data`` as a dict (Chargebee answers it as a JSON object)."""
    meta = customer.get("meta_data")
    if isinstance(meta, str):  # defensive: a JSON string
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = None
    return dict(meta) if isinstance(meta, dict) else {}


def _reason(body: Any, status: int) -> str:
    """``api_error_code`` and ``param`` only: Chargebee's message may quote the value."""
    if not isinstance(body, dict):
        return f"refused (HTTP {status})"
    code = body.get("api_error_code") or body.get("error_code") or f"HTTP {status}"
    param = body.get("param")
    return f"{code}: {param}" if param else str(code)


def from_credentials(base_url: str, credentials: Mapping[str, str], settings: Any = None):
    """``{"site": "acme", "api_key": "live_…"}``; the base URL (``CHARGEBEE_URL``, else
    ``https://{site}.chargebee.com``) comes from ``clients.base_url``."""
    api_key = credentials.get("api_key")
    if not api_key:
        raise DestinationError("Chargebee credentials need api_key (and site)")
    if not base_url:
        site = credentials.get("site")
        if not site:
            raise DestinationError("Chargebee credentials need site when CHARGEBEE_URL is unset")
        base_url = f"https://{site}.chargebee.com"
    return ChargebeeDestination(api_key, base_url)
