"""HubSpot CRM reads: webhook events are thin, so profiles are completed by a batch read.

Runs off the request path (a queue consumer), never inside the webhook answer. Standard
library and msgspec only. The client does not retry by itself: it raises
``HubSpotRetryable`` (429, 5xx, network) and the queue's redelivery does the waiting.

A contact's account comes from its primary company: the read-only ``associatedcompanyid``
property names it, so one more batch read of companies gives the names (and the region, for
a contact without one of its own). A change of a company reaches its contacts the other way
round: ``associated`` reads the company's contacts (v4 associations, batched), and their
fresh reads carry the company's new name.
"""

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from nps_sync.core.crm_fields import field_names
from nps_sync.core.identity import customer_key
from nps_sync.core.schema import message

API_URL = "https://api.hubapi.com"
BATCH_SIZE = 100  # HubSpot's limit for /crm/v3/objects/{type}/batch/read
MAX_ASSOCIATION_PAGES = 100  # 500 associations a page: 50,000 contacts of one company
PATHS = {"contact": "contacts", "company": "companies"}
CONTACT_PROPERTIES = (
    "email",
    "company",
    "country",
    "hubspot_owner_id",
    "lifecyclestage",
    "associatedcompanyid",
)
COMPANY_PROPERTIES = ("name", "country", "hubspot_owner_id", "lifecyclestage")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class HubSpotApiError(Exception):
    """HubSpot refused the call for a reason retrying will not fix (401, 403, 400, bad shape)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class HubSpotRetryable(HubSpotApiError):
    """Rate limited (429), HubSpot failing (5xx) or the network: try again later."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


@dataclass(frozen=True)
class PropertyNames:
    """Which HubSpot properties hold the region and which extra ones we keep."""

    region: str | None = "region"
    extra: tuple[str, ...] = ()


def provider_id(object_type: str, object_id: str) -> str:
    """Contact and company ids are separate sequences in HubSpot: keep them apart."""
    return f"{object_type}-{object_id}"


def profile_fields(
    object_type: str, properties: Mapping[str, Any], names: PropertyNames
) -> dict[str, Any]:
    """Canonical CrmProfile fields for the HubSpot properties given; absent stays absent.

    Empty values are left out of the canonical fields (None means "unchanged" downstream);
    extra properties keep them, so clearing one is visible.
    """
    fields: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for name, value in properties.items():
        text = None if value is None else str(value).strip()
        target = _canonical(object_type, name, names)
        if target == "properties":
            extra[name] = text or ""
        elif target and text and target not in fields:
            fields[target] = text
    if extra:
        fields["properties"] = extra
    return fields


def _canonical(object_type: str, name: str, names: PropertyNames) -> str | None:
    if names.region and name == names.region:
        return "region"
    if name in names.extra:
        return "properties"
    if name == "email" and object_type == "contact":
        return "email"
    if (object_type, name) in (("contact", "company"), ("company", "name")):
        return "account"
    return {
        "country": "country",
        "hs_country": "country",
        "hubspot_owner_id": "owner",
        "lifecyclestage": "lifecycle_stage",
    }.get(name)


# HubSpot's answers, as msgspec Structs (unknown fields ignored): the CRM webhook imports this
# module for profile_fields, and pydantic's import was a webhook's whole cold-start budget.
Digits = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,30}\Z")]


class ApiObject(msgspec.Struct, frozen=True, kw_only=True):
    id: Digits
    properties: dict[str, str | None] = msgspec.field(default_factory=dict)
    updatedAt: Annotated[datetime, msgspec.Meta(tz=True)]  # noqa: N815 - HubSpot's field name


class BatchAnswer(msgspec.Struct, frozen=True):
    results: list[ApiObject] = msgspec.field(default_factory=list)


class AssociatedId(msgspec.Struct, frozen=True):
    toObjectId: int | Digits  # noqa: N815


class NextPage(msgspec.Struct, frozen=True):
    after: str


class Paging(msgspec.Struct, frozen=True):
    next: NextPage | None = None


class FromId(msgspec.Struct, frozen=True):
    id: str


class Associations(msgspec.Struct, frozen=True, kw_only=True):
    from_: FromId = msgspec.field(name="from")
    to: list[AssociatedId] = msgspec.field(default_factory=list)
    paging: Paging | None = None


class AssociationsAnswer(msgspec.Struct, frozen=True):
    results: list[Associations] = msgspec.field(default_factory=list)


Opener = Callable[..., Any]


class HubSpotClient:
    def __init__(
        self,
        access_token: str,
        base_url: str = API_URL,
        timeout: float = 10.0,
        opener: Opener = urllib.request.urlopen,
    ):
        parts = urlsplit(base_url)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and parts.hostname in LOCAL_HOSTS
        ):
            raise ValueError("base_url must be https (plain http only for a local fake)")
        self._token = access_token
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._open = opener

    def batch_read(
        self, object_type: str, ids: Iterable[str], properties: Iterable[str]
    ) -> list[ApiObject]:
        """Read objects by id, 100 per call. Ids HubSpot does not find are left out."""
        unique = list(dict.fromkeys(str(i) for i in ids))
        wanted = sorted(set(properties))
        found: list[ApiObject] = []
        for start in range(0, len(unique), BATCH_SIZE):
            chunk = unique[start : start + BATCH_SIZE]
            body = {"properties": wanted, "inputs": [{"id": i} for i in chunk]}
            answer = self._post(f"/crm/v3/objects/{PATHS[object_type]}/batch/read", body)
            try:
                found.extend(msgspec.convert(answer, BatchAnswer).results)
            except msgspec.ValidationError as error:
                raise HubSpotApiError(f"unexpected batch read answer: {message(error)}") from None
        return found

    def associated(
        self, object_type: str, ids: Iterable[str], to_type: str
    ) -> dict[str, list[str]]:
        """The ids of the ``to_type`` objects associated with each object (v4 batch read, 100
        objects a call, following each object's pages)."""
        found: dict[str, list[str]] = {}
        pending = [{"id": i} for i in dict.fromkeys(str(i) for i in ids)]
        path = f"/crm/v4/associations/{PATHS[object_type]}/{PATHS[to_type]}/batch/read"
        for _ in range(MAX_ASSOCIATION_PAGES):
            if not pending:
                return found
            chunk, pending = pending[:BATCH_SIZE], pending[BATCH_SIZE:]
            try:
                answer = msgspec.convert(self._post(path, {"inputs": chunk}), AssociationsAnswer)
            except msgspec.ValidationError as error:
                raise HubSpotApiError(f"unexpected associations answer: {message(error)}") from None
            for result in answer.results:
                found.setdefault(result.from_.id, []).extend(str(t.toObjectId) for t in result.to)
                if result.paging and result.paging.next:
                    pending.append({"id": result.from_.id, "after": result.paging.next.after})
        raise HubSpotApiError("too many pages of associations")

    def _post(self, path: str, body: dict) -> Any:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self._base + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with self._open(request, timeout=self._timeout) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as error:
            raise _http_error(error) from error
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise HubSpotRetryable(f"HubSpot unreachable: {type(error).__name__}") from error
        try:
            return json.loads(payload)
        except ValueError as error:
            raise HubSpotApiError("HubSpot answered with a body that is not JSON") from error


def _http_error(error: urllib.error.HTTPError) -> HubSpotApiError:
    status = error.code
    if status == 429:
        return HubSpotRetryable(
            "HubSpot rate limit", status, _retry_after(error.headers.get("Retry-After"))
        )
    if status >= 500:
        return HubSpotRetryable(f"HubSpot answered {status}", status)
    return HubSpotApiError(f"HubSpot refused the call with {status}", status)


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None  # an HTTP date: let the queue's own back-off decide
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def fetch_profiles(
    client: HubSpotClient,
    wanted: Iterable[tuple[str, str]],
    names: PropertyNames = PropertyNames(),
) -> list[dict[str, Any]]:
    """CrmProfile-ready dicts for the (object_type, id) pairs HubSpot still has.

    ``event_id`` names the read's version (the object's ``updatedAt``; for a contact the newer
    of its own and its primary company's): fetching the same version twice stores nothing
    new, and a later version wins by ``source_updated_at``.
    """
    pairs = list(dict.fromkeys((t, str(i)) for t, i in wanted if t in PATHS))
    extra = tuple(p for p in (names.region, *names.extra) if p)
    contacts = client.batch_read(
        "contact", [i for t, i in pairs if t == "contact"], CONTACT_PROPERTIES + extra
    )
    primary = {
        c.id: c.properties.get("associatedcompanyid")
        for c in contacts
        if (c.properties.get("associatedcompanyid") or "").isdigit()
    }
    company_ids = [i for t, i in pairs if t == "company"] + list(primary.values())
    companies = client.batch_read("company", company_ids, COMPANY_PROPERTIES + extra)
    by_id = {c.id: c for c in companies}
    wanted_companies = {i for t, i in pairs if t == "company"}
    profiles = []
    for contact in contacts:
        properties = dict(contact.properties)
        company = by_id.get(primary.get(contact.id, ""))
        updated = contact.updatedAt
        if company is not None:
            # The primary company's name beats free text; its region fills a contact's
            # missing one. The read is as new as the newer of the two objects.
            if name := company.properties.get("name"):
                properties["company"] = name
            region = names.region
            if region and not (properties.get(region) or "").strip():
                properties[region] = company.properties.get(region)
            updated = max(updated, company.updatedAt)
        profiles.append(_profile("contact", contact, properties, names, updated))
    for company in companies:
        if company.id in wanted_companies:
            profiles.append(_profile("company", company, company.properties, names))
    return profiles


def _profile(
    object_type: str,
    item: ApiObject,
    properties: Mapping[str, Any],
    names: PropertyNames,
    updated: datetime | None = None,
) -> dict[str, Any]:
    fields = profile_fields(object_type, properties, names)
    email = fields.get("email")
    updated = updated or item.updatedAt
    version = int(updated.timestamp() * 1000)
    return {
        "provider": "hubspot",
        "source_id": provider_id(object_type, item.id),
        "object_type": object_type,
        "customer_key": customer_key(email, None, "hubspot", provider_id(object_type, item.id)),
        "event_id": f"fetch-{object_type}-{item.id}-{version}",
        "source_updated_at": updated.isoformat(),
        **fields,
    }


def hubspot_property_names(settings):
    """What the HubSpot adapter and the enrichment reader look for, from the same setting."""
    names = field_names(settings, "hubspot")
    return PropertyNames(region=names.region, extra=names.properties)
