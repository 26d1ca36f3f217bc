"""template.yaml's alarms, log groups and dashboard cover what can fail (issue 15, item 3).

Read from template.yaml as written (cfnlint.decode), so a new dead-letter queue, function or
stream consumer without its alarm fails here; the reconcile alarm is checked against the
metric ReconcileFunction's handler actually emits.
"""

import json
import operator
import re
from pathlib import Path

import pytest
from cfnlint.decode import decode

from local.lambdas import Context, load_handler
from nps_sync.core.settings import aggregate_settings

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
COMPARE = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


@pytest.fixture(scope="module")
def sam():
    source, problems = decode(str(TEMPLATE))
    assert not problems
    return source


def of_type(sam, resource_type):
    return {k: v for k, v in sam["Resources"].items() if v["Type"] == resource_type}


def alarms_on(sam, namespace, metric, **dimensions):
    """The single-metric alarms on ``metric`` with exactly these dimensions."""
    return [
        alarm["Properties"]
        for alarm in of_type(sam, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == namespace
        and alarm["Properties"].get("MetricName") == metric
        and {d["Name"]: d["Value"] for d in alarm["Properties"].get("Dimensions", [])} == dimensions
    ]


def fires_at(alarm, value):
    return COMPARE[alarm["ComparisonOperator"]](value, alarm["Threshold"])


def evaluate(sam, value, parameters):
    """Resolve Ref to a parameter, Fn::If/Equals/Not and Condition as CloudFormation would."""
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref" and arg in sam["Parameters"]:
            return parameters.get(arg, sam["Parameters"][arg].get("Default"))
        if fn == "Condition":
            return evaluate(sam, sam["Conditions"][arg], parameters)
        if fn == "Fn::Equals":
            return evaluate(sam, arg[0], parameters) == evaluate(sam, arg[1], parameters)
        if fn == "Fn::Not":
            return not evaluate(sam, arg[0], parameters)
        if fn == "Fn::If":
            chosen = evaluate(sam, {"Condition": arg[0]}, parameters)
            return evaluate(sam, arg[1] if chosen else arg[2], parameters)
    return value


def created(sam, logical_id, parameters):
    condition = sam["Resources"][logical_id].get("Condition")
    return condition is None or evaluate(sam, {"Condition": condition}, parameters)


def test_every_queue_that_holds_failed_work_alarms_on_its_first_message(sam):
    queues = of_type(sam, "AWS::SQS::Queue")
    dead_letter = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    on_failure = {
        event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for function in of_type(sam, "AWS::Serverless::Function").values()
        for event in function["Properties"].get("Events", {}).values()
        if "DestinationConfig" in event["Properties"]
    }
    holding_failures = dead_letter | on_failure
    assert holding_failures >= {  # and any added later
        "CrmEnrichmentDeadLetterQueue",
        "DeliveryDeadLetterQueue",
        "AggregatorFailureQueue",
    }
    for queue in holding_failures:
        name = {"Fn::GetAtt": [queue, "QueueName"]}
        (alarm,) = alarms_on(sam, "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName=name)
        assert fires_at(alarm, 1) and not fires_at(alarm, 0), queue
        assert alarm["TreatMissingData"] == "notBreaching", queue  # an empty queue is fine


def test_every_function_alarms_on_errors_and_throttles_and_keeps_logs_for_log_retention_days(
    sam,
):
    functions = of_type(sam, "AWS::Serverless::Function")
    log_groups = {
        g["Properties"]["LogGroupName"]["Fn::Sub"]: g["Properties"]
        for g in of_type(sam, "AWS::Logs::LogGroup").values()
    }
    assert len(functions) >= 8
    for function in functions:
        name = {"Ref": function}
        (errors,) = alarms_on(sam, "AWS/Lambda", "Errors", FunctionName=name)
        assert fires_at(errors, 1) and not fires_at(errors, 0), function
        (throttles,) = alarms_on(sam, "AWS/Lambda", "Throttles", FunctionName=name)
        assert fires_at(throttles, 1) and not fires_at(throttles, 0), function
        group = log_groups[f"/aws/lambda/${{{function}}}"]  # where Lambda writes its lines
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}, function


def test_the_stream_consumer_alarms_when_it_falls_minutes_behind(sam):
    consumers = [
        logical_id
        for logical_id, function in of_type(sam, "AWS::Serverless::Function").items()
        for event in function["Properties"].get("Events", {}).values()
        if event["Type"] in ("DynamoDB", "Kinesis")
    ]
    assert "AggregatorFunction" in consumers
    for consumer in consumers:
        (alarm,) = alarms_on(sam, "AWS/Lambda", "IteratorAge", FunctionName={"Ref": consumer})
        assert alarm["Statistic"] == "Maximum"  # the oldest record of a batch, in milliseconds
        assert fires_at(alarm, 15 * 60_000) and not fires_at(alarm, 60_000)


def test_the_http_api_alarms_on_its_5xx_rate_at_the_stage_sam_creates(sam, template):
    (api,) = of_type(sam, "AWS::Serverless::HttpApi")
    (stage,) = template.of_type("AWS::ApiGatewayV2::Stage").values()
    dimensions = [
        {"Name": "ApiId", "Value": {"Ref": api}},
        {"Name": "Stage", "Value": stage["Properties"]["StageName"]},
    ]
    rate_alarms = []
    for alarm in of_type(sam, "AWS::CloudWatch::Alarm").values():
        queries = {q["Id"]: q for q in alarm["Properties"].get("Metrics", [])}
        metrics = {
            q["MetricStat"]["Metric"]["MetricName"]: q
            for q in queries.values()
            if "MetricStat" in q and q["MetricStat"]["Metric"]["Dimensions"] == dimensions
        }
        if {"5xx", "Count"} <= set(metrics):
            rate_alarms.append((alarm["Properties"], queries, metrics))
    ((alarm, queries, metrics),) = rate_alarms
    (returned,) = [q for q in queries.values() if q.get("ReturnData", True)]
    used = set(re.findall(r"[a-z]\w*", returned["Expression"]))
    assert {metrics["5xx"]["Id"], metrics["Count"]["Id"]} <= used  # a rate, not a count
    assert fires_at(alarm, 50) and not fires_at(alarm, 1)  # percent


def test_every_alarm_notifies_the_topic_whatever_the_parameters(sam):
    alarms = of_type(sam, "AWS::CloudWatch::Alarm")
    assert len(alarms) >= 8 * 2 + 6
    existing = "arn:aws:sns:eu-west-1:123456789012:on-call"
    for parameters, topic in (({}, {"Ref": "AlarmTopic"}), ({"AlarmTopicArn": existing}, existing)):
        for logical_id, alarm in alarms.items():
            for actions in ("AlarmActions", "OKActions"):
                assert [evaluate(sam, a, parameters) for a in alarm["Properties"][actions]] == [
                    topic
                ], (logical_id, actions, parameters)
        assert created(sam, "AlarmTopic", parameters) == (topic == {"Ref": "AlarmTopic"})
    # no e-mail: a topic without subscribers; an e-mail: subscribed to the topic alarms notify
    assert not created(sam, "AlarmEmailSubscription", {})
    subscription = sam["Resources"]["AlarmEmailSubscription"]["Properties"]
    for parameters, topic in (
        ({"AlarmEmail": "ops@example.com"}, {"Ref": "AlarmTopic"}),
        ({"AlarmEmail": "ops@example.com", "AlarmTopicArn": existing}, existing),
    ):
        assert created(sam, "AlarmEmailSubscription", parameters)
        assert evaluate(sam, subscription["TopicArn"], parameters) == topic
        assert evaluate(sam, subscription["Endpoint"], parameters) == "ops@example.com"


def test_the_dashboard_is_json_and_shows_every_alarm_and_its_metric(sam):
    (dashboard,) = of_type(sam, "AWS::CloudWatch::Dashboard").values()
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^}]+)\}", text))
    assert {n.split(".")[0] for n in names} <= set(sam["Resources"]) | {"AWS::Region"}
    body = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", text))
    widgets = body["widgets"]
    (status,) = [w for w in widgets if w["type"] == "alarm"]
    alarms = of_type(sam, "AWS::CloudWatch::Alarm")
    assert sorted(status["properties"]["alarms"]) == sorted(f"<{a}.Arn>" for a in alarms)
    graphed = {
        (m[0], m[1])
        for w in widgets
        if w["type"] == "metric"
        for m in w["properties"]["metrics"]
        if isinstance(m[0], str)  # not an expression
    }
    for alarm in alarms.values():
        props = alarm["Properties"]
        for query in props.get("Metrics", [{"MetricStat": {"Metric": props}}]):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                assert (metric["Namespace"], metric["MetricName"]) in graphed


def test_the_scheduled_reconcile_runs_by_default_and_only_reports(sam):
    reconcile = sam["Resources"]["ReconcileFunction"]["Properties"]
    (schedule,) = [e for e in reconcile["Events"].values() if e["Type"] == "Schedule"]
    assert evaluate(sam, schedule["Properties"]["State"], {}) == "ENABLED"
    assert json.loads(schedule["Properties"]["Input"]) == {"fix": False}


def emitted_metrics(output: str) -> list[dict]:
    """The EMF blobs powertools printed: namespace, dimensions and values per metric."""
    found = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            (dimension_names,) = directive["Dimensions"]
            for metric in directive["Metrics"]:
                values = blob[metric["Name"]]  # EMF: one value or a list of them
                found.append(
                    {
                        "Namespace": directive["Namespace"],
                        "MetricName": metric["Name"],
                        "Dimensions": {d: blob[d] for d in dimension_names},
                        "value": max(values) if isinstance(values, list) else values,
                    }
                )
    return found


def test_the_reconcile_alarm_watches_what_the_function_emits_and_clears_after_a_repair(
    world, template, sam, capsys, monkeypatch
):
    # given a response whose stream record never reached the aggregator
    world.respond("r1", "ana@example.com", 9)
    assert world.new_records()
    monkeypatch.setenv("RECORDS_TABLE", world.records_table)
    monkeypatch.setenv("AGGREGATES_TABLE", world.aggregates_table)
    monkeypatch.setenv("AGGREGATE_DIMENSIONS", ",".join(world.dimensions))
    aggregate_settings.cache_clear()
    handler = load_handler(template.functions["ReconcileFunction"])
    context = Context("ReconcileFunction", 1024, 900, "req-1", "arn:aws:lambda:::function:R")
    capsys.readouterr()
    try:
        # when the scheduled run reports, then a run repairs
        handler({"fix": False}, context)
        reported = emitted_metrics(capsys.readouterr().out)
        handler({"fix": True, "settle_seconds": 0}, context)
        repaired = emitted_metrics(capsys.readouterr().out)
    finally:
        aggregate_settings.cache_clear()

    # then exactly one alarm watches one of the emitted metrics, in the namespace and with the
    # service dimension the template's Globals give every function
    variables = sam["Globals"]["Function"]["Environment"]["Variables"]
    watched = [
        (metric, alarm)
        for metric in reported
        for alarm in alarms_on(
            sam, metric["Namespace"], metric["MetricName"], **metric["Dimensions"]
        )
    ]
    ((metric, alarm),) = watched
    assert metric["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert metric["Dimensions"] == {"service": variables["POWERTOOLS_SERVICE_NAME"]}
    assert fires_at(alarm, metric["value"])  # the report: differences found
    (after,) = [m for m in repaired if m["MetricName"] == metric["MetricName"]]
    assert not fires_at(alarm, after["value"])  # nothing left after the repair
    assert alarm["TreatMissingData"] == "ignore"  # between daily runs the last run's state holds
