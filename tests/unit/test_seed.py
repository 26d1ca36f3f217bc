"""The demo data set is reproducible and each body is one its provider could have sent."""

import json
from datetime import date

from local.seed import generate


def test_the_same_seed_gives_the_same_requests():
    first = generate(60, seed=5, end=date(2026, 3, 1))
    again = generate(60, seed=5, end=date(2026, 3, 1))
    other = generate(60, seed=6, end=date(2026, 3, 1))
    assert first == again
    assert first != other


def test_profiles_come_before_responses_and_every_provider_is_used():
    requests = generate(60, seed=5, end=date(2026, 3, 1))
    kinds = [r.kind for r in requests]
    assert kinds.index("survey") > kinds.index("billing") > kinds.index("crm")
    assert {r.provider for r in requests if r.kind == "survey"} == {
        "typeform",
        "delighted",
        "formbricks",
        "generic",
    }
    for request in requests:
        json.loads(request.body)
