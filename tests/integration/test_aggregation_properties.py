"""Random sequences of writes, profile changes, erasures, faulty deliveries and shards rolling
over a day later (their marks then collected): whatever happens on the way, the aggregates end
equal to the from-scratch recomputation."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from nps_sync.aggregation.aggregator import Aggregator
from nps_sync.aggregation.stream import Lane
from nps_sync.query.customers import erase
from nps_sync.store.aggregates import AggregatesStore
from nps_sync.store.counters import MARK_HORIZON_SECONDS
from nps_sync.store.customers import CustomerRecords

from .conftest import Flaky, make_world

CUSTOMERS = ["ana@example.com", "bo@example.com", "cy@example.com"]

respond = st.tuples(
    st.just("respond"),
    st.integers(0, 2),  # customer
    st.integers(0, 3),  # response id
    st.integers(0, 10),  # score
    st.sampled_from(["2025-12-29", "2026-01-01", "2026-03-31"]),
    st.sampled_from(["email", "web"]),
)
profile = st.tuples(
    st.just("profile"), st.integers(0, 2), st.sampled_from(["basic", "pro"]), st.integers(0, 9)
)
erasure = st.tuples(st.just("erase"), st.integers(0, 2))
deliver = st.tuples(
    st.just("deliver"),
    st.sampled_from(["normal", "twice", "fail", "sdk_retry"]),
    st.integers(1, 7),
)
later = st.tuples(st.just("later"))  # a new shard, past the old one's marks' horizon
operations = st.lists(st.one_of(respond, respond, profile, erasure, deliver, later), max_size=14)


class Shards:
    """Lanes as the stream has them: a record belongs to the shard open when it was first
    delivered, for good; ``later`` opens the next shard, MARK_HORIZON_SECONDS on."""

    def __init__(self):
        self.generation = 0
        self.now = 1_800_000_000.0
        self.lane_of: dict[str, str] = {}

    def later(self) -> None:
        self.generation += 1
        self.now += MARK_HORIZON_SECONDS + 3600

    def __call__(self, arn, batch) -> Lane:
        sequences = [r["dynamodb"]["SequenceNumber"] for r in batch]
        lane = self.lane_of.get(sequences[0], f"shardId-{self.generation}")
        for sequence in sequences:
            self.lane_of.setdefault(sequence, lane)
        return Lane(lane)

    def aggregator(self, world, client=None) -> Aggregator:
        return Aggregator(
            AggregatesStore(world.aggregates_table, client or world.ddb),
            CustomerRecords(world.records_table, world.ddb),
            world.dimensions,
            locator=self,
            clock=lambda: self.now,
        )


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations)
def test_aggregates_always_equal_the_recomputation(template, monkeypatch, ops):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        world = make_world(template)
        shards = Shards()
        profile_versions = dict.fromkeys(range(3), 0)
        for version, op in enumerate(ops, start=1):
            if op[0] == "respond":
                _, customer, rid, score, day, channel = op
                world.respond(
                    f"r{customer}-{rid}",
                    CUSTOMERS[customer],
                    score,
                    day=day,
                    version=version,
                    channel=channel,
                )
            elif op[0] == "profile":
                _, customer, plan, mrr = op
                profile_versions[customer] += 1
                world.profile(
                    CUSTOMERS[customer], profile_versions[customer], plan=plan, mrr_amount=mrr * 100
                )
            elif op[0] == "erase":
                erase(CustomerRecords(world.records_table, world.ddb), CUSTOMERS[op[1]])
            elif op[0] == "later":
                shards.later()
            else:
                _, mode, k = op
                if mode == "normal":
                    world.run(shards.aggregator(world), batch_size=k)
                elif mode == "twice":
                    batches = world.run(shards.aggregator(world), batch_size=k)
                    for batch in batches:
                        world.run(shards.aggregator(world), pending=batch, batch_size=k)
                elif mode == "fail":
                    world.run(
                        shards.aggregator(world, Flaky(world.ddb, fail_calls={k, 2 * k})),
                        batch_size=k,
                    )
                else:
                    world.run(shards.aggregator(world, Flaky(world.ddb, repeat_calls={k})))
        world.run(shards.aggregator(world))
        assert world.differences() == []
