"""CRM and billing receivers through their handlers (moto), with HubSpot's reads queued and
answered by a fake HubSpot API, and Salesforce's SOAP acknowledgement."""

import json
import threading

import boto3
import pytest

from local.aws import Emulator
from local.events import build, wire_body
from local.lambdas import LocalFunction
from local.pollers import SqsPoller
from nps_sync.customer_records import CustomerRecords
from tests.conftest import BODIES
from tests.fakes.hubspot import FakeHubSpot


@pytest.fixture
def functions(function_env, template):
    return {name: LocalFunction(template.functions[name]) for name in template.functions}


@pytest.fixture
def customers(function_env):
    return CustomerRecords(function_env.refs["RecordsTable"], boto3.client("dynamodb"))


@pytest.fixture
def hubspot(monkeypatch):
    fake = FakeHubSpot("dev-hubspot-token")
    url = fake.start()
    monkeypatch.setenv("HUBSPOT_API_URL", url)
    yield fake
    fake.stop()


def post(functions, kind, name, **changes):
    path = BODIES / kind / name
    event = build(kind, path.stem.split("-", 1)[0], wire_body(path))
    event.update(changes)
    function = {"crm": "CrmWebhookFunction", "billing": "BillingWebhookFunction"}[kind]
    return functions[function].invoke(event)


def test_hubspot_batch_is_stored_and_thin_records_are_read_off_the_request_path(
    functions, customers, hubspot, function_env, template
):
    hubspot.add(
        "contacts",
        "901",
        email="ana@example.com",
        lifecyclestage="customer",
        country="DE",
        region="EMEA",
        associatedcompanyid="5790939450",
    )
    hubspot.add("contacts", "902", email="ben@example.org", company="Free Text Ltd")
    hubspot.add("contacts", "903", email="chen@example.net")
    hubspot.add("companies", "5790939450", name="Acme GmbH")

    answer = post(functions, "crm", "hubspot-contact.propertyChange.json")
    assert answer["statusCode"] == 202 and json.loads(answer["body"])["accepted"] >= 4
    assert hubspot.calls == []  # nothing read while HubSpot waits for our answer

    mapping = next(m for m in template.event_sources if m.function == "CrmEnrichFunction")
    queue_arn = function_env.resolve(mapping.source)
    poller = SqsPoller(
        functions["CrmEnrichFunction"],
        mapping,
        queue_arn,
        Emulator(),
        threading.Event(),
        idle_seconds=0,
    )
    while poller.poll_once():
        pass

    assert len(hubspot.calls) <= 2  # one batch read of contacts, one of their companies
    ana = customers.profile("ana@example.com")
    assert (ana["account"]["S"], ana["region"]["S"], ana["lifecycle_stage"]["S"]) == (
        "Acme GmbH",
        "EMEA",
        "customer",
    )
    assert customers.by_customer("hubspot:contact-901") == []  # linked to the e-mail
    assert customers.profile("ben@example.org")["account"]["S"] == "Free Text Ltd"


def test_hubspot_redelivery_is_a_duplicate(functions):
    first = json.loads(post(functions, "crm", "hubspot-contact.propertyChange.json")["body"])
    again = json.loads(post(functions, "crm", "hubspot-contact.propertyChange.json")["body"])
    assert again["accepted"] == 0 and again["duplicates"] == first["accepted"]


def test_salesforce_gets_its_soap_acknowledgement_also_for_a_duplicate(functions, customers):
    for _ in range(2):
        answer = post(functions, "crm", "salesforce-contact.xml")
        assert answer["statusCode"] == 200
        assert answer["headers"]["Content-Type"].startswith("text/xml")
        assert "<Ack>true</Ack>" in answer["body"]


def test_salesforce_with_a_wrong_token_is_refused(functions):
    event = build("crm", "salesforce", wire_body(BODIES / "crm" / "salesforce-contact.xml"))
    event["rawQueryString"] = "token=guess"
    event["queryStringParameters"] = {"token": "guess"}
    assert functions["CrmWebhookFunction"].invoke(event)["statusCode"] == 401


def test_chargebee_subscription_sets_plan_and_mrr(functions, customers):
    answer = post(functions, "billing", "chargebee-subscription_changed-pc2.json")
    assert json.loads(answer["body"])["accepted"] == 1

    profile = customers.profile("ben@example.com")
    assert profile["plan"]["S"] == "growth-EUR-Monthly"
    assert (profile["mrr_amount"]["N"], profile["mrr_currency"]["S"]) == ("30600", "EUR")


def test_chargebee_with_a_wrong_password_is_refused(functions):
    answer = post(
        functions,
        "billing",
        "chargebee-subscription_changed-pc2.json",
        headers={"authorization": "Basic ZGV2LWNoYXJnZWJlZTp3cm9uZw=="},
    )
    assert answer["statusCode"] == 401
