"""Published AWS prices x the counts the bench measured -> docs/cost.md.

Prices: us-east-1, on-demand, as published on the AWS pricing pages (checked 2026-11-25;
DynamoDB on-demand after the 1 November 2024 price cut). Update PRICES when they change.
"""

import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# docs/cost.md from this line on is written by hand (SnapStart, hot keys): a run keeps it
HAND_WRITTEN = (
    "<!-- Written by hand (issue 17), not by `make bench`: bench/cost_model.py must keep what "
    "follows. -->"
)

PRICES = {
    "http_api_per_m": 1.00,  # API Gateway HTTP API, first 300 M requests/month
    "lambda_request_per_m": 0.20,
    "lambda_gb_second_arm": 0.0000133334,
    "ddb_wru_per_m": 0.625,  # on-demand write request unit
    "ddb_rru_per_m": 0.125,  # on-demand read request unit
    "ddb_storage_gb_month": 0.25,
    "streams_read_per_m": 0.20,  # DynamoDB Streams read request units ($0.02 per 100k)
    "sqs_per_m": 0.40,  # standard queue, per 64 KB request chunk
    "eventbridge_per_m": 1.00,  # custom events, per 64 KB chunk
    # The secrets document is a standard Parameter Store SecureString: no charge for it or its
    # GetParameter calls at standard throughput; each decrypted read is one AWS KMS request
    # with the aws/ssm key (docs/decisions.md "Secrets in Parameter Store"). Secrets Manager,
    # before: $0.40 a secret a month + $0.05 per 10,000 calls.
    "secret_month": 0.0,
    "secret_calls_per_10k": 0.03,  # AWS KMS requests
    "logs_ingest_gb": 0.50,  # CloudWatch Logs (not in the target: see notes)
    "xray_per_m_traces": 5.00,
}
PRICES_DATE = "2026-11-25"
MEMORY_GB = 0.5  # template Globals MemorySize 512
VCPU_SHARE = 512 / 1769  # Lambda gives one full vCPU at 1769 MB, proportionally less below
DDB_LATENCY_MS = 6.0  # assumed in-region DynamoDB round trip (p50 single-digit ms)
SECONDS_PER_MONTH = 30 * 86400
SECRET_CACHE_S = 300  # each receiver container reads the secret again after 5 min
WARM_CONTAINERS = 2  # receiver containers kept warm by steady traffic (an assumption)
WIDE_WINDOW_S = 60  # the "what if" column: MaximumBatchingWindowInSeconds at 60 s
COMPANY_TARGETS = {10_000_000: 100.0, 100_000: 2.0, 1_000: 0.50}  # issue 17, $/month all in
INGEST_TARGET = 3.50  # issue 17, $ per million ingested and aggregated at batch 100


def aggregator_stream(template: Path = ROOT / "template.yaml") -> dict:
    """AggregatorFunction's stream event properties as template.yaml sets them (decoded by
    cfn-lint, as `sam validate` reads it), so the model follows the template."""
    from cfnlint.decode import decode

    decoded, errors = decode(str(template))
    if errors or decoded is None:
        raise RuntimeError(f"template.yaml does not decode: {errors}")
    return stream_properties(decoded)


def stream_properties(decoded: dict) -> dict:
    """The DynamoDB event's properties of AggregatorFunction, a Ref to a parameter resolved
    to its default."""
    events = decoded["Resources"]["AggregatorFunction"]["Properties"]["Events"]
    stream = next(e["Properties"] for e in events.values() if e.get("Type") == "DynamoDB")
    parameters = decoded.get("Parameters", {})
    resolved = {}
    for name, value in stream.items():
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
            value = parameters[value["Ref"]].get("Default")
        resolved[name] = value
    return resolved


def batch_window(template: Path = ROOT / "template.yaml") -> float:
    """The default MaximumBatchingWindowInSeconds (Lambda's default is 0)."""
    return window_of(aggregator_stream(template))


def window_of(stream: dict) -> float:
    return float(stream.get("MaximumBatchingWindowInSeconds", 0) or 0)


def _units(scenario: dict, phase: str, table: str, kinds=None) -> float:
    values = scenario[table].get(phase, {})
    return sum(v for k, v in values.items() if kinds is None or k in kinds)


FANOUT = ("EventBridge events", "SQS requests")
CORE = (  # what the target's budget counted: the request, the record, its aggregates
    "API Gateway (HTTP API)",
    "Lambda requests",
    "Lambda duration",
    "DynamoDB writes: response and raw payload",
    "DynamoDB writes: NPS aggregates",
    "DynamoDB Streams reads",
)


def per_response(scenario: dict) -> dict:
    """Measured counts of one scenario -> units and dollars per ingested response."""
    n = scenario["measured"]
    records = _units(scenario, "receiver", "wcu")
    gsi = sum(v for phase in scenario["gsi_wcu"].values() for v in phase.values())
    nps = _units(scenario, "aggregator", "wcu", {"aggregate", "response"})
    outcomes = _units(scenario, "aggregator", "wcu", {"outcome", "profile"})
    other = _units(scenario, "aggregator", "wcu") - nps - outcomes
    rcu = sum(v for p, phase in scenario["rcu"].items() if p != "api" for v in phase.values())
    calls = scenario["calls"]
    streams = sum(
        v for k, v in calls.get("aggregator", {}).items() if k.startswith("dynamodbstreams")
    )
    entries = scenario.get("entries", {})
    events = sum(v for k, v in entries.items() if ":events:" in k)
    sqs = sum(v for k, v in calls.get("aggregator", {}).items() if k.startswith("sqs:"))
    invocations = scenario["invocations"]
    lambda_gbs = 0.0
    for phase in ("receiver", "aggregator"):
        # calls as waits: a batch's counter writes go out together (bench/meter.py)
        waits = scenario.get("round_trips", {}).get(phase, sum(calls.get(phase, {}).values()))
        ddb_calls = waits / max(1, invocations.get(phase, 1))
        compute = scenario["handler_ms"][phase] - scenario["in_calls_ms"][phase]
        ms = compute / VCPU_SHARE + ddb_calls * DDB_LATENCY_MS
        lambda_gbs += MEMORY_GB * ms / 1000 * invocations.get(phase, 0) / n
    units = {
        "record_wcu": records / n,
        "gsi_wcu": gsi / n,
        "aggregate_wcu": nps / n,
        "outcome_wcu": (outcomes + other) / n,
        "rcu": rcu / n,
        "streams_reads": streams / n,
        "events": events / n,
        "sqs": sqs / n,
        "lambda_requests": (invocations.get("receiver", 0) + invocations.get("aggregator", 0)) / n,
        "lambda_gb_s": lambda_gbs,
    }
    p = PRICES
    wru = p["ddb_wru_per_m"] / 1e6
    dollars = {
        "API Gateway (HTTP API)": p["http_api_per_m"] / 1e6,
        "Lambda requests": units["lambda_requests"] * p["lambda_request_per_m"] / 1e6,
        "Lambda duration": units["lambda_gb_s"] * p["lambda_gb_second_arm"],
        "DynamoDB writes: response and raw payload": units["record_wcu"] * wru,
        "DynamoDB writes: indexes": units["gsi_wcu"] * wru,
        "DynamoDB writes: NPS aggregates": units["aggregate_wcu"] * wru,
        "DynamoDB writes: revenue outcomes": units["outcome_wcu"] * wru,
        "DynamoDB reads": units["rcu"] * p["ddb_rru_per_m"] / 1e6,
        "DynamoDB Streams reads": units["streams_reads"] * p["streams_read_per_m"] / 1e6,
        "EventBridge events": units["events"] * p["eventbridge_per_m"] / 1e6,
        "SQS requests": units["sqs"] * p["sqs_per_m"] / 1e6,
    }
    ingest = sum(v for k, v in dollars.items() if k not in FANOUT)
    return {
        "units": units,
        "dollars": dollars,
        "ingest": ingest,
        "core": sum(dollars[k] for k in CORE),
        "total": sum(dollars.values()),
    }


def interpolate(by_batch: dict[int, dict], batch: float) -> float:
    """Cost per response at any batch size: linear in 1/batch between measured points."""
    points = sorted((1 / b, v["total"]) for b, v in by_batch.items())
    x = 1 / max(1.0, min(batch, max(by_batch)))
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[0][1] if x < points[0][0] else points[-1][1]


def secret_calls(responses_month: int) -> float:
    """GetParameter calls a month: a container reads the secret at its first webhook and
    again after SECRET_CACHE_S, so the calls are at most the receiver invocations (one per
    webhook, each a response) and at most WARM_CONTAINERS x the month / SECRET_CACHE_S."""
    return min(responses_month, WARM_CONTAINERS * SECONDS_PER_MONTH / SECRET_CACHE_S)


def company(responses_month: int, by_batch: dict[int, dict], window_s: float) -> dict:
    rate = responses_month / SECONDS_PER_MONTH
    batch = max(1.0, min(100.0, rate * window_s))
    variable = interpolate(by_batch, batch) * responses_month
    calls = secret_calls(responses_month)
    fixed = PRICES["secret_month"] + calls / 10_000 * PRICES["secret_calls_per_10k"]
    return {
        "responses": responses_month,
        "rate": rate,
        "batch": batch,
        "window": window_s,
        "variable": variable,
        "secret_calls": calls,
        "fixed": fixed,
        "total": variable + fixed,
    }


def batches_measured(scenarios: dict[str, dict]) -> dict[int, dict]:
    """batch size -> per_response of the batch scenarios (a running company's)."""
    return {s["batch"]: per_response(s) for s in scenarios.values() if s.get("role") == "batch"}


def companies(scenarios: dict[str, dict], window_s: float) -> list[dict]:
    """The three example companies of issue 17 at ``window_s``, each with its target."""
    batches = batches_measured(scenarios)
    return [
        {**company(volume, batches, window_s), "target": target}
        for volume, target in sorted(COMPANY_TARGETS.items())
    ]


TEMPLATE = """# What nps-sync costs to run

Generated by `make bench` from the counts it measured ({date}; see bench/results.md for the
machine and the raw figures); prices are us-east-1 on-demand list prices as published on
{prices_date}. Regenerate with `make bench`; do not edit by hand.

## Per million survey webhooks, ingested and aggregated

One webhook carries one response; every figure below is measured per response through the
real SurveyWebhookFunction and AggregatorFunction handlers (bench/dynamo_cost.py), except
Lambda duration, which is modelled (assumptions below). "Batch" is the number of stream
records per AggregatorFunction invocation. "Ingested and aggregated" is everything up to the
stored aggregates and outcome state; fan-out (the events to EventBridge and the subscribers'
queue) is listed after it.

{per_million}

Target: ≤ ${ingest_target:.2f} per million ingested and aggregated, API Gateway's $1.00 included —
{verdict}

Where the rest goes, and the knob for each: the `by_customer` index (one entry per response:
`GET /customers`, re-stamping and identity moves need it), `by_account` (one entry per response
with an account: empty `ReadDimensions` and no account queries saves it), `recent_detractors`
(detractors only), the at-risk indexes (customers whose latest answer is a detractor), the
strongly consistent profile and identity reads of the receiver, and the outcome state the
aggregator derives per billing customer and answer (revenue outcomes, docs/outcomes.md). Each
is one write or read unit at a time; none can be coalesced the way the aggregates are.

## Three example companies (everything, fan-out included)

Batch size follows from the arrival rate: with `MaximumBatchingWindowInSeconds: {window}`
(AggregatorFunction's stream event in template.yaml, the default; the last two columns are what
a {wide}-second window would give) Lambda hands the aggregator about rate x window records (1
at least, 100 at most); the cost per response is interpolated (linear in 1/batch) between the
measured batch sizes. Targets (issue 17) are at the default window.

{companies}

Fixed per month: the secrets document is a standard Parameter Store SecureString (no charge)
whose decrypted GetParameter calls are AWS KMS requests at $0.03 per 10,000. Each receiver
container caches the document {cache_min:.0f} min, so a month's calls are at most one per
webhook and at most {containers} warm containers x 30 days x 24 h x {per_hour:.0f} =
{container_calls:,.0f}: calls = min(responses, {container_calls:,.0f}); at 1,000 responses a
month nearly every webhook finds a cold container, so calls ≈ responses.
$/month = responses x the cost per response at that batch (interpolated, fan-out included)
+ calls / 10,000 x $0.03 (with Secrets Manager, before: + $0.40 + calls / 10,000 x $0.05).

## Prices used ({prices_date}, us-east-1)

| item | price |
|---|---|
| API Gateway HTTP API | $1.00 per million requests |
| Lambda arm64 | $0.20 per million requests, $0.0000133334 per GB-second |
| DynamoDB on-demand | $0.625/M write request units, $0.125/M read request units, $0.25/GB-mo |
| DynamoDB Streams | $0.02 per 100,000 read request units (Lambda's own polling is free; \
the aggregator's reads that find which shard a batch came from are not) |
| SQS standard | $0.40 per million requests |
| EventBridge custom events | $1.00 per million |
| SSM Parameter Store | standard parameters and their API calls (standard throughput): no charge |
| AWS KMS | $0.03 per 10,000 requests (a SecureString read decrypts with the aws/ssm key) |

## Assumptions

- Write units as DynamoDB bills them: 1 per started KB of the larger of old and new item,
  x2 in transactions, failed conditions billed; each write that adds, changes or removes an
  index entry bills that index too, by the entry's size as the template's projection holds it
  (ALL: the item; INCLUDE and KEYS_ONLY: keys and the projected attributes, so an update of an
  attribute the index does not hold writes nothing there). Reads: per 4 KB, halved when
  eventually consistent. Counted per call at the botocore layer (bench/meter.py).
- EventBridge: only events that a rule on the bus can match are put (docs/events.md "What
  goes on the bus"); the measured scenarios have one rule, for `detractor.alert`, what a
  company listening for detractors would have. A catch-all rule puts every event (~2.5 per
  response at batch 100, ~12 at batch 1: the `aggregate.updated` of each dimension's month and
  all time, the `response.received` and `customer.nps_changed` of each response).
- Lambda duration = measured compute of the handler (time outside AWS calls, on this machine)
  scaled to the CPU share of 512 MB ({share:.0%} of a vCPU), plus {latency} ms per AWS call
  waited for: a batch's writes to different counter keys go out 8 at a time
  (`nps_sync.store.dynamo.each`), so n of them wait ⌈n / 8⌉ round trips.
- Not included: free tiers; CloudWatch Logs ingestion ($0.50/GB: a webhook logs ~1 line of
  ~0.5 KB, ≈ $0.25 per million at INFO); X-Ray ($5.00 per million traces recorded: `Tracing:
  Active` samples 1 request/s + 5 %, up to ~$5 per million webhooks at low volume — set
  `Tracing` off or a lower sampling rate if that matters); storage (≈ {storage:.1f} KB per
  response incl. its index copy and raw payload: ${storage_dollars:.2f} per GB-month, i.e.
  about ${storage_per_m:.2f}/month per million responses kept) and point-in-time recovery;
  data transfer; CRM/billing webhooks (priced like survey ones on the request side; their
  profile writes are transactions: 3 items x 2 units).
"""


def render(scenarios: dict[str, dict], date: str, window_s: float | None = None) -> str:
    window_s = batch_window() if window_s is None else window_s
    batches = batches_measured(scenarios)
    columns = sorted(batches)

    def row(label: str, values: list[str]) -> str:
        return f"| {label} | " + " | ".join(values) + " |"

    rows = [row("per million responses", [f"batch {b}" for b in columns])]
    rows.append("|---|" + "---:|" * len(columns))
    names = list(next(iter(batches.values()))["dollars"])
    for name in (n for n in names if n not in FANOUT):
        rows.append(row(name, [f"${batches[b]['dollars'][name] * 1e6:.3f}" for b in columns]))
    rows.append(
        row(
            "**ingested and aggregated**",
            [f"**${batches[b]['ingest'] * 1e6:.2f}**" for b in columns],
        )
    )
    for name in FANOUT:
        rows.append(
            row(f"{name} (fan-out)", [f"${batches[b]['dollars'][name] * 1e6:.3f}" for b in columns])
        )
    rows.append(row("**with fan-out**", [f"**${batches[b]['total'] * 1e6:.2f}**" for b in columns]))
    rows.append(
        row(
            "of which the target's budget items",
            [f"${batches[b]['core'] * 1e6:.2f}" for b in columns],
        )
    )
    for label, unit in (
        ("NPS aggregate write units / response", "aggregate_wcu"),
        ("index write units / response", "gsi_wcu"),
        ("revenue-outcome write units / response", "outcome_wcu"),
        ("EventBridge events / response", "events"),
    ):
        rows.append(row(label, [f"{batches[b]['units'][unit]:.2f}" for b in columns]))
    variant = scenarios.get("account-on-write")
    extra = ""
    if variant:
        cost = per_response(variant)
        extra = (
            f"\n\nWith `account` counted on write (`AggregateDimensions` including it, batch "
            f"{variant['batch']}): **${cost['ingest'] * 1e6:.2f}** per million ingested and "
            f"aggregated, {cost['units']['aggregate_wcu']:.2f} NPS aggregate write units per "
            "response — why it is answered on read by default."
        )
    fresh = scenarios.get("fresh-1")
    if fresh:
        cost = per_response(fresh)
        extra += (
            f"\n\nOn an empty table (fresh-1: the batch-1 traffic as a company's first "
            f"{fresh['measured']} responses, every counter item and index entry written new): "
            f"**${cost['ingest'] * 1e6:.2f}** per million ingested and aggregated, "
            f"{cost['units']['gsi_wcu']:.2f} index write units per response; the batch columns "
            "are a running company's (its counter items and their index entries exist)."
        )
    best = batches[max(columns)]
    verdict = (
        f"met at batch {max(columns)} (${best['ingest'] * 1e6:.2f})."
        if best["ingest"] * 1e6 <= INGEST_TARGET
        else (
            f"**missed**: ${best['ingest'] * 1e6:.2f} at batch {max(columns)}. The items the "
            f"target's budget counted (the request, the Lambda time, the response and its raw "
            f"payload, the NPS aggregates) come to ${best['core'] * 1e6:.2f}; the rest is what "
            "later requirements added per response: the indexes behind /customers, the account "
            "dimension, /detractors and the at-risk listing, the identity and profile reads, "
            "and the revenue-outcome state (see below)."
        )
    )
    now_rows, wide_rows = companies(scenarios, window_s), companies(scenarios, WIDE_WINDOW_S)
    company_rows = [
        f"| responses / month | rate | batch (window {window_s:g} s) | secret calls | $/month "
        f"| target | batch (window {WIDE_WINDOW_S} s) | $/month |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for now, wide in zip(now_rows, wide_rows, strict=True):
        mark = "✔" if now["total"] <= now["target"] else "✘"
        company_rows.append(
            f"| {now['responses']:,} | {now['rate']:.3f}/s | {now['batch']:.1f} | "
            f"{now['secret_calls']:,.0f} | ${now['total']:.2f} | ≤ ${now['target']:.2f} {mark} | "
            f"{wide['batch']:.1f} | ${wide['total']:.2f} |"
        )
    storage_kb = 0.6 + 0.6 + 0.4
    return TEMPLATE.format(
        date=date,
        prices_date=PRICES_DATE,
        per_million="\n".join(rows) + extra,
        verdict=verdict,
        window=f"{window_s:g}",
        wide=WIDE_WINDOW_S,
        ingest_target=INGEST_TARGET,
        cache_min=SECRET_CACHE_S / 60,
        containers=WARM_CONTAINERS,
        per_hour=3600 / SECRET_CACHE_S,
        container_calls=WARM_CONTAINERS * SECONDS_PER_MONTH / SECRET_CACHE_S,
        companies="\n".join(company_rows),
        share=VCPU_SHARE,
        latency=DDB_LATENCY_MS,
        storage=storage_kb,
        storage_dollars=PRICES["ddb_storage_gb_month"],
        storage_per_m=storage_kb * 1e6 / 2**20 * PRICES["ddb_storage_gb_month"],
    )
