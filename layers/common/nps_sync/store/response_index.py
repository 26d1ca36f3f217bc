"""Dimensions answered on read: GET /nps for one account sums its responses from an index.

Counting ``account`` on write costs a write per granularity for nearly every response, since
a batch's responses rarely share an account; an account has few responses, so reading them is
cheap. RecordsTable's sparse index ``by_account`` (hash ``account``, range ``submitted_at``)
holds exactly the response items, the only ones with both attributes, and the numbers come
from the same ``contribution`` the aggregator counts with, so both ways agree by construction.
"""

from collections.abc import Iterator
from typing import Any

from nps_sync.core.aggregates import ZERO, Counts, contribution
from nps_sync.core.periods import ALL, period_dates, rollup, stored
from nps_sync.store import aws, dynamo
from nps_sync.store.items import stored_response

READ_INDEXES = {"account": "by_account"}  # dimension -> index of RecordsTable


class ResponseIndex:
    """The AggregateReader of dimensions answered on read (query.AggregateReader)."""

    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    def series(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> dict[str, Counts]:
        result: dict[str, Counts] = {}
        for item in self._responses(dimension, value, granularity, first, last):
            for key, counts in contribution(stored_response(item), (dimension,)).items():
                if key.granularity == stored(granularity):
                    period = rollup(granularity, key.period)
                    result[period] = result.get(period, ZERO) + counts
        return result

    def customers(self, dimension: str, value: str, since_day: str) -> list[str]:
        """The customer keys with a response in the segment since that day."""
        keys = (
            item.get("customer_key", {}).get("S")
            for item in self._responses(dimension, value, "day", since_day, None)
        )
        return list(dict.fromkeys(k for k in keys if k))

    def _responses(
        self, dimension: str, value: str, granularity: str, first: str | None, last: str | None
    ) -> Iterator[dict[str, Any]]:
        names = {"#d": dimension}
        values: dict[str, Any] = {":v": {"S": value}}
        condition = "#d = :v"
        if granularity != ALL and (first or last):
            # Stored timestamps are fixed-width ISO strings; "<day>U" sorts after every time of
            # that day ("T" < "U"), "<day>" before any.
            low = period_dates(granularity, first)[0].isoformat() if first else "0"
            high = period_dates(granularity, last)[1].isoformat() + "U" if last else "U"
            condition += " AND submitted_at BETWEEN :low AND :high"
            values.update({":low": {"S": low}, ":high": {"S": high}})
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": READ_INDEXES[dimension],
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        yield from dynamo.pages(self.client, "query", request)
