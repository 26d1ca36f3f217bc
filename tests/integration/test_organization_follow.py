"""An organization's rename reaches its contacts off the request path (issue 15 item 4): the
receiver stores the Account and queues a follow-up whose DynamoDB calls do not grow with its
members; the follow-up (RecordsStore.follow) walks the members in pages, records its progress
on MEMBERS, continues after a kill instead of starting again, and a newer rename arriving
mid-way wins on every contact. Calls counted with botocore hooks against moto."""

from collections import Counter
from datetime import UTC, datetime

import boto3
import pytest

from nps_sync.core.models import CrmProfile
from nps_sync.store import dynamo
from nps_sync.store.records import (
    FOLLOW_PAGE,
    FOLLOWED_REVISION,
    OrganizationChange,
    RecordsStore,
)

MEMBERS = 1000
ORG = "001ACME"
T0 = "2026-02-01T08:00:00Z"


class Killed(Exception):
    """The consumer dying mid-way (a Lambda timeout, a crash)."""


def account(name: str, day: int, organization: str = ORG) -> CrmProfile:
    return CrmProfile(
        provider="salesforce",
        source_id=organization,
        object_type="account",
        customer_key=f"salesforce:{organization}",
        event_id=f"evt-{organization}-{name}",
        source_updated_at=datetime(2026, 3, day, 8, tzinfo=UTC),
        account=name,
        region="EMEA",
    )


def contact_id(i: int) -> str:
    return f"003C{i:05d}"


def email(i: int) -> str:
    return f"member{i}@example.com"


def with_members(world, organization: str, count: int) -> None:
    """The Account (stored as the receiver stores it) and ``count`` contacts in it, written
    straight into the table: their records, PROFILEs and the MEMBERS item."""
    RecordsStore(world.records_table, world.ddb).put_profile(
        account("Acme GmbH", 1, organization), {}, 7
    )
    items = [
        {
            "pk": {"S": f"PROF#salesforce#{organization}"},
            "sk": {"S": "MEMBERS"},
            "contacts": {"SS": [contact_id(i) for i in range(count)]},
        }
    ]
    for i in range(count):
        items.append(
            {
                "pk": {"S": f"PROF#salesforce#{contact_id(i)}"},
                "sk": {"S": "CRM"},
                "type": {"S": "crm"},
                "customer_key": {"S": email(i)},
                "organization_id": {"S": organization},
                "source_updated_at": {"S": T0},
            }
        )
        items.append(
            {"pk": {"S": f"CUST#{email(i)}"}, "sk": {"S": "PROFILE"}, "email": {"S": email(i)}}
        )
    dynamo.put_all(world.ddb, world.records_table, items)


def names(world, count: int = MEMBERS) -> Counter:
    keys = [{"pk": {"S": f"CUST#{email(i)}"}, "sk": {"S": "PROFILE"}} for i in range(count)]
    found = dynamo.get_all(world.ddb, world.records_table, keys)
    return Counter(item.get("account", {}).get("S") for item in found.values())


def counted(client) -> Counter:
    calls: Counter = Counter()
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.update([model.name])
    )
    return calls


def profile_writes(client) -> Counter:
    """Each PROFILE the client writes, by customer: how often its follow-up wrote it."""
    written: Counter = Counter()

    def record(params, **_):
        for item in params.get("TransactItems", []):
            written.update([item["Update"]["Key"]["pk"]["S"]])

    client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", record)
    return written


def on_progress(client, action) -> None:
    """``action(n)`` before the n-th progress write (UpdateItem of MEMBERS) the client makes."""
    seen = Counter()

    def hook(params, **_):
        if params.get("Key", {}).get("sk", {}).get("S") == "MEMBERS":
            seen["n"] += 1
            action(seen["n"])

    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", hook)


@pytest.fixture
def acme(world):
    with_members(world, ORG, MEMBERS)
    return world


def test_the_receivers_calls_for_a_rename_do_not_grow_with_the_accounts_members(acme):
    with_members(acme, "001SMALL", 1)
    queued: list[OrganizationChange] = []
    store = RecordsStore(acme.records_table, acme.ddb, organizations=queued.extend)
    calls = counted(acme.ddb)

    store.put_profile(account("Acme Group", 5), {}, 7)
    large = sum(calls.values())
    calls.clear()
    store.put_profile(account("Small Group", 5, "001SMALL"), {}, 7)
    small = sum(calls.values())

    assert large == small <= 4  # read the event and links, raw payload, the transaction
    assert [(c.organization, c.version) for c in queued] == [
        (ORG, "2026-03-05T08:00:00.000000Z"),
        ("001SMALL", "2026-03-05T08:00:00.000000Z"),
    ]
    assert names(acme) == Counter({None: MEMBERS})  # no contact touched in the request


def test_the_follow_up_reaches_every_member_in_batched_pages(acme):
    RecordsStore(acme.records_table, acme.ddb, organizations=list).put_profile(
        account("Acme Group", 5), {}, 7
    )
    calls = counted(acme.ddb)

    followed = RecordsStore(acme.records_table, acme.ddb).follow("salesforce", ORG)
    calls = Counter(calls)  # (before the check's own reads)

    assert followed == MEMBERS and names(acme) == Counter({"Acme Group": MEMBERS})
    pages = -(-MEMBERS // FOLLOW_PAGE)
    # per page: the contacts' records (BatchGetItem), their PROFILEs (TransactWriteItems), the
    # progress (UpdateItem); e-mail keys need no link reads; one BatchGetItem to start
    assert calls == Counter(BatchGetItem=1 + pages, TransactWriteItems=pages, UpdateItem=pages)
    assert sum(calls.values()) / MEMBERS <= 0.04


def test_a_follow_up_killed_mid_way_continues_where_it_stopped_when_redelivered(acme):
    RecordsStore(acme.records_table, acme.ddb, organizations=list).put_profile(
        account("Acme Group", 5), {}, 7
    )
    written = profile_writes(acme.ddb)

    def kill(n):  # the 4th page's PROFILEs are written, its progress is not
        if n == 4:
            raise Killed

    on_progress(acme.ddb, kill)
    with pytest.raises(Killed):
        RecordsStore(acme.records_table, acme.ddb).follow("salesforce", ORG)
    assert sum(written.values()) == 4 * FOLLOW_PAGE
    assert names(acme)["Acme Group"] == 4 * FOLLOW_PAGE

    RecordsStore(acme.records_table, acme.ddb).follow("salesforce", ORG)  # redelivered

    assert names(acme) == Counter({"Acme Group": MEMBERS})
    assert set(written.values()) <= {1, 2}  # none from the start again
    assert sum(n - 1 for n in written.values()) == FOLLOW_PAGE  # only the page in flight
    again = sum(written.values())
    RecordsStore(acme.records_table, acme.ddb).follow("salesforce", ORG)  # once more: done
    assert sum(written.values()) == again


def test_a_newer_rename_mid_way_supersedes_and_every_contact_ends_with_it(acme):
    receiver = RecordsStore(acme.records_table, acme.ddb, organizations=list)
    receiver.put_profile(account("Acme Group", 5), {}, 7)
    other = boto3.client("dynamodb")  # another consumer, with the second rename's message

    def rename_again(n):
        if n == 3:
            RecordsStore(acme.records_table, other, organizations=list).put_profile(
                account("Acme Holding", 6), {}, 7
            )
            RecordsStore(acme.records_table, other).follow("salesforce", ORG)

    on_progress(acme.ddb, rename_again)
    first = RecordsStore(acme.records_table, acme.ddb).follow("salesforce", ORG)

    assert first == 3 * FOLLOW_PAGE  # its third page's progress was refused: it stopped
    assert names(acme) == Counter({"Acme Holding": MEMBERS})
    RecordsStore(acme.records_table, acme.ddb).follow("salesforce", ORG)  # 1st redelivered
    assert names(acme) == Counter({"Acme Holding": MEMBERS})
    members = acme.ddb.get_item(
        TableName=acme.records_table,
        Key={"pk": {"S": f"PROF#salesforce#{ORG}"}, "sk": {"S": "MEMBERS"}},
    )["Item"]
    stored = acme.ddb.get_item(
        TableName=acme.records_table,
        Key={"pk": {"S": f"PROF#salesforce#{ORG}"}, "sk": {"S": "CRM"}},
    )["Item"]
    assert members[FOLLOWED_REVISION] == stored["revision"]


def test_contacts_gone_from_the_account_are_dropped_from_its_members(acme):
    moved = {"pk": {"S": f"PROF#salesforce#{contact_id(7)}"}, "sk": {"S": "CRM"}}
    acme.ddb.update_item(
        TableName=acme.records_table,
        Key=moved,
        UpdateExpression="SET organization_id = :o",
        ExpressionAttributeValues={":o": {"S": "001OTHER"}},
    )
    RecordsStore(acme.records_table, acme.ddb, organizations=list).put_profile(
        account("Acme Group", 5), {}, 7
    )

    followed = RecordsStore(acme.records_table, acme.ddb).follow("salesforce", ORG)

    assert followed == MEMBERS - 1 and names(acme)["Acme Group"] == MEMBERS - 1
    members = acme.ddb.get_item(
        TableName=acme.records_table,
        Key={"pk": {"S": f"PROF#salesforce#{ORG}"}, "sk": {"S": "MEMBERS"}},
    )["Item"]
    assert contact_id(7) not in members["contacts"]["SS"]
