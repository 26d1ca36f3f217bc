"""Back-pressure in template.yaml (docs/operations.md "Concurrency"; issue 15, item 7): the queue
consumers are capped, the receivers can have concurrency of their own, and a HubSpot rate limit
is waited out on the enrichment queue without spending its receives.

Read from template.yaml as written (cfnlint.decode), so a new queue consumer without a cap
fails here.
"""

from pathlib import Path

import pytest
from cfnlint.decode import decode

from nps_sync.ingest.enrichment import MAX_RECEIVES, rate_limit_wait, storm_span

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
DAY = 24 * 3600
SQS_LIMIT = 12 * 3600  # the longest ChangeMessageVisibility SQS accepts
DEFAULT_RETENTION = 4 * DAY  # an SQS queue's without MessageRetentionPeriod


@pytest.fixture(scope="module")
def sam():
    source, problems = decode(str(TEMPLATE))
    assert not problems
    return source


def functions(sam) -> dict[str, dict]:
    return {
        name: resource["Properties"]
        for name, resource in sam["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def events(function: dict, kind: str) -> list[dict]:
    return [e["Properties"] for e in function.get("Events", {}).values() if e["Type"] == kind]


def test_every_queue_consumer_is_capped_by_its_mappings_maximum_concurrency(sam):
    consumers = {n: f for n, f in functions(sam).items() if events(f, "SQS")}

    assert set(consumers) >= {"CrmEnrichFunction", "DeliveryFunction"}  # and any added later
    for name, function in consumers.items():
        for event in events(function, "SQS"):
            cap = event["ScalingConfig"]["MaximumConcurrency"]
            parameter = sam["Parameters"][cap["Ref"]]
            assert parameter["MinValue"] >= 2 and parameter["MaxValue"] <= 1000, name
            assert 2 <= parameter["Default"] <= 10, name  # leaves a small account room
        # reserved concurrency would throttle the mapping: throttled messages spend receives
        assert "ReservedConcurrentExecutions" not in function, name


def test_the_stream_consumer_runs_once_per_shard(sam):
    for name, function in functions(sam).items():
        for event in events(function, "DynamoDB"):
            assert event["ParallelizationFactor"] == 1, name


def test_receivers_reserve_concurrency_only_when_the_parameter_asks(sam):
    receivers = {
        name: function
        for name, function in functions(sam).items()
        if any(e["Path"].startswith("/webhooks/") for e in events(function, "HttpApi"))
    }

    assert set(receivers) == {
        "SurveyWebhookFunction",
        "CrmWebhookFunction",
        "BillingWebhookFunction",
    }
    # by default none (a quota of 10 could not deploy it); when asked, that much each
    assert sam["Parameters"]["ReceiverReservedConcurrency"]["Default"] == 0
    assert sam["Conditions"]["ReserveReceiverConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReceiverReservedConcurrency"}, "0"]}]
    }
    for name, function in receivers.items():
        assert function["ReservedConcurrentExecutions"] == {
            "Fn::If": [
                "ReserveReceiverConcurrency",
                {"Ref": "ReceiverReservedConcurrency"},
                {"Ref": "AWS::NoValue"},
            ]
        }, name
    others = set(functions(sam)) - set(receivers)
    assert not {n for n in others if "ReservedConcurrentExecutions" in functions(sam)[n]}


@pytest.mark.parametrize(
    ("receive", "retry_after", "wait"),
    [
        (1, None, 60),  # no Retry-After (or an HTTP date)
        (1, 7, 60),  # the 10-second burst limit: more than HubSpot asks
        (1, 90, 90),  # never less than it asks
        (2, None, 120),
        (3, 90, 240),
        (7, None, 3600),  # doubling up to an hour
        (30, 3600, 3600),
    ],
)
def test_a_rate_limit_wait_doubles_with_the_receives_and_honours_retry_after(
    receive, retry_after, wait
):
    assert rate_limit_wait(receive, retry_after) == wait


def test_the_enrichment_queue_outlasts_a_day_of_rate_limiting(sam):
    queue = sam["Resources"]["CrmEnrichmentQueue"]["Properties"]

    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES
    # HubSpot's daily limit resets at midnight in the account's time zone: a day at most
    assert DAY <= storm_span() < queue.get("MessageRetentionPeriod", DEFAULT_RETENTION)
    assert storm_span(MAX_RECEIVES - 1) < DAY  # and no receive more than that needs
    assert rate_limit_wait(MAX_RECEIVES, 3600) + queue["VisibilityTimeout"] < SQS_LIMIT
