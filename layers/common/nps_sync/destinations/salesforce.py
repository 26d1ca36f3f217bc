"""Salesforce as a destination: Contact and Account fields through sObject Collections
(update, retrieve), SOQL for lookups and describe for ``check``. Salesforce cannot create
fields through this API, so ``check`` names them. Facts and sources: docs/destinations.md,
"Salesforce"."""

from collections.abc import Mapping, Sequence
from typing import Any

from nps_sync.destinations.base import (
    FAILED,
    ORGANIZATION,
    PERSON,
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
    chunks,
)
from nps_sync.destinations.http import Answer, Api, bearer, retry_after

OBJECTS = {PERSON: "Contact", ORGANIZATION: "Account"}
KEYS = {PERSON: "Email", ORGANIZATION: "Name"}
BATCH_LIMIT = 200  # records per sObject Collections update (PATCH)
READ_LIMIT = 2000  # ids per sObject Collections retrieve with a body (POST; GET: ~800)
LOOKUP_VALUES = 100  # values per SOQL IN (): keeps the GET URL a few kB long
DEFAULT_VERSION = "v62.0"
# REQUEST_LIMIT_EXCEEDED (403) is both limits: the rolling 24 h allocation ("TotalRequests")
# frees slowly, the concurrent long-running (>= 20 s) requests limit as soon as one ends.
DAILY_LIMIT_WAIT = 3600.0
CONCURRENT_LIMIT_WAIT = 30.0


def soql_string(value: str) -> str:
    """A SOQL string literal: backslash and quotes escaped, control characters as escapes,
    so no value can end the literal (SOQL reference, "Quoted String Escape Sequences")."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
        .replace("\f", "\\f")
    )
    return f"'{escaped}'"


def wire(value: Value) -> Value:
    """JSON as Salesforce takes it: numbers, booleans, ``YYYY-MM-DD`` dates; null clears."""
    return value


def api_root(version: str) -> str:
    """``/services/data/v62.0`` from ``v62.0`` or ``62.0``."""
    version = (version or DEFAULT_VERSION).strip().strip("/")
    return f"/services/data/{version if version.startswith('v') else 'v' + version}"


class SalesforceDestination:
    kind = "salesforce"
    batch_limit = BATCH_LIMIT
    levels: tuple[Level, ...] = (PERSON, ORGANIZATION)

    def __init__(
        self, access_token: str, instance_url: str, version: str = DEFAULT_VERSION, **options
    ):
        self.api = Api(instance_url, bearer(access_token), **options)
        self.root = api_root(version)

    def _call(self, method: str, path: str, expect: Sequence[int] = (), **kwargs) -> Answer:
        """Salesforce answers both of its request limits with 403 REQUEST_LIMIT_EXCEEDED
        (Retryable); other refusals name their errorCode (never the message: it may quote a
        value)."""
        answer = self.api.request(
            method, self.root + path, expect=(400, 401, 403, 404, *expect), **kwargs
        )
        if answer.status in expect or answer.status < 400:
            return answer
        code = _code(answer.body)
        if answer.status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            wait = retry_after(answer.headers.get("Retry-After"))
            if wait is None:
                concurrent = "concurrent" in _message(answer.body).lower()
                wait = CONCURRENT_LIMIT_WAIT if concurrent else DAILY_LIMIT_WAIT
            raise Retryable(f"{method} {path}: REQUEST_LIMIT_EXCEEDED", 403, wait)
        raise DestinationError(
            f"{method} {path}: HTTP {answer.status} {code or 'refused'}", answer.status
        )

    def lookup(self, targets: Sequence[Target]) -> dict[str, str]:
        """Contacts by Email, Accounts by Name (case-insensitive, as SOQL compares); a value
        more than one record holds is no match."""
        found: dict[str, str] = {}
        for level, sobject in OBJECTS.items():
            key = KEYS[level]
            mine = [t for t in targets if t.level == level and _wanted(t)]
            for group in chunks(mine, LOOKUP_VALUES):
                wanted = sorted({_wanted(t).lower() for t in group})
                literals = ", ".join(soql_string(v) for v in wanted)
                query = f"SELECT Id, {key} FROM {sobject} WHERE {key} IN ({literals})"  # noqa: S608 - constants; values escaped by soql_string
                ids: dict[str, list[str]] = {}
                body = self._query_page("/query", {"q": query})
                while True:
                    for record in body.get("records") or []:
                        if isinstance(record, dict) and record.get(key) and record.get("Id"):
                            ids.setdefault(str(record[key]).lower(), []).append(record["Id"])
                    next_url = body.get("nextRecordsUrl")
                    if body.get("done", True) or not next_url:
                        break
                    body = self._query_page(str(next_url).removeprefix(self.root), None)
                for target in group:
                    match = ids.get(_wanted(target).lower(), [])
                    if len(match) == 1:
                        found[target.key] = match[0]
        return found

    def _query_page(self, path: str, query: Mapping[str, str] | None) -> dict:
        body = self._call("GET", path, query=query).body
        if not isinstance(body, dict):
            raise DestinationError(f"GET {path}: not a query result")
        return body

    def current(
        self, level: Level, object_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """By the ids asked for (the answer lists a record or null per id, in order), so a
        15-character id we hold finds the 18-character record."""
        held: dict[str, dict[str, Any]] = {}
        names = ["Id", *(f for f in fields if f != "Id")]
        for group in chunks(list(dict.fromkeys(object_ids)), READ_LIMIT):
            path = f"/composite/sobjects/{OBJECTS[level]}"
            body = self._call("POST", path, json_body={"ids": list(group), "fields": names}).body
            if not isinstance(body, list) or len(body) != len(group):
                raise DestinationError(f"POST {path}: not one record per id")
            for object_id, record in zip(group, body, strict=True):
                if isinstance(record, dict):  # null for an id it does not have
                    held[object_id] = {name: record.get(name) for name in fields}
        return held

    def write(self, writes: Sequence[Write]) -> list[Result]:
        """Contacts then Accounts, 200 records per call: a call holds at most two chunks of
        one type each (Salesforce processes up to 10)."""
        ordered = sorted(writes, key=lambda w: list(OBJECTS).index(w.target.level))
        results: dict[int, Result] = {}
        for group in chunks(ordered, BATCH_LIMIT):
            for result in self._update(group):
                results[id(result.write)] = result
        return [results[id(w)] for w in writes]

    def _update(self, group: Sequence[Write]) -> list[Result]:
        records = [
            {
                "attributes": {"type": OBJECTS[w.target.level]},
                "id": w.target.object_id,
                **{k: wire(v) for k, v in w.values.items()},
            }
            for w in group
        ]
        answer = self._call(
            "PATCH",
            "/composite/sobjects",
            json_body={"allOrNone": False, "records": records},
            expect=(400,),
        )
        if answer.status == 400:  # the request as a whole refused
            reason = _reason(answer.body if isinstance(answer.body, list) else [], "errorCode")
            return [Result(w, FAILED, reason) for w in group]
        body = answer.body
        if not isinstance(body, list) or len(body) != len(group):
            raise DestinationError("PATCH /composite/sobjects: not one result per record")
        return [
            Result(w, WRITTEN)
            if isinstance(saved, dict) and saved.get("success")
            else Result(w, FAILED, _reason(_errors(saved), "statusCode"))
            for w, saved in zip(group, body, strict=True)
        ]

    def check(self, specs: Mapping[Level, Sequence[FieldSpec]], create: bool = True) -> Check:
        """Describe names every field the user can see; one we cannot update counts as
        missing. Nothing is created: custom fields need the Metadata or Tooling API."""
        missing: list[str] = []
        for level, fields in specs.items():
            body = self._call("GET", f"/sobjects/{OBJECTS[level]}/describe").body
            described = body.get("fields") if isinstance(body, dict) else None
            updateable = {
                f.get("name")
                for f in described or []
                if isinstance(f, dict) and f.get("updateable")
            }
            missing += [f"{level}.{s.name}" for s in fields if s.name not in updateable]
        message = (
            "create in Setup (Object Manager > Fields & Relationships): " + ", ".join(missing)
            if missing
            else "ok"
        )
        return Check(ok=not missing, missing=missing, message=message)


def _wanted(target: Target) -> str:
    return (target.email if target.level == PERSON else target.name) or ""


def _code(body: Any) -> str:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode") or "")
    return ""


def _errors(saved: Any) -> list:
    errors = saved.get("errors") if isinstance(saved, dict) else None
    return errors if isinstance(errors, list) else []


def _message(body: Any) -> str:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("message") or "")
    return ""


def _reason(errors: list, code_key: str) -> str:
    """Codes and field names only: a message may quote the value."""
    parts = [
        str(e.get(code_key) or "ERROR")
        + (f" ({', '.join(e['fields'])})" if e.get("fields") else "")
        for e in errors
        if isinstance(e, dict)
    ]
    return "; ".join(parts) or "refused"


def from_credentials(base_url: str, credentials: Mapping[str, str], settings: Any = None):
    """``{"access_token": "00D…", "instance_url": "https://…my.salesforce.com"}``; the API
    version is the ``SALESFORCE_API_VERSION`` setting."""
    token = credentials.get("access_token")
    if not token:
        raise DestinationError("Salesforce credentials need access_token")
    version = getattr(settings, "salesforce_api_version", None) or DEFAULT_VERSION
    return SalesforceDestination(token, base_url, version)
