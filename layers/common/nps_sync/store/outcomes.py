"""Storage of revenue outcomes (docs/outcomes.md): the outcome counters in AggregatesTable
(pk ``outcome:<dimension>#<value>``, sk ``<granularity>#<period>`` or ``now#now``, one number
attribute per counter, ``hwm#<shard>`` marks), and the at-risk listing from RecordsTable's
sparse indexes of PROFILE items. Query/GetItem only (reconcile reads the counters with the NPS
ones, in AggregatesStore.scan_items).
"""

import json
import zlib
from collections.abc import Mapping
from typing import Any

from nps_sync.core.aggregates import OVERALL
from nps_sync.core.errors import BadRequest
from nps_sync.core.models import StoredProfile
from nps_sync.core.outcomes import (
    AT_RISK,
    AT_RISK_INDEXES,
    AT_RISK_VALUE,
    OutcomeKey,
    Tally,
    add_tallies,
    segment,
    stored_state,
)
from nps_sync.store import aws
from nps_sync.store.counters import Counters, amounts_of
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.items import stored_profile

tally_of = amounts_of  # an outcome counter item's tally


def _sorted(tally: Tally) -> dict[str, int]:
    return dict(sorted(tally.items()))


class OutcomesStore:
    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")
        self.counters = Counters(self.client, table_name, tally_of, _sorted, plus=add_tallies)
        self.add = self.counters.add  # the outcome step's write, the NPS counters' protocol

    # --- reads for the API (Query only) ----------------------------------------------------

    def series(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Tally]:
        """period -> counters for one dimension value, periods first..last (inclusive) or all."""
        pk = OutcomeKey(dimension, value, granularity, "").pk
        return self.counters.series(pk, granularity, first, last)

    # --- reconcile -------------------------------------------------------------------------

    def replace(
        self, key: OutcomeKey, shard: int | None, stored: Tally | None, expected: Tally
    ) -> bool:
        """Set the counters of the key's item ``shard`` to ``expected`` if they still are
        ``stored`` (None: the item does not exist); marks stay."""
        return self.counters.replace(key, shard, stored, expected)


class AtRiskListing:
    """GET /outcomes/at-risk from RecordsTable's sparse at-risk indexes of PROFILE items
    (outcomes.at_risk_attributes). A segment other than overall is picked out of the index
    with ``segment``, the rule the counters use, reading pages until the page is full."""

    def __init__(self, records: CustomerRecords, cursor_key: bytes):
        self.records = records
        self.cursor_key = cursor_key  # seals the cursors (SecretsDocument.cursor_secret)

    def at_risk(
        self, dimension: str, value: str, order: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        index, range_key = AT_RISK_INDEXES[order]
        listing = f"{order}/{dimension}#{value}"
        start = _decode_cursor(cursor, listing, self.cursor_key) if cursor else None
        found: list[dict[str, Any]] = []
        while True:
            items, start = self.records.index_page(
                index, (AT_RISK, AT_RISK_VALUE), max(limit, PAGE), start
            )
            for item in items:
                profile = stored_profile(item)
                if profile is None:
                    continue
                state = stored_state(profile)
                if dimension != OVERALL and segment(profile, state, dimension) != value:
                    continue
                found.append(_entry(profile, state))
                if len(found) == limit:
                    keys = ("pk", "sk", AT_RISK, range_key)
                    key = {k: item[k]["S"] for k in keys}
                    return found, _encode_cursor(key, listing, self.cursor_key)
            if not start:
                return found, None


PAGE = 100  # index items read per Query when picking a segment out


def _entry(profile: StoredProfile, state: Mapping[str, Any]) -> dict[str, Any]:
    """What at_risk_page shows of an at-risk PROFILE."""
    latest = state.get("latest") or {}
    entry = {
        "customer_key": {"S": profile.customer_key},
        "mrr_amount": {"N": str(max(0, profile.mrr_amount or 0))},
        "score": {"N": str(latest.get("score", 0))},
        "submitted_at": {"S": str(latest.get("submitted_at") or "")},
    }
    for name in ("plan", "mrr_currency", "account"):
        if value := getattr(profile, name):
            entry[name] = {"S": value}
    return entry


def _encode_cursor(key: dict[str, str], listing: str, secret: bytes) -> str:
    """The index key to go on from, sealed (nps_sync.core.sealing): it holds the customer's
    key, and a cursor travels in URLs. The listing is authenticated with it, so a cursor opens
    only the listing that gave it out. Compressed: the key is in two of its values."""
    from nps_sync.core.sealing import seal  # cryptography: ApiFunction's package only

    plain = zlib.compress(json.dumps(key, separators=(",", ":"), ensure_ascii=False).encode())
    return seal(secret, plain, _cursor_context(listing))


def _decode_cursor(cursor: str, listing: str, secret: bytes) -> dict[str, Any]:
    from nps_sync.core.sealing import unseal

    try:
        key = json.loads(zlib.decompress(unseal(secret, cursor, _cursor_context(listing))))
    except (ValueError, zlib.error) as error:  # forged, altered, cut, another listing's
        raise BadRequest("cursor is not one this API gave out for this listing") from error
    return {str(name): {"S": str(value)} for name, value in key.items()}


def _cursor_context(listing: str) -> bytes:
    return f"at-risk cursor v1\n{listing}".encode()
