"""``python -m local.seed --url URL --count N``: a year of realistic demo data, through the
real webhook endpoints, signed as each provider signs (local/signer.py).

Reproducible: the same ``--seed`` and ``--end`` give the same bodies. ``--count`` customers
(default 2000, as `make run` loads them) on four plans and four regions get a CRM profile and a
billing profile (the ``generic`` receivers), then about 1.2 survey responses each over the year
before ``--end`` (Typeform, Delighted, Formbricks and generic), with a trend: NPS improves over
the year, enterprise is happier than starter, and one month goes badly. Some customers change
plan and some churn near the end (their responses move with them: segments follow the current
profile). Customers come in waves of 250 — profiles, their year of answers, their plan changes —
so the dashboard shows the whole year after the first wave and fills in with each next one.
"""

import argparse
import itertools
import json
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .signer import signed_headers

PLANS = {"starter": 2900, "growth": 9900, "pro": 29900, "enterprise": 150000}
PLAN_WEIGHTS = (45, 30, 18, 7)
PLAN_MOOD = {"starter": -0.8, "growth": -0.2, "pro": 0.3, "enterprise": 0.9}
REGIONS = {"NA": "US", "EMEA": "DE", "APAC": "JP", "LATAM": "BR"}
CHANNELS = ("email", "in-app", "web")
SURVEYS = ("relationship", "onboarding", "support")
PROVIDERS = ("typeform", "delighted", "formbricks", "generic")
FIRST = ("ana", "ben", "chen", "dana", "erik", "fatima", "gus", "hana", "ivan", "jo", "kai", "lea")
LAST = ("smith", "ortiz", "wang", "kowalski", "nakamura", "silva", "okafor", "berg", "rossi")
BAD_MONTH = 7  # months after the start: an outage nobody forgot
GENERIC_CHUNK = 10
SENDERS = 4
WAVE = 250  # customers per wave: after the first, the dashboard already shows the whole year
STOP = threading.Event()  # Ctrl-C: no new request, no retry, and no traceback


@dataclass(frozen=True)
class Request:
    kind: str  # survey | crm | billing
    provider: str
    body: bytes


def _body(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(count: int = 2000, seed: int = 42, end: date | None = None) -> list[Request]:
    """Every request of the data set, in the order to send them."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    end = end or datetime.now(UTC).date()
    start = datetime.combine(end - timedelta(days=365), datetime.min.time(), UTC)
    customers = _customers(rng, count, seed)
    crm, billing = [], []
    for c in customers:
        joined = start - timedelta(days=rng.randrange(30, 400))
        crm.append(
            {
                "id": f"crm-{c['id']}",
                "customer": {"email": c["email"], "id": c["id"]},
                "updated_at": _iso(joined),
                "account": c["account"],
                "region": c["region"],
                "country": REGIONS[c["region"]],
                "owner": f"owner-{rng.randrange(12)}",
                "lifecycle_stage": "customer",
            }
        )
        billing.append(_billing(c, c["plan"], "active", joined, f"bill-{c['id']}"))
    wave_of = {c["id"]: i // WAVE for i, c in enumerate(customers)}
    waves: list[dict[str, list]] = (
        [
            {"crm": [], "billing": [], "survey": [], "generic": [], "changes": []}
            for _ in range(1 + (count - 1) // WAVE)
        ]
        if count
        else []
    )
    for c, profile, bill in zip(customers, crm, billing, strict=True):
        waves[wave_of[c["id"]]]["crm"].append(profile)
        waves[wave_of[c["id"]]]["billing"].append(bill)
    answers = []
    for n in range(int(count * 1.2)):
        c = rng.choice(customers)
        when = start + timedelta(seconds=rng.randrange(365 * 86400))
        month = (when - start).days // 30
        mood = 7.2 + PLAN_MOOD[c["plan"]] + 1.2 * month / 12 - (1.8 if month == BAD_MONTH else 0)
        score = min(10, max(0, round(rng.gauss(mood, 2.1))))
        answers.append((when, n, c, score, rng.choice(CHANNELS), rng.choice(SURVEYS)))
    answers.sort(key=lambda a: a[0])
    for when, n, c, score, channel, survey in answers:
        wave = waves[wave_of[c["id"]]]
        provider = rng.choice(PROVIDERS)
        response_id = f"{seed}-{n:06d}"
        comment = _comment(rng, score)
        if provider == "generic":
            wave["generic"].append(
                {
                    "id": f"resp-{response_id}",
                    "customer": {"email": c["email"], "id": c["id"]},
                    "score": score,
                    "submitted_at": _iso(when),
                    "survey": survey,
                    "channel": channel,
                    **({"comment": comment} if comment else {}),
                }
            )
            if len(wave["generic"]) == GENERIC_CHUNK:
                wave["survey"].append(Request("survey", "generic", _body(wave["generic"])))
                wave["generic"] = []
            continue
        body = {"typeform": _typeform, "delighted": _delighted, "formbricks": _formbricks}[
            provider
        ](response_id, c, score, when, channel, survey, comment)
        wave["survey"].append(Request("survey", provider, _body(body)))
    for c in rng.sample(customers, k=max(1, count // 12)):  # upgrades
        plans = list(PLANS)
        new_plan = plans[min(len(plans) - 1, plans.index(c["plan"]) + 1)]
        moment = start + timedelta(days=rng.randrange(300, 365))
        waves[wave_of[c["id"]]]["changes"].append(
            _billing(c, new_plan, "active", moment, f"up-{c['id']}")
        )
    for c in rng.sample(customers, k=max(1, count // 20)):  # churn
        moment = start + timedelta(days=rng.randrange(330, 366))
        waves[wave_of[c["id"]]]["changes"].append(
            _billing(c, c["plan"], "canceled", moment, f"churn-{c['id']}", mrr=0)
        )
    requests = []
    for wave in waves:  # each wave: profiles, then a year of answers, then plan changes
        if wave["generic"]:
            wave["survey"].append(Request("survey", "generic", _body(wave["generic"])))
        for kind in ("crm", "billing"):
            requests += _chunks(kind, wave[kind])
        requests += wave["survey"]
        requests += _chunks("billing", wave["changes"])
    return requests


def customers(count: int = 2000, seed: int = 42) -> list[dict]:
    """The data set's customers (e-mail, id, account, plan, region), as ``generate`` makes
    them: what the CRM and billing stand-ins of `make run` already hold."""
    return _customers(random.Random(seed), count, seed)  # noqa: S311 - demo data


def _customers(rng: random.Random, count: int, seed: int) -> list[dict]:
    found = []
    for i in range(count):
        company = f"{rng.choice(LAST)}-{i // 3:04d}"
        plan = rng.choices(list(PLANS), weights=PLAN_WEIGHTS)[0]
        found.append(
            {
                "email": f"{rng.choice(FIRST)}.{i}@{company}.example",
                "id": f"cust-{seed}-{i:05d}",
                "account": company,
                "plan": plan,
                "region": rng.choice(list(REGIONS)),
            }
        )
    return found


def _chunks(kind: str, items: list[dict]) -> list[Request]:
    return [
        Request(kind, "generic", _body(items[i : i + GENERIC_CHUNK]))
        for i in range(0, len(items), GENERIC_CHUNK)
    ]


def _billing(c: dict, plan: str, status: str, moment: datetime, event: str, mrr=None) -> dict:
    return {
        "id": event,
        "customer": {"email": c["email"], "id": c["id"]},
        "updated_at": _iso(moment),
        "plan": plan,
        "status": status,
        "mrr": {"amount": PLANS[plan] if mrr is None else mrr, "currency": "USD"},
    }


def _comment(rng: random.Random, score: int) -> str | None:
    if rng.random() < 0.6:
        return None
    if score >= 9:
        return rng.choice(("Love the dashboards.", "Support is fantastic.", "Saves us hours."))
    if score >= 7:
        return rng.choice(("Good, but pricey.", "Mobile app could be faster."))
    return rng.choice(("Exports keep timing out.", "The outage hurt us.", "Too hard to set up."))


def _typeform(rid, c, score, when, channel, survey, comment) -> dict:
    answers = [
        {
            "type": "number",
            "number": score,
            "field": {"id": "f1", "type": "nps", "ref": "nps_score"},
        }
    ]
    if comment:
        answers.append(
            {
                "type": "text",
                "text": comment,
                "field": {"id": "f2", "type": "long_text", "ref": "nps_reason"},
            }
        )
    return {
        "event_id": f"tf-{rid}",
        "event_type": "form_response",
        "form_response": {
            "form_id": survey,
            "token": f"tf{rid}",
            "landed_at": _iso(when - timedelta(minutes=2)),
            "submitted_at": _iso(when),
            "hidden": {"email": c["email"], "customer_id": c["id"], "channel": channel},
            "definition": {
                "id": survey,
                "title": survey,
                "fields": [
                    {"id": "f1", "ref": "nps_score", "type": "nps", "title": "Recommend us?"},
                    {"id": "f2", "ref": "nps_reason", "type": "long_text", "title": "Why?"},
                ],
            },
            "answers": answers,
        },
    }


def _delighted(rid, c, score, when, channel, survey, comment) -> dict:
    stamp = int(when.timestamp())
    return {
        "event_type": "survey_response.created",
        "event_id": f"dl-{rid}",
        "event_data": {
            "id": f"dl{rid}",
            "person": {"id": f"p{c['id']}", "email": c["email"], "created_at": stamp - 86400},
            "survey_type": "nps",
            "score": score,
            "comment": comment,
            "created_at": stamp,
            "updated_at": stamp,
            "person_properties": {"Customer ID": c["id"], "channel": channel},
            "notes": [],
            "tags": [],
            "additional_answers": [],
        },
    }


def _formbricks(rid, c, score, when, channel, survey, comment) -> dict:
    data = {"nps": score, "channel": channel}
    if comment:
        data["comment"] = comment
    return {
        "webhookId": "seed",
        "event": "responseFinished",
        "data": {
            "id": f"fb{rid}",
            "createdAt": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "updatedAt": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "surveyId": survey,
            "contact": {"id": f"fbc{c['id']}", "userId": c["id"]},
            "contactAttributes": {"email": c["email"], "userId": c["id"]},
            "finished": True,
            "data": data,
            "meta": {"source": "link"},
        },
    }


def send(url: str, request: Request, attempts: int = 5) -> int:
    target = f"{url}/webhooks/{request.kind}/{request.provider}"
    for attempt in range(attempts):
        if STOP.is_set():
            break
        call = urllib.request.Request(  # noqa: S310 - scheme checked in main
            target,
            data=request.body,
            method="POST",
            headers=signed_headers(request.provider, request.body, url=target),
        )
        try:
            with urllib.request.urlopen(call, timeout=60) as answer:  # noqa: S310
                return answer.status
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return error.code
        except OSError:
            pass
        STOP.wait(0.5 * (attempt + 1))
    return 599


def progress(done: int, total: int, failed: int, started: float) -> None:
    width = 30
    filled = width * done // max(1, total)
    rate = done / max(1e-6, time.monotonic() - started)
    sys.stderr.write(
        f"\rseeding [{'#' * filled}{'.' * (width - filled)}] {done}/{total} requests"
        f" {rate:.0f}/s{f', {failed} failed' if failed else ''}"
    )
    sys.stderr.flush()


def load(url: str, count: int, seed: int = 42, end: date | None = None) -> int:
    """Send in order, but profiles (CRM beside billing: two functions) several at a time."""
    requests = generate(count, seed, end)
    started, failed, done = time.monotonic(), 0, 0
    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        for _, run in itertools.groupby(requests, key=lambda r: r.kind == "survey"):
            for status in pool.map(lambda r: send(url, r), list(run)):
                if STOP.is_set():  # what is still queued returns at once
                    break
                failed += status >= 300
                done += 1
                if done % 5 == 0 or done == len(requests):
                    progress(done, len(requests), failed, started)
            if STOP.is_set():
                sys.stderr.write(f"\nseeding stopped after {done}/{len(requests)} requests\n")
                return failed
    sys.stderr.write(f"\nseeded {count} customers in {time.monotonic() - started:.0f} s\n")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m local.seed", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--count", type=int, default=2000, help="customers")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", type=date.fromisoformat, default=None, help="last day (UTC)")
    args = parser.parse_args()
    if not args.url.startswith(("http://", "https://")):
        parser.error("--url must be http(s)")
    signal.signal(signal.SIGINT, lambda *_: STOP.set())  # the requests in flight end first
    failed = load(args.url.rstrip("/"), args.count, args.seed, args.end)
    return 130 if STOP.is_set() else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
