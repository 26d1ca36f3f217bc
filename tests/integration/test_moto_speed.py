"""local/moto_speed.py changes how fast moto answers, never what it answers, and patches only
the moto it was checked against."""

import contextlib
import random

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import moto_speed
from local.aws import Stack

from .conftest import STREAMS_ENDPOINT, _MotoAccount


def _workload(ddb, table: str, seed: int) -> list:
    """Random writes of every kind the pipeline makes, with index Queries between them."""
    rng = random.Random(seed)
    answers = []
    customers = [f"CUST#c{i}" for i in range(6)]
    for step in range(300):
        pk = {"S": f"RESP#p#{rng.randrange(40)}"}
        action = rng.random()
        if action < 0.4:
            ddb.put_item(
                TableName=table,
                Item={
                    "pk": pk,
                    "sk": {"S": "RESP"},
                    "gsi1pk": {"S": rng.choice(customers)},
                    "gsi1sk": {"S": f"RESP#{step:04d}"},
                    "account": {"S": rng.choice(("a", "b"))},
                    "submitted_at": {"S": f"2026-01-{rng.randrange(1, 29):02d}T00:00:00Z"},
                    "score": {"N": str(rng.randrange(11))},
                },
            )
        elif action < 0.6:  # a re-key or a stamp changes the index keys in place
            with contextlib.suppress(ClientError):
                ddb.update_item(
                    TableName=table,
                    Key={"pk": pk, "sk": {"S": "RESP"}},
                    UpdateExpression="SET gsi1pk = :c, account = :a",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={
                        ":c": {"S": rng.choice(customers)},
                        ":a": {"S": rng.choice(("a", "b", "c"))},
                    },
                )
        elif action < 0.7:
            ddb.delete_item(TableName=table, Key={"pk": pk, "sk": {"S": "RESP"}})
        elif action < 0.8:  # a transaction that fails and is rolled back
            with pytest.raises(ClientError) as refused:
                ddb.transact_write_items(
                    TransactItems=[
                        {"Delete": {"TableName": table, "Key": {"pk": pk, "sk": {"S": "RESP"}}}},
                        {
                            "ConditionCheck": {
                                "TableName": table,
                                "Key": {"pk": {"S": "NONE"}, "sk": {"S": "NONE"}},
                                "ConditionExpression": "attribute_exists(pk)",
                            }
                        },
                    ]
                )
            answers.append(refused.value.response.get("CancellationReasons"))
        elif action < 0.85:  # one that may succeed: a put only where there is nothing yet
            item = {"pk": pk, "sk": {"S": "RESP"}, "gsi1pk": {"S": customers[0]}}
            try:
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": table,
                                "Item": {**item, "gsi1sk": {"S": f"RESP#t{step:04d}"}},
                                "ConditionExpression": "attribute_not_exists(pk)",
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        }
                    ]
                )
                answers.append("put")
            except ClientError as error:
                answers.append(error.response.get("CancellationReasons"))
        else:
            customer = rng.choice(customers)
            answers.append(
                ddb.query(
                    TableName=table,
                    IndexName="by_customer",
                    KeyConditionExpression="gsi1pk = :c AND begins_with(gsi1sk, :r)",
                    ExpressionAttributeValues={":c": {"S": customer}, ":r": {"S": "RESP#"}},
                )["Items"]
            )
            answers.append(
                ddb.query(
                    TableName=table,
                    IndexName="by_account",
                    KeyConditionExpression="account = :a AND submitted_at BETWEEN :l AND :h",
                    ExpressionAttributeValues={
                        ":a": {"S": "a"},
                        ":l": {"S": "2026-01-05"},
                        ":h": {"S": "2026-01-20"},
                    },
                    Limit=5,
                )["Items"]
            )
    return answers


@contextlib.contextmanager
def _patched(accelerated: bool):
    """moto with the patches or without them, then as it was."""
    was_installed = moto_speed.installed()
    (moto_speed.install if accelerated else moto_speed.uninstall)()
    try:
        yield
    finally:
        (moto_speed.install if was_installed else moto_speed.uninstall)()


def _run(template, accelerated: bool, seed: int) -> list:
    with _patched(accelerated), mock_aws():
        stack = Stack(template, _MotoAccount()).provision()
        return _workload(boto3.client("dynamodb"), stack.refs["RecordsTable"], seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_moto_answers_the_same_with_and_without_the_shortcuts(template, seed):
    plain = _run(template, accelerated=False, seed=seed)
    fast = _run(template, accelerated=True, seed=seed)
    assert any(plain)  # the workload's queries found something
    assert fast == plain


def test_an_item_over_the_size_limit_is_still_refused(template):
    with mock_aws():
        stack = Stack(template, _MotoAccount()).provision()
        client = boto3.client("dynamodb")
        item = {"pk": {"S": "x"}, "sk": {"S": "y"}, "a": {"S": "z" * 300_000}}
        client.put_item(TableName=stack.refs["RecordsTable"], Item=item)
        with pytest.raises(ClientError, match="size"):
            client.put_item(
                TableName=stack.refs["RecordsTable"], Item={**item, "b": {"S": "z" * 200_000}}
            )


def _every_type(table: str, stream_endpoint: str) -> list:
    """Each answer the shortcuts touch: items of every attribute type, updates whose
    validation fails, a failed condition, stream records with their timestamps."""
    ddb = boto3.client("dynamodb")
    key = {"pk": {"S": "T#1"}, "sk": {"S": "T"}}
    item = {
        **key,
        "b": {"B": b"\x00\xff"},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "n": {"N": "1.50"},
        "ns": {"NS": ["1", "2.5"]},
        "ss": {"SS": ["x", "y"]},
        "l": {"L": [{"NULL": True}, {"BOOL": False}, {"M": {"k": {"S": ""}}}]},
        "m": {"M": {}},
    }
    answers: list = [ddb.put_item(TableName=table, Item=item, ReturnValues="ALL_OLD")]
    answers.append(ddb.get_item(TableName=table, Key=key)["Item"])
    answers.append(
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="ADD c :one SET #l[1] = :t, m.k = if_not_exists(m.k, :s) REMOVE ns",
            ExpressionAttributeNames={"#l": "l"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"BOOL": True}, ":s": {"S": "v"}},
            ReturnValues="ALL_NEW",
            ReturnConsumedCapacity="TOTAL",
        )
    )
    invalid = (
        "SET a = :one, a = :one",
        "ADD c :one ADD d :one",
        "SET pk = :one",
        "ADD c :one SET a = :one ADD d :one SET e = :one",  # moto names the first it meets
        "SET a = :one, a.b = :one ADD a :one",  # and the pair of paths it meets first
    )
    for bad in invalid:
        with pytest.raises(ClientError) as refused:
            ddb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression=bad,
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        answers.append(refused.value.response["Error"])
    with pytest.raises(ClientError) as refused:
        ddb.delete_item(TableName=table, Key=key, ConditionExpression="attribute_not_exists(pk)")
    answers.append(refused.value.response["Error"])
    answers.append(ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD"))
    streams = boto3.client("dynamodbstreams", endpoint_url=stream_endpoint)
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert len(records) == 3  # insert, modify, remove
    for record in records:
        created = record["dynamodb"].pop("ApproximateCreationDateTime")
        record["dynamodb"].pop("SequenceNumber")  # moto counts them across accounts
        record["dynamodb"].pop("SizeBytes")  # which counts the sequence number's digits
        assert created.year >= 2026  # parsed as a timestamp either way
        answers.append({k: v for k, v in record.items() if k not in ("eventID",)})
    for answer in answers:
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    return answers


def test_every_attribute_type_and_error_answers_the_same(template):
    answers = []
    for accelerated in (False, True):
        with _patched(accelerated), mock_aws():
            stack = Stack(template, _MotoAccount()).provision()
            answers.append(_every_type(stack.refs["RecordsTable"], STREAMS_ENDPOINT))
    plain, fast = answers
    assert plain[1]["b"] == {"B": b"\x00\xff"}  # binary survives the round trip
    assert fast == plain


def test_install_refuses_a_moto_the_patches_were_not_checked_against():
    with _patched(False):
        with pytest.raises(moto_speed.UnverifiedMoto) as refused:
            moto_speed.install(moto_version="5.3.0")
        assert not moto_speed.installed()  # refused before patching anything
    message = str(refused.value)
    assert f"moto {moto_speed.MOTO_VERSION}'s internals" in message
    assert "moto 5.3.0 is installed" in message
    assert f"moto[server]=={moto_speed.MOTO_VERSION}" in message  # pin it back, or
    assert "tests/integration/test_moto_speed.py" in message  # re-verify and
    assert 'MOTO_VERSION = "5.3.0"' in message  # bump the constant


def test_install_patches_the_moto_it_was_written_for():
    with _patched(False):
        moto_speed.install(moto_version=moto_speed.MOTO_VERSION)
        assert moto_speed.installed()
