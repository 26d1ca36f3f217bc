"""Reconcile for revenue outcomes (docs/outcomes.md), three checks from scratch:

1. state: every billing PROFILE's ``outcome`` equals ``derive`` over its stored responses;
2. counters: every outcome counter equals the sum of ``contribution`` over the PROFILE items;
3. index: the at-risk index holds exactly ``at_risk_entries`` of the PROFILE items.

``check_outcomes`` only compares (pure); ``repair_outcomes`` re-derives the state (the stream
then moves counters and index by the difference), sets the counters conditional on them being
unchanged since the scan, and puts/deletes index items. nps_sync.reconcile runs both.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .customer_records import CustomerRecords
from .observability import customer_ref
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
    key: str  # the customer key (state), the counter key, or "<pk>/<sk>" of an index item
    stored: Any
    expected: Any
    customer: str | None = None  # whose it is; shown only as customer_ref
    target: Any = None  # what the repair needs: billing stamp, OutcomeKey or (pk, sk)

    def as_dict(self) -> dict[str, Any]:
        """For reports and logs: the customer key (an e-mail, often) replaced by its
        customer_ref wherever it appears (the state's key, index keys and items)."""
        return {
            "outcome": self.kind,
            "key": _scrub(self.key, self.customer),
            "stored": _scrub(self.stored, self.customer),
            "expected": _scrub(self.expected, self.customer),
        }


def _scrub(value: Any, customer: str | None) -> Any:
    if not customer:
        return value
    if isinstance(value, str):
        return value.replace(customer, customer_ref(customer))
    if isinstance(value, Mapping):
        return {k: _scrub(v, customer) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, customer) for v in value]
    return value


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
    profile_items: Iterable[Mapping[str, Any]],
    response_items: Iterable[Mapping[str, Any]],
    store_items: Iterable[Mapping[str, Any]],
    dimensions: Iterable[str],
) -> OutcomeReport:
    """Compare, from the scans of RecordsTable (PROFILE and RESP items) and of the outcome
    items of AggregatesTable (OutcomesStore.scan). Writes nothing."""
    dimensions = tuple(dimensions)
    report = OutcomeReport()
    by_customer: dict[str, list[Mapping[str, Any]]] = {}
    for item in response_items:
        if "customer_key" in item:
            by_customer.setdefault(item["customer_key"]["S"], []).append(item)
    profiles = [p for p in profile_items if is_billing_profile(p)]
    report.profiles = len(profiles)

    for profile in profiles:  # 1. state
        customer = customer_of(profile) or ""
        expected = derive(profile, by_customer.get(customer, []))
        if expected != stored_state(profile):
            report.differences.append(
                OutcomeDifference(
                    "state",
                    customer,
                    stored_state(profile),
                    expected,
                    customer=customer,
                    target=profile[BILLING_STAMP],
                )
            )

    stored_counters: dict[OutcomeKey, Tally] = {}
    stored_index: dict[tuple[str, str], dict[str, Any]] = {}
    for item in store_items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk.startswith(AT_RISK_PREFIX):
            stored_index[(pk, sk)] = dict(item)
        elif pk.split("#", 1)[0].removeprefix("outcome:") in dimensions:
            stored_counters[OutcomeKey.parse(pk, sk)] = {
                k: v for k, v in tally_of(dict(item)).items() if v
            }

    expected_tallies = expected_counters(profiles, dimensions)  # 2. counters
    for key in sorted({*stored_counters, *expected_tallies}):
        stored, expected = stored_counters.get(key, {}), expected_tallies.get(key, {})
        if stored != expected:
            report.differences.append(
                OutcomeDifference("counters", str(key), stored, expected, target=key)
            )

    expected_index: dict[tuple[str, str], dict[str, Any]] = {}  # 3. index
    for profile in profiles:
        expected_index.update(at_risk_entries(profile, dimensions))
    for key in sorted({*stored_index, *expected_index}):
        if key[0].removeprefix(AT_RISK_PREFIX).split("#", 1)[0] not in dimensions:
            continue
        stored_item, expected_item = stored_index.get(key), expected_index.get(key)
        if stored_item != expected_item:
            customer = (expected_item or stored_item or {}).get("customer_key", {}).get("S")
            report.differences.append(
                OutcomeDifference(
                    "index", "/".join(key), stored_item, expected_item, customer, target=key
                )
            )
    return report


def repair_outcomes(
    differences: Iterable[OutcomeDifference], records: CustomerRecords, store: OutcomesStore
) -> int:
    """Repair what check_outcomes found; the number repaired."""
    fixed = 0
    for difference in differences:
        if difference.kind == "state":
            fixed += records.set_outcome(
                difference.key, to_attribute(difference.expected), difference.target
            )
        elif difference.kind == "counters":
            fixed += store.replace(difference.target, difference.stored, difference.expected)
        else:
            expected = difference.expected
            store.index([expected] if expected else [], [] if expected else [difference.target])
            fixed += 1
    return fixed
