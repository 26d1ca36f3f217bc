"""Identity links survive the by_customer index's lag (issue 15 item 5): a record written
under an alias just before its link, which the link's own move cannot see yet, still ends up
under the customer, moved by a later record naming the alias or by reconcile's orphan repair;
and an erasure by e-mail reaches it wherever it is.

The lag is a client wrapper: its by_customer Queries leave out the items written in the last
LAG seconds (by the test's clock), as a GSI that has not caught up does. Everything else is
moto, and our own code runs unchanged."""

from datetime import UTC, datetime
from functools import partial

import msgspec
import pytest

from nps_sync.core.models import CrmProfile, Response
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.links import INDEX_LAG_SECONDS
from nps_sync.store.records import RecordsStore

from .conftest import api_resolver, call_api

LAG = 5.0
ANA = "ana@example.com"
ALIAS = "cust-9"


class Clock:
    def __init__(self, now: float = 1_780_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class LaggingIndex:
    """A DynamoDB client whose by_customer Queries miss what was written in the last ``lag``
    seconds; ``index_queries`` counts those Queries."""

    def __init__(self, client, clock: Clock, lag: float = LAG):
        self.client, self.clock, self.lag = client, clock, lag
        self.written: dict[tuple[str, str], float] = {}
        self.index_queries = 0

    def _touch(self, key) -> None:
        self.written[(key["pk"]["S"], key["sk"]["S"])] = self.clock()

    def put_item(self, **kwargs):
        self._touch(kwargs["Item"])
        return self.client.put_item(**kwargs)

    def update_item(self, **kwargs):
        self._touch(kwargs["Key"])
        return self.client.update_item(**kwargs)

    def transact_write_items(self, **kwargs):
        for action in kwargs["TransactItems"]:
            for request in action.values():
                self._touch(request.get("Item") or request["Key"])
        return self.client.transact_write_items(**kwargs)

    def batch_write_item(self, **kwargs):
        for requests in kwargs["RequestItems"].values():
            for request in requests:
                put = request.get("PutRequest")
                self._touch(put["Item"] if put else request["DeleteRequest"]["Key"])
        return self.client.batch_write_item(**kwargs)

    def query(self, **kwargs):
        answer = self.client.query(**kwargs)
        if kwargs.get("IndexName") != "by_customer":
            return answer
        self.index_queries += 1
        now = self.clock()
        fresh = [
            i
            for i in answer.get("Items", [])
            if now - self.written.get((i["pk"]["S"], i["sk"]["S"]), float("-inf")) >= self.lag
        ]
        return {**answer, "Items": fresh}

    def get_paginator(self, operation):
        assert operation == "query", operation
        return _Pages(self)

    def __getattr__(self, name):
        return getattr(self.client, name)


class _Pages:
    def __init__(self, client: LaggingIndex):
        self.client = client

    def paginate(self, **kwargs):
        while True:
            page = self.client.query(**kwargs)
            yield page
            if not page.get("LastEvaluatedKey"):
                return
            kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def at(day: int) -> datetime:
    return datetime(2026, 3, day, 10, tzinfo=UTC)


def answer(response_id: str = "r1") -> Response:
    """An answer that knows its customer by the own id only."""
    return Response(
        provider="generic",
        response_id=response_id,
        customer_key=ALIAS,
        customer_id=ALIAS,
        score=3,
        comment="Exports time out",
        submitted_at=at(1),
        updated_at=at(1),
    )


def crm(event: str) -> CrmProfile:
    """A CRM record that knows both the e-mail and the own id: it links the id to the e-mail."""
    return CrmProfile(
        provider="generic",
        source_id="c-1",
        customer_key=ANA,
        customer_id=ALIAS,
        event_id=event,
        source_updated_at=at(2),
        email=ANA,
        region="EMEA",
    )


@pytest.fixture
def lagging(world):
    clock = Clock()
    client = LaggingIndex(world.ddb, clock)
    return clock, client, RecordsStore(world.records_table, client, clock=clock)


def owner(world, response_id: str = "r1") -> str | None:
    item = world.ddb.get_item(
        TableName=world.records_table,
        Key={"pk": {"S": f"RESP#generic#{response_id}"}, "sk": {"S": "RESP"}},
        ConsistentRead=True,
    ).get("Item")
    return item["customer_key"]["S"] if item else None


def link(world) -> dict:
    return world.ddb.get_item(
        TableName=world.records_table,
        Key={"pk": {"S": f"ID#{ALIAS}"}, "sk": {"S": "ID"}},
        ConsistentRead=True,
    )["Item"]


def answered_then_linked(world, lagging) -> None:
    """The answer under the alias, and 0.1 s later the link, whose move the index hides it
    from: it is still under the alias (the lag is real)."""
    clock, _, store = lagging
    assert store.put_response(answer(), {"id": "r1"}, 400)
    clock.now += 0.1
    assert store.put_profile(crm("evt-1"), {"id": "evt-1"}, 400)
    assert owner(world) == ALIAS
    assert link(world)["customer_key"]["S"] == ANA


def test_a_record_the_links_move_missed_moves_with_the_next_record_naming_the_alias(world, lagging):
    clock, client, store = lagging
    answered_then_linked(world, lagging)
    assert "rechecked" not in link(world)  # the move ran before the index caught up

    # when: the alias comes again, after the index has caught up
    clock.now += INDEX_LAG_SECONDS + 1
    assert store.put_profile(msgspec.structs.replace(crm("evt-2"), region="APAC"), {}, 400)

    # then: the answer is the customer's, and the link rechecked now costs no more Queries
    assert owner(world) == ANA
    assert link(world)["rechecked"] == {"BOOL": True}
    queries = client.index_queries
    store.put_profile(msgspec.structs.replace(crm("evt-3"), region="AMER"), {}, 400)
    assert client.index_queries == queries


def test_reconcile_repairs_an_orphan_nothing_names_again(world, lagging):
    clock, _, store = lagging
    answered_then_linked(world, lagging)
    clock.now += INDEX_LAG_SECONDS + 1

    # when: reconcile hands over the keys its scan saw records under
    keys = {ALIAS, ANA, "bo@example.com"}
    assert store.links.orphans(keys) == {ALIAS: ANA}
    moved = store.links.repair_orphans(keys)

    # then
    assert moved == 1 and owner(world) == ANA
    assert store.links.repair_orphans(keys) == 0  # repeated: nothing left to move


def test_erasure_by_e_mail_reaches_a_record_still_under_its_alias(world, lagging):
    clock, client, _ = lagging
    answered_then_linked(world, lagging)
    clock.now += LAG + 1  # the index lists the link now; nothing moved the answer yet
    assert owner(world) == ALIAS
    call = partial(call_api, api_resolver(world, client=client).resolve)

    status, body = call("DELETE", f"/customers/{ANA}")

    assert status == 202 and owner(world) is None
    assert body["deleted"]["responses"] == 1 and body["complete"] is True
    left = [
        (i["pk"]["S"], i["sk"]["S"])
        for i in world.ddb.scan(TableName=world.records_table)["Items"]
        if not i["pk"]["S"].startswith(("TOMB#", "EVT#"))
    ]
    assert left == []
    assert call("GET", f"/customers/{ANA}")[0] == 404
    assert call("GET", f"/customers/{ALIAS}")[0] == 404


def test_erasure_by_a_provider_id_takes_the_customer_and_every_alias(world, lagging):
    clock, client, store = lagging
    answered_then_linked(world, lagging)
    delighted = Response(
        provider="delighted",
        response_id="d1",
        customer_key="delighted:p-77",
        person_id="p-77",
        customer_id=None,
        score=9,
        submitted_at=at(3),
        updated_at=at(3),
    )
    assert store.put_response(delighted, {}, 400)  # known by its Delighted person only
    store.links.link("delighted:p-77", ANA)  # as a later Delighted answer with her e-mail does
    clock.now += LAG + 1
    records = CustomerRecords(world.records_table, client)
    assert store.links.resolve("delighted:p-77", []) == ANA
    call = partial(call_api, api_resolver(world, client=records.client).resolve)

    status, body = call("DELETE", "/customers/delighted:p-77")

    assert status == 202 and owner(world) is None and owner(world, "d1") is None
    assert body["complete"] is True
    assert (
        world.ddb.get_item(
            TableName=world.records_table,
            Key={"pk": {"S": "RESP#delighted#d1"}, "sk": {"S": "RESP"}},
        ).get("Item")
        is None
    )
