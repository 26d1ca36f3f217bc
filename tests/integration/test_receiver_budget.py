"""What a receiver costs in DynamoDB calls for its largest body (docs/storage.md "Calls per
request"), counted with a botocore hook on the store's client against moto; and versions that
another request stores between our read and our write, decided again from what refused it."""

import json
from collections import Counter
from datetime import UTC, datetime

import boto3
import pytest

from billing_providers import ADAPTERS as BILLING
from nps_sync.core.errors import Conflict
from nps_sync.core.models import Response
from nps_sync.ingest.receive import MAX_GENERIC_ITEMS, receive
from nps_sync.store.records import CONFLICT, DUPLICATE, STALE, RecordsStore
from survey_providers import ADAPTERS as SURVEY
from tests.conftest import body_of, signed

from .conftest import call_api

# The budgets docs/storage.md states, in calls per item of a full generic body.
NEW_CUSTOMERS = 1.2  # every item a new customer with an own id: one link, one Query each
DUPLICATES = 0.05  # every item delivered before
# One webhook of a provider: (calls when new, calls when re-delivered).
SINGLE = {
    ("survey", "typeform", "typeform.json"): (8, 1),
    ("billing", "stripe", "stripe-customer.updated.json"): (8, 1),
    ("billing", "stripe", "stripe-customer.subscription.updated.json"): (8, 2),
}
ADAPTERS = {"survey": SURVEY, "billing": BILLING}


def counted(client) -> Counter:
    """Every DynamoDB call the client makes from now on, by operation."""
    calls: Counter = Counter()
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.update([model.name])
    )
    return calls


def survey_body(count: int, prefix: str = "r") -> bytes:
    """A full generic survey body: each answer from a customer not seen before, with an own
    id beside the e-mail (the costliest: the id is linked to the e-mail)."""
    return json.dumps(
        [
            {
                "id": f"{prefix}{i}",
                "customer": {"email": f"person{i}@example.com", "id": f"cust-{i}"},
                "score": i % 11,
                "submitted_at": "2026-03-02T10:15:00Z",
                "comment": "a comment of some length, as answers have",
            }
            for i in range(count)
        ]
    ).encode()


def billing_body(count: int) -> bytes:
    return json.dumps(
        [
            {
                "id": f"evt-{i}",
                "customer": {"email": f"person{i}@example.com", "id": f"cust-{i}"},
                "updated_at": "2026-03-02T10:15:00Z",
                "plan": "pro",
                "status": "active",
                "mrr": {"amount": 4900, "currency": "EUR"},
            }
            for i in range(count)
        ]
    ).encode()


@pytest.fixture
def store(world):
    return RecordsStore(world.records_table, world.ddb)


@pytest.mark.parametrize(
    ("kind", "body"),
    [("survey", survey_body(MAX_GENERIC_ITEMS)), ("billing", billing_body(MAX_GENERIC_ITEMS))],
    ids=["survey", "billing"],
)
def test_a_full_generic_body_stays_within_its_call_budget(world, store, test_settings, kind, body):
    calls = counted(world.ddb)

    first = receive("generic", signed("generic", body), ADAPTERS[kind], store, test_settings)
    new_calls, calls = sum(calls.values()), counted(world.ddb)
    again = receive("generic", signed("generic", body), ADAPTERS[kind], store, test_settings)
    duplicate_calls = sum(calls.values())

    assert (first.accepted, again.duplicates) == (MAX_GENERIC_ITEMS, MAX_GENERIC_ITEMS)
    assert new_calls <= NEW_CUSTOMERS * MAX_GENERIC_ITEMS, new_calls
    assert duplicate_calls <= DUPLICATES * MAX_GENERIC_ITEMS, duplicate_calls
    # and the batch did what one item at a time did: every own id linked to its e-mail
    links = store.customers.by_customer(f"person{MAX_GENERIC_ITEMS - 1}@example.com", "ID#")
    assert [i["pk"]["S"] for i in links] == [f"ID#cust-{MAX_GENERIC_ITEMS - 1}"]


@pytest.mark.parametrize(("kind", "provider", "name"), SINGLE, ids=lambda v: str(v))
def test_one_provider_webhook_stays_within_its_call_budget(
    world, store, test_settings, kind, provider, name
):
    body = body_of(kind, name)
    calls = counted(world.ddb)

    receive(provider, signed(provider, body), ADAPTERS[kind], store, test_settings)
    new_calls, calls = sum(calls.values()), counted(world.ddb)
    receive(provider, signed(provider, body), ADAPTERS[kind], store, test_settings)

    new_budget, duplicate_budget = SINGLE[(kind, provider, name)]
    assert new_calls <= new_budget and sum(calls.values()) <= duplicate_budget, (new_calls, calls)


# --- a version stored by another request between our read and our write ---------------------

AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)


def answer(score: int, minutes: int = 0, response_id: str = "r-1") -> Response:
    return Response(
        provider="typeform",
        response_id=response_id,
        customer_key="ana@example.com",
        score=score,
        submitted_at=AT,
        updated_at=AT.replace(minute=15 + minutes),
    )


def meanwhile(client, action) -> None:
    """Run ``action`` once, right before the client's first write of a response."""
    pending = [action]

    def before(model, params, **_):
        body = json.loads(params.get("body") or b"{}")
        puts = [body.get("Item")] + [
            t.get("Put", {}).get("Item") for t in body.get("TransactItems", [])
        ]
        if pending and any(p and p["sk"]["S"] == "RESP" for p in puts):
            pending.pop()()

    client.meta.events.register("before-call.dynamodb", before)


@pytest.mark.parametrize(
    ("theirs", "outcome", "stored_score"),
    [(answer(9), DUPLICATE, 9), (answer(3), CONFLICT, 3), (answer(3, minutes=5), STALE, 3)],
    ids=["same content", "other content", "newer version"],
)
def test_a_version_stored_meanwhile_decides_the_outcome(
    world, store, theirs, outcome, stored_score
):
    # given: another request stores this response after we read it, before we write it
    other = RecordsStore(world.records_table, boto3.client("dynamodb"))
    meanwhile(world.ddb, lambda: other.put(theirs, {"theirs": True}, 30))

    # when: we store score 9 at the first version, together with a new answer
    outcomes = store.put_all([(answer(9), {"ours": True}), (answer(7, response_id="r-2"), {})], 30)

    # then: ours is decided against theirs, theirs is kept, and the other answer is stored
    assert outcomes == [outcome, "applied"]
    assert store.get_response("typeform", "r-1").score == stored_score
    assert store.get_response("typeform", "r-2").score == 7


def test_a_generic_conflict_found_while_writing_is_a_409_saying_the_rest_is_stored(
    world, store, test_settings
):
    body = survey_body(2, prefix="g")
    other = RecordsStore(world.records_table, boto3.client("dynamodb"))
    changed = json.loads(body)[:1]
    changed[0]["score"] = 5
    meanwhile(
        world.ddb,
        lambda: receive(
            "generic", signed("generic", json.dumps(changed).encode()), SURVEY, other, test_settings
        ),
    )

    with pytest.raises(Conflict) as refused:
        receive("generic", signed("generic", body), SURVEY, store, test_settings)

    assert "g0" in refused.value.message and "g1" not in refused.value.message
    assert "other items are stored" in refused.value.message
    assert store.get_response("generic", "g0").score == 5  # the first stored is kept
    assert store.get_response("generic", "g1") is not None


# --- what the API shows ------------------------------------------------------------------------


def test_the_content_hash_is_stored_but_not_shown_by_the_customer_view(world, api_function):
    world.respond("r1", "ana@example.com", 4, comment="meh")
    item = world.ddb.get_item(
        TableName=world.records_table,
        Key={"pk": {"S": "RESP#generic#r1"}, "sk": {"S": "RESP"}},
    )["Item"]
    assert "content_hash" in item

    status, body = call_api(
        api_function(), "GET", "/customers/ana%40example.com", route="/customers/{key}"
    )

    assert status == 200 and body["responses"][0]["comment"] == "meh"
    assert "content_hash" not in body["responses"][0]


def test_an_answer_under_an_own_id_reads_its_profile_with_the_rest_and_a_redelivery_once(
    world, store, test_settings
):
    """A key that may be an alias: its PROFILE rides in the first BatchGetItem (not a GetItem
    of its own), the link is read again after the write only, and a re-delivery, which writes
    nothing, goes by the first read (docs/storage.md "Calls per request")."""
    body = json.dumps(
        {
            "id": "r-1",
            "customer": {"id": "cust-7"},
            "score": 9,
            "submitted_at": "2026-03-02T10:15:00Z",
        }
    ).encode()
    calls = counted(world.ddb)
    first = receive("generic", signed("generic", body), SURVEY, store, test_settings)
    new, calls = dict(calls), counted(world.ddb)
    again = receive("generic", signed("generic", body), SURVEY, store, test_settings)

    assert (first.accepted, again.duplicates) == (1, 1)
    # the raw payload and the answer, then the link of cust-7 read again
    assert new == {"BatchGetItem": 1, "PutItem": 2, "GetItem": 1}
    assert dict(calls) == {"BatchGetItem": 1}
