"""The HubSpot destination client against the HubSpot stand-in (local/standins/hubspot.py)."""

import json
from pathlib import Path

import pytest

from local.standins.hubspot import HubSpotStandin
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
from nps_sync.destinations.hubspot import HubSpotDestination

TOKEN = "test-hubspot-token"
FIXTURE = Path(__file__).parents[1] / "fixtures" / "destinations" / "hubspot_batch_update_207.json"


@pytest.fixture
def hubspot():
    with HubSpotStandin(TOKEN, rate=None, search_rate=None) as standin:
        for name in ("nps_score", "nps_category", "nps_answered_at"):
            standin.properties["contacts"][name] = {"name": name, "type": "string"}
        standin.properties["contacts"]["nps_score"]["type"] = "number"
        standin.properties["contacts"]["nps_answered_at"]["type"] = "date"
        standin.properties["companies"]["nps_at_risk"] = {"name": "nps_at_risk", "type": "bool"}
        yield standin


def client(standin, token=TOKEN):
    return HubSpotDestination(token, standin.url, timeout=5)


def person(object_id, **values):
    return Write(Target(PERSON, f"k{object_id}", object_id=object_id), values)


def test_a_write_lands_and_reads_back_unchanged(hubspot):
    hubspot.add("contacts", "901", email="ana@example.com")
    values = {"nps_score": 9, "nps_category": "promoter", "nps_answered_at": "2026-03-01"}

    results = client(hubspot).write([person("901", **values)])

    assert [r.status for r in results] == [WRITTEN]
    assert hubspot.value("contacts", "901", "nps_score") == "9"
    held = client(hubspot).current(PERSON, ["901", "404"], sorted(values))
    assert held == {
        "901": {"nps_score": "9", "nps_category": "promoter", "nps_answered_at": "2026-03-01"}
    }  # 404 absent


def test_none_clears_a_property(hubspot):
    hubspot.add("contacts", "901", nps_category="passive")
    client(hubspot).write([person("901", nps_category=None)])
    assert client(hubspot).current(PERSON, ["901"], ["nps_category"]) == {
        "901": {"nps_category": None}
    }


def test_a_bool_goes_as_true_false(hubspot):
    hubspot.add("companies", "77", name="Acme")
    write = Write(Target(ORGANIZATION, "Acme", object_id="77"), {"nps_at_risk": True})
    assert [r.status for r in client(hubspot).write([write])] == [WRITTEN]
    assert hubspot.value("companies", "77", "nps_at_risk") == "true"


def test_lookup_by_email_and_name_and_no_match(hubspot):
    hubspot.add("contacts", "901", email="ana@example.com")
    hubspot.add("companies", "77", name="Acme GmbH")
    hubspot.add("companies", "78", name="Twin")
    hubspot.add("companies", "79", name="Twin")
    targets = [
        Target(PERSON, "ana", email="Ana@Example.com"),
        Target(PERSON, "nobody", email="nobody@example.com"),
        Target(ORGANIZATION, "Acme GmbH", name="Acme GmbH"),
        Target(ORGANIZATION, "Twin", name="Twin"),  # two companies: no match
    ]
    assert client(hubspot).lookup(targets) == {"ana": "901", "Acme GmbH": "77"}


def test_a_missing_object_is_a_failed_result_the_rest_written(hubspot):
    hubspot.add("contacts", "901")
    results = client(hubspot).write([person("901", nps_score=7), person("404", nps_score=3)])
    assert [(r.status, r.reason) for r in results] == [
        (WRITTEN, None),
        (FAILED, "OBJECT_NOT_FOUND"),
    ]


def test_a_value_hubspot_refuses_fails_the_batch_naming_the_property_not_the_value(hubspot):
    hubspot.add("contacts", "901")
    results = client(hubspot).write([person("901", nps_score="ana@example.com")])
    assert results[0].status == FAILED
    assert "nps_score" in results[0].reason and "@" not in results[0].reason


def test_a_429_is_retryable_with_retry_after(hubspot):
    hubspot.rate_limit(retry_after="7")
    with pytest.raises(Retryable) as raised:
        client(hubspot).write([person("901", nps_score=1)])
    assert (raised.value.status, raised.value.retry_after) == (429, 7.0)


def test_the_rate_limit_answers_hubspots_429_without_retry_after():
    with HubSpotStandin(TOKEN, rate=(2, 10.0), search_rate=None) as standin:
        standin.add("contacts", "901")
        api = client(standin)
        api.current(PERSON, ["901"], ["email"])
        api.current(PERSON, ["901"], ["email"])
        with pytest.raises(Retryable) as raised:
            api.current(PERSON, ["901"], ["email"])
    assert (raised.value.status, raised.value.retry_after) == (429, None)


def test_the_search_limit_is_its_own():
    with HubSpotStandin(TOKEN, rate=None, search_rate=(1, 1.0)) as standin:
        client(standin).lookup([Target(PERSON, "a", email="a@example.com")])
        with pytest.raises(Retryable):
            client(standin).lookup([Target(PERSON, "a", email="a@example.com")])


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_is_retryable(hubspot, status):
    hubspot.fail_next(status)
    with pytest.raises(Retryable):
        client(hubspot).write([person("901", nps_score=1)])


def test_a_wrong_token_is_a_destination_error_not_retryable(hubspot):
    with pytest.raises(DestinationError) as raised:
        client(hubspot, "wrong").write([person("901", nps_score=1)])
    assert raised.value.status == 401 and not isinstance(raised.value, Retryable)


def test_writes_are_split_at_100_per_call(hubspot):
    for n in range(250):
        hubspot.add("contacts", str(1000 + n))
    writes = [person(str(1000 + n), nps_score=n % 11) for n in range(250)]

    results = client(hubspot).write(writes)

    assert [r.status for r in results] == [WRITTEN] * 250
    assert hubspot.count("POST", "/crm/v3/objects/contacts/batch/update") == 3


def test_the_standin_refuses_more_than_100_inputs(hubspot):
    api = client(hubspot).api
    body = {"inputs": [{"id": str(n), "properties": {}} for n in range(101)]}
    with pytest.raises(DestinationError) as raised:
        api.request("POST", "/crm/v3/objects/contacts/batch/update", json_body=body)
    assert raised.value.status == 400


def test_check_creates_the_group_and_missing_properties_then_finds_them(hubspot):
    specs = {
        PERSON: [
            FieldSpec("nps_score", "number", "NPS score"),
            FieldSpec("nps_channel", "text", "NPS channel"),
        ],
        ORGANIZATION: [
            FieldSpec("nps_account_nps", "number", "Account NPS"),
            FieldSpec("nps_at_risk", "bool", "NPS at risk"),
        ],
    }
    first = client(hubspot).check(specs)
    assert first.ok and first.created == ["person.nps_channel", "organization.nps_account_nps"]
    assert hubspot.properties["contacts"]["nps_channel"]["groupName"] == "nps_sync"
    again = client(hubspot).check(specs)
    assert again.ok and again.created == []


def test_check_without_create_names_the_missing_field(hubspot):
    specs = {PERSON: [FieldSpec("nps_survey", "text", "NPS survey")]}
    result = client(hubspot).check(specs, create=False)
    assert (result.ok, result.missing) == (False, ["person.nps_survey"])


def test_the_standin_answers_a_partial_batch_in_hubspots_documented_shape(hubspot):
    recorded = json.loads(FIXTURE.read_text())
    hubspot.add("contacts", "901")
    answer = client(hubspot).api.request(
        "POST",
        "/crm/v3/objects/contacts/batch/update",
        json_body={
            "inputs": [
                {"id": "901", "properties": {"nps_score": "9"}},
                {"id": "404", "properties": {"nps_score": "1"}},
            ]
        },
        expect=(207,),
    )
    assert answer.status == 207
    assert set(answer.body) == set(recorded) - {"_source"}
    assert set(answer.body["errors"][0]) == set(recorded["errors"][0])
    assert answer.body["errors"][0]["context"] == recorded["errors"][0]["context"]
    assert set(answer.body["results"][0]) == set(recorded["results"][0])


def test_calls_per_1000_changed_customers():
    """docs/destinations.md "API calls per 1,000 changed customers": lookups, reads and writes
    go 100 to a call, for contacts and for their companies alike."""
    from local.seed import customers

    people = customers(1000)
    standin = HubSpotStandin(TOKEN, rate=None, search_rate=None)
    standin.populate(people)
    standin.start()
    try:
        hubspot = client(standin)
        before = len(standin.requests)
        found = hubspot.lookup([Target(PERSON, p["email"], None, p["email"]) for p in people])
        hubspot.current(PERSON, list(found.values()), ["nps_score"])
        hubspot.write([Write(Target(PERSON, k, v), {"nps_score": 7}) for k, v in found.items()])
        contacts = len(standin.requests) - before
        names = sorted({p["account"] for p in people})
        orgs = hubspot.lookup([Target(ORGANIZATION, n, None, name=n) for n in names])
        hubspot.current(ORGANIZATION, list(orgs.values()), ["nps_account_nps"])
        hubspot.write(
            [Write(Target(ORGANIZATION, k, v), {"nps_account_nps": 10}) for k, v in orgs.items()]
        )
        companies = len(standin.requests) - before - contacts
    finally:
        standin.stop()
    assert len(found) == 1000 and len(orgs) == len(names)
    assert contacts == 30  # 10 searches, 10 batch reads, 10 batch updates
    assert companies == 3 * -(-len(names) // 100)
