"""Which segment a billing customer's outcome counts under (nps_sync.core.outcomes.segment)."""

from nps_sync.core.outcomes import OutcomeKey, contribution, derive, segment, stored_state
from nps_sync.store.items import stored_profile, stored_response


def profile(**attributes):
    item = {
        "pk": {"S": "CUST#ana@example.com"},
        "sk": {"S": "PROFILE"},
        "billing_updated_at": {"S": "2026-01-01T00:00:00.000000Z"},
        "mrr_amount": {"N": "4900"},
        "mrr_currency": {"S": "EUR"},
    }
    item.update({k: {"S": v} for k, v in attributes.items()})
    return item


def answered(score, channel=None):
    item = {
        "pk": {"S": "RESP#generic#r1"},
        "sk": {"S": "RESP"},
        "score": {"N": str(score)},
        "submitted_at": {"S": "2026-02-01T10:00:00.000000Z"},
    }
    if channel is not None:
        item["channel"] = {"S": channel}
    return stored_response(item)


def with_state(image, responses):
    from nps_sync.core.outcomes import to_attribute

    state = derive(stored_profile(image), responses)
    return stored_profile({**image, "outcome": to_attribute(state)})


def test_a_latest_score_of_zero_counts_under_score_0_not_unknown():
    image = with_state(profile(), [answered(0)])
    keys = contribution(image, ("score",))
    assert OutcomeKey("score", "0", "now", "now") in keys
    assert not [k for k in keys if k.value == "unknown"]
    assert segment(image, stored_state(image), "score") == "0"  # what the at-risk listing picks


def test_segments_come_from_the_profile_then_the_latest_answer_then_unknown():
    image = with_state(profile(plan="pro"), [answered(10, channel="email")])
    values = {k.dimension: k.value for k in contribution(image, ("plan", "channel", "region"))}
    assert values == {"plan": "pro", "channel": "email", "region": "unknown"}
    no_answer = with_state(profile(), [])
    assert {k.value for k in contribution(no_answer, ("score",))} == {"unknown"}
