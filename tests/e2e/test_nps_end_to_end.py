"""The whole pipeline over HTTP: the local runtime as a separate process, a signed generic
survey webhook in, the aggregated NPS out of GET /nps."""

import time

import pytest

from tests.e2e.client import TOKEN, post_generic, request

pytestmark = pytest.mark.e2e


def test_a_webhook_shows_up_in_the_nps_within_seconds(runtime):
    base = runtime.url
    status, receipt = post_generic(
        base,
        "survey",
        [
            {
                "id": "e2e-1",
                "customer": {"email": "e2e-a@example.com"},
                "score": 10,
                "submitted_at": "2026-02-03T10:00:00Z",
                "survey": "e2e",
                "channel": "email",
            },
            {
                "id": "e2e-2",
                "customer": {"id": "e2e-b"},
                "score": 4,
                "submitted_at": "2026-02-04T10:00:00Z",
                "survey": "e2e",
                "channel": "email",
            },
        ],
    )
    assert status == 202 and receipt["accepted"] == 2
    auth = {"authorization": f"Bearer {TOKEN}"}
    query = "dimension=survey&value=e2e&granularity=month&from=2026-02-01&to=2026-02-28"
    deadline = time.monotonic() + 10
    while True:
        status, series = request("GET", f"{base}/nps?{query}", headers=auth)
        assert status == 200
        if series["buckets"][0]["n"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert series["buckets"] == [
        {
            "period": "2026-02",
            "promoters": 1,
            "passives": 0,
            "detractors": 1,
            "n": 2,
            "nps": 0.0,
            "margin_of_error": 138.6,
            "revenue_weighted_nps": None,
        }
    ]
    assert request("GET", f"{base}/nps")[0] == 401
    assert request("GET", f"{base}/openapi.json")[0] == 200
