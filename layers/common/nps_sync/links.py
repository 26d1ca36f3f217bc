"""Identity links: one customer across systems (rules in docs/identity.md).

A link item ``ID#<alias>`` says which customer key an alias (an own customer id, or a
provider id like ``stripe:cus_…``) belongs to. Records that arrive before their link are kept
under the alias; when the link arrives, they are moved (``rekey``). Both orders end the same:

- link first: a record written later resolves its alias through the link before it is stored;
- record first: writing the link moves every record indexed under the alias, and a record
  written under an alias re-checks the link right after its write, so a link written between
  its lookup and its write is not missed.
"""

from botocore.exceptions import ClientError

from .customer_records import PROFILE_SK, CustomerRecords, customer_pk
from .errors import StorageUnavailable
from .observability import logger

LINK_SK = "ID"
# The merged PROFILE's fields, in groups that are each last-writer-wins on their own stamp
# (a billing customer and its subscription are ordered separately by their providers).
GROUP_FIELDS = {
    "crm_updated_at": ("account", "region", "country", "owner", "lifecycle_stage"),
    "billing_updated_at": (
        "plan",
        "status",
        "mrr_amount",
        "mrr_currency",
        "renews_at",
        "subscription_id",
        "churned_at",  # the revenue-outcome moments ride with the billing group
        "billing_since",
        "renewed_at",
        "renewals",
    ),
    "identity_updated_at": ("email", "customer_id"),
}


def link_pk(alias: str) -> str:
    return f"ID#{alias}"


class Links:
    def __init__(self, records: CustomerRecords):
        self.records = records
        self.client = records.client
        self.table = records.table_name

    def resolve(self, key: str, candidates: list[str]) -> str:
        """The customer key of the first linked alias among ``[key, *candidates]``, following
        links to their end (an own id linked to an e-mail after a provider id to the own id)."""
        for alias in [key, *candidates]:
            linked = self.linked(alias)
            if linked:
                for _ in range(3):
                    further = self.linked(linked)
                    if not further or further == linked:
                        break
                    linked = further
                return linked
        return key

    def linked(self, alias: str) -> str | None:
        item = self.records._call(
            "get_item",
            TableName=self.table,
            Key={"pk": {"S": link_pk(alias)}, "sk": {"S": LINK_SK}},
            ConsistentRead=True,
        ).get("Item")
        return item["customer_key"]["S"] if item else None

    def link(self, alias: str, key: str) -> bool:
        """Record ``alias -> key``; move what is stored under the alias. True if it was new."""
        current = self.linked(alias)
        if current == key or (current and self.resolve(current, []) == key):
            return False
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": link_pk(alias)},
                    "sk": {"S": LINK_SK},
                    "type": {"S": "link"},
                    "customer_key": {"S": key},
                    "gsi1pk": {"S": customer_pk(key)},
                    "gsi1sk": {"S": f"ID#{alias}"},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                # Already linked to another key: a merge of two customers is an operator's call.
                logger.warning("identity alias already linked elsewhere; not moved")
                return False
            raise StorageUnavailable("DynamoDB put_item failed") from error
        self.rekey(alias, key)
        return True

    def settle(self, key: str) -> str:
        """After writing under ``key``: if a link for it appeared meanwhile, move to it."""
        linked = self.linked(key)
        if linked and linked != key:
            self.rekey(key, linked)
            return linked
        return key

    def rekey(self, old: str, new: str) -> int:
        """Move every record indexed under ``old`` to ``new``, and merge the profile."""
        moved = 0
        for item in self.records.by_customer(old):  # responses, profiles and links alike
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET customer_key = :new, gsi1pk = :g",
                    ConditionExpression="customer_key = :old",
                    ExpressionAttributeValues={
                        ":new": {"S": new},
                        ":old": {"S": old},
                        ":g": {"S": customer_pk(new)},
                    },
                )
                moved += 1
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise StorageUnavailable("DynamoDB update_item failed") from error
        self._merge_profile(old, new)
        profile = self.records.profile(new)
        if profile is not None:
            for response in self.records.by_customer(new, "RESP#"):
                self.records.stamp(response, profile)
        logger.info("identity linked", extra={"records_moved": moved})
        return moved

    def _merge_profile(self, old: str, new: str) -> None:
        """Fold the alias's PROFILE into the customer's, group by group, newest group wins."""
        source = self.records.profile(old)
        if source is None:
            return
        for stamp, fields in GROUP_FIELDS.items():
            if stamp not in source:
                continue
            names = {"#ts": stamp}
            values = {":ts": source[stamp], ":one": {"N": "1"}}
            sets = ["#ts = :ts"]
            if stamp == "crm_updated_at":  # custom CRM properties ride with the CRM group
                fields = (*fields, *(n for n in source if n.startswith("prop:")))
            for i, name in enumerate(fields):
                if name in source:
                    names[f"#f{i}"], values[f":f{i}"] = name, source[name]
                    sets.append(f"#f{i} = :f{i}")
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": customer_pk(new)}, "sk": {"S": PROFILE_SK}},
                    UpdateExpression="SET " + ", ".join(sets) + " ADD profile_version :one",
                    ConditionExpression="attribute_not_exists(#ts) OR #ts < :ts",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise StorageUnavailable("DynamoDB update_item failed") from error
        self.records.delete([{"pk": {"S": customer_pk(old)}, "sk": {"S": PROFILE_SK}}])
