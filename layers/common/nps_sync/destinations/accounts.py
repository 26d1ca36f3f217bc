"""An account's summary for CRM organizations (a HubSpot company, a Salesforce Account): its
NPS and n over the destination's window, and whether it is at risk with the MRR at risk.

From the same places GET /nps and GET /outcomes/at-risk read: the by_account index of the
responses (one Query per account, bounded by the window) counted with ``contribution``, and
the customers' PROFILEs, at risk by ``at_risk_attributes`` (an active billing customer whose
latest answer is a detractor)."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nps_sync.core.aggregates import ZERO
from nps_sync.core.nps import nps
from nps_sync.core.outcomes import at_risk_attributes, stored_state
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.items import stored_profile
from nps_sync.store.response_index import ResponseIndex


def today() -> date:
    return datetime.now(UTC).date()


class AccountSummaries:
    def __init__(
        self, records: CustomerRecords, index: ResponseIndex, clock: Callable[[], date] = today
    ):
        self.records = records
        self.index = index
        self.clock = clock

    def summary(self, account: str, window_days: int) -> dict[str, Any]:
        last = self.clock()
        first = last - timedelta(days=window_days - 1)
        counts = sum(
            self.index.series(
                "account", account, "day", first.isoformat(), last.isoformat()
            ).values(),
            ZERO,
        )
        customers = self.index.customers("account", account, first.isoformat())
        profiles = self.records.profiles(customers)
        at_risk = mrr = 0
        for item in profiles.values():
            profile = stored_profile(item)
            if profile is not None and at_risk_attributes(profile, stored_state(profile)):
                at_risk += 1
                mrr += max(0, profile.mrr_amount or 0)
        n = counts.promoters + counts.passives + counts.detractors
        return {
            "nps": nps(counts.promoters, counts.passives, counts.detractors),
            "n": n,
            "at_risk": at_risk > 0,
            # mrr_amount is in minor units (nps_sync.core.mrr); written in major units
            "mrr_at_risk": round(mrr / 100, 2),
        }
