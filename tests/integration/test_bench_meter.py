"""The bench's counting hook prices DynamoDB calls as DynamoDB bills them."""

import contextlib

import boto3
from moto import mock_aws

from bench.meter import Meter, item_size, number_size


def _table(client, name="t", index=False):
    extra = {}
    attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
    if index:
        attributes.append({"AttributeName": "g", "AttributeType": "S"})
        extra["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "by_g",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )


def _metered(index=False):
    client = boto3.client("dynamodb", region_name="us-east-1")
    _table(client, index=index)
    plain = boto3.session.Session().client("dynamodb", region_name="us-east-1")

    def peek(table, item):
        return plain.get_item(TableName=table, Key={"pk": item["pk"]}).get("Item")

    meter = Meter(peek=peek, indexes={"t": [("g",)]} if index else {})
    return client, meter.attach(client.meta.events)


def test_item_sizes_follow_dynamodb_rules():
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert number_size("12345") == 4  # 5 significant digits: 3 bytes + 1
    assert number_size("1000") == 2
    assert item_size({"m": {"M": {"a": {"BOOL": True}}}}) == 1 + 3 + (1 + 1 + 1)


@mock_aws
def test_a_put_of_a_one_and_a_half_kilobyte_item_costs_two_write_units():
    client, meter = _metered()
    client.put_item(TableName="t", Item={"pk": {"S": "a"}, "data": {"S": "x" * 1530}})
    assert meter.calls[("all", "dynamodb", "PutItem")] == 1
    assert meter.wcu[("all", "t")] == 2


@mock_aws
def test_an_update_costs_the_larger_image_and_a_failed_condition_still_costs():
    client, meter = _metered()
    client.put_item(TableName="t", Item={"pk": {"S": "a"}, "data": {"S": "x" * 3000}})
    client.update_item(
        TableName="t",
        Key={"pk": {"S": "a"}},
        UpdateExpression="REMOVE #d",
        ExpressionAttributeNames={"#d": "data"},
    )
    with contextlib.suppress(client.exceptions.ConditionalCheckFailedException):
        client.put_item(
            TableName="t", Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    assert meter.wcu[("all", "t")] == 3 + 3 + 1
    assert meter.calls[("all", "dynamodb", "UpdateItem")] == 1


@mock_aws
def test_transactions_cost_double_and_index_entries_cost_their_own_writes():
    client, meter = _metered(index=True)
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "g": {"S": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}}}},
        ]
    )
    assert meter.wcu[("all", "t")] == 4
    assert meter.gsi_wcu[("all", "t")] == 1  # only "a" has the index key


@mock_aws
def test_reads_cost_per_four_kilobytes_halved_when_eventually_consistent():
    client, meter = _metered()
    client.put_item(TableName="t", Item={"pk": {"S": "a"}, "data": {"S": "x" * 5000}})
    client.get_item(TableName="t", Key={"pk": {"S": "a"}}, ConsistentRead=True)
    client.get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert meter.rcu[("all", "t")] == 2 + 1


def test_an_index_write_is_billed_only_when_its_projection_changes():
    """bench.meter prices index projections: an update of an attribute a keys-only or INCLUDE
    index does not hold writes nothing there; with ALL every change of the item does."""
    from bench.meter import _index_units

    old = {"pk": {"S": "a"}, "sk": {"S": "b"}, "g": {"S": "x"}, "n": {"N": "1"}, "p": {"S": "v"}}
    new = {**old, "n": {"N": "2"}}
    keys_only = ("pk", "sk", "g")
    assert _index_units(("g",), old, new) == 1  # ALL: the counter moved, the copy is rewritten
    assert _index_units(("g",), old, new, keys_only) == 0
    assert _index_units(("g",), old, new, (*keys_only, "n")) == 1  # INCLUDE n
    assert _index_units(("g",), old, {**old, "p": {"S": "w"}}, (*keys_only, "n")) == 0
    assert _index_units(("g",), None, new, keys_only) == 1  # a new entry is always written


def test_writes_that_go_out_together_wait_as_one_round_trip_per_pool_of_writers():
    from nps_sync.store import dynamo

    with mock_aws():
        client, meter = _metered()
        meter.phase = "p"

        def put(n):
            return client.put_item(TableName="t", Item={"pk": {"S": f"k{n}"}})

        put(-1)  # alone: one wait
        outcomes = dynamo.each(put, range(10))  # 10 together, 8 at a time: 2 waits
        dynamo.each(put, [99])  # one item runs on the caller's thread: one wait
    assert all(isinstance(o, dict) for o in outcomes)
    assert meter.total_calls("p") == 12
    assert meter.round_trips("p", workers=dynamo.WRITERS) == 1 + 2 + 1
    assert meter.round_trips("p", workers=4) == 1 + 3 + 1
    assert meter.wcu[("p", "t")] == 12  # every call priced, whatever its thread


def test_each_hands_back_every_items_result_or_failure_in_order():
    from nps_sync.store import dynamo

    def work(n):
        if n % 3 == 0:
            raise ValueError(n)
        return n * 10

    outcomes = dynamo.each(work, range(7))
    assert [o if isinstance(o, int) else ("failed", o.args[0]) for o in outcomes] == [
        ("failed", 0),
        10,
        20,
        ("failed", 3),
        40,
        50,
        ("failed", 6),
    ]
    assert dynamo.each(work, []) == []
