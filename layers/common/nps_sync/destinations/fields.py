"""What we write into a destination, by logical field, and the provider field names it
goes to (a destination's ``fields`` mapping overrides the defaults). One place decides the
values, so every provider writes the same thing and "unchanged" compares like with like."""

from collections.abc import Mapping
from typing import Any

from nps_sync.destinations.base import ORGANIZATION, PERSON, FieldSpec, Level, Value

# logical name -> (level, type, label); the order is the order of `check`'s report
FIELDS: dict[str, tuple[Level, str, str]] = {
    "score": (PERSON, "number", "NPS score"),
    "category": (PERSON, "text", "NPS category"),
    "answered_at": (PERSON, "date", "NPS answer date"),
    "survey": (PERSON, "text", "NPS survey"),
    "channel": (PERSON, "text", "NPS channel"),
    "comment": (PERSON, "text", "NPS comment"),
    "account_nps": (ORGANIZATION, "number", "Account NPS"),
    "account_n": (ORGANIZATION, "number", "Account NPS responses"),
    "at_risk": (ORGANIZATION, "bool", "NPS at risk"),
    "mrr_at_risk": (ORGANIZATION, "number", "MRR at risk (NPS)"),
}
CRM = ("hubspot", "salesforce")


def default_name(kind: str, logical: str) -> str:
    """``nps_score``, ``nps_account_nps`` …; Salesforce custom fields end in ``__c``
    (``NPS_Score__c``), Chargebee's start with ``cf_``."""
    name = "nps_" + logical
    if kind == "salesforce":
        return "NPS_" + "_".join(part.title() for part in name.split("_")[1:]) + "__c"
    if kind == "chargebee":
        return "cf_" + name
    return name


def default_names(kind: str) -> frozenset[str]:
    """Every field our write-back sets by default: a receiver does not read them back, so our
    own write coming back as the provider's webhook changes nothing (no echo loop)."""
    return frozenset(default_name(kind, logical) for logical in FIELDS)


def mapping(kind: str, overrides: Mapping[str, str], include_comment: bool) -> dict[str, str]:
    """Logical field -> provider field, for the fields this destination writes."""
    levels = (PERSON, ORGANIZATION) if kind in CRM else (PERSON,)
    return {
        logical: overrides.get(logical) or default_name(kind, logical)
        for logical, (level, _, _) in FIELDS.items()
        if level in levels and (logical != "comment" or include_comment)
    }


def specs(fields: Mapping[str, str]) -> dict[Level, list[FieldSpec]]:
    found: dict[Level, list[FieldSpec]] = {}
    for logical, name in fields.items():
        level, kind, label = FIELDS[logical]
        found.setdefault(level, []).append(FieldSpec(name, kind, label))  # type: ignore[arg-type]
    return found


def person_values(latest: Any | None, fields: Mapping[str, str]) -> dict[str, Value]:
    """From the customer's latest response (a StoredResponse), or None: every field cleared
    (an erasure)."""
    values: dict[str, Value] = {
        "score": latest.score if latest else None,
        "category": latest.category if latest else None,
        "answered_at": (latest.submitted_at or "")[:10] or None if latest else None,
        "survey": (latest.survey or None) if latest else None,
        "channel": (latest.channel or None) if latest else None,
        "comment": (latest.comment or None) if latest else None,
    }
    return {fields[k]: v for k, v in values.items() if k in fields}


def organization_values(summary: Mapping[str, Any] | None, fields: Mapping[str, str]) -> dict:
    """From an account's summary (``nps``, ``n``, ``at_risk``, ``mrr_at_risk``), or None."""
    summary = summary or {}
    values: dict[str, Value] = {
        "account_nps": summary.get("nps"),
        "account_n": summary.get("n"),
        "at_risk": summary.get("at_risk"),
        "mrr_at_risk": summary.get("mrr_at_risk"),
    }
    return {fields[k]: v for k, v in values.items() if k in fields}
