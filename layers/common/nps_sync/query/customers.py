"""GET /customers/{key} (one customer's view) and DELETE /customers/{key} (erasure).

Erasure deletes every item under each pk the by_customer index names for the customer
(responses, provider profiles, identity links, each with its RAW# payloads) and everything
under CUST#<key>. The key is read as identity reads keys (``Ana@Example.com`` is
``ana@example.com``), and an alias (a customer id, ``stripe:cus_…``) erases the customer it is
linked to. The aggregates and the at-risk index follow through the stream's REMOVE records.
"""

from collections.abc import Mapping
from typing import Any

from nps_sync.core import identity
from nps_sync.core.errors import NotFound
from nps_sync.store.customers import RESPONSE_SK, CustomerRecords, customer_pk
from nps_sync.store.links import Links

HIDDEN = {"pk", "sk", "gsi1pk", "gsi1sk", "raw", "type"}


def plain(value: Mapping[str, Any]) -> Any:
    """One DynamoDB JSON value as JSON-ready Python (binary values are left out)."""
    ((kind, content),) = value.items()
    if kind == "S":
        return content
    if kind == "N":
        number = float(content)
        return int(number) if number.is_integer() and "." not in content else number
    if kind == "BOOL":
        return content
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: plain(v) for k, v in content.items() if "B" not in v}
    if kind == "L":
        return [plain(v) for v in content if "B" not in v]
    if kind in ("SS", "NS"):
        return sorted(content)
    return None


def view(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: plain(value)
        for name, value in item.items()
        if name not in HIDDEN and "B" not in value and "BS" not in value
    }


def customer_view(records: CustomerRecords, key: str) -> dict[str, Any]:
    keys = erasure_keys(records, key)
    if not keys:
        raise NotFound("no such customer")
    customer_key = keys[0]
    profile = records.profile(customer_key)
    indexed = records.by_customer(customer_key)
    responses = [view(i) for i in indexed if i.get("sk", {}).get("S") == RESPONSE_SK]
    responses.sort(key=lambda r: (r.get("submitted_at", ""), r.get("response_id", "")))
    profiles = [view(i) for i in indexed if i["gsi1sk"]["S"].startswith("PROF#")]
    if profile is None and not responses and not profiles:
        raise NotFound("no such customer")
    latest = responses[-1] if responses else None
    return {
        "customer_key": customer_key,
        "profile": view(profile) if profile else None,
        "provider_profiles": profiles,
        "responses": responses,
        "latest": (
            {
                "score": latest.get("score"),
                "category": latest.get("category"),
                "submitted_at": latest.get("submitted_at"),
                "provider": latest.get("provider"),
                "response_id": latest.get("response_id"),
            }
            if latest
            else None
        ),
    }


KINDS = {"RESP#": "responses", "PROF#": "provider_profiles", "ID#": "identity_links"}


def erasure_keys(records: CustomerRecords, key: str) -> list[str]:
    """The customer keys a request names, the customer first: the key as identity normalizes
    it, preceded by the customer its link points to when it is an alias (an erasure takes
    both: records that arrived under an alias just before its link are not moved yet)."""
    normalized = identity.customer_key(email=key, customer_id=key)
    if normalized is None:
        return []
    return list(dict.fromkeys([Links(records).resolve(normalized, []), normalized]))


def erase(records: CustomerRecords, key: str) -> dict[str, int]:
    """Delete everything stored about the customer; counts per kind (0s when nothing known)."""
    counts = dict.fromkeys((*KINDS.values(), "raw_payloads", "profile_items"), 0)
    keys: list[dict[str, Any]] = []
    for customer_key in erasure_keys(records, key):
        keys.extend(_customer_items(records, customer_key, counts))
    unique = {(k["pk"]["S"], k["sk"]["S"]): k for k in keys}
    records.delete(list(unique.values()))
    return counts


def erase_customer(records: CustomerRecords, key: str) -> dict[str, int]:
    """DELETE /customers/{key}: erase, or NotFound (404) when nothing was stored under it."""
    deleted = erase(records, key)
    if not any(deleted.values()):
        raise NotFound("no such customer")
    return deleted


def _customer_items(
    records: CustomerRecords, customer_key: str, counts: dict[str, int]
) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = []
    for item in records.by_customer(customer_key):
        kind = next((v for k, v in KINDS.items() if item["gsi1sk"]["S"].startswith(k)), None)
        for stored in records.partition(item["pk"]["S"]):
            if stored["sk"]["S"].startswith("RAW#"):
                counts["raw_payloads"] += 1
            elif kind is not None and stored["sk"]["S"] == item["sk"]["S"]:
                counts[kind] += 1
            keys.append(stored)
    for stored in records.partition(customer_pk(customer_key)):
        counts["profile_items"] += 1
        keys.append(stored)
    return keys
