"""Reconcile for revenue outcomes (docs/outcomes.md), three checks from scratch:

1. state: every billing PROFILE's ``outcome`` equals ``derive`` over its stored responses;
2. counters: every outcome counter equals the sum of ``contribution`` over the PROFILE items;
3. index: the at-risk index holds exactly ``at_risk_entries`` of the PROFILE items.

``fix`` re-derives the state (the stream then moves counters and index by the difference),
sets the counters conditional on them being unchanged since the scan, and puts/deletes index
items.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .customer_records import CustomerRecords
from .outcome_store import OutcomesStore, tally_of
from .outcomes import (
    AT_RISK_PREFIX,
    BILLING_STAMP,
    OutcomeKey,
    Tally,
    add_tallies,
    at_risk_entries,
    contribution,
    customer_of,
    derive,
    is_billing_profile,
    stored_state,
    to_attribute,
)


@dataclass(frozen=True)
class OutcomeDifference:
    kind: str  # state | counters | index
    key: str
    stored: Any
    expected: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.kind,
            "key": self.key,
            "stored": self.stored,
            "expected": self.expected,
        }


@dataclass
class OutcomeReport:
    profiles: int = 0
    differences: list[OutcomeDifference] = field(default_factory=list)
    fixed: int = 0


def expected_counters(
    profiles: Iterable[Mapping[str, Any]], dimensions: Iterable[str]
) -> dict[OutcomeKey, Tally]:
    dimensions = tuple(dimensions)
    expected: dict[OutcomeKey, Tally] = {}
    for profile in profiles:
        for key, tally in contribution(profile, dimensions).items():
            expected[key] = add_tallies(expected.get(key, {}), tally)
    return expected


def check_outcomes(
    records: CustomerRecords,
    store: OutcomesStore,
    dimensions: Iterable[str],
    response_items: Iterable[Mapping[str, Any]],
    fix: bool = False,
) -> OutcomeReport:
    dimensions = tuple(dimensions)
    report = OutcomeReport()
    by_customer: dict[str, list[Mapping[str, Any]]] = {}
    for item in response_items:
        if "customer_key" in item:
            by_customer.setdefault(item["customer_key"]["S"], []).append(item)
    profiles = [p for p in records.profile_items() if is_billing_profile(p)]
    report.profiles = len(profiles)

    for profile in profiles:  # 1. state
        customer = customer_of(profile) or ""
        expected = derive(profile, by_customer.get(customer, []))
        if expected != stored_state(profile):
            report.differences.append(
                OutcomeDifference("state", customer, stored_state(profile), expected)
            )
            if fix:
                report.fixed += records.set_outcome(
                    customer, to_attribute(expected), profile[BILLING_STAMP]
                )

    stored_counters: dict[OutcomeKey, Tally] = {}
    stored_index: dict[tuple[str, str], dict[str, Any]] = {}
    for item in store.scan():
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk.startswith(AT_RISK_PREFIX):
            stored_index[(pk, sk)] = item
        elif pk.split("#", 1)[0].removeprefix("outcome:") in dimensions:
            stored_counters[OutcomeKey.parse(pk, sk)] = {
                k: v for k, v in tally_of(item).items() if v
            }

    expected_tallies = expected_counters(profiles, dimensions)  # 2. counters
    for key in sorted({*stored_counters, *expected_tallies}):
        stored, expected = stored_counters.get(key, {}), expected_tallies.get(key, {})
        if stored != expected:
            report.differences.append(OutcomeDifference("counters", str(key), stored, expected))
            if fix:
                report.fixed += store.replace(key, stored, expected)

    expected_index: dict[tuple[str, str], dict[str, Any]] = {}  # 3. index
    for profile in profiles:
        expected_index.update(at_risk_entries(profile, dimensions))
    for key in sorted({*stored_index, *expected_index}):
        if key[0].removeprefix(AT_RISK_PREFIX).split("#", 1)[0] not in dimensions:
            continue
        stored_item, expected_item = stored_index.get(key), expected_index.get(key)
        if stored_item != expected_item:
            report.differences.append(
                OutcomeDifference("index", "/".join(key), stored_item, expected_item)
            )
            if fix:
                store.index(
                    [expected_item] if expected_item else [], [] if expected_item else [key]
                )
                report.fixed += 1
    return report
