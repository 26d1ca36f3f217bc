"""HubSpot as a destination: contact and company properties through the CRM v3 objects API
(batch update, batch read, search) and the properties API for ``check``. Facts and sources:
docs/destinations.md, "HubSpot"."""

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
    Target,
    Write,
    chunks,
    text_value,
)
from nps_sync.destinations.http import Api, bearer

OBJECTS = {PERSON: "contacts", ORGANIZATION: "companies"}
BATCH_LIMIT = 100  # inputs per batch read/update
SEARCH_VALUES = 100  # values in one IN filter
SEARCH_PAGE = 200  # results per search page
GROUP = "nps_sync"
TYPES = {  # FieldSpec type -> (HubSpot type, fieldType)
    "number": ("number", "number"),
    "text": ("string", "text"),
    "date": ("date", "date"),
    "bool": ("bool", "booleancheckbox"),
}


wire = text_value  # HubSpot's form of a value (an empty string clears)


class HubSpotDestination:
    kind = "hubspot"
    batch_limit = BATCH_LIMIT
    levels: tuple[Level, ...] = (PERSON, ORGANIZATION)

    def __init__(self, access_token: str, base_url: str = "https://api.hubapi.com", **options):
        self.api = Api(base_url, bearer(access_token), **options)

    def lookup(self, targets: Sequence[Target]) -> dict[str, str]:
        """Contacts by e-mail, companies by name, 100 values per search (an IN filter: its
        string values in lower case); a value more than one object holds is no match."""
        found: dict[str, str] = {}
        people = [t for t in targets if t.level == PERSON and t.email]
        for group in chunks(people, SEARCH_VALUES):
            emails = sorted({t.email.lower() for t in group})  # type: ignore[union-attr]
            ids = self._search("contacts", "email", emails)
            for target in group:
                match = ids.get(target.email.lower(), [])  # type: ignore[union-attr]
                if len(match) == 1:
                    found[target.key] = match[0]
        companies = [t for t in targets if t.level == ORGANIZATION and t.name]
        for group in chunks(companies, SEARCH_VALUES):
            names = sorted({t.name.lower() for t in group})  # type: ignore[union-attr]
            ids = self._search("companies", "name", names)
            for target in group:
                match = ids.get(target.name.lower(), [])  # type: ignore[union-attr]
                if len(match) == 1:
                    found[target.key] = match[0]
        return found

    def _search(self, kind: str, prop: str, values: list[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        body: dict[str, Any] = {
            "filterGroups": [
                {"filters": [{"propertyName": prop, "operator": "IN", "values": values}]}
            ],
            "properties": [prop],
            "limit": SEARCH_PAGE,
        }
        while True:
            answer = self.api.request("POST", f"/crm/v3/objects/{kind}/search", json_body=body)
            for item in answer.body.get("results", []):
                held = (item.get("properties") or {}).get(prop)
                if held is not None:
                    found.setdefault(str(held).lower(), []).append(str(item["id"]))
            after = ((answer.body.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return found
            body["after"] = after

    def current(
        self, level: Level, object_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        kind = OBJECTS[level]
        held: dict[str, dict[str, Any]] = {}
        for group in chunks(list(object_ids), BATCH_LIMIT):
            answer = self.api.request(
                "POST",
                f"/crm/v3/objects/{kind}/batch/read",
                json_body={"inputs": [{"id": i} for i in group], "properties": list(fields)},
                expect=(207,),
            )
            for item in answer.body.get("results", []):
                properties = item.get("properties") or {}
                held[str(item["id"])] = {name: properties.get(name) for name in fields}
        return held

    def write(self, writes: Sequence[Write]) -> list[Result]:
        results: dict[int, Result] = {}
        for level, kind in OBJECTS.items():
            mine = [w for w in writes if w.target.level == level]
            for group in chunks(mine, BATCH_LIMIT):
                for result in self._update(kind, group):
                    results[id(result.write)] = result
        return [results[id(w)] for w in writes]

    def _update(self, kind: str, group: Sequence[Write]) -> list[Result]:
        inputs = [
            {"id": w.target.object_id, "properties": {k: wire(v) for k, v in w.values.items()}}
            for w in group
        ]
        answer = self.api.request(
            "POST",
            f"/crm/v3/objects/{kind}/batch/update",
            json_body={"inputs": inputs},
            expect=(207, 400),
        )
        if answer.status == 400:  # HubSpot refuses the whole batch for one bad value
            reason = _reason(answer.body)
            return [Result(w, FAILED, reason) for w in group]
        missing: dict[str, str] = {}
        for error in (answer.body or {}).get("errors", []):
            for object_id in (error.get("context") or {}).get("ids", []):
                missing[str(object_id)] = error.get("category") or "refused"
        return [
            Result(w, FAILED, missing[str(w.target.object_id)])
            if str(w.target.object_id) in missing
            else Result(w, WRITTEN)
            for w in group
        ]

    def check(self, specs: Mapping[Level, Sequence[FieldSpec]], create: bool = True) -> Check:
        missing: list[str] = []
        created: list[str] = []
        for level, fields in specs.items():
            kind = OBJECTS[level]
            absent = [
                spec
                for spec in fields
                if self.api.request(
                    "GET", f"/crm/v3/properties/{kind}/{spec.name}", expect=(404,)
                ).status
                == 404
            ]
            if absent and create:
                self.api.request(
                    "POST",
                    f"/crm/v3/properties/{kind}/groups",
                    json_body={"name": GROUP, "label": "NPS (nps-sync)", "displayOrder": -1},
                    expect=(409,),  # it exists already
                )
                self.api.request(
                    "POST",
                    f"/crm/v3/properties/{kind}/batch/create",
                    json_body={"inputs": [_definition(spec) for spec in absent]},
                )
                created += [f"{level}.{spec.name}" for spec in absent]
            elif absent:
                missing += [f"{level}.{spec.name}" for spec in absent]
        message = "missing: " + ", ".join(missing) if missing else "ok"
        return Check(ok=not missing, missing=missing, created=created, message=message)


def _definition(spec: FieldSpec) -> dict[str, Any]:
    type_, field_type = TYPES[spec.type]
    definition: dict[str, Any] = {
        "name": spec.name,
        "label": spec.label,
        "type": type_,
        "fieldType": field_type,
        "groupName": GROUP,
    }
    if type_ == "bool":
        definition["options"] = [
            {"label": "Yes", "value": "true", "displayOrder": 0},
            {"label": "No", "value": "false", "displayOrder": 1},
        ]
    return definition


def _reason(body: Any) -> str:
    """Category and property names only: HubSpot's message may quote the value."""
    if not isinstance(body, dict):
        return "refused (HTTP 400)"
    names = sorted(
        {
            name
            for error in body.get("errors") or []
            for name in ((error.get("context") or {}).get("propertyName") or [])
        }
    )
    category = body.get("category") or "VALIDATION_ERROR"
    return f"{category}: {', '.join(names)}" if names else category


def from_credentials(base_url: str, credentials: Mapping[str, str], settings: Any = None):
    """``{"access_token": "pat-…"}`` (a private app's token)."""
    token = credentials.get("access_token")
    if not token:
        raise DestinationError("HubSpot credentials need access_token")
    return HubSpotDestination(token, base_url)
