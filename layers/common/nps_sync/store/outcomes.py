"""Storage of revenue outcomes (docs/outcomes.md): the outcome counters in AggregatesTable
(pk ``outcome:<dimension>#<value>``, sk ``<granularity>#<period>`` or ``now#now``, one number
attribute per counter, ``hwm#<shard>`` marks), and the at-risk listing from RecordsTable's
sparse indexes of PROFILE items. Query/GetItem on the request path, Scan only for reconcile.
"""

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3

from nps_sync.core.aggregates import OVERALL
from nps_sync.core.errors import BadRequest
from nps_sync.core.outcomes import (
    AT_RISK,
    AT_RISK_INDEXES,
    AT_RISK_VALUE,
    PK_PREFIX,
    OutcomeKey,
    Tally,
    customer_of,
    segment,
    stored_state,
)
from nps_sync.store import dynamo
from nps_sync.store.counters import Counters, amounts_of
from nps_sync.store.customers import CustomerRecords


def tally_of(item: dict[str, Any]) -> Tally:
    return amounts_of(item)


class OutcomesStore:
    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb")
        self.counters = Counters(self.client, table_name, tally_of)

    # --- the aggregator's writes -----------------------------------------------------------

    def add(
        self,
        key: OutcomeKey,
        lane: str,
        tally: Tally,
        mark: str,
        *,
        below: str | None = None,
        expected: str | None = None,
        forget: tuple[str, ...] = (),
    ) -> None:
        """The outcome step's write, the same protocol as the NPS counters' (store/counters.py)."""
        self.counters.add(
            key,
            lane,
            dict(sorted(tally.items())),
            mark,
            below=below,
            expected=expected,
            forget=forget,
        )

    # --- reads for the API (Query only) ----------------------------------------------------

    def series(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Tally]:
        """period -> counters for one dimension value, periods first..last (inclusive) or all."""
        pk = OutcomeKey(dimension, value, granularity, "").pk
        return self.counters.series(pk, granularity, first, last)

    # --- reconcile -------------------------------------------------------------------------

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every outcome counter."""
        yield from self._pages(
            {
                "TableName": self.table_name,
                "FilterExpression": "begins_with(pk, :o)",
                "ExpressionAttributeValues": {":o": {"S": PK_PREFIX}},
                "ConsistentRead": True,
            },
            "scan",
        )

    def replace(self, key: OutcomeKey, stored: Tally | None, expected: Tally) -> bool:
        """Set the counters to ``expected`` if they still are ``stored``; marks stay."""
        return self.counters.replace(key, stored or {}, expected)

    # --- plumbing --------------------------------------------------------------------------

    def _pages(self, kwargs: dict[str, Any], operation: str = "query") -> Iterator[dict[str, Any]]:
        return dynamo.pages(self.client, operation, kwargs)



class AtRiskListing:
    """GET /outcomes/at-risk from RecordsTable's sparse at-risk indexes of PROFILE items
    (outcomes.at_risk_attributes). A segment other than overall is picked out of the index
    with ``segment``, the rule the counters use, reading pages until the page is full."""

    def __init__(self, records: CustomerRecords):
        self.records = records

    def at_risk(
        self, dimension: str, value: str, order: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        index, range_key = AT_RISK_INDEXES[order]
        listing = f"{order}/{dimension}#{value}"
        start = _decode_cursor(cursor, listing) if cursor else None
        found: list[dict[str, Any]] = []
        while True:
            items, start = self.records.index_page(
                index, (AT_RISK, AT_RISK_VALUE), max(limit, PAGE), start
            )
            for item in items:
                state = stored_state(item)
                if dimension != OVERALL and segment(item, state, dimension) != value:
                    continue
                found.append(_entry(item, state))
                if len(found) == limit:
                    keys = ("pk", "sk", AT_RISK, range_key)
                    return found, _encode_cursor({k: item[k]["S"] for k in keys}, listing)
            if not start:
                return found, None


PAGE = 100  # index items read per Query when picking a segment out


def _entry(profile: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """What at_risk_page shows of an at-risk PROFILE."""
    latest = state.get("latest") or {}
    entry = {
        "customer_key": {"S": customer_of(profile) or ""},
        "mrr_amount": {"N": str(max(0, int(profile.get("mrr_amount", {}).get("N", "0"))))},
        "score": {"N": str(latest.get("score", 0))},
        "submitted_at": {"S": str(latest.get("submitted_at") or "")},
    }
    for name in ("plan", "mrr_currency", "account"):
        if profile.get(name, {}).get("S"):
            entry[name] = profile[name]
    return entry


def _encode_cursor(key: dict[str, str], listing: str) -> str:
    raw = json.dumps({"listing": listing, "key": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, listing: str) -> dict[str, Any]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = {str(name): {"S": str(value)} for name, value in raw["key"].items()}
        belongs = raw["listing"] == listing
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadRequest("cursor is not one this API gave out") from error
    if not belongs:
        raise BadRequest("cursor belongs to another listing")
    return key
