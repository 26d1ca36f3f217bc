"""The dashboard's page and data endpoints (GET /dashboard, /segments, /distribution,
/detractors) through ApiFunction's handler, against moto."""

import json
from datetime import date

import pytest
from openapi_spec_validator import validate

from nps_sync.core.aggregates import DEFAULT_DIMENSIONS

from .conftest import API_TOKEN, api_request

DIMENSIONS = DEFAULT_DIMENSIONS  # no score dimension: every counter holds the histogram


class Recording:
    """A DynamoDB client that remembers the operations called on it (a paginator's by the
    operation it pages)."""

    def __init__(self, client):
        self.client = client
        self.operations: list[str] = []

    def get_paginator(self, operation):
        self.operations.append(operation)
        return self.client.get_paginator(operation)

    def __getattr__(self, name):
        self.operations.append(name)
        return getattr(self.client, name)


@pytest.fixture
def ddb(world):
    return Recording(world.ddb)


@pytest.fixture
def call(world, api_function, ddb):
    world.dimensions = DIMENSIONS
    handler = api_function(client=ddb, today=lambda: date(2026, 3, 31))

    def call(path, query=None, token=API_TOKEN, route=None):
        return api_request(handler, "GET", path, query, token=token, route=route)

    return call


def body(answer):
    return json.loads(answer["body"])


def given_answers(world):
    world.profile("ana@example.com", 1, plan="pro", region="EMEA", mrr_amount=4900)
    world.profile("bo@example.com", 1, plan="starter", mrr_amount=1900, mrr_currency="EUR")
    world.respond("r1", "ana@example.com", 10, day="2026-01-15", channel="email")
    world.respond("r2", "bo@example.com", 3, day="2026-02-03", comment="too slow", channel="app")
    world.respond("r3", "ana@example.com", 6, day="2026-03-10", comment="pricey")
    world.respond("r4", "cy@example.com", 8, day="2026-03-11")
    world.run()


def test_the_page_and_its_assets_are_public_with_a_strict_policy(call):
    page = call("/dashboard", token=None)
    assert page["statusCode"] == 200
    headers = {k.lower(): v for k, v in page["headers"].items()}
    assert headers["content-type"] == "text/html; charset=utf-8"
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert '<script src="dashboard/dashboard.js" defer></script>' in page["body"]
    assert "<script>" not in page["body"] and " style=" not in page["body"]
    script = call("/dashboard/dashboard.js", token=None)
    assert script["headers"]["Content-Type"] == "text/javascript; charset=utf-8"
    assert "sessionStorage" in script["body"]
    css = call("/dashboard/dashboard.css", token=None)
    assert css["headers"]["Content-Type"] == "text/css; charset=utf-8"


def test_other_files_under_dashboard_are_not_served(call):
    assert call("/dashboard/secrets.json", token=None)["statusCode"] == 401
    assert call("/dashboard/..%2Fapi.py")["statusCode"] == 404


def test_a_trailing_slash_redirects_to_the_page_so_its_relative_assets_resolve(call):
    """API Gateway routes /dashboard/ to the /dashboard route; served there, the page would
    ask for dashboard/dashboard/dashboard.js."""
    answer = call("/dashboard/", token=None, route="/dashboard")
    assert answer["statusCode"] == 301
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    # relative: behind a custom domain with a base path, /base/dashboard/ goes to /base/dashboard
    assert headers["location"] == "../dashboard"
    assert call("/dashboard", token=None)["statusCode"] == 200


def test_the_data_needs_the_token(call):
    for path in ("/segments", "/distribution", "/detractors"):
        assert call(path, {"dimension": "plan"}, token=None)["statusCode"] == 401


def test_segments_list_a_dimensions_values_with_their_all_time_nps(world, call, ddb):
    given_answers(world)
    ddb.operations.clear()
    answer = body(call("/segments", {"dimension": "plan"}))
    assert answer["dimension"] == "plan" and answer["truncated"] is False
    by_value = {s["value"]: s for s in answer["segments"]}
    assert set(by_value) == {"pro", "starter", "unknown"}
    assert (by_value["pro"]["n"], by_value["pro"]["nps"]) == (2, 0.0)
    assert by_value["starter"]["revenue_weighted_nps"] == -100.0
    # one Query on the sparse index for the values, one per value for its months; never a Scan
    assert ddb.operations == ["query"] * (1 + len(by_value))
    limited = body(call("/segments", {"dimension": "plan", "limit": "2"}))
    assert [s["value"] for s in limited["segments"]] == ["pro", "starter"]
    assert limited["truncated"] is True


def test_segments_of_an_unknown_dimension_answer_400(call):
    answer = call("/segments", {"dimension": "colour"})
    assert answer["statusCode"] == 400 and "dimension" in body(answer)["message"]


def test_the_distribution_counts_each_score_coloured_by_category(world, call, ddb):
    given_answers(world)
    ddb.operations.clear()
    answer = body(call("/distribution"))
    counts = {s["score"]: s["count"] for s in answer["scores"]}
    assert counts == {0: 0, 1: 0, 2: 0, 3: 1, 4: 0, 5: 0, 6: 1, 7: 0, 8: 1, 9: 0, 10: 1}
    assert answer["n"] == 4 and answer["granularity"] == "all"
    assert [s["category"] for s in answer["scores"]][6:9] == ["detractor", "passive", "passive"]
    assert ddb.operations == ["query"]  # the overall counters' histogram, one Query
    march = body(call("/distribution", {"granularity": "month", "from": "2026-03-01"}))
    assert march["n"] == 2 and march["from"] == "2026-03-01"
    recent = body(call("/distribution", {"window": "30d"}))
    assert {s["score"] for s in recent["scores"] if s["count"]} == {6, 8}


def test_a_score_dimension_counts_what_the_histogram_does(world, call):
    """A stack that keeps ``score`` in AggregateDimensions: its score aggregates and the
    overall histogram agree (both come from the same responses, in the same writes)."""
    world.dimensions = (*DEFAULT_DIMENSIONS, "score")
    given_answers(world)
    answer = body(call("/distribution"))
    for entry in answer["scores"]:
        counted = sum(c.n for c in world.series("score", str(entry["score"])).values())
        assert counted == entry["count"]
    assert world.differences() == []


def test_latest_detractors_come_newest_first_with_plan_and_mrr_at_risk(world, call, ddb):
    given_answers(world)
    ddb.operations.clear()
    answer = body(call("/detractors", {"limit": "5"}))
    assert [d["response_id"] for d in answer["detractors"]] == ["r3", "r2"]
    newest = answer["detractors"][0]
    assert (newest["comment"], newest["plan"], newest["score"]) == ("pricey", "pro", 6)
    assert newest["mrr_at_risk"] == {"amount": 4900, "currency": None}
    assert answer["detractors"][1]["mrr_at_risk"] == {"amount": 1900, "currency": "EUR"}
    assert ddb.operations == ["query"]
    assert [d["response_id"] for d in body(call("/detractors", {"limit": "1"}))["detractors"]] == [
        "r3"
    ]


def test_a_detractor_who_changes_the_score_leaves_the_list(world, call):
    world.respond("r1", "ana@example.com", 2, day="2026-03-01", comment="broken")
    world.respond("r1", "ana@example.com", 9, day="2026-03-01", version=1, comment="fixed")
    assert body(call("/detractors"))["detractors"] == []


def test_the_score_dimension_reconciles_like_any_other(world, call):
    given_answers(world)
    assert world.differences() == []


def test_bad_limits_answer_400(call):
    assert call("/detractors", {"limit": "0"})["statusCode"] == 400
    assert call("/segments", {"dimension": "plan", "limit": "100000"})["statusCode"] == 400


def test_the_openapi_document_describes_the_new_endpoints(call):
    document = body(call("/openapi.json", token=None))
    validate(document)
    assert {"/segments", "/distribution", "/detractors"} <= set(document["paths"])
    assert "/dashboard" not in document["paths"]
