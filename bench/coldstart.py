"""Cold start of every function in template.yaml: import + first invoke in a fresh process.

Each sample is a new Python process laid out as Lambda lays it out: ``-I -S`` (no site-packages
of this machine), then on ``sys.path`` the function's CodeUri, the common layer and a directory
holding only what is deployed (the layer's and functions' requirements, plus the runtime's
boto3), built once by pip under .bench/. It imports the handler module (Lambda's init phase)
and invokes it once (the first, cold invocation) against an emulated AWS (moto server, tables
and the secrets parameter from template.yaml), with each function's environment from the
template and what Lambda adds (``Tracing: Active``'s trace header, ``LAMBDA_TASK_ROOT``). The
baseline is a bare handler that imports boto3, creates its DynamoDB client and writes one item.
Every round's webhook is a new delivery (its items' ids suffixed with the round, profile
versions a second newer), as a cold container's first webhook is: the same body again would be
a re-delivery, which stores nothing.
Each function's sample runs between two of the baseline's and is divided by their mean (the
machine's speed drifts within a round by more than a target's margin); the medians of those
ratios are reported, with the middle half of them.
"""

import hashlib
import json
import os
import statistics
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = [
    ROOT / "layers" / "common" / "requirements.txt",
    *ROOT.glob("functions/*/requirements.txt"),
]


def deployed_packages() -> Path:
    """What a deployed function can import: its requirements and the runtime's boto3 only."""
    boto3_pin = next(
        line.split("#")[0].strip()
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if line.startswith("boto3==")
    )
    digest = hashlib.sha256(
        "".join(p.read_text() for p in sorted(REQUIREMENTS)).encode() + boto3_pin.encode()
    ).hexdigest()[:12]
    target = ROOT / ".bench" / f"python-{digest}"
    if not (target / ".complete").exists():
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target)]
        for path in REQUIREMENTS:
            command += ["-r", str(path)]
        subprocess.run([*command, boto3_pin], check=True)  # noqa: S603 - pinned requirements
        (target / ".complete").touch()
    return target


CHILD = r"""
import json, sys, time
sys.path[:0] = [LAYER, PACKAGES]
for name in PREIMPORT:  # before the clock: what a sample would take without these imports
    __import__(name)
t0 = time.perf_counter()
code_dir, module_name, attribute, event_json = sys.argv[1:5]
sys.path.insert(0, code_dir)
if module_name == "-":
    import boto3
    client = boto3.client("dynamodb")
    def handler(event, context):
        client.put_item(TableName=TABLE, Item={"pk": {"S": "BENCH#1"}, "sk": {"S": "X"}})
        return {"statusCode": 200}
else:
    import importlib
    handler = getattr(importlib.import_module(module_name), attribute)
t1 = time.perf_counter()
class Context:
    function_name = "bench"; memory_limit_in_mb = 512; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    function_version = "$LATEST"; log_group_name = "/aws/lambda/bench"; log_stream_name = "x"
    def get_remaining_time_in_millis(self): return 10000
try:
    answer = handler(json.loads(event_json), Context())
    status = answer.get("statusCode", "ok") if isinstance(answer, dict) else "ok"
except Exception as error:  # a function that needs more than the emulator offers
    status = type(error).__name__
t2 = time.perf_counter()
print(json.dumps({"init": t1 - t0, "invoke": t2 - t1, "status": status}))
"""


# SQS consumers get a one-message batch (powertools' BatchProcessor refuses an empty one, and
# Lambda never sends one) whose body is not a message of ours: parsed, dropped, no network.
# DestinationFunction's queue has no sample of its own: the body is replaced anyway.
QUEUE_SAMPLES = {
    "DeliveryFunction": "delivery.json",
    "CrmEnrichFunction": "crm-enrichment.json",
    "DestinationFunction": "delivery.json",
}


def _queue_event(name: str) -> dict:
    event = json.loads((ROOT / "events" / "queues" / name).read_text())
    event["Records"] = [{**event["Records"][0], "body": "{}"}]
    return event


def _fresh(items: list[dict], round_: int) -> list[dict]:
    """The sample body's items as a new delivery in round ``round_``: new ids, and profile
    versions one second per round newer (an answer's ``submitted_at`` stays)."""
    fresh = []
    for item in items:
        item = {**item, "id": f"{item['id']}-{round_}"}
        if "updated_at" in item:
            at = datetime.fromisoformat(item["updated_at"])
            item["updated_at"] = (at + timedelta(seconds=round_)).isoformat()
        fresh.append(item)
    return fresh


def _events(template, stack, round_: int = 0) -> dict[str, dict]:
    """A first event for each function: a signed webhook (new in each round), a GET /nps, a
    one-message queue batch, or an empty stream batch."""
    from local.gateway import api_event
    from local.signer import signed_headers

    token = json.loads((ROOT / "local" / "dev-secrets.json").read_text())["api_tokens"][0]
    events = {}
    for logical_id in template.functions:
        routes = [r for r in template.routes if r.function == logical_id]
        queue = QUEUE_SAMPLES.get(logical_id)
        event: dict = _queue_event(queue) if queue else {"Records": []}
        for route in routes:
            if route.path.startswith("/webhooks/") and route.method == "POST":
                kind = route.path.split("/")[2]
                sample = json.loads((ROOT / "events/bodies" / kind / "generic.json").read_text())
                body = json.dumps(_fresh(sample, round_), separators=(",", ":")).encode()
                event = api_event(
                    "POST",
                    f"/webhooks/{kind}/generic",
                    signed_headers("generic", body),
                    body,
                    route,
                    {"provider": "generic"},
                    "api.example.com",
                    "203.0.113.7",
                )
                break
            if route.path == "/nps":
                headers = {"authorization": f"Bearer {token}"}
                event = api_event(
                    "GET", "/nps?granularity=month", headers, b"", route, {}, "x", "::1"
                )
                break
        events[logical_id] = event
    return events


def measure(samples: int = 5, preimport: tuple[str, ...] = ()) -> dict:
    """Each function's cold start against the bare handler's. ``preimport``: modules that
    every sample, the bare handler's too, imports before its clock starts: ``python -m
    bench.coldstart 9 msgspec`` shows what the functions would take without that import (it
    is how pydantic's cost was measured before the receivers left it, docs/decisions.md)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
    from local import template as template_module
    from local.aws import Emulator, Stack

    os.environ.setdefault("NPS_SYNC_SECRETS_FILE", str(ROOT / "local" / "dev-secrets.json"))
    parameters = template_module.local_settings().get("parameters", {})
    template = template_module.load(overrides=parameters)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    emulator = Emulator()
    emulator.endpoint = None
    emulator.start()
    try:
        stack = Stack(template, emulator).provision()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS", "NPS_"))}
        base_env.update(
            AWS_LAMBDA_FUNCTION_NAME="bench",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
            _X_AMZN_TRACE_ID="Root=1-65f0c0de-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1",
            AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR",
            PYTHONDONTWRITEBYTECODE="",
        )
        envs = {"-": base_env}
        for logical_id, function in template.functions.items():
            env = dict(base_env)
            for name, value in function.environment.items():  # Globals + its own, as deployed
                resolved = stack.resolve(value)
                if resolved is not None:
                    env[name] = str(resolved)
            env.pop("NPS_SYNC_SECRETS_FILE", None)  # Parameter Store, as in AWS
            # Lambda sets it; without it the X-Ray SDK takes its off-Lambda path (two botocore
            # clients for its sampler, ~100 ms) and powertools' Tracer switches itself off
            env["LAMBDA_TASK_ROOT"] = str(function.code_dir)
            env["POWERTOOLS_LOG_LEVEL"] = "WARNING"
            envs[logical_id] = env
        child = (
            CHILD.replace("LAYER", repr(str(ROOT / "layers" / "common")))
            .replace("PACKAGES", repr(str(deployed_packages())))
            .replace("TABLE", repr(stack.refs["RecordsTable"]))
            .replace("PREIMPORT", repr(tuple(preimport)))
        )
        rounds = [_events(template, stack, round_) for round_ in range(samples + 1)]
        targets = {"baseline (boto3 + client)": ("-", "-", "-", [{}] * len(rounds), envs["-"])}
        for logical_id, spec in template.functions.items():
            module, _, attribute = spec.handler.rpartition(".")
            targets[logical_id] = (
                str(spec.code_dir),
                module,
                attribute,
                [events[logical_id] for events in rounds],
                envs[logical_id],
            )
        baseline = "baseline (boto3 + client)"

        def run(name: str, round_: int) -> dict:
            code_dir, module, attribute, events, env = targets[name]
            command = [sys.executable, "-I", "-S", "-c", child, code_dir, module, attribute]
            out = subprocess.run(  # noqa: S603 - our own child script
                [*command, json.dumps(events[round_])],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            lines = [line for line in out.stdout.splitlines() if line.startswith('{"init"')]
            if not lines:
                raise RuntimeError(f"{name} failed:\n{out.stderr[-2000:]}")
            sample = json.loads(lines[-1])
            sample["total"] = sample["init"] + sample["invoke"]
            return sample

        runs: dict[str, list[dict]] = {name: [] for name in targets}
        ratios: dict[str, list[float]] = {name: [] for name in targets}
        for round_ in range(samples + 1):  # the first round warms the OS file cache, not counted
            counted = round_ > 0
            before = run(baseline, round_)
            if counted:
                runs[baseline].append(before)
            for name in targets:
                if name == baseline:
                    continue
                sample, after = run(name, round_), run(baseline, round_)
                if counted:
                    runs[name].append(sample)
                    runs[baseline].append(after)
                    ratios[name].append(sample["total"] * 2 / (before["total"] + after["total"]))
                before = after
        result = {}
        for name, values in runs.items():
            result[name] = {
                "init_ms": statistics.median(v["init"] for v in values) * 1000,
                "invoke_ms": statistics.median(v["invoke"] for v in values) * 1000,
                "total_ms": statistics.median(v["total"] for v in values) * 1000,
                "status": values[-1]["status"],
                "samples": len(values),
                # each sample beside the baseline runs just before and after it (the machine's
                # speed drifts by more than the targets' margins within a round)
                "ratio": statistics.median(ratios[name]) if name != baseline else 1.0,
                # the middle half of the samples' ratios: how far one run's median can move
                "ratio_quartiles": (
                    statistics.quantiles(ratios[name], n=4)[::2] if name != baseline else [1, 1]
                ),
            }
        return result
    finally:
        emulator.stop()


def import_profile(function: str = "SurveyWebhookFunction", top: int = 12) -> list[tuple]:
    """Where the import time goes: ``python -X importtime``, cumulative, top packages."""
    from local import template as template_module

    spec = template_module.load().functions[function]
    module, _, _ = spec.handler.rpartition(".")
    code = (
        f"import sys; sys.path[:0] = [{str(spec.code_dir)!r}, "
        f"{str(ROOT / 'layers' / 'common')!r}, {str(deployed_packages())!r}]; import {module}"
    )
    env = {**os.environ, "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    env["LAMBDA_TASK_ROOT"] = str(spec.code_dir)  # as Lambda sets it (see measure)
    env.update({k: str(v) for k, v in spec.environment.items() if isinstance(v, str)})
    env.setdefault("RECORDS_TABLE", "x")
    out = subprocess.run(  # noqa: S603 - our own import
        [sys.executable, "-I", "-S", "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        package = name if name.startswith("nps_sync") else name.split(".")[0]
        rows.append((package, int(cumulative) / 1000))  # a package: its largest import
    seen: dict[str, float] = {}
    for name, ms in rows:
        seen[name] = max(seen.get(name, 0), ms)
    return sorted(seen.items(), key=lambda r: -r[1])[:top]


if __name__ == "__main__":
    preimport = tuple(sys.argv[2].split(",")) if len(sys.argv) > 2 else ()
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3, preimport), indent=1))
