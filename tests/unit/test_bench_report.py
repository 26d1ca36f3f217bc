"""The bench's report arithmetic: targets table, README block, freshness percentiles, the hot
keys' arithmetic and the fixed-cost model. Pure functions on made-up figures, no run."""

import math
from datetime import date

import pytest

from bench import __main__ as bench_main
from bench import cost_model, freshness, hot_keys


def test_p90_is_the_nearest_rank_and_a_timeout_counts_as_never():
    values = [float(i) for i in range(1, 21)]  # 1..20
    assert freshness.percentile(values, 0.9) == 18.0
    assert freshness.percentile(values, 0.5) == 10.0
    result = freshness.summary([1.0, 1.2, None])
    assert result["timeouts"] == 1
    assert result["median_s"] == 1.2
    assert result["p90_s"] == math.inf


def test_each_freshness_webhook_is_a_new_response_submitted_now():
    import json
    from datetime import UTC, datetime

    now = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    first, second = (json.loads(freshness.body("r", i, now))[0] for i in (0, 1))
    assert first["id"] != second["id"]
    assert first["customer"] != second["customer"]
    assert first["submitted_at"] == "2026-12-03T09:30:00Z"


def _item(sk: str, marks: int, counters: int = 3) -> dict:
    item = {"pk": {"S": "overall#all"}, "sk": {"S": sk}}
    item.update({f"c{i}": {"N": "12"} for i in range(counters)})
    for n in range(marks):
        item[f"hwm#shardId-{n:020d}-abcdef01"] = {"S": f"{n:021d}"}
        item[f"hwm#shardId-{n:020d}-abcdef01#at"] = {"N": "1796305779"}
    return item


def test_hottest_picks_the_largest_item_of_the_current_period_whatever_its_shard():
    items = [
        _item("month#2026-12#0", marks=1),
        _item("month#2026-12#5", marks=3),
        _item("month#2026-11#1", marks=9),  # last month: not hot
        _item("day#2026-12-03", marks=2),  # an item written before keys were sharded
        {**_item("month#2026-12#1", marks=9), "pk": {"S": "plan#pro"}},  # not overall
    ]
    found = hot_keys.hottest(items, date(2026, 12, 3))
    assert set(found) == {"month", "day"}  # no all-time item written: none reported
    assert found["month"]["sk"] == "month#2026-12#5"
    assert found["month"]["marks"] == 3
    per_mark = found["month"]["bytes_per_mark"]
    assert found["month"]["bytes"] == pytest.approx(
        found["month"]["bytes_without_marks"] + 3 * per_mark
    )
    assert found["day"]["bytes_per_mark"] == pytest.approx(per_mark)


def _measured(counter_shards: int) -> dict:
    return {
        "counter_shards": counter_shards,
        "records_table_wcu_per_response": 2.86,
        "stream_records_per_response": 1.86,
        "hottest": {
            "all": {"bytes_without_marks": 172, "bytes_per_mark": 139.5},
            "month": {"bytes_without_marks": 161, "bytes_per_mark": 139.5},
        },
    }


def test_unsharded_counters_at_10000_per_second_are_the_hand_worked_930_units():
    """docs/cost.md "Hot keys": 29 shards, 186 batches/s, 5 units per write, 930 units/s."""
    a = hot_keys.at_rate(_measured(1), rate=10_000, batch_size=100)
    assert a["stream_shards"] == 29
    assert a["batches_per_s"] == pytest.approx(186)
    assert a["concurrency"] == 29
    steady = a["items"]["all"]["steady"]
    assert (steady["marks"], steady["wcu_per_write"]) == (29, 5)
    assert steady["wcu_per_s"] == pytest.approx(930)
    assert a["worst_wcu_per_s"] > hot_keys.TARGET_WCU


def test_counter_shards_divide_the_writes_and_the_marks_per_item():
    a = hot_keys.at_rate(_measured(8), rate=10_000, batch_size=100)
    row = a["items"]["month"]
    assert row["writes_per_s"] == pytest.approx(186 / 8)
    assert row["steady"]["marks"] == math.ceil(29 / 8)
    assert row["steady"]["wcu_per_write"] == 1
    assert a["worst_wcu_per_s"] <= hot_keys.TARGET_WCU


def test_secret_calls_never_exceed_the_webhooks_nor_the_warm_containers_reads():
    assert cost_model.secret_calls(1_000) == 1_000
    cap = cost_model.WARM_CONTAINERS * cost_model.SECONDS_PER_MONTH / cost_model.SECRET_CACHE_S
    assert cost_model.secret_calls(10_000_000) == cap
    by_batch = {1: {"total": 50e-6}, 100: {"total": 10e-6}}
    small = cost_model.company(1_000, by_batch, window_s=1)
    assert small["batch"] == 1.0
    # a Parameter Store SecureString: no monthly charge, one KMS request ($0.03/10k) a read
    assert small["fixed"] == pytest.approx(1_000 / 10_000 * 0.03)
    assert small["total"] == pytest.approx(1_000 * 50e-6 + small["fixed"])


def test_the_batching_window_is_read_from_the_template_through_a_parameter():
    """What cfn-lint decodes template.yaml to (a Ref stays a Ref)."""
    stream = {
        "Stream": {"Fn::GetAtt": ["RecordsTable", "StreamArn"]},
        "BatchSize": 100,
        "MaximumBatchingWindowInSeconds": {"Ref": "Window"},
    }
    decoded = {
        "Parameters": {"Window": {"Type": "Number", "Default": 7}},
        "Resources": {
            "AggregatorFunction": {
                "Properties": {
                    "Events": {
                        "Api": {"Type": "HttpApi", "Properties": {}},
                        "Records": {"Type": "DynamoDB", "Properties": stream},
                    }
                }
            }
        },
    }
    properties = cost_model.stream_properties(decoded)
    assert cost_model.window_of(properties) == 7.0
    assert properties["BatchSize"] == 100
    assert cost_model.window_of({}) == 0.0  # Lambda's default


def _scenario(batch: int) -> dict:
    n = 100
    return {
        "role": "batch",
        "batch": batch,
        "total": n,
        "measured": n,
        "wcu": {"receiver": {"response": 2 * n}, "aggregator": {"aggregate": 36 * n // batch}},
        "gsi_wcu": {"receiver": {}, "aggregator": {}},
        "rcu": {"receiver": {"profile": n}},
        "calls": {"receiver": {"dynamodb:PutItem": 2 * n}, "aggregator": {}},
        "entries": {},
        "invocations": {"receiver": n, "aggregator": n // batch},
        "handler_ms": {"receiver": 5.0 * n, "aggregator": 20.0 * n // batch},
        "in_calls_ms": {"receiver": 4.0 * n, "aggregator": 10.0 * n // batch},
    }


def _info() -> dict:
    cold = {
        "baseline (boto3 + client)": {"ratio": 1.0, "total_ms": 160},
        "SurveyWebhookFunction": {"ratio": 1.25, "total_ms": 200},
        "ApiFunction": {"ratio": 2.5, "total_ms": 400},
    }
    adapters = [
        {"kind": "survey", "body": "a.json", "ratio": 2.0, "us": 20.0},
        {"kind": "billing", "body": "b.json", "ratio": 4.0, "us": 40.0},
    ]
    hot = {"hottest": _measured(8)["hottest"]}
    for name in ("all", "month"):
        hot["hottest"][name].update(pk="overall#all", sk=f"{name}#x#0")
    hot["at_rate"] = hot_keys.at_rate({**_measured(8), **hot}, 10_000, 100)
    return {
        "coldstart": cold,
        "adapters": adapters,
        "scenarios": {f"batch-{b}": _scenario(b) for b in (1, 10, 100)},
        "window_s": 1.0,
        "freshness": {"median_s": 1.3, "p90_s": 1.4, "samples": 20, "timeouts": 0},
        "hot_keys": hot,
        "seconds": 320.0,
    }


def test_every_target_of_issue_17_has_a_row_with_its_verdict():
    rows = bench_main.targets(_info())
    by_target = {r["target"]: r for r in rows}
    assert "cold start baseline (boto3 + client), x bare handler" not in by_target
    assert by_target["cold start SurveyWebhookFunction, x bare handler"]["ok"] is True
    assert by_target["cold start SurveyWebhookFunction, x bare handler"]["limit"] == "≤ 1.3x"
    assert by_target["cold start ApiFunction, x bare handler"]["ok"] is False  # > 2x
    adapter = next(r for r in rows if r["target"].startswith("warm adapters"))
    assert "billing/b.json" in adapter["target"] and adapter["ok"] is False
    assert "1/2 bodies" in adapter["measured"]
    companies = [r for r in rows if "responses/month" in r["target"]]
    assert [r["limit"] for r in companies] == ["≤ $100.00", "≤ $2.00", "≤ $0.50"]
    fresh = next(r for r in rows if r["target"].startswith("freshness"))
    assert fresh["ok"] is True and fresh["measured"].startswith("1.30 s")
    hot = [r for r in rows if r["target"].startswith("hot key")]
    assert len(hot) == 2 and all(r["ok"] for r in hot)
    assert rows[-1]["target"] == "`make bench` wall time" and rows[-1]["ok"] is False
    assert any(r["target"].startswith("$ per million") for r in rows)


def test_a_figure_the_run_left_out_is_shown_as_not_run_not_as_met():
    info = _info()
    info["freshness"] = info["hot_keys"] = None
    rows = bench_main.targets(info)
    left_out = [r for r in rows if r["measured"] == "not run"]
    assert len(left_out) == 2 and all(r["ok"] is None for r in left_out)
    table = bench_main.render_targets(rows)
    assert "| n/a |" in table
    assert table.splitlines()[0] == "| target | measured | limit | ✔/✘ |"


def test_the_readme_block_is_replaced_between_the_markers_only():
    text = f"# x\n\nbefore\n{bench_main.README_BEGIN}\nold table\n{bench_main.README_END}\nafter\n"
    updated = bench_main.readme_with(text, "| new |\n")
    assert (
        updated
        == f"# x\n\nbefore\n{bench_main.README_BEGIN}\n| new |\n{bench_main.README_END}\nafter\n"
    )
    assert bench_main.readme_with(updated, "| new |") == updated
    assert bench_main.readme_with("# no markers\n", "| new |") is None


def test_a_running_companys_rows_interpolate_and_a_fresh_tables_row_does_not():
    running = {f"batch-{b}": {**_scenario(b), "total": 5_000} for b in (1, 10, 100)}
    fresh = {**_scenario(1), "role": "fresh", "wcu": {"receiver": {"response": 10**6}}}
    batches = cost_model.batches_measured({**running, "fresh-1": fresh})
    assert sorted(batches) == [1, 10, 100]  # prefilled history: still what the model uses
    assert batches[1]["total"] == cost_model.per_response(running["batch-1"])["total"]
    text = cost_model.render({**running, "fresh-1": fresh}, "2026-12-03", window_s=1.0)
    assert "On an empty table (fresh-1" in text
