"""CRM/billing profiles and identity linking through the webhook handlers, against moto."""

import json
import sys
from datetime import UTC, datetime
from itertools import permutations

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from local.events import build
from local.lambdas import LocalFunction
from nps_sync.core.models import BillingProfile, Response
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.records import RecordsStore
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
        "conflicts": 0,
    }
    assert post("billing", "stripe", body=json.dumps(older).encode())[1] == {
        "accepted": 0,
        "duplicates": 1,
        "ignored": 0,
        "conflicts": 0,
    }
    assert customers.profile("cust-1001")["plan"]["S"] == "Pro monthly"


# --- faults and a lagging index, injected through botocore's event hooks ---------------------


class Hooks:
    """botocore hooks (not patches of our code): fail or lose the answer of the UpdateItem that
    moves a response to its linked customer, or run a callback before a record's PutItem."""

    def __init__(self):
        self.move_fault: str | None = (
            None  # "fail" (nothing applied) or "lose" (applied, no answer)
        )
        self.faults = 0
        self.before_put = None

    def before_call(self, model, params, **kwargs):
        body = json.loads(params.get("body") or b"{}")
        if model.name == "PutItem" and self.before_put is not None:
            self.before_put(body)
        if self._is_move(model, body) and self.move_fault == "fail":
            self.move_fault, self.faults = None, self.faults + 1
            error = {"Code": "InternalServerError", "Message": "injected"}
            return AWSResponse(params["url"], 500, {}, None), {"Error": error}
        return None

    def after_call(self, model, params=None, **kwargs):
        body = json.loads((kwargs.get("context") or {}).get("nps_body") or b"{}")
        if self._is_move(model, body) and self.move_fault == "lose":
            self.move_fault, self.faults = None, self.faults + 1
            raise ReadTimeoutError(endpoint_url="injected")

    def remember_body(self, model, params, context, **kwargs):
        context["nps_body"] = params.get("body")

    @staticmethod
    def _is_move(model, body) -> bool:
        return (
            model.name == "UpdateItem"
            and body.get("Key", {}).get("pk", {}).get("S", "").startswith("RESP#")
            and "customer_key" in body.get("UpdateExpression", "")
        )

    def register(self, events) -> None:
        events.register_first("before-call.dynamodb", self.remember_body)
        events.register_first("before-call.dynamodb", self.before_call)
        events.register_first("after-call.dynamodb", self.after_call)


def _forget_function_modules(template) -> None:
    for logical_id in template.functions:
        sys.modules.pop(f"lambda_{logical_id}_app", None)


@pytest.fixture
def hooks(function_env, template):
    """A fresh default session carrying the hooks, and fresh function modules, so that every
    client the functions create from now on goes through them."""
    injected = Hooks()
    boto3.setup_default_session()
    injected.register(boto3.DEFAULT_SESSION.events)
    _forget_function_modules(template)
    yield injected
    boto3.DEFAULT_SESSION = None
    _forget_function_modules(template)


@pytest.mark.parametrize("fault", ["fail", "lose"])
def test_a_move_failing_midway_is_completed_by_the_providers_retry(post, records, hooks, fault):
    customers, store = records
    response = json.dumps(
        {
            "id": "r-9",
            "customer": {"id": "cust-1001"},
            "score": 3,
            "submitted_at": "2026-03-01T09:00:00Z",
        }
    ).encode()
    assert post("survey", "generic", body=response)[0] == 202
    assert post(*SUBSCRIPTION)[0] == 202  # kept under cust-1001 (metadata.customer_id)

    # when: the Stripe customer links cust-1001 to the e-mail, and moving the response fails
    hooks.move_fault = fault
    status, _ = post(*CUSTOMER)
    assert (status, hooks.faults) == (503, 1)  # Stripe retries

    # then: the retry is a duplicate event, and it completes the move
    status, answer = post(*CUSTOMER)
    assert (status, answer["duplicates"]) == (202, 1)
    assert store.get_response("generic", "r-9").customer_key == "ana@example.com"
    assert customers.by_customer("cust-1001") == [] and customers.profile("cust-1001") is None
    assert customers.profile("ana@example.com")["plan"]["S"] == "Pro monthly"


class LaggingIndex:
    """by_customer as eventually consistent as it is in AWS: what this client writes once ``on``
    is not in the index yet (a botocore hook drops it from Query answers). ``meanwhile`` runs
    once, right before the record's own write: another request writing a link at that moment."""

    def __init__(self, client, meanwhile):
        self.unindexed: set[str] = set()
        self.meanwhile = meanwhile
        client.meta.events.register("before-call.dynamodb", self._written)
        client.meta.events.register("after-call.dynamodb.Query", self._hide)

    def _written(self, model, params, **kwargs):
        body = json.loads(params.get("body") or b"{}")
        if model.name == "PutItem":
            pks = [body["Item"]["pk"]["S"]]
            record = body["Item"]["sk"]["S"] == "RESP"
        elif model.name == "TransactWriteItems":
            writes = [w.get("Put") or w.get("Update") for w in body["TransactItems"]]
            pks = [(w.get("Item") or w.get("Key"))["pk"]["S"] for w in writes if w]
            record = True
        else:
            return
        self.unindexed.update(pks)
        if record and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()

    def _hide(self, parsed, **kwargs):
        if "Items" in parsed:
            parsed["Items"] = [i for i in parsed["Items"] if i["pk"]["S"] not in self.unindexed]
            parsed["Count"] = len(parsed["Items"])


def _response_under(key: str) -> Response:
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    return Response(
        provider="generic",
        response_id="r-1",
        customer_key=key,
        customer_id=key,
        score=8,
        submitted_at=at,
        updated_at=at,
    )


def _subscription_under(key: str) -> BillingProfile:
    at = datetime(2026, 3, 1, 9, tzinfo=UTC)
    return BillingProfile(
        provider="generic",
        source_id=key,
        customer_key=key,
        customer_id=key,
        event_id="b-1",
        source_updated_at=at,
        plan="pro",
    )


@pytest.mark.parametrize("record", ["response", "subscription"])
def test_a_link_written_while_a_record_is_stored_moves_it_despite_a_lagging_index(
    function_env, record
):
    table = function_env.refs["RecordsTable"]
    other_request = RecordsStore(table, boto3.client("dynamodb"))
    client = boto3.client("dynamodb")
    LaggingIndex(client, lambda: other_request.links.link("cust-1001", "ana@example.com"))
    store = RecordsStore(table, client)

    # when: the record is stored under cust-1001 while cust-1001 is linked to the e-mail
    if record == "response":
        assert store.put_response(_response_under("cust-1001"), {}, 30)
        stored = ("RESP#generic#r-1", "RESP")
    else:
        assert store.put_profile(_subscription_under("cust-1001"), {}, 30)
        stored = ("PROF#generic#cust-1001", "BILLING")

    # then: it is under the e-mail although the index did not list it yet
    item = client.get_item(
        TableName=table, Key={"pk": {"S": stored[0]}, "sk": {"S": stored[1]}}, ConsistentRead=True
    )["Item"]
    assert (item["customer_key"]["S"], item["gsi1pk"]["S"]) == (
        "ana@example.com",
        "CUST#ana@example.com",
    )


# --- Delighted person ids --------------------------------------------------------------------


def _delighted(response_id: str, email: str | None, created_at: int) -> bytes:
    """Ben's answers: one to an SMS survey (no e-mail: Delighted knows him by person id), one
    to an e-mail survey once his e-mail is known."""
    payload = json.loads(body_of("survey", "delighted.json"))
    data = payload["event_data"]
    data.update(id=response_id, created_at=created_at, updated_at=created_at)
    data["person_properties"] = {"Plan": "pro"}
    data["person"]["email"] = email
    return json.dumps(payload).encode()


@pytest.mark.parametrize("email_first", [False, True], ids=["sms first", "email first"])
def test_delighted_answers_known_by_person_id_join_the_email_in_both_orders(
    post, records, email_first
):
    customers, store = records
    sms = _delighted("58201770", None, 1772440000)
    mail = _delighted("58201771", "Ben@Example.org", 1772446200)
    for body in [mail, sms] if email_first else [sms, mail]:
        assert post("survey", "delighted", body=body)[1]["accepted"] == 1

    for response_id in ("58201770", "58201771"):
        assert store.get_response("delighted", response_id).customer_key == "ben@example.org"
    assert customers.by_customer("delighted:12840391") == []
    assert [i["pk"]["S"] for i in customers.by_customer("ben@example.org", "ID#")] == [
        "ID#delighted:12840391"
    ]


# --- segment stamps after a move -------------------------------------------------------------


def test_a_moved_response_takes_its_new_customers_profile_whatever_the_versions(world):
    # given: the alias's profile has changed more often (version 5) than the e-mail's (3)
    world.profile("cust-1001", 5, plan="team", region="APAC")
    world.respond("r1", "cust-1001", 4)
    world.profile("ana@example.com", 3, plan="pro", region="EMEA")

    # when: an answer with both ids links cust-1001 to the e-mail, and the stream is processed
    world.respond("r2", "ana@example.com", 9, customer_id="cust-1001")
    world.run()

    # then: both answers carry the e-mail's profile, and the aggregates agree
    customers = CustomerRecords(world.records_table, world.ddb)
    stamped = {
        r["response_id"]["S"]: (r["plan"]["S"], r["region"]["S"], r["profile_version"]["N"])
        for r in customers.responses()
    }
    assert stamped == {"r1": ("pro", "EMEA", "3"), "r2": ("pro", "EMEA", "3")}
    assert world.differences() == []
