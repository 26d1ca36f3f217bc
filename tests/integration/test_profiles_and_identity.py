"""CRM/billing profiles and identity linking through the webhook handlers, against moto."""

import json
from itertools import permutations

import boto3
import pytest

from local.events import build
from local.lambdas import LocalFunction
from nps_sync.customer_records import CustomerRecords
from nps_sync.storage import RecordsStore
from tests.conftest import body_of

SUBSCRIPTION = ("billing", "stripe", "stripe-customer.subscription.updated.json")
CUSTOMER = ("billing", "stripe", "stripe-customer.updated.json")
RESPONSE = ("survey", "typeform", "typeform.json")
FUNCTIONS = {
    "survey": "SurveyWebhookFunction",
    "crm": "CrmWebhookFunction",
    "billing": "BillingWebhookFunction",
}


@pytest.fixture
def post(function_env, template):
    functions = {kind: LocalFunction(template.functions[name]) for kind, name in FUNCTIONS.items()}

    def send(kind, provider, name=None, body=None):
        body = body if body is not None else body_of(kind, name)
        answer = functions[kind].invoke(build(kind, provider, body))
        return answer["statusCode"], json.loads(answer["body"])

    return send


@pytest.fixture
def records(function_env):
    client = boto3.client("dynamodb")
    table = function_env.refs["RecordsTable"]
    return CustomerRecords(table, client), RecordsStore(table, client)


@pytest.mark.parametrize(
    "order",
    list(permutations([SUBSCRIPTION, CUSTOMER, RESPONSE])),
    ids=lambda o: " > ".join(n[2].split(".")[0] for n in o),
)
def test_any_arrival_order_ends_with_one_customer(post, records, order):
    customers, store = records
    for kind, provider, name in order:
        status, answer = post(kind, provider, name)
        assert (status, answer["accepted"]) == (202, 1), name

    indexed = customers.by_customer("ana@example.com")
    kinds = sorted(item["gsi1sk"]["S"].split("#")[0] for item in indexed)
    assert kinds == ["ID", "ID", "PROF", "PROF", "RESP"]  # 2 links; customer + subscription
    for alias in ("cust-1001", "stripe:cus_PfX2kQm8aZ1bCd"):
        assert customers.by_customer(alias) == [] and customers.profile(alias) is None
    profile = customers.profile("ana@example.com")
    assert profile["plan"]["S"] == "Pro monthly"
    assert (profile["mrr_amount"]["N"], profile["mrr_currency"]["S"]) == ("19600", "EUR")
    assert profile["email"]["S"] == "Ana@Example.com"
    response = store.get_response("typeform", "a3a12ec67a1365927098a606107fac15")
    assert response.customer_key == "ana@example.com"


def test_a_response_known_only_by_customer_id_moves_when_the_email_arrives(post, records):
    customers, store = records
    body = json.dumps(
        {
            "id": "r-9",
            "customer": {"id": "cust-1001"},
            "score": 3,
            "submitted_at": "2026-03-01T09:00:00Z",
        }
    ).encode()
    post("survey", "generic", body=body)
    assert store.get_response("generic", "r-9").customer_key == "cust-1001"

    post(*CUSTOMER)  # Stripe customer with e-mail and metadata.customer_id = cust-1001

    assert store.get_response("generic", "r-9").customer_key == "ana@example.com"
    assert customers.by_customer("cust-1001") == []


def test_redelivered_and_stale_events_change_nothing(post, records):
    customers, _ = records
    newer = json.loads(body_of(*SUBSCRIPTION[::2]))
    older = json.loads(json.dumps(newer))
    older["id"], older["created"] = "evt_older", newer["created"] - 3600
    older["data"]["object"]["items"]["data"][0]["price"]["nickname"] = "Starter monthly"

    assert post("billing", "stripe", body=json.dumps(newer).encode())[1]["accepted"] == 1
    assert post("billing", "stripe", body=json.dumps(newer).encode())[1] == {
        "accepted": 0,
        "duplicates": 1,
        "ignored": 0,
    }
    assert post("billing", "stripe", body=json.dumps(older).encode())[1] == {
        "accepted": 0,
        "duplicates": 1,
        "ignored": 0,
    }
    assert customers.profile("cust-1001")["plan"]["S"] == "Pro monthly"
