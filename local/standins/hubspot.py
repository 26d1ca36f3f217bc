"""A HubSpot CRM API stand-in: what ingest reads (batch reads of contacts and companies,
v4 associations) and what the destination client writes (batch update, search, properties).

Answers like HubSpot does (docs/destinations.md, "HubSpot", has the sources): requested
properties come back as strings (null when unset); ids it does not have are listed under
``errors`` with HTTP 207; more than 100 inputs is a 400; a property that does not exist or a
value its type refuses fails the whole batch update with a 400 VALIDATION_ERROR; a wrong bearer
token is a 401. Rate limits: ``rate`` requests per rolling 10 s (private apps: 100, 190 on paid
tiers) and the search endpoints' own 5 per second; beyond them a 429 whose body names the
limit in ``policyName``, with no Retry-After (HubSpot documents none). ``rate_limit`` queues
such 429s, ``fail_next`` any answer.

    python -m local.standins.hubspot --port 8025 --token dev-hubspot-token
"""

import re
import urllib.parse
import uuid
from datetime import date

from local.standins.base import RateLimiter, Reply, Request, Standin, reply, serve

KINDS = ("contacts", "companies")
BATCH_LIMIT = 100
SEARCH_LIMIT = 200  # results per search page
LIMITS = {
    "TEN_SECONDLY_ROLLING": "ten_secondly_rolling",
    "DAILY": "daily",
    "SECONDLY": "secondly",
}
TYPES = {"number": {"number"}, "string": {"text", "textarea"}, "date": {"date"}}
TYPES["bool"] = {"booleancheckbox"}
TYPES["enumeration"] = {"select", "radio", "checkbox"}
DEFAULT_PROPERTIES = {
    "contacts": {
        "email": "string",
        "firstname": "string",
        "lastname": "string",
        "company": "string",
        "associatedcompanyid": "number",
    },
    "companies": {"name": "string", "domain": "string", "country": "string"},
}
STRING_LIMIT = 65536  # characters in a string property value

OBJECT = re.compile(r"^/crm/v3/objects/(\w+)/([^/]+)$")  # an id, or a unique value (idProperty)
BATCH = re.compile(r"^/crm/v3/objects/(\w+)/batch/(read|update)$")
SEARCH = re.compile(r"^/crm/v3/objects/(\w+)/search$")
ASSOCIATIONS = re.compile(r"^/crm/v4/associations/(\w+)/(\w+)/batch/read$")
PROPERTY = re.compile(r"^/crm/v3/properties/(\w+)/([\w-]+)$")
GROUPS = re.compile(r"^/crm/v3/properties/(\w+)/groups$")
CREATE = re.compile(r"^/crm/v3/properties/(\w+)/batch/create$")
NOW = "2026-03-02T10:20:00Z"


def error(category: str, message: str, **extra) -> dict:
    """HubSpot's error body."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


def rate_limited(policy: str) -> dict:
    """HubSpot's 429 body (API usage guidelines; the policy names the limit hit)."""
    return {
        "status": "error",
        "message": f"You have reached your {LIMITS[policy]} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }


class HubSpotStandin(Standin):
    kind = "hubspot"

    def __init__(
        self,
        token: str = "dev-hubspot-token",  # noqa: S107 - a local stand-in
        *,
        rate: tuple[int, float] | None = (100, 10.0),
        search_rate: tuple[int, float] | None = (5, 1.0),
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        super().__init__(token, rate=rate, host=host, port=port)
        self.search_limiter = RateLimiter(*search_rate) if search_rate else None
        self.objects: dict[str, dict[str, dict]] = {kind: {} for kind in KINDS}
        self.properties: dict[str, dict[str, dict]] = {
            kind: {name: _property(name, kind_) for name, kind_ in props.items()}
            for kind, props in DEFAULT_PROPERTIES.items()
        }
        self.groups: dict[str, set[str]] = {kind: {f"{kind[:-1]}information"} for kind in KINDS}
        self.associations: dict[tuple[str, str, str], list[str]] = {}
        self.page_size = 500  # associations per object per page
        self.calls: list[tuple[str, list[str]]] = []  # (kind, ids) of each batch read

    # -- seeding -------------------------------------------------------------------------

    def add(self, kind: str, object_id: str, updated_at: str = NOW, **props) -> None:
        """An object; its property names become known properties (strings if new)."""
        for name in props:
            self.properties[kind].setdefault(name, _property(name, "string"))
        self.objects[kind][str(object_id)] = {"updatedAt": updated_at, "properties": props}

    def associate(self, kind: str, object_id: str, to_kind: str, to_ids: list[str]) -> None:
        """Associations both ways, as HubSpot keeps them."""
        self.associations[(kind, str(object_id), to_kind)] = [str(i) for i in to_ids]
        for to_id in to_ids:
            back = self.associations.setdefault((to_kind, str(to_id), kind), [])
            if str(object_id) not in back:
                back.append(str(object_id))

    def populate(self, customers: list[dict]) -> None:
        """The demo data's customers as contacts and their accounts as companies, associated
        (ids as HubSpot gives them: numeric strings), so write-back finds them by e-mail."""
        companies: dict[str, str] = {}
        for n, customer in enumerate(customers):
            account = customer.get("account")
            if account and account not in companies:
                companies[account] = str(5_000_000 + len(companies))
                self.add("companies", companies[account], name=account)
            contact = str(1_000_000 + n)
            self.add("contacts", contact, email=customer["email"], company=account or "")
            if account:
                self.associate("contacts", contact, "companies", [companies[account]])

    def fields_of(self, email: str) -> dict:
        """The properties of the contact with this e-mail (tests, README)."""
        for stored in self.objects["contacts"].values():
            if str(stored["properties"].get("email", "")).lower() == email.lower():
                return dict(stored["properties"])
        return {}

    def contact_id(self, email: str) -> str | None:
        for object_id, stored in self.objects["contacts"].items():
            if str(stored["properties"].get("email", "")).lower() == email.lower():
                return object_id
        return None

    def rate_limit(
        self, retry_after: str | None = None, policy: str = "TEN_SECONDLY_ROLLING", times: int = 1
    ) -> None:
        """The next ``times`` calls answer 429 as HubSpot does when ``policy`` is exceeded."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.failures.extend([Reply(429, rate_limited(policy), headers)] * times)

    def value(self, kind: str, object_id: str, name: str):
        return self.objects[kind][str(object_id)]["properties"].get(name)

    # -- HubSpot's answers ---------------------------------------------------------------

    def unauthorized(self, request: Request) -> Reply:
        message = "Authentication credentials not found."
        return reply(401, error("INVALID_AUTHENTICATION", message))

    def error(self, status: int) -> dict:
        if status == 429:
            return rate_limited("TEN_SECONDLY_ROLLING")
        if status >= 500:
            return error("INTERNAL_ERROR", "internal error")
        return error("VALIDATION_ERROR", f"HTTP {status}")

    def rate_limited(self, retry_after: float) -> Reply:
        return reply(429, rate_limited("TEN_SECONDLY_ROLLING"))  # no Retry-After header

    def observe(self, request: Request) -> None:
        batch, pair = BATCH.match(request.path), ASSOCIATIONS.match(request.path)
        body = request.json() if batch or pair else None
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            return
        if (batch and batch[2] == "read") or pair:
            ids = [str(item.get("id")) for item in body["inputs"] if isinstance(item, dict)]
            self.calls.append((batch[1] if batch else f"{pair[1]}->{pair[2]}", ids))

    def route(self, request: Request) -> Reply:
        path = request.path
        if (found := SEARCH.match(path)) and request.method == "POST":
            wait = self.search_limiter.hit() if self.search_limiter else None
            if wait is not None:
                return reply(429, rate_limited("SECONDLY"))
            return self._known(found[1]) or self._search(found[1], request.json())
        if (found := OBJECT.match(path)) and request.method == "GET":
            return self._known(found[1]) or self._get(found[1], found[2], request)
        if (found := BATCH.match(path)) and request.method == "POST":
            answer = self._read if found[2] == "read" else self._update
            return self._known(found[1]) or self._batch(found[1], request.json(), answer)
        if (found := ASSOCIATIONS.match(path)) and request.method == "POST":
            if not {found[1], found[2]} <= set(KINDS):
                return reply(404, error("OBJECT_NOT_FOUND", "unknown object type"))
            return self._batch(found[1], request.json(), self._associations, found[2])
        if (found := GROUPS.match(path)) and request.method == "POST":
            return self._known(found[1]) or self._group(found[1], request.json())
        if (found := CREATE.match(path)) and request.method == "POST":
            return self._known(found[1]) or self._create(found[1], request.json())
        if (found := PROPERTY.match(path)) and request.method == "GET":
            return self._known(found[1]) or self._property(found[1], found[2])
        return reply(404, error("OBJECT_NOT_FOUND", "no such endpoint"))

    # -- objects -------------------------------------------------------------------------

    def _known(self, kind: str) -> Reply | None:
        if kind in KINDS:
            return None
        return reply(400, error("VALIDATION_ERROR", f"Unable to infer object type from: {kind}"))

    def _batch(self, kind: str, body, answer, *args) -> Reply:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(
            isinstance(item, dict) and "id" in item for item in inputs
        ):
            return reply(400, error("VALIDATION_ERROR", "Invalid input JSON"))
        if len(inputs) > BATCH_LIMIT:
            message = f"Batch input limit is {BATCH_LIMIT}, got {len(inputs)}"
            return reply(400, error("VALIDATION_ERROR", message))
        return answer(kind, body, *args)

    def _object(self, kind: str, object_id: str, names) -> dict:
        stored = self.objects[kind][object_id]
        properties = {name: _wire(stored["properties"].get(name)) for name in names}
        properties["hs_object_id"] = object_id
        return {
            "id": object_id,
            "properties": properties,
            "createdAt": "2026-01-05T08:00:00Z",
            "updatedAt": stored["updatedAt"],
            "archived": False,
        }

    def _get(self, kind: str, object_id: str, request: Request) -> Reply:
        # ``idProperty=email``: the contact by its e-mail, a unique property (HubSpot's
        # "Retrieve a contact" accepts any unique property as the id)
        if request.arg("idProperty") == "email" and kind == "contacts":
            object_id = self.contact_id(urllib.parse.unquote(object_id)) or ""
        if object_id not in self.objects[kind]:
            return reply(404, error("OBJECT_NOT_FOUND", "resource not found"))
        names = [n for value in request.query.get("properties", []) for n in value.split(",")]
        return reply(200, self._object(kind, object_id, names or list(self.properties[kind])))

    def _read(self, kind: str, body: dict) -> Reply:
        ids = [str(item["id"]) for item in body["inputs"]]
        found = [i for i in ids if i in self.objects[kind]]
        names = body.get("properties") or []
        results = [self._object(kind, i, names) for i in found]
        return self._multi(results, [i for i in ids if i not in self.objects[kind]])

    def _update(self, kind: str, body: dict) -> Reply:
        inputs = body["inputs"]
        invalid = []
        for item in inputs:
            properties = item.get("properties")
            if not isinstance(properties, dict):
                return reply(400, error("VALIDATION_ERROR", "Invalid input JSON"))
            for name, value in properties.items():
                problem = self._invalid(kind, name, value)
                if problem:
                    invalid.append({"isValid": False, "error": problem, "name": name})
        if invalid:  # HubSpot refuses the whole batch (no value in our copy of its message)
            names = sorted({entry["name"] for entry in invalid})
            return reply(
                400,
                error(
                    "VALIDATION_ERROR",
                    f"Property values were not valid: {names}",
                    errors=[
                        {
                            "message": entry["error"],
                            "code": entry["error"],
                            "context": {"propertyName": [entry["name"]]},
                        }
                        for entry in invalid
                    ],
                ),
            )
        ids = [str(item["id"]) for item in inputs]
        if len(set(ids)) < len(ids):
            return reply(400, error("VALIDATION_ERROR", "Duplicate IDs found in batch input"))
        results, missing = [], []
        for item in inputs:
            object_id = str(item["id"])
            stored = self.objects[kind].get(object_id)
            if stored is None:
                missing.append(object_id)
                continue
            for name, value in item["properties"].items():
                stored["properties"][name] = None if value in ("", None) else str(value)
            stored["updatedAt"] = NOW
            results.append(self._object(kind, object_id, item["properties"]))
        return self._multi(results, missing)

    def _invalid(self, kind: str, name: str, value) -> str | None:
        prop = self.properties[kind].get(name)
        if prop is None:
            return "PROPERTY_DOESNT_EXIST"
        if value is None or value == "":
            return None  # clears the property
        text = str(value).lower() if isinstance(value, bool) else str(value)
        kind_ = prop["type"]
        if kind_ == "number":
            try:
                float(text)
            except ValueError:
                return "INVALID_FLOAT"
        elif kind_ == "bool" and text not in ("true", "false"):
            return "INVALID_BOOLEAN"
        elif kind_ == "date" and not _is_date(text):
            return "INVALID_DATE"
        elif len(text) > STRING_LIMIT:
            return "INVALID_LENGTH"
        return None

    def _multi(self, results: list[dict], missing: list[str]) -> Reply:
        answer = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": NOW,
            "completedAt": NOW,
        }
        if not missing:
            return reply(200, answer)
        answer["numErrors"] = 1
        answer["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some objects, they may be deleted or not exist.",
                "context": {"ids": missing},
            }
        ]
        return reply(207, answer)

    def _search(self, kind: str, body) -> Reply:
        if not isinstance(body, dict):
            return reply(400, error("VALIDATION_ERROR", "Invalid input JSON"))
        groups = body.get("filterGroups") or []
        filters = [f for group in groups for f in group.get("filters", [])]
        if len(groups) > 5 or any(len(g.get("filters", [])) > 6 for g in groups):
            return reply(400, error("VALIDATION_ERROR", "Too many filter groups or filters"))
        if len(filters) > 18:
            return reply(400, error("VALIDATION_ERROR", "Too many filters (18 at most)"))
        limit = int(body.get("limit") or 10)
        if limit > SEARCH_LIMIT:
            return reply(400, error("VALIDATION_ERROR", f"limit is {SEARCH_LIMIT} at most"))
        matched = [
            object_id
            for object_id, stored in sorted(self.objects[kind].items())
            if not groups
            or any(all(_matches(stored["properties"], f) for f in g["filters"]) for g in groups)
        ]
        start = int(body.get("after") or 0)
        page = matched[start : start + limit]
        names = body.get("properties") or list(DEFAULT_PROPERTIES[kind])
        answer = {"total": len(matched), "results": [self._object(kind, i, names) for i in page]}
        if start + limit < len(matched):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return reply(200, answer)

    def _associations(self, kind: str, body: dict, to_kind: str) -> Reply:
        results = []
        for item in body["inputs"]:
            linked = self.associations.get((kind, str(item["id"]), to_kind), [])
            start = int(item.get("after") or 0)
            page = linked[start : start + self.page_size]
            if not page:
                continue  # HubSpot leaves out objects without associations
            result = {
                "from": {"id": str(item["id"])},
                "to": [
                    {
                        "toObjectId": int(to_id),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 280, "label": None}
                        ],
                    }
                    for to_id in page
                ],
            }
            if start + self.page_size < len(linked):
                result["paging"] = {"next": {"after": str(start + self.page_size), "link": None}}
            results.append(result)
        return reply(200, {"status": "COMPLETE", "results": results})

    # -- properties ----------------------------------------------------------------------

    def _property(self, kind: str, name: str) -> Reply:
        prop = self.properties[kind].get(name)
        if prop is None:
            return reply(404, error("OBJECT_NOT_FOUND", f"Unable to find property {name}"))
        return reply(200, prop)

    def _group(self, kind: str, body) -> Reply:
        name = body.get("name") if isinstance(body, dict) else None
        if not name or not body.get("label"):
            return reply(400, error("VALIDATION_ERROR", "name and label are required"))
        if name in self.groups[kind]:
            return reply(409, error("CONFLICT", f"A property group named {name} already exists"))
        self.groups[kind].add(name)
        return reply(201, {"name": name, "label": body["label"], "displayOrder": -1})

    def _create(self, kind: str, body) -> Reply:
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            return reply(400, error("VALIDATION_ERROR", "Invalid input JSON"))
        for item in inputs:
            name, type_ = item.get("name"), item.get("type")
            if not name or not item.get("label") or type_ not in TYPES:
                return reply(400, error("VALIDATION_ERROR", "name, label and type are required"))
            if item.get("fieldType") not in TYPES[type_]:
                message = f"fieldType {item.get('fieldType')} does not fit type {type_}"
                return reply(400, error("VALIDATION_ERROR", message))
            if item.get("groupName") not in self.groups[kind]:
                return reply(400, error("VALIDATION_ERROR", "property group does not exist"))
            if name in self.properties[kind]:
                return reply(409, error("CONFLICT", f"A property named '{name}' already exists"))
        results = []
        for item in inputs:
            self.properties[kind][item["name"]] = _property(
                item["name"], item["type"], item["fieldType"], item["label"], item["groupName"]
            )
            results.append(self.properties[kind][item["name"]])
        return reply(201, {"status": "COMPLETE", "results": results})


def _property(
    name: str, type_: str, field_type: str = "", label: str = "", group: str = ""
) -> dict:
    return {
        "name": name,
        "label": label or name,
        "type": type_,
        "fieldType": field_type or next(iter(sorted(TYPES[type_]))),
        "groupName": group or "contactinformation",
        "hidden": False,
        "formField": False,
        "calculated": False,
        "hubspotDefined": not group,
        "createdAt": NOW,
        "updatedAt": NOW,
        "archived": False,
        "options": [],
    }


def _wire(value):
    """HubSpot answers every property value as a string (or null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_date(text: str) -> bool:
    if text.isdigit():  # epoch milliseconds at midnight UTC
        return int(text) % 86_400_000 == 0
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _matches(properties: dict, rule: dict) -> bool:
    """EQ and IN compare strings case-insensitively, as HubSpot's search does for text."""
    held = _wire(properties.get(rule.get("propertyName")))
    held = held.lower() if held is not None else None
    if rule.get("operator") == "EQ":
        return held is not None and held == str(rule.get("value", "")).lower()
    if rule.get("operator") == "IN":
        return held is not None and held in {str(v).lower() for v in rule.get("values", [])}
    if rule.get("operator") == "HAS_PROPERTY":
        return held is not None
    return False


def local(credentials: dict, port: int = 0) -> HubSpotStandin:
    """For `make run`: the private-app token of ``destinations.hubspot-dev``."""
    return HubSpotStandin(credentials["access_token"], port=port)


if __name__ == "__main__":
    serve(lambda token, port: HubSpotStandin(token, port=port), "HubSpot CRM API stand-in")
