"""RecordsTable access beyond storage.py: customer views, segment re-stamps, erasure, scans.

Layout in docs/storage.md. Only this module and storage.py talk DynamoDB for records.
"""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import boto3

from nps_sync.core.errors import StorageUnavailable
from nps_sync.store import dynamo

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


def version_older(stamped: dict[str, Any] | None, current: dict[str, Any] | None) -> bool:
    """Is a response's stamped profile_version older than the profile's? (same DynamoDB type)"""
    if current is None:
        return False
    if stamped is None:
        return True
    if "N" in stamped and "N" in current:
        return float(stamped["N"]) < float(current["N"])
    if "S" in stamped and "S" in current:
        return stamped["S"] < current["S"]
    return False


class CustomerRecords:
    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb")

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
        keys = sorted(set(customer_keys))
        found: dict[str, Item] = {}
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [
                        {"pk": {"S": customer_pk(k)}, "sk": {"S": PROFILE_SK}}
                        for k in keys[start : start + 100]
                    ],
                    "ConsistentRead": True,
                }
            }
            for _ in range(8):
                page = self._call("batch_get_item", RequestItems=request)
                for item in page.get("Responses", {}).get(self.table_name, []):
                    found[item["pk"]["S"].removeprefix("CUST#")] = item
                request = page.get("UnprocessedKeys") or {}
                if not request:
                    break
            if request:
                raise StorageUnavailable("DynamoDB batch_get_item left keys unprocessed")
        return found

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

    def responses(self) -> Iterator[Item]:
        """Every response item (Scan): the offline oracle of reconcile, never a request path."""
        return self._scan_sk(RESPONSE_SK)

    def profile_items(self) -> Iterator[Item]:
        """Every merged customer PROFILE (Scan): reconcile's oracle of the outcome aggregates."""
        return self._scan_sk(PROFILE_SK)

    def _scan_sk(self, sk: str) -> Iterator[Item]:
        return self._pages(
            "scan",
            {
                "TableName": self.table_name,
                "FilterExpression": "sk = :sk",
                "ExpressionAttributeValues": {":sk": {"S": sk}},
                "ConsistentRead": True,
            },
        )

    # --- writes ---------------------------------------------------------------------------

    def set_outcome(
        self,
        customer_key: str,
        state: dict[str, Any],
        billing_stamp: Any,
        derived: Mapping[str, Any | None] | None = None,
    ) -> bool:
        """Write the derived outcome state onto the PROFILE (docs/outcomes.md), with other
        derived attributes (``None`` removes one), unless the profile is gone or a newer billing
        update landed since it was read (that update comes through the stream and is derived
        again). True when written."""
        names, values = {"#o": "outcome"}, {":state": state, ":stamp": billing_stamp}
        sets, removes = ["#o = :state"], []
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
            ConditionExpression="attribute_exists(pk) AND billing_updated_at = :stamp",
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
        sets, removes = ["#ver = :ver"], []
        for i, name in enumerate(SEGMENT_ATTRIBUTES):
            names[f"#a{i}"] = name
            if name in profile:
                values[f":a{i}"] = profile[name]
                sets.append(f"#a{i} = :a{i}")
            else:
                removes.append(f"#a{i}")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
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
        sets, removes, checks = [], [], ["attribute_exists(pk)", "customer_key = :owner"]
        for i, name in enumerate((*SEGMENT_ATTRIBUTES, VERSION)):
            names[f"#a{i}"] = name
            if name in profile:
                values[f":a{i}"] = profile[name]
                sets.append(f"#a{i} = :a{i}")
            else:
                removes.append(f"#a{i}")
            if name in response:
                values[f":o{i}"] = response[name]
                checks.append(f"#a{i} = :o{i}")
            else:
                checks.append(f"attribute_not_exists(#a{i})")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
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
