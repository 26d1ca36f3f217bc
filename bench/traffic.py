"""Realistic survey traffic for the cost benchmark: many customers, a year of dates.

Real-time traffic: the responses of one stream batch are submitted within the same hour (a
batch of 100 is what a busy tenant sends in about a minute); successive batches walk through
a year. ``backfill`` instead spreads every batch over random days of the year (an import).
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PLANS = ("starter", "growth", "pro", "enterprise")
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
CHANNELS = ("email", "in-app", "web")
SURVEYS = ("relationship", "onboarding", "support")
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
RESPONSES_PER_CUSTOMER = 4  # a quarterly relationship survey


@dataclass(frozen=True)
class Customer:
    email: str
    customer_id: str
    plan: str
    region: str
    account: str
    mrr: int


@dataclass(frozen=True)
class Answer:
    response_id: str
    customer: Customer
    score: int
    submitted_at: datetime
    channel: str
    survey: str

    def generic_body(self) -> dict:
        return {
            "id": self.response_id,
            "customer": {"email": self.customer.email, "id": self.customer.customer_id},
            "score": self.score,
            "submitted_at": self.submitted_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "survey": self.survey,
            "channel": self.channel,
        }


def customers(count: int, seed: int = 7) -> list[Customer]:
    rng = random.Random(seed)
    accounts = max(1, count // 3)
    result = []
    for i in range(count):
        plan = rng.choices(PLANS, weights=(45, 30, 18, 7))[0]
        result.append(
            Customer(
                email=f"user{i}@customer{i % accounts}.example",
                customer_id=f"cust-{i:06d}",
                plan=plan,
                region=rng.choice(REGIONS),
                account=f"acct-{i % accounts:05d}",
                mrr={"starter": 2900, "growth": 9900, "pro": 29900, "enterprise": 150000}[plan],
            )
        )
    return result


def answers(total: int, batch: int, seed: int = 11, backfill: bool = False) -> list[Answer]:
    """``total`` responses in time order, ``batch`` per hour-long burst, over one year."""
    rng = random.Random(seed)
    people = customers(max(250, total // RESPONSES_PER_CUSTOMER), seed)
    bursts = max(1, -(-total // batch))
    result = []
    for i in range(total):
        burst = i // batch
        if backfill:
            when = YEAR_START + timedelta(seconds=rng.randrange(365 * 86400))
        else:
            hour = YEAR_START + timedelta(hours=burst * (365 * 24 - 1) // bursts)
            when = hour + timedelta(seconds=rng.randrange(3600))
        who = rng.choice(people)
        base = {"starter": 6.8, "growth": 7.4, "pro": 8.0, "enterprise": 8.6}[who.plan]
        score = min(10, max(0, round(rng.gauss(base, 2.0))))
        result.append(
            Answer(
                response_id=f"resp-{seed}-{i:07d}",
                customer=who,
                score=score,
                submitted_at=when,
                channel=rng.choice(CHANNELS),
                survey=rng.choices(SURVEYS, weights=(60, 25, 15))[0],
            )
        )
    return result
