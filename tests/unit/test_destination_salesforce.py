"""The Salesforce destination client against the Salesforce stand-in
(local/standins/salesforce.py) and Salesforce's documented answer shapes
(tests/fixtures/destinations/salesforce_*.json)."""

import json
from pathlib import Path

import pytest

from local.standins.salesforce import SalesforceStandin, case_suffix, local, record_id
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
from nps_sync.destinations.salesforce import (
    CONCURRENT_LIMIT_WAIT,
    DAILY_LIMIT_WAIT,
    SalesforceDestination,
    api_root,
    from_credentials,
    soql_string,
)

TOKEN = "test-salesforce-token"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "destinations"
SCORE, CATEGORY, ANSWERED = "NPS_Score__c", "NPS_Category__c", "NPS_Answered_At__c"


def fixture(name: str):
    return json.loads((FIXTURES / f"salesforce_{name}.json").read_text())


@pytest.fixture
def salesforce():
    with SalesforceStandin(TOKEN, daily_limit=None) as standin:
        yield standin


def client(standin, token=TOKEN):
    return SalesforceDestination(token, standin.url, "v62.0", timeout=5)


def person(object_id, **values):
    return Write(Target(PERSON, f"k{object_id}", object_id=object_id), values)


def test_the_default_names_are_the_stand_ins_custom_fields(salesforce):
    assert fields_.default_name("salesforce", "score") == SCORE
    assert {SCORE, CATEGORY, ANSWERED} <= set(salesforce.fields["Contact"])
    assert "NPS_At_Risk__c" in salesforce.fields["Account"]


def test_lookup_by_email_including_a_quote_and_by_account_name(salesforce):
    ana = salesforce.add("Contact", Email="ana@example.com")
    quoted = salesforce.add("Contact", Email="o'brien\\x@example.com")
    salesforce.add("Contact", Email="twin@example.com")
    salesforce.add("Contact", Email="TWIN@example.com")
    acme = salesforce.add("Account", Name="Acme GmbH")
    targets = [
        Target(PERSON, "ana", email="Ana@Example.com"),
        Target(PERSON, "quoted", email="O'Brien\\x@example.com"),
        Target(PERSON, "twin", email="twin@example.com"),  # two Contacts: no match
        Target(PERSON, "nobody", email="nobody@example.com"),
        Target(PERSON, "injection", email="x') OR Email != ('"),
        Target(ORGANIZATION, "Acme GmbH", name="Acme GmbH"),
        Target(ORGANIZATION, "Other", name="Other"),
    ]

    found = client(salesforce).lookup(targets)

    assert found == {"ana": ana, "quoted": quoted, "Acme GmbH": acme}
    assert salesforce.count("GET", "/services/data/v62.0/query") == 2  # one per object type


def test_soql_string_escapes_what_could_end_the_literal():
    assert soql_string("o'brien\\") == "'o\\'brien\\\\'"
    assert soql_string('a"\n') == "'a\\\"\\n'"


def test_lookup_follows_next_records_url(salesforce):
    salesforce.query_batch = 2
    ids = {f"p{n}": salesforce.add("Contact", Email=f"p{n}@example.com") for n in range(5)}
    targets = [Target(PERSON, key, email=f"{key}@example.com") for key in ids]

    assert client(salesforce).lookup(targets) == ids
    assert salesforce.count("GET", "/services/data/v62.0/query") == 3


def test_lookup_sends_at_most_100_values_per_query(salesforce):
    targets = [Target(PERSON, f"p{n}", email=f"p{n}@example.com") for n in range(250)]
    assert client(salesforce).lookup(targets) == {}
    assert salesforce.count("GET", "/services/data/v62.0/query") == 3


def test_current_reads_what_is_held_and_leaves_out_unknown_ids(salesforce):
    ana = salesforce.add("Contact", Email="ana@example.com", NPS_Score__c=9.0)
    salesforce.add("Contact", Email="bo@example.com")
    unknown = record_id("003", 99999)

    held = client(salesforce).current(PERSON, [ana, ana[:15], unknown], [SCORE, CATEGORY])

    assert held == {
        ana: {SCORE: 9.0, CATEGORY: None},
        ana[:15]: {SCORE: 9.0, CATEGORY: None},  # the 15-character id finds it too
    }
    assert salesforce.count("POST", "/services/data/v62.0/composite/sobjects/Contact") == 1


def test_a_write_lands_and_reads_back_equal(salesforce):
    ana = salesforce.add("Contact", Email="ana@example.com")
    values = {SCORE: 9, CATEGORY: "promoter", ANSWERED: "2026-03-01"}

    results = client(salesforce).write([person(ana, **values)])

    assert [r.status for r in results] == [WRITTEN]
    assert salesforce.fields_of("ana@example.com")[SCORE] == 9.0
    held = client(salesforce).current(PERSON, [ana], list(values))
    assert held == {ana: {SCORE: 9.0, CATEGORY: "promoter", ANSWERED: "2026-03-01"}}


def test_none_clears_a_field_as_json_null(salesforce):
    ana = salesforce.add("Contact", Email="ana@example.com", NPS_Category__c="passive")
    acme = salesforce.add("Account", Name="Acme", NPS_At_Risk__c=True, NPS_Account_Nps__c=-20.0)
    clear_account = Write(
        Target(ORGANIZATION, "Acme", object_id=acme),
        {"NPS_At_Risk__c": None, "NPS_Account_Nps__c": None},
    )

    results = client(salesforce).write([person(ana, NPS_Category__c=None), clear_account])

    assert [r.status for r in results] == [WRITTEN, WRITTEN]
    assert salesforce.fields_of("ana@example.com")[CATEGORY] is None
    account = salesforce.account_fields("Acme")
    assert (account["NPS_At_Risk__c"], account["NPS_Account_Nps__c"]) == (False, None)
    assert salesforce.count("PATCH") == 1  # Contact and Account in one call


def test_250_contacts_are_written_in_two_calls(salesforce):
    ids = [salesforce.add("Contact", Email=f"p{n}@example.com") for n in range(250)]
    writes = [person(object_id, NPS_Score__c=n % 11) for n, object_id in enumerate(ids)]

    results = client(salesforce).write(writes)

    assert [r.status for r in results] == [WRITTEN] * 250
    assert [r.write for r in results] == writes
    assert salesforce.count("PATCH", "/services/data/v62.0/composite/sobjects") == 2
    assert salesforce.fields_of("p249@example.com")[SCORE] == float(249 % 11)


def test_a_refused_record_is_a_failed_result_naming_codes_not_values(salesforce):
    ana = salesforce.add("Contact", Email="ana@example.com")
    gone = salesforce.add("Contact", Email="gone@example.com")
    salesforce.delete(gone)
    writes = [
        person(ana, NPS_Score__c=7),
        person(gone, NPS_Score__c=3),
        person(ana, NPS_Nope__c="ana@example.com"),
        person(record_id("003", 4242), NPS_Score__c=1),
    ]

    results = client(salesforce).write(writes)

    assert [(r.status, r.reason) for r in results] == [
        (WRITTEN, None),
        (FAILED, "ENTITY_IS_DELETED"),
        (FAILED, "INVALID_FIELD (NPS_Nope__c)"),
        (FAILED, "MALFORMED_ID (Id)"),
    ]
    assert salesforce.fields_of("ana@example.com")[SCORE] == 7.0


def test_the_standin_refuses_more_than_200_records_as_salesforce_does(salesforce):
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": record_id("003", n)} for n in range(201)
        ],
    }
    answer = client(salesforce).api.request(
        "PATCH", "/services/data/v62.0/composite/sobjects", json_body=body, expect=(400,)
    )
    recorded = fixture("errors")["400_over_200"]
    assert (answer.status, answer.body) == (400, recorded)


def test_check_names_a_missing_field_and_passes_when_all_exist():
    specs = {
        PERSON: [FieldSpec(SCORE, "number", "NPS score"), FieldSpec("NPS_Channel__c", "text", "")],
        ORGANIZATION: [FieldSpec("NPS_At_Risk__c", "bool", "NPS at risk")],
    }
    with SalesforceStandin(TOKEN, daily_limit=None, omit=("NPS_Channel__c",)) as standin:
        result = client(standin).check(specs)
        assert (result.ok, result.missing, result.created) == (False, ["person.NPS_Channel__c"], [])
        assert "NPS_Channel__c" in result.message
    with SalesforceStandin(TOKEN, daily_limit=None) as standin:
        assert client(standin).check(specs).ok


def test_check_counts_a_field_it_cannot_update_as_missing(salesforce):
    result = client(salesforce).check({PERSON: [FieldSpec("Id", "text", "Id")]})
    assert result.missing == ["person.Id"]


def test_the_daily_allocation_is_a_retryable_403_without_retry_after():
    with SalesforceStandin(TOKEN, daily_limit=2) as standin:
        api = client(standin)
        api.current(PERSON, [record_id("003", 1)], [SCORE])
        api.current(PERSON, [record_id("003", 1)], [SCORE])
        with pytest.raises(Retryable) as raised:
            api.current(PERSON, [record_id("003", 1)], [SCORE])
    assert (raised.value.status, raised.value.retry_after) == (403, DAILY_LIMIT_WAIT)
    assert "REQUEST_LIMIT_EXCEEDED" in str(raised.value)


def test_the_concurrent_requests_limit_is_retryable_soon(salesforce):
    salesforce.limit_exceeded(concurrent=True)
    with pytest.raises(Retryable) as raised:
        client(salesforce).write([person(record_id("003", 1), NPS_Score__c=1)])
    assert (raised.value.status, raised.value.retry_after) == (403, CONCURRENT_LIMIT_WAIT)


def test_a_429_or_5xx_is_retryable_with_retry_after(salesforce):
    salesforce.fail_next(429, {"Retry-After": "7"})
    salesforce.fail_next(503)
    with pytest.raises(Retryable) as first:
        client(salesforce).lookup([Target(PERSON, "a", email="a@example.com")])
    with pytest.raises(Retryable) as second:
        client(salesforce).lookup([Target(PERSON, "a", email="a@example.com")])
    assert (first.value.retry_after, second.value.status) == (7.0, 503)


def test_a_bad_token_is_a_destination_error_not_retryable(salesforce):
    with pytest.raises(DestinationError) as raised:
        client(salesforce, "wrong").write([person(record_id("003", 1), NPS_Score__c=1)])
    assert raised.value.status == 401 and not isinstance(raised.value, Retryable)
    assert "INVALID_SESSION_ID" in str(raised.value)


def test_another_403_is_not_retryable(salesforce):
    salesforce.fail_next(403, body=[{"message": "no access", "errorCode": "INSUFFICIENT_ACCESS"}])
    with pytest.raises(DestinationError) as raised:
        client(salesforce).check({PERSON: [FieldSpec(SCORE, "number", "NPS score")]})
    assert not isinstance(raised.value, Retryable) and "INSUFFICIENT_ACCESS" in str(raised.value)


def test_the_standin_answers_in_salesforces_documented_shapes(salesforce):
    ana = salesforce.add("Contact", Email="ana@example.com", NPS_Score__c=9.0)
    api = client(salesforce).api
    root = "/services/data/v62.0"

    update = api.request(
        "PATCH",
        f"{root}/composite/sobjects",
        json_body={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Contact"}, "id": ana, SCORE: 9},
                {"attributes": {"type": "Contact"}, "id": record_id("003", 777), SCORE: 1},
            ],
        },
    ).body
    recorded = fixture("update_results")["results"]
    assert [set(r) for r in update] == [set(r) for r in recorded]
    assert set(update[1]["errors"][0]) == set(recorded[1]["errors"][0])

    query = api.request("GET", f"{root}/query", query={"q": "SELECT Id, Email FROM Contact"}).body
    shape = fixture("query")
    assert set(query) == set(shape) - {"_source", "nextRecordsUrl"}
    assert set(query["records"][0]) == set(shape["records"][0])
    assert query["records"][0]["attributes"]["url"] == f"{root}/sobjects/Contact/{ana}"

    retrieved = api.request(
        "POST",
        f"{root}/composite/sobjects/Contact",
        json_body={"ids": [ana, record_id("003", 778)], "fields": ["Id", SCORE]},
    ).body
    recorded = fixture("retrieve")["records"]
    assert [set(r) if r else r for r in retrieved] == [set(r) if r else r for r in recorded]

    wrong = client(salesforce, "wrong").api.request("GET", f"{root}/query", expect=(401,))
    assert wrong.body == [{**fixture("errors")["401"][0], "fields": []}]


def test_record_ids_are_18_characters_with_salesforces_case_suffix():
    # ids from Salesforce's own examples (dome_query.htm, resources_query.htm)
    assert case_suffix("001D000000IRFma") == "IAH"
    assert case_suffix("003RO0000035WQg") == "YAM"
    assert record_id("003", 1) == "0035g0000000001AAA"


def test_populate_creates_contacts_and_accounts_found_by_lookup():
    customers = [
        {"email": "a@acme.example", "id": "c1", "account": "Acme", "plan": "Pro", "region": "EU"},
        {"email": "b@acme.example", "id": "c2", "account": "Acme", "plan": "Pro", "region": "EU"},
        {"email": "c@zed.example", "id": "c3", "account": "Zed", "plan": "Free", "region": "US"},
    ]
    with local({"access_token": TOKEN}) as standin:
        standin.populate(customers)
        assert len(standin.records["Contact"]) == 3 and len(standin.records["Account"]) == 2
        found = client(standin).lookup(
            [Target(PERSON, c["id"], email=c["email"]) for c in customers]
            + [Target(ORGANIZATION, "Acme", name="Acme")]
        )
        acme = standin.account_fields("Acme")["Id"]
        assert found["Acme"] == acme and acme.startswith("001")
        assert standin.fields_of("b@acme.example")["AccountId"] == acme
        assert {found[c["id"]] for c in customers} == {
            standin.fields_of(c["email"])["Id"] for c in customers
        }


def test_from_credentials_takes_the_version_setting():
    class Settings:
        salesforce_api_version = "63.0"

    made = from_credentials("https://acme.my.salesforce.com", {"access_token": "00D!x"}, Settings())
    assert made.root == "/services/data/v63.0" == api_root("v63.0")
    with pytest.raises(DestinationError):
        from_credentials("https://acme.my.salesforce.com", {}, Settings())


def _one_batch(api, people: list[tuple[str, str]], accounts: list[str]) -> None:
    """What the writer does with one batch: look up Contacts and Accounts, read both levels,
    one write of everything that differs (here: everything)."""
    found = api.lookup([Target(PERSON, key, email=f"{key}@example.com") for key, _ in people])
    orgs = api.lookup([Target(ORGANIZATION, name, name=name) for name in accounts])
    api.current(PERSON, list(found.values()), [SCORE, CATEGORY])
    api.current(ORGANIZATION, list(orgs.values()), ["NPS_Account_Nps__c"])
    writes = [person(object_id, NPS_Score__c=9) for object_id in found.values()]
    writes += [
        Write(Target(ORGANIZATION, n, object_id=i), {"NPS_Account_Nps__c": 10})
        for n, i in orgs.items()
    ]
    assert [r.status for r in api.write(writes)] == [WRITTEN] * len(writes)


@pytest.mark.parametrize(("batch", "calls"), [(1000, 2 + 10 + 4 + 7), (100, 10 * 5)])
def test_calls_per_1000_changed_customers(salesforce, batch, calls):
    """Measured for docs/destinations.md: 1,000 Contacts without a known id and their 334
    Accounts, in one writer batch or in the queue's batches of 100 messages."""
    people = [(f"p{n}", salesforce.add("Contact", Email=f"p{n}@example.com")) for n in range(1000)]
    for n in range(334):
        salesforce.add("Account", Name=f"acct-{n}")
    api = client(salesforce)

    for start in range(0, 1000, batch):
        group = people[start : start + batch]
        names = sorted({f"acct-{int(key[1:]) // 3}" for key, _ in group})
        _one_batch(api, group, names)

    # one batch: 10 + 4 SOQL lookups, 2 retrieves, 7 updates of 200 (1,334 records)
    assert api.api.calls == calls
    assert salesforce.fields_of("p999@example.com")[SCORE] == 9.0
