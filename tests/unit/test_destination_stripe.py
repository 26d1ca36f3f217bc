"""The Stripe destination client against the Stripe stand-in (local/standins/stripe.py)."""

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from local.standins.stripe import StripeStandin, local
from nps_sync.destinations.base import (
    FAILED,
    ORGANIZATION,
    PERSON,
    SKIPPED,
    UNCHANGED,
    WRITTEN,
    DestinationError,
    FieldSpec,
    Retryable,
    Target,
    Write,
)
from nps_sync.destinations.stripe import StripeDestination, from_credentials, wire
from nps_sync.destinations.writer import DestinationWriter

KEY = "sk_test_unit_stripe_key"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "destinations"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"stripe_{name}.json").read_text())


@pytest.fixture
def stripe():
    with StripeStandin(KEY, rate=None, search_rate=None) as standin:
        yield standin


def client(standin, key=KEY):
    return StripeDestination(key, standin.url, timeout=5)


def person(object_id, **values):
    return Write(Target(PERSON, f"k{object_id}", object_id=object_id), values)


def test_lookup_by_email_picks_the_newest_customer_and_skips_deleted_ones(stripe):
    stripe.add("ana@example.com", created=1_700_000_000)
    newest = stripe.add("ana@example.com", created=1_700_000_500)
    gone = stripe.add("ana@example.com", created=1_700_000_900)
    stripe.delete(gone)
    targets = [
        Target(PERSON, "ana", email="ana@example.com"),
        Target(PERSON, "ana-again", email="ana@example.com"),  # same e-mail: one call
        Target(PERSON, "nobody", email="nobody@example.com"),
        Target(ORGANIZATION, "Acme", name="Acme"),  # billing has no organizations
    ]

    found = client(stripe).lookup(targets)

    assert found == {"ana": newest, "ana-again": newest}
    assert stripe.count("GET", "/v1/customers") == 2


def test_a_write_sends_form_encoded_metadata_and_reads_back_as_stripe_strings(stripe):
    object_id = stripe.add("ana@example.com", {"customer_id": "c-1"})
    values = {"nps_score": 9, "nps_category": "promoter", "nps_at_risk": True, "nps_n": 4.0}

    results = client(stripe).write([person(object_id, **values)])

    assert [r.status for r in results] == [WRITTEN]
    assert stripe.fields_of("ana@example.com") == {
        "customer_id": "c-1",  # keys we do not write are left alone
        "nps_score": "9",
        "nps_category": "promoter",
        "nps_at_risk": "true",
        "nps_n": "4",
    }
    held = client(stripe).current(PERSON, [object_id, "cus_missing0000000"], sorted(values))
    assert held == {
        object_id: {
            "nps_at_risk": "true",
            "nps_category": "promoter",
            "nps_n": "4",
            "nps_score": "9",
        }
    }  # the unknown id is absent


def test_unset_keys_read_as_none_and_a_deleted_customer_is_absent(stripe):
    kept = stripe.add("ana@example.com")
    gone = stripe.add("bo@example.com", {"nps_score": "3"})
    stripe.delete(gone)
    held = client(stripe).current(PERSON, [kept, gone], ["nps_score"])
    assert held == {kept: {"nps_score": None}}


def test_none_clears_the_key_with_an_empty_value(stripe):
    object_id = stripe.add("ana@example.com", {"nps_category": "passive", "plan": "Pro"})
    results = client(stripe).write([person(object_id, nps_category=None)])
    assert [r.status for r in results] == [WRITTEN]
    assert stripe.fields_of("ana@example.com") == {"plan": "Pro"}


def test_a_long_comment_is_cut_to_500_characters_and_then_unchanged(stripe):
    object_id = stripe.add("ana@example.com")
    comment = "x" * 700
    api = client(stripe)
    assert [r.status for r in api.write([person(object_id, nps_comment=comment)])] == [WRITTEN]
    assert stripe.fields_of("ana@example.com")["nps_comment"] == "x" * 500

    again = client(stripe)
    again.current(PERSON, [object_id], ["nps_comment"])
    posts = stripe.count("POST")
    assert [r.status for r in again.write([person(object_id, nps_comment=comment)])] == [UNCHANGED]
    assert stripe.count("POST") == posts  # nothing sent


def test_a_key_over_40_characters_is_a_failed_result_and_the_rest_is_written(stripe):
    object_id = stripe.add("ana@example.com")
    long_key = "nps_" + "k" * 37
    results = client(stripe).write(
        [person(object_id, **{long_key: 1}), person(object_id, nps_score=5)]
    )
    assert [r.status for r in results] == [FAILED, WRITTEN]
    assert long_key in results[0].reason and "40" in results[0].reason
    assert stripe.count("POST") == 1


def test_more_than_50_keys_is_refused_before_sending_when_the_customer_was_read(stripe):
    object_id = stripe.add("ana@example.com", {f"k{n}": "v" for n in range(49)})
    api = client(stripe)
    api.current(PERSON, [object_id], ["nps_score", "nps_category"])
    results = api.write([person(object_id, nps_score=9, nps_category="promoter")])
    assert results[0].status == FAILED and "50" in results[0].reason
    assert stripe.count("POST") == 0


def test_stripes_own_400_is_a_failed_result_naming_the_param_not_the_value(stripe):
    object_id = stripe.add("ana@example.com", {f"k{n}": "v" for n in range(50)})
    results = client(stripe).write([person(object_id, nps_score=9)])  # not read first
    assert results[0].status == FAILED
    assert results[0].reason == "invalid_request_error: parameter_invalid_string (metadata)"


def test_a_customer_deleted_or_missing_at_write_time_is_skipped_with_a_reason(stripe):
    gone = stripe.add("ana@example.com")
    stripe.delete(gone)
    results = client(stripe).write(
        [person(gone, nps_score=1), person("cus_missing0000000", nps_score=1)]
    )
    assert [r.status for r in results] == [SKIPPED, SKIPPED]
    assert "no longer exists" in results[0].reason


def test_a_429_is_retryable_without_retry_after(stripe):
    stripe.rate_limit()
    with pytest.raises(Retryable) as raised:
        client(stripe).write([person("cus_x", nps_score=1)])
    assert (raised.value.status, raised.value.retry_after) == (429, None)
    assert "rate_limit" in str(raised.value) and "[req_" in str(raised.value)


def test_the_rate_limit_answers_stripes_429_body():
    recorded = fixture("error_rate_limit")
    with StripeStandin(KEY, rate=(2, 1.0), search_rate=None) as standin:
        object_id = standin.add("ana@example.com")
        api = client(standin)
        api.current(PERSON, [object_id], ["nps_score"])
        api.current(PERSON, [object_id], ["nps_score"])
        answer = api.api.request("GET", f"/v1/customers/{object_id}", expect=(429,))
    assert answer.status == 429 and "Retry-After" not in answer.headers
    assert answer.body["error"]["code"] == recorded["error"]["code"] == "rate_limit"
    assert set(answer.body["error"]) == set(recorded["error"])


def test_stripe_should_retry_false_makes_a_500_final_and_true_makes_a_400_retryable(stripe):
    stripe.fail_next(500, {"Stripe-Should-Retry": "false"})
    with pytest.raises(DestinationError) as final:
        client(stripe).current(PERSON, ["cus_x"], ["nps_score"])
    assert final.value.status == 500 and not isinstance(final.value, Retryable)

    stripe.fail_next(400, {"Stripe-Should-Retry": "true"})
    with pytest.raises(Retryable):
        client(stripe).current(PERSON, ["cus_x"], ["nps_score"])


@pytest.mark.parametrize("status", [409, 500, 503])
def test_lock_timeouts_and_5xx_are_retryable(stripe, status):
    stripe.fail_next(status)
    with pytest.raises(Retryable) as raised:
        client(stripe).lookup([Target(PERSON, "a", email="a@example.com")])
    assert raised.value.status == status


def test_a_wrong_key_is_a_destination_error_without_the_key(stripe):
    with pytest.raises(DestinationError) as raised:
        client(stripe, "sk_test_wrong_key_1234").write([person("cus_x", nps_score=1)])
    assert raised.value.status == 401 and not isinstance(raised.value, Retryable)
    assert "sk_test" not in str(raised.value)


def test_the_standin_answers_a_wrong_key_with_stripes_401_body(stripe):
    api = client(stripe, "sk_test_wrong_key_1234").api
    answer = api.request("GET", "/v1/customers", expect=(401,))
    assert answer.body["error"]["type"] == "invalid_request_error"
    assert answer.body["error"]["message"].endswith("1234")
    assert "wrong_key" not in answer.body["error"]["message"]
    assert answer.headers.get("Request-Id", "").startswith("req_")


def test_check_verifies_the_key_and_says_metadata_needs_no_creation(stripe):
    specs = {PERSON: [FieldSpec("nps_score", "number", "NPS score")]}
    result = client(stripe).check(specs)
    assert result.ok and result.created == [] and "no creation" in result.message
    assert stripe.count("GET", "/v1/customers") == 1
    with pytest.raises(DestinationError):
        client(stripe, "sk_test_wrong").check(specs)


def test_check_names_a_key_stripe_would_refuse(stripe):
    specs = {PERSON: [FieldSpec("nps_" + "x" * 40, "text", "Too long")]}
    result = client(stripe).check(specs)
    assert not result.ok and result.missing == ["person.nps_" + "x" * 40]


def test_the_standin_list_search_and_deleted_shapes_match_stripes_documented_ones(stripe):
    object_id = stripe.add("jennyrosen@example.com", {"a": "1"})
    api = client(stripe).api
    listed = api.request("GET", "/v1/customers", query={"email": "jennyrosen@example.com"}).body
    recorded = fixture("customer_list")
    assert set(listed) == set(recorded) - {"_source"}
    assert set(listed["data"][0]) == set(recorded["data"][0])
    assert listed["object"] == "list" and listed["url"] == "/v1/customers"

    searched = api.request(
        "GET", "/v1/customers/search", query={"query": "email:'jennyrosen@example.com'"}
    ).body
    assert set(searched) == set(fixture("customer_search")) - {"_source"}
    assert [c["id"] for c in searched["data"]] == [object_id]

    stripe.delete(object_id)
    deleted = api.request("GET", f"/v1/customers/{object_id}").body
    assert deleted == {k: v for k, v in fixture("customer_deleted").items() if k != "_source"} | {
        "id": object_id
    }
    missing = api.request("GET", "/v1/customers/cus_missing0000000", expect=(404,)).body
    assert set(missing["error"]) == set(fixture("error_resource_missing")["error"])


def test_the_standin_refuses_a_value_over_500_characters(stripe):
    object_id = stripe.add("ana@example.com")
    api = client(stripe).api
    answer = api.request(
        "POST", f"/v1/customers/{object_id}", form_body=[("metadata[c]", "y" * 501)], expect=(400,)
    )
    assert answer.body["error"]["param"] == "metadata[c]"


def test_the_writer_finds_equal_values_unchanged_and_sends_nothing(stripe):
    object_id = stripe.add("ana@example.com", {"nps_score": "9", "nps_at_risk": "true"})
    writer = DestinationWriter(SimpleNamespace(client=None, table_name="unused"), None)
    api = client(stripe)
    same = person(object_id, nps_score=9, nps_at_risk=True)
    changed = person(object_id, nps_score=10, nps_at_risk=True)

    assert [r.status for r in writer._apply(api, [same])] == [UNCHANGED]
    assert stripe.count("POST") == 0
    assert [r.status for r in writer._apply(client(stripe), [changed])] == [WRITTEN]
    assert stripe.fields_of("ana@example.com")["nps_score"] == "10"


def test_populate_and_local_build_the_demo_customers(stripe):
    standin = local({"api_key": "sk_test_dev_stripe_key"})
    standin.populate(
        [
            {"email": "a@x.example", "id": "cust-1", "account": "X", "plan": "Pro", "region": "EU"},
            {"email": "b@x.example", "id": "cust-2", "account": "X", "plan": "Pro", "region": "EU"},
        ]
    )
    assert len(standin.customers) == 2 and all(i.startswith("cus_") for i in standin.customers)
    assert standin.fields_of("a@x.example")["customer_id"] == "cust-1"
    assert standin.limiter is not None and standin.limiter.limit == 25  # test mode: 25/s


def test_from_credentials_needs_a_secret_key():
    assert isinstance(from_credentials("http://127.0.0.1:1", {"api_key": KEY}), StripeDestination)
    with pytest.raises(DestinationError):
        from_credentials("http://127.0.0.1:1", {})
    with pytest.raises(DestinationError):
        from_credentials("http://127.0.0.1:1", {"api_key": "pk_test_x"})


def test_wire_forms():
    assert [wire(9), wire(True), wire(False), wire(7.0), wire(7.5), wire(None)] == [
        "9",
        "true",
        "false",
        "7",
        "7.5",
        "",
    ]


def test_api_calls_per_1000_changed_customers(stripe, capsys):
    ids = [stripe.add(f"p{n}@example.com") for n in range(1000)]
    fields = ["nps_score", "nps_category"]

    unknown = client(stripe)  # no link: lookup by e-mail, then write
    targets = [Target(PERSON, f"k{n}", email=f"p{n}@example.com") for n in range(1000)]
    started = time.monotonic()
    found = unknown.lookup(targets)
    unknown.current(PERSON, list(found.values()), fields)
    unknown.write([person(found[t.key], nps_score=9, nps_category="promoter") for t in targets])
    by_email = unknown.api.calls

    linked = client(stripe)  # known ids: read, then write
    linked.current(PERSON, ids, fields)
    linked.write([person(i, nps_score=10, nps_category="promoter") for i in ids])
    with_links = linked.api.calls

    unchanged = client(stripe)
    unchanged.current(PERSON, ids, fields)
    only_reads = unchanged.api.calls
    elapsed = time.monotonic() - started

    assert (by_email, with_links, only_reads) == (2000, 2000, 1000)
    with capsys.disabled():
        print(
            f"\nStripe API calls per 1,000 changed customers: {by_email} found by e-mail "
            f"(list + update; the listed customer is not read again), {with_links} with a "
            f"link (retrieve + update); {only_reads} when unchanged; 5,000 calls in "
            f"{elapsed:.1f}s locally; at 100/s live that is 20 s per 1,000 changed customers"
        )
