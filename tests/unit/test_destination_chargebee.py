"""The Chargebee destination client against the Chargebee stand-in (local/standins/chargebee.py)
and recorded Chargebee answers (tests/fixtures/destinations/chargebee_*.json)."""

import json
from pathlib import Path

import pytest

from local.standins.chargebee import ChargebeeStandin, local
from nps_sync.destinations import fields as fields_
from nps_sync.destinations.base import (
    FAILED,
    ORGANIZATION,
    PERSON,
    WRITTEN,
    DestinationError,
    FieldSpec,
    Retryable,
    Target,
    Write,
)
from nps_sync.destinations.chargebee import ChargebeeDestination, from_credentials, wire

KEY = "test_chargebee_key"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "destinations"
SCORE, CATEGORY, DATE = "cf_nps_score", "cf_nps_category", "cf_nps_answered_at"


def recorded(name: str) -> dict:
    body = json.loads((FIXTURES / f"chargebee_{name}.json").read_text())
    body.pop("_source")
    return body


@pytest.fixture
def chargebee():
    with ChargebeeStandin(KEY, rate=None) as standin:
        yield standin


def client(standin, key=KEY):
    return ChargebeeDestination(key, standin.url, timeout=5)


def person(object_id, **values):
    return Write(Target(PERSON, f"k{object_id}", object_id=object_id), values)


def test_a_write_sets_custom_fields_and_reads_back_as_held(chargebee):
    chargebee.add("ana@example.com", "cb-ana")
    values = {SCORE: 9, CATEGORY: "promoter", DATE: "2026-03-01"}

    results = client(chargebee).write([person("cb-ana", **values)])

    assert [r.status for r in results] == [WRITTEN]
    assert chargebee.fields_of("ana@example.com") == {
        SCORE: "9",
        CATEGORY: "promoter",
        DATE: "2026-03-01",
        "meta_data": {},
    }
    held = client(chargebee).current(PERSON, ["cb-ana", "cb-gone"], sorted(values))
    assert held == {"cb-ana": {SCORE: "9", CATEGORY: "promoter", DATE: "2026-03-01"}}


def test_none_clears_a_custom_field(chargebee):
    chargebee.add("ana@example.com", "cb-ana", cf_nps_category="passive", cf_nps_score="7")
    client(chargebee).write([person("cb-ana", cf_nps_category=None)])
    assert client(chargebee).current(PERSON, ["cb-ana"], [CATEGORY, SCORE]) == {
        "cb-ana": {CATEGORY: None, SCORE: "7"}
    }


def test_meta_data_keys_are_merged_into_what_the_customer_holds(chargebee):
    chargebee.add("ana@example.com", "cb-ana", meta_data={"crm_id": "901", "nps_channel": "app"})
    api = client(chargebee)
    api.current(PERSON, ["cb-ana"], ["nps_score", "nps_channel"])

    results = api.write([person("cb-ana", nps_score=9, nps_channel=None)])

    assert [r.status for r in results] == [WRITTEN]
    assert chargebee.fields_of("ana@example.com")["meta_data"] == {"crm_id": "901", "nps_score": 9}
    # the read ``current`` made is reused: no second retrieve before the update
    assert chargebee.requests[-2:] == [
        ("GET", "/api/v2/customers/cb-ana"),
        ("POST", "/api/v2/customers/cb-ana"),
    ]


def test_meta_data_without_a_prior_read_reads_then_writes(chargebee):
    chargebee.add("ana@example.com", "cb-ana", meta_data={"crm_id": "901"})
    client(chargebee).write([person("cb-ana", nps_score=3)])
    assert chargebee.fields_of("ana@example.com")["meta_data"] == {"crm_id": "901", "nps_score": 3}
    assert chargebee.count("GET", "/api/v2/customers/cb-ana") == 1


def test_lookup_by_email_picks_the_oldest_of_several_and_skips_no_match(chargebee):
    chargebee.add("ana@example.com", "cb-first")
    chargebee.add("ana@example.com", "cb-second")
    chargebee.add("bo@example.com", "cb-bo")
    targets = [
        Target(PERSON, "ana", email="ana@example.com"),
        Target(PERSON, "bo", email="bo@example.com"),
        Target(PERSON, "nobody", email="nobody@example.com"),
        Target(ORGANIZATION, "Acme", name="Acme"),  # billing has no organizations
    ]
    assert client(chargebee).lookup(targets) == {"ana": "cb-first", "bo": "cb-bo"}
    assert chargebee.count("GET", "/api/v2/customers") == 3


def test_lookup_follows_next_offset(chargebee):
    for n in range(150):
        chargebee.add("shared@example.com", f"cb-{n:03d}")
    found = client(chargebee).lookup([Target(PERSON, "s", email="shared@example.com")])
    assert found == {"s": "cb-000"}
    assert chargebee.count("GET", "/api/v2/customers") == 2  # pages of 100


def test_a_missing_custom_field_is_named_by_check(chargebee):
    with ChargebeeStandin(KEY, rate=None, omit=("cf_nps_channel",)) as standin:
        specs = fields_.specs(fields_.mapping("chargebee", {}, include_comment=False))
        result = client(standin).check(specs)
    assert (result.ok, result.missing) == (False, ["person.cf_nps_channel"])
    assert "cf_nps_channel" in result.message


def test_check_passes_when_every_custom_field_exists(chargebee):
    specs = fields_.specs(fields_.mapping("chargebee", {}, include_comment=True))
    result = client(chargebee).check(specs)
    assert (result.ok, result.missing, result.created) == (True, [], [])


def test_check_of_meta_data_keys_only_tests_the_key(chargebee):
    specs = {PERSON: [FieldSpec("nps_score", "number", "NPS score")]}
    assert client(chargebee).check(specs).ok
    with pytest.raises(DestinationError) as raised:
        client(chargebee, "wrong").check(specs)
    assert raised.value.status == 401


def test_writing_a_custom_field_the_site_lacks_fails_naming_the_field_not_the_value():
    with ChargebeeStandin(KEY, rate=None, omit=(SCORE,)) as standin:
        standin.add("ana@example.com", "cb-ana")
        results = client(standin).write([person("cb-ana", cf_nps_score=9)])
    assert results[0].status == FAILED
    assert results[0].reason == "param_wrong_value: cf_nps_score"


def test_a_customer_gone_is_a_failed_result_the_rest_written(chargebee):
    chargebee.add("ana@example.com", "cb-ana")
    results = client(chargebee).write(
        [person("cb-ana", cf_nps_score=7), person("cb-gone", cf_nps_score=3)]
    )
    assert [(r.status, r.reason) for r in results] == [
        (WRITTEN, None),
        (FAILED, "resource_not_found"),
    ]


def test_a_429_is_retryable_with_retry_after(chargebee):
    chargebee.rate_limit(retry_after="30")
    with pytest.raises(Retryable) as raised:
        client(chargebee).write([person("cb-ana", cf_nps_score=1)])
    assert (raised.value.status, raised.value.retry_after) == (429, 30.0)


def test_the_rate_limit_answers_chargebees_429_in_its_recorded_shape():
    with ChargebeeStandin(KEY, rate=(2, 60.0)) as standin:
        api = client(standin)
        api.current(PERSON, ["cb-x"], [SCORE])
        api.current(PERSON, ["cb-x"], [SCORE])
        with pytest.raises(Retryable) as raised:
            api.current(PERSON, ["cb-x"], [SCORE])
        answer = api.api.request("GET", "/customers/cb-x", expect=(429,))
    assert raised.value.status == 429 and raised.value.retry_after > 0
    assert answer.body == recorded("error_429")


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_is_retryable(chargebee, status):
    chargebee.fail_next(status)
    with pytest.raises(Retryable):
        client(chargebee).write([person("cb-ana", cf_nps_score=1)])


def test_a_wrong_key_is_chargebees_401_a_destination_error_not_retryable(chargebee):
    with pytest.raises(DestinationError) as raised:
        client(chargebee, "wrong").write([person("cb-ana", cf_nps_score=1)])
    assert raised.value.status == 401 and not isinstance(raised.value, Retryable)
    answer = client(chargebee, "wrong").api.request("GET", "/customers", expect=(401,))
    assert answer.body == recorded("error_401")


def test_the_standin_refuses_a_list_limit_over_100(chargebee):
    with pytest.raises(DestinationError) as raised:
        client(chargebee).api.request("GET", "/customers", query={"limit": "101"})
    assert raised.value.status == 400


def test_the_standin_answers_in_chargebees_documented_shapes(chargebee):
    chargebee.add("ana@example.com", "cb-ana", company="Acme", cf_nps_score="9")
    api = client(chargebee).api
    listed = api.request("GET", "/customers", query={"email[is]": "ana@example.com"}).body
    want = recorded("customer_list")
    assert set(listed) <= set(want)
    assert set(listed["list"][0]["customer"]) == set(want["list"][0]["customer"]) - {"meta_data"}
    configs = api.request("GET", "/custom_field_configs", query={"limit": "1"}).body
    want = recorded("custom_field_configs")
    assert set(configs) == set(want)
    assert configs["list"][0] == want["list"][0]


def test_the_base_url_is_the_sites_unless_configured_and_the_key_is_the_basic_user():
    credentials = {"site": "acme", "api_key": "live_x"}
    destination = from_credentials("", credentials)
    assert destination.api.base_url == "https://acme.chargebee.com/api/v2"
    assert destination.api.headers["Authorization"] == "Basic bGl2ZV94Og=="  # "live_x:"
    sandbox = from_credentials("https://acme-test.chargebee.com/", credentials)
    assert sandbox.api.base_url == "https://acme-test.chargebee.com/api/v2"
    with pytest.raises(DestinationError):
        from_credentials("https://acme.chargebee.com", {"site": "acme"})


def test_local_accepts_the_dev_credentials_and_populates_demo_customers():
    secrets = json.loads((Path(__file__).parents[2] / "local" / "dev-secrets.json").read_text())
    credentials = secrets["destinations"]["chargebee-dev"]
    demo = [
        {"email": "ana@acme.example", "id": "cust-1", "account": "Acme", "plan": "Pro"},
        {"email": "bo@acme.example", "id": "cust-2", "account": "Acme", "plan": "Pro"},
    ]
    with local(credentials) as standin:
        standin.populate(demo)
        api = from_credentials(standin.url, credentials)
        found = api.lookup([Target(PERSON, "ana", email="ana@acme.example")])
        api.write([person(found["ana"], cf_nps_score=10)])
    assert found == {"ana": "cust-1"}
    assert standin.fields_of("ana@acme.example")[SCORE] == "10"


def test_calls_per_1000_changed_customers(chargebee):
    """1,000 customers with a link, each with new values: one retrieve and one update each.
    The same again: every one unchanged, one retrieve each and no update."""
    ids = [chargebee.add(f"c{n}@example.com", f"cb-{n:04d}") for n in range(1000)]
    api = client(chargebee)
    writes = [person(i, cf_nps_score=n % 11, cf_nps_category="passive") for n, i in enumerate(ids)]

    held = api.current(PERSON, ids, [SCORE, CATEGORY])
    results = api.write([w for w in writes if held[w.target.object_id][SCORE] is None])

    assert [r.status for r in results] == [WRITTEN] * 1000
    assert api.api.calls == 2000
    again = api.current(PERSON, ids, [SCORE, CATEGORY])
    unchanged = [w for w in writes if again[w.target.object_id][SCORE] == str(w.values[SCORE])]
    assert len(unchanged) == 1000 and api.api.calls == 3000


def test_check_says_so_when_the_site_does_not_list_custom_fields(chargebee):
    chargebee.fail_next(404)
    specs = {PERSON: [FieldSpec(SCORE, "number", "NPS score")]}
    result = client(chargebee).check(specs)
    assert not result.ok and result.missing == [] and "Settings" in result.message


@pytest.mark.parametrize(
    ("value", "sent"), [(9, "9"), (9.0, "9"), (8.5, "8.5"), (True, "true"), (None, "")]
)
def test_values_go_as_chargebee_reads_them(value, sent):
    assert wire(value) == sent
