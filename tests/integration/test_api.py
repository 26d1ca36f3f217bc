"""ApiFunction's handler (loaded from template.yaml) against moto."""

import json
import sys
from datetime import date

import pytest
from openapi_spec_validator import validate

from local.lambdas import Context, load_handler
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.customers import CustomerRecords
from nps_sync.store.response_index import ResponseIndex
from nps_sync.web import api as api_module

TOKEN = "dev-token-change-me"


@pytest.fixture
def call(world, template, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv(
        "NPS_SYNC_SECRETS_FILE", str(Path(__file__).parents[2] / "local" / "dev-secrets.json")
    )
    monkeypatch.setenv("RECORDS_TABLE", world.records_table)
    monkeypatch.setenv("AGGREGATES_TABLE", world.aggregates_table)
    handler = load_handler(template.functions["ApiFunction"])
    app = api_module.resolver(
        lambda: api_module.Services(
            AggregatesStore(world.aggregates_table, world.ddb),
            CustomerRecords(world.records_table, world.ddb),
            world.dimensions,
            lambda: [TOKEN],
            today=lambda: date(2026, 1, 31),
            index=ResponseIndex(world.records_table, world.ddb),
            read_dimensions=("account",),
        )
    )
    # the function module's app, with a fixed "today" for the windows
    monkeypatch.setattr(sys.modules["lambda_ApiFunction_app"], "app", app)

    def call(method, path, query=None, token=TOKEN):
        event = {
            "version": "2.0",
            "routeKey": f"{method} {path}",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"authorization": f"Bearer {token}"} if token else {},
            "requestContext": {
                "http": {"method": method, "path": path, "sourceIp": "127.0.0.1"},
                "stage": "$default",
                "domainName": "localhost",
                "requestId": "r",
            },
            "isBase64Encoded": False,
        }
        if query:
            event["queryStringParameters"] = query
        context = Context("ApiFunction", 512, 10, "req-1", "arn:aws:lambda:::function:ApiFunction")
        answer = handler(event, context)
        return answer["statusCode"], json.loads(answer["body"])

    return call


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
