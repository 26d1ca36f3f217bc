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
from nps_sync.store.customers import CustomerRecords
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


def send(functions, kind, provider, payload) -> dict:
    """A body built in the test, signed as the provider signs it; the parsed answer."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    function = {"crm": "CrmWebhookFunction", "billing": "BillingWebhookFunction"}[kind]
    answer = functions[function].invoke(build(kind, provider, body))
    assert answer["statusCode"] in (200, 202), answer
    return answer


def drain(functions, function_env, template) -> None:
    """CrmEnrichFunction polling its queue as Lambda does, until the queue is empty."""
    mapping = next(m for m in template.event_sources if m.function == "CrmEnrichFunction")
    poller = SqsPoller(
        functions["CrmEnrichFunction"],
        mapping,
        function_env.resolve(mapping.source),
        Emulator(),
        threading.Event(),
        idle_seconds=0,
    )
    while poller.poll_once():
        pass


# --- Stripe: invoices say that money came in, not what the subscription's status is -------


def stripe_event(name: str, event_id: str, created: int, **changes) -> dict:
    event = json.loads((BODIES / "billing" / name).read_text())
    event.update(id=event_id, created=created)
    event["data"]["object"].update(changes)
    return event


def subscription(event_id, created, status, kind="customer.subscription.updated"):
    event = stripe_event(
        "stripe-customer.subscription.updated.json", event_id, created, status=status
    )
    event["type"] = kind
    return event


def invoice(event_id, created, billing_reason, amount_paid=19600):
    return stripe_event(
        "stripe-invoice.paid.json",
        event_id,
        created,
        billing_reason=billing_reason,
        amount_paid=amount_paid,
        amount_due=amount_paid,
        total=amount_paid,
    )


@pytest.fixture
def stripe_customer(functions):
    """Stripe sends the customer (e-mail, metadata.customer_id) before its subscriptions."""
    send(
        functions,
        "billing",
        "stripe",
        stripe_event("stripe-customer.updated.json", "evt_c", 1772440000),
    )


def test_a_paid_trial_invoice_leaves_the_subscription_trialing(
    functions, customers, stripe_customer
):
    send(functions, "billing", "stripe", subscription("evt_s1", 1772445600, "trialing"))
    send(functions, "billing", "stripe", invoice("evt_i1", 1772445610, "subscription_create", 0))

    assert customers.profile("ana@example.com")["status"]["S"] == "trialing"


def test_a_final_invoice_paid_after_the_cancellation_keeps_the_customer_churned(
    functions, customers, stripe_customer
):
    send(functions, "billing", "stripe", subscription("evt_s1", 1772445600, "active"))
    deleted = subscription("evt_s2", 1775001000, "canceled", "customer.subscription.deleted")
    send(functions, "billing", "stripe", deleted)
    churned_at = customers.profile("ana@example.com")["churned_at"]["S"]

    send(functions, "billing", "stripe", invoice("evt_i9", 1775001900, "subscription_cycle"))

    profile = customers.profile("ana@example.com")
    assert (profile["status"]["S"], profile["churned_at"]["S"]) == ("canceled", churned_at)
    assert profile["renewed_at"]["SS"] == ["2026-04-01T00:05:00.000000Z"]  # the payment's moment


def test_a_subscription_update_older_than_an_invoice_still_applies(
    functions, customers, stripe_customer
):
    send(functions, "billing", "stripe", invoice("evt_i1", 1772445610, "subscription_cycle"))
    send(functions, "billing", "stripe", subscription("evt_s1", 1772445600, "past_due"))

    profile = customers.profile("ana@example.com")
    assert (profile["status"]["S"], profile["plan"]["S"]) == ("past_due", "Pro monthly")


# --- HubSpot: one property per event, companies reaching their contacts ------------------


def hubspot_change(event_id, object_id, occurred_at, name, value, kind="contact") -> dict:
    return {
        "eventId": event_id,
        "subscriptionId": 2401530,
        "portalId": 46851201,
        "appId": 3128875,
        "occurredAt": occurred_at,
        "subscriptionType": f"{kind}.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        "propertyName": name,
        "propertyValue": value,
    }


def test_a_late_older_hubspot_change_applies_to_another_property_not_to_the_same(
    functions, customers
):
    send(functions, "crm", "hubspot", [hubspot_change(1, 903, 1772446520000, "region", "EMEA")])

    # when: two changes made before it arrive late, one of another property, one of the same
    late = [
        hubspot_change(2, 903, 1772446510000, "lifecyclestage", "customer"),
        hubspot_change(3, 903, 1772446500000, "region", "APAC"),
    ]
    answer = json.loads(send(functions, "crm", "hubspot", late)["body"])

    # then: the other property is applied, the older value of the same one is not
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    profile = customers.profile("hubspot:contact-903")
    assert (profile["region"]["S"], profile["lifecycle_stage"]["S"]) == ("EMEA", "customer")


def test_a_company_change_reaches_its_contacts_through_the_crm_api(
    functions, customers, hubspot, function_env, template
):
    hubspot.add("companies", "5790939450", name="Acme GmbH", region="EMEA")
    hubspot.add(
        "contacts", "901", email="ana@example.com", associatedcompanyid="5790939450", region=None
    )
    hubspot.add(
        "contacts", "905", email="dan@example.com", associatedcompanyid="5790939450", region="APAC"
    )
    hubspot.associate("companies", "5790939450", "contacts", ["901", "905"])
    created = [
        {
            **hubspot_change(n, contact, 1772446500000, None, None),
            "subscriptionType": "contact.creation",
        }
        for n, contact in ((1, 901), (2, 905))
    ]
    send(functions, "crm", "hubspot", created)
    drain(functions, function_env, template)
    assert customers.profile("ana@example.com")["account"]["S"] == "Acme GmbH"
    assert customers.profile("ana@example.com")["region"]["S"] == "EMEA"  # her company's

    # when: the company is renamed and moved to another region in HubSpot
    hubspot.add(
        "companies",
        "5790939450",
        updated_at="2026-03-03T08:00:00Z",
        name="Acme Group",
        region="DACH",
    )
    renamed = hubspot_change(3, 5790939450, 1772524800000, "name", "Acme Group", kind="company")
    send(functions, "crm", "hubspot", [renamed])
    drain(functions, function_env, template)

    # then: its contacts follow; a contact's own region stays hers
    ana, dan = customers.profile("ana@example.com"), customers.profile("dan@example.com")
    assert (ana["account"]["S"], ana["region"]["S"]) == ("Acme Group", "DACH")
    assert (dan["account"]["S"], dan["region"]["S"]) == ("Acme Group", "APAC")
    assert customers.profile("hubspot:company-5790939450") is None  # not a customer


# --- Salesforce: Accounts are stored, their contacts take the Account's name ------------


def salesforce_message(*sobjects: tuple[str, str, str]) -> bytes:
    """An Outbound Message with one Notification per (type, notification id, fields)."""
    notifications = "".join(
        f"""<Notification><Id>{notification_id}</Id>
        <sObject xsi:type="sf:{kind}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{fields}
        </sObject></Notification>"""
        for kind, notification_id, fields in sobjects
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>00D000000000001AAA</OrganizationId><ActionId>04k5g000000TWyzAAG</ActionId>
{notifications}</notifications></soapenv:Body></soapenv:Envelope>""".encode()


ANA = (
    "Contact",
    "04l5g00000LBnJqAAL",
    """<sf:Id>0035g00000XyZaBAAV</sf:Id><sf:AccountId>0015g00000AbCdEAAV</sf:AccountId>
    <sf:Email>ana@example.com</sf:Email><sf:LastModifiedDate>2026-03-02T10:15:00.000Z</sf:LastModifiedDate>""",
)


def account(notification_id: str, name: str, modified: str) -> tuple[str, str, str]:
    return (
        "Account",
        notification_id,
        f"""<sf:Id>0015g00000AbCdEAAV</sf:Id><sf:Name>{name}</sf:Name>
        <sf:Region__c>EMEA</sf:Region__c><sf:LastModifiedDate>{modified}</sf:LastModifiedDate>""",
    )


@pytest.mark.parametrize("account_first", [True, False], ids=["account first", "contact first"])
def test_a_salesforce_contact_takes_its_accounts_name_in_either_order(
    functions, customers, account_first, function_env, template
):
    older = account("04l5g00000LBnK1AAL", "Acme GmbH", "2026-02-20T08:00:00.000Z")
    for message in [older, ANA] if account_first else [ANA, older]:
        send(functions, "crm", "salesforce", salesforce_message(message))
        if message is ANA and not account_first:
            assert "account" not in customers.profile("ana@example.com")  # not the raw Id
    drain(functions, function_env, template)  # (contact first: she follows the Account here)

    ana = customers.profile("ana@example.com")
    assert (ana["account"]["S"], ana["region"]["S"]) == ("Acme GmbH", "EMEA")

    renamed = account("04l5g00000LBnK2AAL", "Acme Group", "2026-03-05T08:00:00.000Z")
    send(functions, "crm", "salesforce", salesforce_message(renamed))
    # the rename is stored and its follow-up queued: the request did not walk the members
    assert customers.profile("ana@example.com")["account"]["S"] == "Acme GmbH"
    drain(functions, function_env, template)
    assert customers.profile("ana@example.com")["account"]["S"] == "Acme Group"
    assert customers.profile("salesforce:0015g00000AbCdEAAV") is None  # not a customer


# --- an event id re-delivered with other content --------------------------------------------


def test_a_stripe_event_id_redelivered_with_other_content_keeps_the_first_and_is_counted(
    functions, customers, stripe_customer
):
    send(functions, "billing", "stripe", subscription("evt_s1", 1772445600, "active"))

    changed = subscription("evt_s1", 1772445600, "past_due")  # the same event id
    answer = json.loads(send(functions, "billing", "stripe", changed)["body"])

    assert answer == {"accepted": 0, "duplicates": 0, "ignored": 0, "conflicts": 1}
    assert customers.profile("ana@example.com")["status"]["S"] == "active"


def test_a_generic_event_id_resent_with_other_content_is_a_409_naming_it(functions, customers):
    body = json.loads((BODIES / "billing" / "generic.json").read_text())
    send(functions, "billing", "generic", body)
    body[1]["status"] = "active"  # evt-41 again, now saying something else

    answer = functions["BillingWebhookFunction"].invoke(
        build("billing", "generic", json.dumps(body).encode())
    )

    refused = json.loads(answer["body"])
    assert (answer["statusCode"], refused["error"]) == (409, "conflict")
    assert "(evt-41)" in refused["message"] and "new event" in refused["message"]
    assert customers.profile("erik@example.com")["status"]["S"] == "past_due"

    # when: the change comes as a new event, it is applied
    body[1]["id"], body[1]["updated_at"] = "evt-42", "2026-03-02T12:00:00Z"
    answer = json.loads(send(functions, "billing", "generic", body)["body"])
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    assert customers.profile("erik@example.com")["status"]["S"] == "active"
