"""What each patch of local/moto_speed.py saves: ``python -m bench.moto_speed``.

Each workload runs with every patch, with every patch but one, and with none, side by side in
one process; the figure is process CPU time (client and moto, which run in this process), best
of ``--repeats``, so other work on the machine moves it less than wall time. Mock mode
(``mock_aws``) for the DynamoDB workloads, local/aws.py's server for the one that needs it.
"""

import argparse
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable

from bench.dynamo_cost import ACCOUNT, REGION, _Account, _environment  # the same moto setup


def response_item(i: int) -> dict:
    """The shape of a stored response: its index keys, 19 attributes."""
    return {
        "pk": {"S": f"RESP#generic#{i}"},
        "sk": {"S": "RESP"},
        "gsi1pk": {"S": f"CUST#c{i % 200}"},
        "gsi1sk": {"S": f"RESP#2026-01-01#{i:07d}"},
        "account": {"S": f"acct{i % 50}"},
        "submitted_at": {"S": f"2026-01-{i % 28 + 1:02d}T10:00:00Z"},
        "provider": {"S": "generic"},
        "response_id": {"S": str(i)},
        "customer_key": {"S": f"c{i % 200}"},
        "score": {"N": str(i % 11)},
        "updated_at": {"S": "2026-01-01T10:00:00Z"},
        "plan": {"S": "pro"},
        "region": {"S": "eu"},
        "channel": {"S": "email"},
        "survey": {"S": "s1"},
        "comment": {"S": "fine " * 20},
        "profile_version": {"N": "3"},
        "answers": {"M": {f"q{j}": {"S": "x" * 10} for j in range(6)}},
        "settled": {"BOOL": True},
    }


def _fill(table_name: str, count: int) -> None:
    """Items straight into moto's table, without requests."""
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[ACCOUNT][REGION].get_table(table_name)
    for i in range(count):
        table.put_item(response_item(10**6 + i))


def _updates(stack, count: int) -> float:
    """The aggregator's counter update: a mark, 14 ADDs, a condition, ALL_NEW."""
    import boto3

    ddb = boto3.client("dynamodb")
    counters = [f"s{i}" for i in range(11)] + ["count", "promoters", "detractors"]
    names = {"#m": "mark#shard-1", "#d": "dimension", "#v": "value"}
    names.update({f"#c{i}": name for i, name in enumerate(counters)})
    adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counters)))
    started = time.process_time()
    for n in range(count):
        values = {":mark": {"S": f"{n:08d}"}, ":d": {"S": "plan"}, ":v": {"S": "pro"}}
        values.update({f":c{i}": {"N": "1"} for i in range(len(counters))})
        ddb.update_item(
            TableName=stack.refs["AggregatesTable"],
            Key={"pk": {"S": f"AGG#plan#pro#{n % 50}"}, "sk": {"S": "day#2026-01-01"}},
            UpdateExpression=f"SET #m = :mark, #d = :d, #v = :v ADD {adds}",
            ConditionExpression="attribute_not_exists(#m) OR #m < :mark",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    return time.process_time() - started


def _puts(stack, count: int) -> float:
    import boto3

    ddb = boto3.client("dynamodb")
    started = time.process_time()
    for i in range(count):
        ddb.put_item(
            TableName=stack.refs["RecordsTable"],
            Item=response_item(i),
            ConditionExpression="attribute_not_exists(pk) OR updated_at < :u",
            ExpressionAttributeValues={":u": {"S": "2026-02-01"}},
        )
    return time.process_time() - started


def _fills(stack, items: int) -> float:
    """The scale scenarios' prefill (bench/dynamo_cost.py): items straight into moto."""
    started = time.process_time()
    _fill(stack.refs["RecordsTable"], items)
    return time.process_time() - started


def _queries(stack, count: int, items: int) -> float:
    import boto3

    ddb = boto3.client("dynamodb")
    _fill(stack.refs["RecordsTable"], items)
    started = time.process_time()
    for i in range(count):
        ddb.query(
            TableName=stack.refs["RecordsTable"],
            IndexName="by_customer",
            KeyConditionExpression="gsi1pk = :c AND begins_with(gsi1sk, :r)",
            ExpressionAttributeValues={":c": {"S": f"CUST#c{i % 200}"}, ":r": {"S": "RESP#"}},
        )
    return time.process_time() - started


def _transactions(stack, count: int, items: int) -> float:
    """An event's idempotency mark and a profile update in one transaction."""
    import boto3

    ddb = boto3.client("dynamodb")
    table = stack.refs["RecordsTable"]
    _fill(table, items)
    started = time.process_time()
    for i in range(count):
        mark = {"pk": {"S": f"EVT#{i}"}, "sk": {"S": "EVENT"}}
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": mark,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": f"CUST#c{i}"}, "sk": {"S": "PROFILE"}},
                        "UpdateExpression": "SET #p = :p",
                        "ExpressionAttributeNames": {"#p": "plan"},
                        "ExpressionAttributeValues": {":p": {"S": "pro"}},
                    }
                },
            ]
        )
    return time.process_time() - started


def _mocked(template, workload: Callable, *args) -> Callable[[], float]:
    def run() -> float:
        from moto import mock_aws

        from local.aws import Stack

        with mock_aws():
            return workload(Stack(template, _Account()).provision(), *args)

    return run


def _served(count: int) -> Callable[[], float]:
    """GetItem and SQS SendMessage through local/aws.py's server, over kept-alive HTTP."""
    names = itertools.count()

    def run() -> float:
        import boto3

        from local.aws import _serialized_moto_server

        server = _serialized_moto_server(0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        name = f"bench{next(names)}"  # the server's backends outlive it
        try:
            ddb = boto3.client("dynamodb", endpoint_url=url)
            sqs = boto3.client("sqs", endpoint_url=url)
            ddb.create_table(
                TableName=name,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            )
            queue = sqs.create_queue(QueueName=name)["QueueUrl"]
            ddb.put_item(TableName=name, Item={"pk": {"S": "a"}})
            started = time.process_time()
            for _ in range(count):
                ddb.get_item(TableName=name, Key={"pk": {"S": "a"}})
                sqs.send_message(QueueUrl=queue, MessageBody="x")
            return time.process_time() - started
        finally:
            server.shutdown()
            server.server_close()

    return run


def workloads() -> dict[str, Callable[[], float]]:
    from local import template as template_module

    template = template_module.load()
    return {
        "500 UpdateItem": _mocked(template, _updates, 500),
        "500 PutItem": _mocked(template, _puts, 500),
        "2,000 items into a table": _mocked(template, _fills, 2000),
        "100 GSI Query, 5,000 items": _mocked(template, _queries, 100, 5000),
        "10 TransactWriteItems, 2,000 items": _mocked(template, _transactions, 10, 2000),
        "500 GetItem + 500 SendMessage, server": _served(500),
    }


def measure(names: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """workload -> configuration ("all", "none", "without <patch>") -> best seconds."""
    from local import moto_speed

    configurations = {"all": list(moto_speed.PATCHES), "none": []}
    for left_out in moto_speed.PATCHES:
        configurations[f"without {left_out}"] = [p for p in moto_speed.PATCHES if p != left_out]
    was_installed = moto_speed.installed()
    found: dict[str, dict[str, float]] = {}
    try:
        for name, run in workloads().items():
            if names and name not in names:
                continue
            run()  # imports and first-use caches out of the figures
            best = dict.fromkeys(configurations, float("inf"))
            for _ in range(repeats):  # interleaved, so a busy moment hits every column
                for label, patches in configurations.items():
                    moto_speed.uninstall()
                    moto_speed.install(patches=patches)
                    best[label] = min(best[label], run())
            found[name] = best
            print(f"measured {name}", file=sys.stderr, flush=True)
    finally:
        moto_speed.uninstall()
        if was_installed:
            moto_speed.install()
    return found


def table(found: dict[str, dict[str, float]]) -> str:
    names = list(found)
    lines = ["| patches | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label in next(iter(found.values())):
        cells = []
        for name in names:
            seconds, fastest = found[name][label], found[name]["all"]
            cells.append(f"{seconds * 1000:,.0f} ms ({seconds / fastest:.2f}x)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.moto_speed", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[], help="workload names to run")
    args = parser.parse_args()
    _environment()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(table(measure(args.only, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
