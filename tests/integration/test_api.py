"""ApiFunction's handler (loaded from template.yaml) against moto."""

from datetime import date
from functools import partial

import pytest
from openapi_spec_validator import validate

from nps_sync.store.response_index import ResponseIndex

from .conftest import API_TOKEN, READ_TOKEN, call_api


@pytest.fixture
def call(world, api_function):
    handler = api_function(  # a fixed "today" for the windows
        today=lambda: date(2026, 1, 31),
        index=ResponseIndex(world.records_table, world.ddb),
        read_dimensions=("account",),
    )
    return partial(call_api, handler)


def test_nps_series_by_month_fills_empty_months(world, call):
    world.profile("ana@example.com", 1, plan="pro", mrr_amount=4900)
    world.respond("r1", "ana@example.com", 10, day="2026-01-15")
    world.respond("r2", "bo@example.com", 7, day="2026-01-20")
    world.run()
    status, body = call(
        "GET",
        "/nps",
        {
            "dimension": "plan",
            "value": "pro",
            "granularity": "month",
            "from": "2026-01-01",
            "to": "2026-03-31",
        },
    )
    assert status == 200
    assert [b["period"] for b in body["buckets"]] == ["2026-01", "2026-02", "2026-03"]
    january = body["buckets"][0]
    assert (january["promoters"], january["n"], january["nps"]) == (1, 1, 100.0)
    assert january["revenue_weighted_nps"] == 100.0
    assert body["buckets"][1]["nps"] is None
    status, body = call("GET", "/nps")
    assert body["buckets"] == [
        {
            "period": "all",
            "promoters": 1,
            "passives": 1,
            "detractors": 0,
            "n": 2,
            "nps": 50.0,
            "margin_of_error": 69.3,
            "revenue_weighted_nps": 100.0,
        }
    ]


def test_a_window_sums_daily_buckets_into_one(world, call):
    world.respond("r1", "ana@example.com", 10, day="2026-01-15")
    world.respond("r2", "bo@example.com", 1, day="2025-12-01")
    world.run()
    status, body = call("GET", "/nps", {"window": "30d"})
    assert status == 200
    assert [(b["period"], b["n"]) for b in body["buckets"]] == [("30d", 1)]
    status, body = call("GET", "/nps", {"window": "90d"})
    assert body["buckets"][0]["n"] == 2


def test_an_account_is_answered_from_its_responses(world, call):
    world.profile("ana@example.com", 1, account="Acme", mrr_amount=4900)
    world.profile("bo@example.com", 1, account="Acme", mrr_amount=100)
    world.respond("r1", "ana@example.com", 10, day="2026-01-15")
    world.respond("r2", "bo@example.com", 2, day="2026-03-01")
    world.respond("r3", "cy@example.com", 10, day="2026-01-15")  # no account
    world.run()
    query = {"dimension": "account", "value": "Acme", "granularity": "month"}
    status, body = call("GET", "/nps", {**query, "from": "2026-01-01", "to": "2026-03-31"})
    assert status == 200
    assert [(b["period"], b["n"], b["nps"]) for b in body["buckets"]] == [
        ("2026-01", 1, 100.0),
        ("2026-02", 0, None),
        ("2026-03", 1, -100.0),
    ]
    status, body = call("GET", "/nps", {"dimension": "account", "value": "Acme"})
    [everything] = body["buckets"]
    assert (everything["n"], everything["nps"]) == (2, 0.0)
    assert everything["revenue_weighted_nps"] == round(100 * (4900 - 100) / 5000, 1)
    status, body = call("GET", "/nps", {"dimension": "account", "value": "Acme", "window": "30d"})
    assert status == 200 and body["buckets"][0]["n"] == 1  # "today" is 2026-01-31 here


@pytest.mark.parametrize(
    "query",
    [
        {"granularity": "hourly"},
        {"from": "2026-13-01", "granularity": "day"},
        {"window": "30d", "from": "2026-01-01"},
        {"dimension": "plan"},
        {"dimension": "colour", "value": "red"},
        {"granularity": "all", "from": "2026-01-01"},
        {"window": "30 days"},
    ],
)
def test_bad_parameters_answer_400_with_the_reason(call, query):
    status, body = call("GET", "/nps", query)
    assert status == 400
    assert body["error"] == "bad_request" and body["message"]


def test_without_a_valid_token_the_answer_is_401(call):
    assert call("GET", "/nps", token=None)[0] == 401
    assert call("GET", "/nps", {"granularity": "hourly"}, token="wrong")[1]["error"] == (
        "unauthorized"
    )
    assert call("GET", "/customers/x", token="wrong")[0] == 401


def test_customer_view_and_erasure(world, call):
    world.profile("ana@example.com", 1, plan="pro")
    world.respond("r1", "ana@example.com", 4, day="2026-01-10", comment="meh")
    world.respond("r2", "ana@example.com", 9, day="2026-01-12")
    world.run()
    status, body = call("GET", "/customers/ana%40example.com")
    assert status == 200
    assert body["profile"]["plan"] == "pro"
    assert [r["response_id"] for r in body["responses"]] == ["r1", "r2"]
    assert body["latest"]["score"] == 9
    status, body = call("DELETE", "/customers/ana@example.com")
    assert status == 202
    assert body["deleted"]["responses"] == 2
    world.run()
    assert call("GET", "/customers/ana@example.com")[0] == 404
    assert call("GET", "/nps")[1]["buckets"][0]["n"] == 0
    assert world.differences() == []


def test_openapi_document_is_public_and_valid(call):
    status, document = call("GET", "/openapi.json", token=None)
    assert status == 200
    validate(document)
    assert "/nps" in document["paths"]


# --- scopes: read and admin (README "Secrets") ---------------------------------------------


def operations(document):
    """(method, path with its parameters filled in, the scope the document says it needs)."""
    for template, item in document["paths"].items():
        path = template.replace("{key}", "ana@example.com").replace("{subscription_id}", "sub_1")
        path = path.replace("{destination_id}", "dst_1")
        for method, operation in item.items():
            [[scope]] = [need["bearer"] for need in operation["security"]]
            yield method.upper(), path, template, scope


def test_the_openapi_document_names_the_scope_of_every_operation(call):
    _, document = call("GET", "/openapi.json", token=None)
    scopes = {(m, t): scope for m, _, t, scope in operations(document)}
    assert {t for (_, t), scope in scopes.items() if scope == "admin"} == {
        "/customers/{key}",
        "/subscriptions",
        "/subscriptions/{subscription_id}",
        "/subscriptions/{subscription_id}/rotate",
        "/subscriptions/{subscription_id}/deliveries",
        "/destinations",
        "/destinations/{destination_id}",
        "/destinations/{destination_id}/test",
        "/destinations/{destination_id}/writes",
    }
    assert {t for (_, t), scope in scopes.items() if scope == "read"} == {
        "/nps",
        "/segments",
        "/distribution",
        "/detractors",
        "/outcomes",
        "/outcomes/at-risk",
        "/destinations/health",
    }
    assert "admin" in document["components"]["securitySchemes"]["bearer"]["description"]


def test_a_read_token_is_refused_403_where_the_document_says_admin_and_served_elsewhere(
    world, call
):
    world.profile("ana@example.com", 1, plan="pro")
    world.respond("r1", "ana@example.com", 4, day="2026-01-10")
    world.run()
    _, document = call("GET", "/openapi.json", token=None)
    for method, path, template, scope in operations(document):
        query = {"dimension": "plan"} if template == "/segments" else None
        status, body = call(method, path, query, token=READ_TOKEN, route=template)
        if scope == "admin":
            assert (status, body["error"]) == (403, "insufficient_scope"), (method, template)
            assert "admin" in body["message"] and "read" in body["message"]
        else:
            assert status == 200, (method, template, body)
    # nothing was erased by the refused DELETE
    assert call("GET", "/customers/ana%40example.com", route="/customers/{key}")[0] == 200


def test_an_admin_token_may_do_what_a_read_token_may(call):
    for path, query in (("/nps", None), ("/segments", {"dimension": "plan"}), ("/outcomes", None)):
        assert call("GET", path, query, token=API_TOKEN)[0] == 200
        assert call("GET", path, query, token=READ_TOKEN)[0] == 200


def test_the_dashboards_reads_need_only_the_read_scope(call):
    for path, query in (
        ("/nps", {"granularity": "month", "from": "2026-01-01", "to": "2026-01-31"}),
        ("/nps", {"window": "90d"}),
        ("/segments", {"dimension": "region"}),
        ("/distribution", None),
        ("/detractors", {"limit": "20"}),
    ):
        assert call("GET", path, query, token=READ_TOKEN)[0] == 200, path


def test_a_read_token_is_refused_before_the_body_is_validated(call):
    """403, not 422: a token that may not subscribe learns nothing about what it sent."""
    status, body = call("POST", "/subscriptions", body={"url": 7}, token=READ_TOKEN)
    assert (status, body["error"]) == (403, "insufficient_scope")
    status, body = call("POST", "/subscriptions", body={"url": 7}, token="wrong")
    assert (status, body["error"]) == (401, "unauthorized")
    status, body = call("POST", "/subscriptions", body={"url": 7}, token=API_TOKEN)
    assert status == 422


@pytest.mark.parametrize("token", ["wrong", READ_TOKEN + "x", READ_TOKEN[:-1], "", None])
def test_an_unknown_token_is_401_on_read_and_admin_routes(call, token):
    for method, path, route in (
        ("GET", "/nps", None),
        ("DELETE", "/customers/ana%40example.com", "/customers/{key}"),
    ):
        status, body = call(method, path, token=token, route=route)
        assert (status, body["error"]) == (401, "unauthorized")
