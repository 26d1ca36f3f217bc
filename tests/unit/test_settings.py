"""Settings read from environment variables: text to numbers, booleans and JSON, defaults for
what is left out, and a variable that is missing or not valid named at start, never quoted."""

import pytest

from nps_sync.core.aggregates import DEFAULT_DIMENSIONS, READ_DIMENSIONS
from nps_sync.core.settings import (
    AggregateSettings,
    DestinationSettings,
    FanoutSettings,
    InvalidSettings,
    Settings,
)

BASE = {"RECORDS_TABLE": "records", "AGGREGATES_TABLE": "aggregates"}
SECRET = "s3cr3t-value"


def test_text_becomes_numbers_booleans_and_json_and_the_rest_keeps_its_default():
    made = FanoutSettings.of(
        {
            **BASE,
            "RAW_RETENTION_DAYS": "30",
            "DELIVERY_TIMEOUT_SECONDS": "2.5",
            "ALLOW_LOCAL_SUBSCRIBERS": "true",
            "NPS_QUESTIONS": '{"typeform": ["nps_ref"]}',
            "PATH": "/usr/bin",  # the rest of the environment is not ours
        }
    )
    assert (made.records_table, made.raw_retention_days) == ("records", 30)
    assert (made.delivery_timeout_seconds, made.allow_local_subscribers) == (2.5, True)
    assert made.nps_questions == {"typeform": ["nps_ref"]}
    assert (made.comment_questions, made.max_body_bytes) == ({}, 256 * 1024)
    assert made.event_granularities == ("all", "month")


def test_decoded_json_is_taken_as_it_is():
    made = Settings.of({**BASE, "CRM_FIELDS": {"hubspot": {"region": "sales_region"}}})
    assert made.crm_fields == {"hubspot": {"region": "sales_region"}}


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "RECORDS_TABLE"),
        ({"RECORDS_TABLE": ""}, "RECORDS_TABLE"),
        ({**BASE, "RAW_RETENTION_DAYS": "0"}, "RAW_RETENTION_DAYS"),
        ({**BASE, "MAX_BODY_BYTES": SECRET}, "MAX_BODY_BYTES"),
        ({**BASE, "NPS_QUESTIONS": "{" + SECRET}, "NPS_QUESTIONS"),
        ({**BASE, "NPS_QUESTIONS": '{"typeform": "' + SECRET + '"}'}, "NPS_QUESTIONS"),
    ],
)
def test_a_missing_or_invalid_variable_is_named_never_quoted(values, named):
    with pytest.raises(InvalidSettings) as refused:
        Settings.of(values)
    assert named in str(refused.value)
    assert SECRET not in str(refused.value)


def test_a_delivery_deadline_is_bounded():
    for text in ("0", "21"):
        with pytest.raises(InvalidSettings, match="DELIVERY_TIMEOUT_SECONDS"):
            FanoutSettings.of({**BASE, "DELIVERY_TIMEOUT_SECONDS": text})


def test_dimensions_are_split_trimmed_and_listed_once():
    made = AggregateSettings.of({**BASE, "AGGREGATE_DIMENSIONS": " overall, plan ,plan,,region"})
    assert made.aggregate_dimensions == ("overall", "plan", "region")
    assert made.read_dimensions == READ_DIMENSIONS
    assert made.queryable_dimensions == ("overall", "plan", "region", *READ_DIMENSIONS)
    assert AggregateSettings.of(BASE).aggregate_dimensions == DEFAULT_DIMENSIONS


@pytest.mark.parametrize(
    ("kind", "name", "text", "says"),
    [
        (AggregateSettings, "AGGREGATE_DIMENSIONS", " , ", "at least one dimension"),
        (AggregateSettings, "AGGREGATE_DIMENSIONS", "overall,Plan", "lower-case identifiers"),
        (AggregateSettings, "READ_DIMENSIONS", "plan", "can be answered on read"),
        (DestinationSettings, "EVENT_GRANULARITIES", "month,fortnight", "unknown granularities"),
    ],
)
def test_lists_that_are_not_valid_are_refused(kind, name, text, says):
    with pytest.raises(InvalidSettings, match=says) as refused:
        kind.of({**BASE, name: text})
    assert str(refused.value).startswith(f"{name}: ")


def test_a_variable_of_another_function_is_not_read():
    """The webhook functions' Settings do not read the aggregator's variables at all."""
    made = Settings.of({**BASE, "AGGREGATE_DIMENSIONS": "Not Valid"})
    assert not hasattr(made, "aggregate_dimensions")
