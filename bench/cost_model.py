"""Published AWS prices x the counts the bench measured -> docs/cost.md.

Prices: us-east-1, on-demand, as published on the AWS pricing pages (checked 2026-11-25;
DynamoDB on-demand after the 1 November 2024 price cut). Update PRICES when they change.
"""

import itertools

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
    "secret_month": 0.40,
    "secret_calls_per_10k": 0.05,
    "logs_ingest_gb": 0.50,  # CloudWatch Logs (not in the target: see notes)
    "xray_per_m_traces": 5.00,
}
PRICES_DATE = "2026-11-25"
MEMORY_GB = 0.5  # template Globals MemorySize 512
VCPU_SHARE = 512 / 1769  # Lambda gives one full vCPU at 1769 MB, proportionally less below
DDB_LATENCY_MS = 6.0  # assumed in-region DynamoDB round trip (p50 single-digit ms)
BATCH_WINDOW_S = 1  # AggregatorFunction MaximumBatchingWindowInSeconds
SECONDS_PER_MONTH = 30 * 86400


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
        ddb_calls = sum(calls.get(phase, {}).values()) / max(1, invocations.get(phase, 1))
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


def company(responses_month: int, by_batch: dict[int, dict], window_s: float) -> dict:
    rate = responses_month / SECONDS_PER_MONTH
    batch = max(1.0, min(100.0, rate * window_s))
    variable = interpolate(by_batch, batch) * responses_month
    secrets = PRICES["secret_month"] + 2 * 12 * 730 / 10_000 * PRICES["secret_calls_per_10k"]
    return {"rate": rate, "batch": batch, "variable": variable, "fixed": secrets}


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

Target: ≤ $3.50 per million ingested and aggregated, API Gateway's $1.00 included —
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
Lambda hands the aggregator about rate x window records (1 at least, 100 at most); the cost
per response is interpolated (linear in 1/batch) between the measured batch sizes.

{companies}

Fixed per month, any volume: the ProviderSecrets secret ($0.40) and its GetSecretValue calls
(cached 5 min per container; ~2 warm containers ≈ 17.5k calls ≈ $0.09).

## Prices used ({prices_date}, us-east-1)

| item | price |
|---|---|
| API Gateway HTTP API | $1.00 per million requests |
| Lambda arm64 | $0.20 per million requests, $0.0000133334 per GB-second |
| DynamoDB on-demand | $0.625/M write request units, $0.125/M read request units, $0.25/GB-mo |
| DynamoDB Streams | $0.02 per 100,000 read request units (Lambda's own polling is free) |
| SQS standard | $0.40 per million requests |
| EventBridge custom events | $1.00 per million |
| Secrets Manager | $0.40 per secret per month, $0.05 per 10,000 API calls |

## Assumptions

- Write units as DynamoDB bills them: 1 per started KB of the larger of old and new item,
  x2 in transactions, failed conditions billed; each write that adds, changes or removes a
  `by_customer` index entry bills the index too (ALL projection). Reads: per 4 KB, halved when
  eventually consistent. Counted per call at the botocore layer (bench/meter.py).
- Lambda duration = measured compute of the handler (time outside AWS calls, on this machine)
  scaled to the CPU share of 512 MB ({share:.0%} of a vCPU), plus {latency} ms per AWS call.
- Not included: free tiers; CloudWatch Logs ingestion ($0.50/GB: a webhook logs ~1 line of
  ~0.5 KB, ≈ $0.25 per million at INFO); X-Ray ($5.00 per million traces recorded: `Tracing:
  Active` samples 1 request/s + 5 %, up to ~$5 per million webhooks at low volume — set
  `Tracing` off or a lower sampling rate if that matters); storage (≈ {storage:.1f} KB per
  response incl. its index copy and raw payload: ${storage_dollars:.2f} per GB-month, i.e.
  about ${storage_per_m:.2f}/month per million responses kept) and point-in-time recovery;
  data transfer; CRM/billing webhooks (priced like survey ones on the request side; their
  profile writes are transactions: 3 items x 2 units).
"""


def render(scenarios: dict[str, dict], date: str) -> str:
    batches = {
        s["batch"]: per_response(s)
        for s in scenarios.values()
        if s.get("role") == "batch" and s["total"] == s["measured"]
    }
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
    best = batches[max(columns)]
    verdict = (
        f"met at batch {max(columns)} (${best['ingest'] * 1e6:.2f})."
        if best["ingest"] * 1e6 <= 3.5
        else (
            f"**missed**: ${best['ingest'] * 1e6:.2f} at batch {max(columns)}. The items the "
            f"target's budget counted (the request, the Lambda time, the response and its raw "
            f"payload, the NPS aggregates) come to ${best['core'] * 1e6:.2f}; the rest is what "
            "later requirements added per response: the indexes behind /customers, the account "
            "dimension, /detractors and the at-risk listing, the identity and profile reads, "
            "and the revenue-outcome state (see below)."
        )
    )
    company_rows = [
        "| responses / month | rate | batch (window 1 s) | $/month "
        "| batch (window 60 s) | $/month |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for volume in (1_000, 100_000, 10_000_000):
        now, wide = company(volume, batches, BATCH_WINDOW_S), company(volume, batches, 60)
        company_rows.append(
            f"| {volume:,} | {now['rate']:.3f}/s | {now['batch']:.1f} | "
            f"${now['variable'] + now['fixed']:.2f} | {wide['batch']:.1f} | "
            f"${wide['variable'] + wide['fixed']:.2f} |"
        )
    storage_kb = 0.6 + 0.6 + 0.4
    return TEMPLATE.format(
        date=date,
        prices_date=PRICES_DATE,
        per_million="\n".join(rows) + extra,
        verdict=verdict,
        window=BATCH_WINDOW_S,
        companies="\n".join(company_rows),
        share=VCPU_SHARE,
        latency=DDB_LATENCY_MS,
        storage=storage_kb,
        storage_dollars=PRICES["ddb_storage_gb_month"],
        storage_per_m=storage_kb * 1e6 / 2**20 * PRICES["ddb_storage_gb_month"],
    )
