"""The whole pipeline over HTTP: the local runtime as a separate process, a signed generic
survey webhook in, the aggregated NPS out of GET /nps."""

import json
import time
import urllib.request
from pathlib import Path

import pytest

from nps_sync.core.signing import standard_sign

ROOT = Path(__file__).resolve().parents[2]
SECRETS = json.loads((ROOT / "local" / "dev-secrets.json").read_text())
TOKEN = SECRETS["api_tokens"][0]

pytestmark = pytest.mark.e2e


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:  # noqa: S310 (local http only)
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_webhook_shows_up_in_the_nps_within_seconds(runtime):
    base = runtime.url
    body = json.dumps(
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
        ]
    ).encode()
    headers = standard_sign(
        SECRETS["providers"]["generic"]["secret"], "msg_e2e", int(time.time()), body
    )
    status, receipt = request(
        "POST",
        f"{base}/webhooks/survey/generic",
        body,
        {**headers, "content-type": "application/json"},
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
