"""A large erasure is bounded on the request path and finished from the queue (issue 15 item
4), resumably; and an erased response stays erased when its provider delivers it again (item 5).

DELETE /customers/{key} of a customer with 3,000 answers (and some under an alias not moved
yet) answers 202 ``complete: false`` within a fixed number of DynamoDB calls, counted with
botocore's before-call hook against moto; an "erasure" message on CrmEnrichmentQueue carries
the rest (CrmEnrichFunction's handler, through local's SQS poller); a run killed midway is
continued, never restarted, and never leaves a page half deleted."""

import json
import os
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial

import boto3
import pytest

from local.aws import Emulator
from local.events import build
from local.lambdas import LocalFunction
from local.pollers import SqsPoller
from nps_sync.core.aggregates import DEFAULT_DIMENSIONS
from nps_sync.core.models import Response
from nps_sync.query.customers import continue_erasure, erase_customer
from nps_sync.store import dynamo
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.records import (
    ERASED_METRIC,
    ERASURE_MEMORY_SECONDS,
    RecordsStore,
    compress,
    erasure_job_id,
    response_item,
    tombstone_key,
)
from nps_sync.store.secrets import parse as parse_secrets
from nps_sync.web.api import Services, resolver
from tests.conftest import body_of

from .conftest import DEV_SECRETS, call_api

BIG = "big@example.com"
ALIAS = "cust-big"
LARGE = 3000  # the request path's bound is measured with this many answers
# The queue's part runs with fewer: moto reads its whole table for each partition Query
# (~0.1 s at 6,000 items), and the work per answer is the same at any size.
ANSWERS = int(os.environ.get("ERASURE_ANSWERS", "300"))
UNDER_ALIAS = 5
# DynamoDB calls of the whole DELETE request for BIG (plan, destinations' items, the job's
# start, REQUEST_CALLS of the job): docs/identity.md "Erasure".
REQUEST_BUDGET = 40
PROVIDER_RETRY_HORIZON = 3 * 86400 + 7 * 3600  # the longest: Chargebee, ~3 d 7 h


def counted(client) -> Counter:
    calls: Counter = Counter()
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.update([model.name])
    )
    return calls


def answers(customer: str, count: int, prefix: str) -> list[dict]:
    """``count`` stored answers of the customer, each with its raw payload, as the receivers
    store them (written straight into the table: the erasure is what is measured)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    items = []
    for i in range(count):
        at = start + timedelta(minutes=i)
        response = Response(
            provider="generic",
            response_id=f"{prefix}{i}",
            customer_key=customer,
            customer_id=ALIAS,
            score=i % 11,
            comment=f"comment {i}",
            submitted_at=at,
            updated_at=at,
        )
        item = response_item(response)
        items.append(item)
        items.append(
            {
                "pk": item["pk"],
                "sk": {"S": f"RAW#{item['updated_at']['S']}#x"},
                "type": {"S": "raw"},
                "raw": {"B": compress({"email": customer, "i": i})},
            }
        )
    return items


def seed(function_env, count: int) -> str:
    """BIG with ``count`` answers, a PROFILE, a link from ALIAS, and UNDER_ALIAS answers still
    under the alias (written before the link; nothing moved them yet)."""
    table = function_env.refs["RecordsTable"]
    ddb = boto3.client("dynamodb")
    items = answers(BIG, count, "b") + answers(ALIAS, UNDER_ALIAS, "a")
    items.append({"pk": {"S": f"CUST#{BIG}"}, "sk": {"S": "PROFILE"}, "email": {"S": BIG}})
    items.append(
        {
            "pk": {"S": f"ID#{ALIAS}"},
            "sk": {"S": "ID"},
            "type": {"S": "link"},
            "customer_key": {"S": BIG},
            "gsi1pk": {"S": f"CUST#{BIG}"},
            "gsi1sk": {"S": f"ID#{ALIAS}"},
        }
    )
    dynamo.put_all(ddb, table, items)
    return table


@pytest.fixture
def big(function_env):
    return seed(function_env, ANSWERS)


def api(function_env, client):
    def services() -> Services:
        return Services(
            AggregatesStore(function_env.refs["AggregatesTable"], client),
            CustomerRecords(function_env.refs["RecordsTable"], client),
            DEFAULT_DIMENSIONS,
            lambda: parse_secrets(DEV_SECRETS.read_text()).api_tokens,
        )

    return partial(call_api, resolver(services).resolve)


def left(table: str) -> Counter:
    """What is in the table, by kind of item (tombstones and the job apart)."""
    kinds: Counter = Counter()
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            pk, sk = item["pk"]["S"], item["sk"]["S"]
            kinds["raw" if sk.startswith("RAW#") else pk.split("#", 1)[0]] += 1
    return kinds


def drain(function_env, template) -> int:
    """CrmEnrichFunction over its queue, as Lambda's mapping runs it, until the queue is idle."""
    (mapping,) = [m for m in template.event_sources if m.function == "CrmEnrichFunction"]
    emulator = Emulator()
    emulator.endpoint = None
    poller = SqsPoller(
        LocalFunction(template.functions["CrmEnrichFunction"]),
        mapping,
        function_env.resolve(mapping.source),
        emulator,
        threading.Event(),
        0,
    )
    for rounds in range(100):
        if not poller.poll_once():
            return rounds
    raise AssertionError("the queue did not drain")


def queued(function_env) -> list[dict]:
    sqs = boto3.client("sqs")
    url = function_env.refs["CrmEnrichmentQueue"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for m in messages:  # back, visible at once, for the function
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    return [json.loads(m["Body"]) for m in messages]


def test_erasing_3000_answers_answers_within_its_budget_and_says_it_goes_on(function_env):
    seed(function_env, LARGE)
    client = boto3.client("dynamodb")
    calls = counted(client)
    call = api(function_env, client)

    # when
    status, body = call("DELETE", f"/customers/{BIG}")

    # then: bounded, and said to be going on
    spent = sum(calls.values())
    print(f"DELETE of {LARGE} answers: {spent} DynamoDB calls {dict(calls)}")
    assert status == 202 and body["erased"] is True and body["complete"] is False, body
    assert spent <= REQUEST_BUDGET, calls
    assert calls["TransactWriteItems"] >= 1  # some of it is done already, page by page
    assert 0 < body["deleted"]["responses"] < LARGE
    (message,) = queued(function_env)
    assert message == {"kind": "erasure", "job": erasure_job_id(BIG)}  # a hash, no e-mail
    status, view = call("GET", f"/customers/{BIG}")
    assert status == 200 and view["erasure"]["complete"] is False
    assert "responses" not in view  # what is left is going: none of it is shown
    # a repeated DELETE goes on with the same job, within the same bound
    calls.clear()
    status, again = call("DELETE", f"/customers/{BIG}")
    assert status == 202 and again["deleted"]["responses"] > body["deleted"]["responses"]
    assert sum(calls.values()) <= REQUEST_BUDGET, calls


def test_the_queue_finishes_a_large_erasure(function_env, template, big):
    call = api(function_env, boto3.client("dynamodb"))
    status, body = call("DELETE", f"/customers/{BIG}")
    assert status == 202 and body["complete"] is False

    # when: the queue's consumer goes on
    drain(function_env, template)

    # then: nothing of the customer or the alias is left; each answer left a tombstone
    kinds = left(big)
    assert (kinds["RESP"], kinds["raw"], kinds["CUST"], kinds["ID"], kinds["ERASURE"]) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert kinds["TOMB"] == ANSWERS + UNDER_ALIAS
    assert call("GET", f"/customers/{BIG}")[0] == 404
    assert call("GET", f"/customers/{ALIAS}")[0] == 404
    assert queued(function_env) == []


class Killed(Exception):
    """The consumer dying mid-way (a Lambda timeout, a crash)."""


class DiesAt:
    """A DynamoDB client that dies at its n-th TransactWriteItems, before sending it; it
    records the ExclusiveStartKey of each by_customer Query."""

    def __init__(self, client, at: int):
        self.client, self.at, self.transactions, self.starts = client, at, 0, []

    def transact_write_items(self, **kwargs):
        self.transactions += 1
        if self.transactions == self.at:
            raise Killed()
        return self.client.transact_write_items(**kwargs)

    def query(self, **kwargs):
        if kwargs.get("IndexName") == "by_customer":
            self.starts.append(kwargs.get("ExclusiveStartKey"))
        return self.client.query(**kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def job_item(table: str) -> dict:
    return boto3.client("dynamodb").get_item(
        TableName=table,
        Key={"pk": {"S": f"ERASURE#{erasure_job_id(BIG)}"}, "sk": {"S": "JOB"}},
        ConsistentRead=True,
    )["Item"]


def test_a_killed_erasure_continues_where_it_stopped_and_never_half_applies(function_env, big):
    records = CustomerRecords(big, boto3.client("dynamodb"))
    later: list[str] = []
    first = erase_customer(records, BIG, later.append)  # the request's part
    assert first["complete"] is False and later == [erasure_job_id(BIG)]

    # when: the queue's run dies at its fifth page
    dying = DiesAt(boto3.client("dynamodb"), at=5)
    with pytest.raises(Killed):
        continue_erasure(CustomerRecords(big, dying), later[0], later.append)

    # then: four pages applied whole (each deleted answer counted, each counted one deleted)
    job = job_item(big)
    counted_so_far = int(job["counts"]["M"]["responses"]["N"])
    kinds = left(big)
    assert counted_so_far > first["deleted"]["responses"]
    assert kinds["RESP"] + counted_so_far == ANSWERS + UNDER_ALIAS
    assert kinds["raw"] + int(job["counts"]["M"]["raw_payloads"]["N"]) == ANSWERS + UNDER_ALIAS
    assert kinds["TOMB"] == counted_so_far

    # when: the message comes again
    resumed = DiesAt(boto3.client("dynamodb"), at=0)
    progress = continue_erasure(CustomerRecords(big, resumed), later[0], later.append)

    # then: it started at the stored position, not at the first page, and finished
    assert resumed.starts[0] == job["cursor"]["M"]
    assert progress.complete is True
    assert progress.deleted["responses"] == ANSWERS + UNDER_ALIAS
    assert progress.deleted["raw_payloads"] == ANSWERS + UNDER_ALIAS
    assert left(big)["RESP"] == 0 and left(big)["ERASURE"] == 0


def test_a_duplicate_message_of_a_job_applies_nothing_twice(function_env, big):
    records = CustomerRecords(big, boto3.client("dynamodb"))
    later: list[str] = []
    erase_customer(records, BIG, later.append)
    # SQS delivers the message twice: the second run finds the job complete (gone)
    first = continue_erasure(records, later[0], later.append)
    again = continue_erasure(records, later[0], later.append)
    assert first.complete and first.deleted["responses"] == ANSWERS + UNDER_ALIAS
    assert again.complete and not any(again.deleted.values())
    assert left(big)["RESP"] == 0 and left(big)["TOMB"] == ANSWERS + UNDER_ALIAS


def test_a_redelivered_erased_response_is_acknowledged_counted_and_not_stored(
    function_env, template, capsys
):
    table = function_env.refs["RecordsTable"]
    receiver = LocalFunction(template.functions["SurveyWebhookFunction"])
    event = build("survey", "typeform", body_of("survey", "typeform.json"))
    assert receiver.invoke(event)["statusCode"] == 202
    store = RecordsStore(table, boto3.client("dynamodb"))
    stored = store.get_response("typeform", "a3a12ec67a1365927098a606107fac15")
    records = CustomerRecords(table, boto3.client("dynamodb"))
    erase_customer(records, stored.customer_key)
    assert store.get_response("typeform", stored.response_id) is None
    capsys.readouterr()

    # when: Typeform delivers it again (it retries for up to 10 hours)
    answer = receiver.invoke(event)

    # then: 2xx so the provider stops, not stored, counted
    assert answer["statusCode"] == 202
    assert json.loads(answer["body"])["accepted"] == 0
    assert store.get_response("typeform", stored.response_id) is None
    assert store.raw_payloads("typeform", stored.response_id) == []
    metrics = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('{"_aws"')
    ]
    assert [m[ERASED_METRIC] for m in metrics if ERASED_METRIC in m] == [[1.0]]
    # the tombstone: no personal data, and it outlives every provider's retries
    key = tombstone_key(f"RESP#typeform#{stored.response_id}")
    tomb = boto3.client("dynamodb").get_item(TableName=table, Key=key)["Item"]
    assert set(tomb) == {"pk", "sk", "type", "expires_at"}
    text = json.dumps(tomb)
    assert stored.response_id not in text and stored.customer_key not in text
    remaining = int(tomb["expires_at"]["N"]) - datetime.now(UTC).timestamp()
    assert PROVIDER_RETRY_HORIZON < remaining <= ERASURE_MEMORY_SECONDS + 5


def test_a_tombstone_past_its_time_no_longer_refuses_the_response(function_env):
    table = function_env.refs["RecordsTable"]
    now = [1_780_000_000.0]
    store = RecordsStore(table, boto3.client("dynamodb"), clock=lambda: now[0])
    response = Response(
        provider="generic",
        response_id="t1",
        customer_key="tia@example.com",
        score=8,
        submitted_at=datetime(2026, 3, 1, tzinfo=UTC),
        updated_at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    key = tombstone_key("RESP#generic#t1")
    boto3.client("dynamodb").put_item(
        TableName=table,
        Item={**key, "type": {"S": "tombstone"}, "expires_at": {"N": str(int(now[0]) + 60)}},
    )
    assert store.put_all([(response, {})], 400) == ["erased"]
    now[0] += 61  # expired (DynamoDB's TTL has not deleted it yet)
    assert store.put_all([(response, {})], 400) == ["applied"]
