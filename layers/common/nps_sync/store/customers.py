"""RecordsTable access beyond storage.py: customer views, segment re-stamps, erasure, scans.

Layout in docs/storage.md. Only this module and storage.py talk DynamoDB for records.
"""

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from nps_sync.core.errors import StorageUnavailable
from nps_sync.store import aws, dynamo

PROFILE_SK = "PROFILE"
RESPONSE_SK = "RESP"
INDEX = "by_customer"
DETRACTORS_INDEX = "recent_detractors"  # sparse: gsi2pk = DETRACTOR on detractor responses
DETRACTORS_PK = "DETRACTOR"
# The customer attributes every response item carries (docs/storage.md).
SEGMENT_ATTRIBUTES = ("plan", "region", "account", "mrr_amount", "mrr_currency")
VERSION = "profile_version"

Item = dict[str, Any]


def customer_pk(customer_key: str) -> str:
    return f"CUST#{customer_key}"


def _copy(
    source: Item, attributes: tuple[str, ...], names: dict, values: dict, sets: list | None = None
) -> str:
    """The update that SETs each attribute (``#a<i>``) to its value in ``source`` and REMOVEs
    those ``source`` lacks (a stamp copies a profile's segment attributes exactly)."""
    sets, removes = list(sets or ()), []
    for i, name in enumerate(attributes):
        names[f"#a{i}"] = name
        if name in source:
            values[f":a{i}"] = source[name]
            sets.append(f"#a{i} = :a{i}")
        else:
            removes.append(f"#a{i}")
    return "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")


class CustomerRecords:
    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self.client = client or aws.client("dynamodb")

    # --- reads ----------------------------------------------------------------------------

    def profile(self, customer_key: str) -> Item | None:
        return self._call(
            "get_item",
            TableName=self.table_name,
            Key={"pk": {"S": customer_pk(customer_key)}, "sk": {"S": PROFILE_SK}},
            ConsistentRead=True,
        ).get("Item")

    def profiles(self, customer_keys: Iterable[str]) -> dict[str, Item]:
        """PROFILE items of several customers (BatchGetItem), by customer key."""
        keys = [
            {"pk": {"S": customer_pk(k)}, "sk": {"S": PROFILE_SK}}
            for k in sorted(set(customer_keys))
        ]
        found = dynamo.batch_get(self.client, self.table_name, keys)
        return {pk.removeprefix("CUST#"): item for (pk, _), item in found.items()}

    def by_customer(self, customer_key: str, prefix: str = "") -> list[Item]:
        """Items indexed under the customer (responses RESP#, profiles PROF#, links ID#)."""
        values = {":c": {"S": customer_pk(customer_key)}}
        condition = "gsi1pk = :c"
        if prefix:
            condition += " AND begins_with(gsi1sk, :p)"
            values[":p"] = {"S": prefix}
        return list(
            self._pages(
                "query",
                {
                    "TableName": self.table_name,
                    "IndexName": INDEX,
                    "KeyConditionExpression": condition,
                    "ExpressionAttributeValues": values,
                },
            )
        )

    def recent_detractors(self, limit: int) -> list[Item]:
        """The newest detractor responses, newest first (one Query on recent_detractors)."""
        return self._call(
            "query",
            TableName=self.table_name,
            IndexName=DETRACTORS_INDEX,
            KeyConditionExpression="gsi2pk = :d",
            ExpressionAttributeValues={":d": {"S": DETRACTORS_PK}},
            ScanIndexForward=False,
            Limit=limit,
        ).get("Items", [])

    def partition(self, pk: str) -> list[Item]:
        """Every item under one pk (a record and its RAW# payloads), keys only."""
        return list(
            self._pages(
                "query",
                {
                    "TableName": self.table_name,
                    "KeyConditionExpression": "pk = :pk",
                    "ExpressionAttributeValues": {":pk": {"S": pk}},
                    "ProjectionExpression": "pk, sk",
                    "ConsistentRead": True,
                },
            )
        )

    def responses(
        self, attributes: Iterable[str] | None = None, segments: int = dynamo.SEGMENTS
    ) -> Iterator[Item]:
        """Every response item, for reconcile (never a request path): a parallel Scan of
        by_customer, which indexes every response (each carries gsi1pk/gsi1sk, docs/storage.md)
        and no raw payload, PROFILE or event item, so those are never read. Only ``attributes``
        (and pk, sk) when given. Eventually consistent, as every index read is."""
        return self._scan(
            {
                "IndexName": INDEX,
                "FilterExpression": "begins_with(gsi1sk, :r)",
                "ExpressionAttributeValues": {":r": {"S": f"{RESPONSE_SK}#"}},
            },
            attributes,
            segments,
        )

    def profile_items(
        self, attributes: Iterable[str] | None = None, segments: int = dynamo.SEGMENTS
    ) -> Iterator[Item]:
        """Every merged customer PROFILE: a consistent parallel Scan of the table (no index
        holds every PROFILE, docs/aggregation.md "Reconcile"). Only ``attributes`` (and pk, sk)
        when given."""
        return self._scan(
            {
                "FilterExpression": "sk = :p",
                "ExpressionAttributeValues": {":p": {"S": PROFILE_SK}},
                "ConsistentRead": True,
            },
            attributes,
            segments,
        )

    def _scan(
        self, kwargs: dict[str, Any], attributes: Iterable[str] | None, segments: int
    ) -> Iterator[Item]:
        kwargs = {"TableName": self.table_name, **kwargs}
        if attributes is not None:
            wanted = dict.fromkeys(("pk", "sk", *attributes))
            names = {f"#a{i}": name for i, name in enumerate(wanted)}
            kwargs["ProjectionExpression"] = ", ".join(names)
            kwargs["ExpressionAttributeNames"] = names
        return dynamo.scan(self.client, kwargs, segments)

    # --- writes ---------------------------------------------------------------------------

    def set_outcome(
        self,
        customer_key: str,
        state: dict[str, Any],
        billing_stamp: Any,
        derived: Mapping[str, Any | None] | None = None,
        *,
        version: int | None = None,
    ) -> bool:
        """Write the derived outcome state onto the PROFILE (docs/outcomes.md), with other
        derived attributes (``None`` removes one), unless the profile is gone, a newer billing
        update landed since it was read (that update comes through the stream and is derived
        again), or a derivation with a higher ``version`` (``outcome_version``, its start in ms;
        None: now) was written already: a lagging derivation never replaces a newer one.
        True when written."""
        if version is None:
            version = int(time.time() * 1000)
        names = {"#o": "outcome", "#ov": "outcome_version"}
        values = {":state": state, ":stamp": billing_stamp, ":ov": {"N": str(version)}}
        sets, removes = ["#o = :state", "#ov = :ov"], []
        for i, (name, value) in enumerate(sorted((derived or {}).items())):
            names[f"#d{i}"] = name
            if value is None:
                removes.append(f"#d{i}")
            else:
                values[f":d{i}"] = value
                sets.append(f"#d{i} = :d{i}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return dynamo.update_if(
            self.client,
            TableName=self.table_name,
            Key={"pk": {"S": customer_pk(customer_key)}, "sk": {"S": PROFILE_SK}},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk) AND billing_updated_at = :stamp"
            " AND (attribute_not_exists(#ov) OR #ov < :ov)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def index_page(
        self, index: str, key: tuple[str, str], limit: int, start: dict[str, Any] | None
    ) -> tuple[list[Item], dict[str, Any] | None]:
        """One page of an index under one hash key value, highest range key first."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": "#k = :k",
            "ExpressionAttributeNames": {"#k": key[0]},
            "ExpressionAttributeValues": {":k": {"S": key[1]}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = self._call("query", **kwargs)
        return page.get("Items", []), page.get("LastEvaluatedKey")

    def stamp(self, response_key: dict[str, Any], profile: Item) -> bool:
        """Copy the profile's segment attributes onto a response, unless it already has this
        or a newer profile_version of that customer, or was deleted or moved to another
        customer meanwhile (versions of two customers' profiles do not compare: a move drops
        the stamp, links.py). True when it changed."""
        version = profile.get(VERSION)
        if version is None:
            return False
        names = {"#ver": VERSION}
        owner = {"S": profile["pk"]["S"].removeprefix("CUST#")}
        values: dict[str, Any] = {":ver": version, ":owner": owner}
        expression = _copy(profile, SEGMENT_ATTRIBUTES, names, values, sets=["#ver = :ver"])
        return dynamo.update_if(
            self.client,
            TableName=self.table_name,
            Key={"pk": response_key["pk"], "sk": {"S": RESPONSE_SK}},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk) AND customer_key = :owner AND "
            "(attribute_not_exists(#ver) OR #ver < :ver)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def restamp(self, response: Item, profile: Item) -> bool:
        """Reconcile's repair of a stale stamp: the profile's segment attributes and version
        onto the response whatever version it carries, if its stamp is still the one
        reconcile read (a stamp landed meanwhile wins) and it still belongs to the profile's
        customer (not moved meanwhile). True when it changed."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {":owner": {"S": profile["pk"]["S"].removeprefix("CUST#")}}
        copied = (*SEGMENT_ATTRIBUTES, VERSION)
        expression = _copy(profile, copied, names, values)
        checks = ["attribute_exists(pk)", "customer_key = :owner"]
        for i, name in enumerate(copied):  # the stamp is still the one reconcile read
            if name in response:
                values[f":o{i}"] = response[name]
                checks.append(f"#a{i} = :o{i}")
            else:
                checks.append(f"attribute_not_exists(#a{i})")
        return dynamo.update_if(
            self.client,
            TableName=self.table_name,
            Key={"pk": response["pk"], "sk": {"S": RESPONSE_SK}},
            UpdateExpression=expression,
            ConditionExpression=" AND ".join(checks),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def delete(self, keys: list[dict[str, Any]]) -> int:
        """Delete items by key (BatchWriteItem, retrying unprocessed ones)."""
        for start in range(0, len(keys), 25):
            requests = [
                {"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}}
                for k in keys[start : start + 25]
            ]
            pending: dict[str, Any] = {self.table_name: requests}
            for _ in range(8):
                page = self._call("batch_write_item", RequestItems=pending)
                pending = page.get("UnprocessedItems") or {}
                if not pending:
                    break
            if pending:
                raise StorageUnavailable("DynamoDB batch_write_item left items unprocessed")
        return len(keys)

    # --- plumbing -------------------------------------------------------------------------

    def _pages(self, operation: str, kwargs: dict[str, Any]) -> Iterator[Item]:
        return dynamo.pages(self.client, operation, kwargs)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        return dynamo.call(self.client, operation, **kwargs)
