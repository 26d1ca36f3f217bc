"""Hostile input against every webhook receiver, through its real handler (moto underneath).

Random and mutated bodies, headers and signatures never give a 500, never store anything
unless the signature and the payload are valid, and are always answered with the documented
error body. Mutated payloads are signed properly, so that payload validation is what runs.
"""

import base64
import json
import os
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from xml.sax.saxutils import escape

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local.events import build, wire_body
from local.lambdas import LocalFunction
from local.signer import signed_headers
from tests.conftest import BODIES, DEV_SECRETS

FUNCTIONS = {
    "survey": "SurveyWebhookFunction",
    "crm": "CrmWebhookFunction",
    "billing": "BillingWebhookFunction",
}
RECEIVERS = [
    ("survey", "typeform", "typeform.json"),
    ("survey", "delighted", "delighted.json"),
    ("survey", "formbricks", "formbricks.json"),
    ("survey", "generic", "generic.json"),
    ("crm", "hubspot", "hubspot-contact.propertyChange.json"),
    ("crm", "salesforce", "salesforce-contact.xml"),
    ("crm", "generic", "generic.json"),
    ("billing", "stripe", "stripe-customer.subscription.updated.json"),
    ("billing", "chargebee", "chargebee-subscription_created-pc1.json"),
    ("billing", "generic", "generic.json"),
]
JSON_RECEIVERS = [r for r in RECEIVERS if r[1] != "salesforce"]
IDS = [f"{kind}-{provider}" for kind, provider, _ in RECEIVERS]
AUTH_HEADERS = {
    "typeform": ("typeform-signature",),
    "delighted": ("x-delighted-webhook-signature",),
    "formbricks": ("webhook-id", "webhook-timestamp", "webhook-signature"),
    "generic": ("webhook-id", "webhook-timestamp", "webhook-signature"),
    "hubspot": ("x-hubspot-signature-v3", "x-hubspot-request-timestamp"),
    "stripe": ("stripe-signature",),
    "chargebee": ("authorization",),
}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Midnight three days ahead: past the one-day bound, and the same text in every test worker
# (a parameter id that changed with the second would differ between workers).
HOSTILE_FUTURE = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT00:00:00Z")
# Values that break naive code: out-of-range scores, scores as strings, huge and negative
# numbers, floats, timestamps in the far future and the far past, odd strings.
HOSTILE = [
    -1,
    11,
    10.5,
    9.0,
    "9",
    "ten",
    True,
    None,
    [],
    {},
    "",
    " ",
    10**30,
    -(10**30),
    2**63,
    1e308,
    1e-308,
    253_402_300_800,
    10**17,
    -(10**12),
    "2999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:00:00-05:00",  # the year 10000 in UTC
    "0001-01-01T00:00:00+14:00",  # the year 0 in UTC
    "1999-12-31T23:59:59Z",
    HOSTILE_FUTURE,
    "2026-13-45T25:61:61Z",
    "1970-01-01T00:00:00",
    "\u0000",
    "\ud83d\ude00" * 3,
    "a" * 70_000,
    "<script>alert(1)</script>",
    "'; DROP TABLE x; --",
    "%s%n",
    "\u202e",
    {"$ne": 1},
    [[[[[]]]]],
]


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # README "Receivers": older times are refused
STORED_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def deep(depth: int, leaf=1):
    value = leaf
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


# --- the harness ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(template):
    """One moto account for the module: provisioning the template per test would dominate."""
    from moto import mock_aws

    from local.aws import Emulator, Stack

    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(name, "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        emulator = Emulator()
        emulator.endpoint = None
        provisioned = Stack(template, emulator).provision()
        for function in template.functions.values():
            for name, value in function.environment.items():
                resolved = provisioned.resolve(value)
                if resolved is not None:
                    patch.setenv(name, str(resolved))
        patch.setenv("NPS_SYNC_SECRETS_FILE", str(DEV_SECRETS))
        yield provisioned


@pytest.fixture
def target(stack, template):
    functions = {kind: LocalFunction(template.functions[name]) for kind, name in FUNCTIONS.items()}
    ddb = boto3.client("dynamodb")
    table = stack.refs["RecordsTable"]

    class Target:
        def items(self) -> int:
            return ddb.scan(TableName=table, Select="COUNT", ConsistentRead=True)["Count"]

        def send(self, kind: str, event: dict) -> tuple[int, dict | str]:
            """The answer, checked against the documented contract; a crash is a 500."""
            try:
                answer = functions[kind].invoke(event)
            except Exception as error:  # what Lambda would turn into a 500
                raise AssertionError(f"500: the handler raised {error!r}") from error
            status = answer["statusCode"]
            assert status in (200, 202, 400, 401, 404, 409, 413, 422), answer
            # 409: a generic item repeating a stored version with other content; a provider,
            # which cannot correct it, is answered 202 (the first version kept, counted)
            assert status != 409 or event["rawPath"].endswith("/generic"), answer
            if status == 200:  # only Salesforce, which takes nothing but its SOAP Ack
                assert "<Ack>true</Ack>" in answer["body"]
                return status, answer["body"]
            body = json.loads(answer["body"])
            if status == 202:
                assert set(body) == {"accepted", "duplicates", "ignored", "conflicts"}
                assert all(isinstance(v, int) and v >= 0 for v in body.values())
            else:
                assert set(body) == {"error", "message"}, body
                assert isinstance(body["error"], str) and body["error"]
                assert isinstance(body["message"], str) and body["message"]
            return status, body

        def refused_and_nothing_stored(self, kind: str, event: dict, statuses=None) -> int:
            before = self.items()
            status, _ = self.send(kind, event)
            assert status >= 400 if statuses is None else status in statuses
            assert self.items() == before, "a refused request stored something"
            return status

        def valid_or_nothing_stored(self, kind: str, event: dict) -> int:
            before = self.items()
            status, answer = self.send(kind, event)
            if status >= 400:
                assert self.items() == before, "a refused request stored something"
            elif status == 200 or answer["accepted"]:  # 200: Salesforce's Ack, counts unknown
                self.everything_stored_is_valid()
            return status

        def everything_stored_is_valid(self) -> None:
            """What was accepted is what the receivers promise: a whole score 0-10 and times
            from 2000-01-01 to a day ahead, in fixed-width UTC."""
            latest = datetime.now(UTC) + timedelta(days=1)
            pages = ddb.get_paginator("scan").paginate(
                TableName=table,
                ConsistentRead=True,
                ProjectionExpression="pk, sk, score, submitted_at, updated_at, source_updated_at",
                FilterExpression="sk = :resp OR sk = :crm OR begins_with(sk, :billing)",
                ExpressionAttributeValues={
                    ":resp": {"S": "RESP"},
                    ":crm": {"S": "CRM"},
                    ":billing": {"S": "BILLING"},
                },
            )
            for item in (item for page in pages for item in page["Items"]):
                sk = item["sk"]["S"]
                if sk == "RESP":
                    assert 0 <= int(item["score"]["N"]) <= 10, item["pk"]
                    assert item["score"]["N"] == str(int(item["score"]["N"])), item["pk"]
                    names = ("submitted_at", "updated_at")
                elif sk == "CRM" or sk.startswith("BILLING"):
                    names = ("source_updated_at",)
                else:
                    continue
                for name in names:
                    text = item[name]["S"]
                    assert STORED_TIME.fullmatch(text), (item["pk"], name)
                    assert EARLIEST <= datetime.fromisoformat(text) <= latest, (item["pk"], name)

    return Target()


def sample(kind: str, name: str) -> bytes:
    return wire_body(BODIES / kind / name)


def signed_event(kind: str, provider: str, body: bytes) -> dict:
    """Signed as the provider signs; bodies that are not UTF-8 travel base64-encoded."""
    event = build(kind, provider, body)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


# --- mutations of a sample payload ------------------------------------------------------------


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    return [_replace(v, rest, new) if i == head else v for i, v in enumerate(value)]


def _delete(value, path):
    if len(path) == 1:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != path[0]}
        return [v for i, v in enumerate(value) if i != path[0]]
    head = path[0]
    if isinstance(value, dict):
        return {**value, head: _delete(value[head], path[1:])}
    return [_delete(v, path[1:]) if i == head else v for i, v in enumerate(value)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_json(draw, original: bytes) -> bytes:
    value = json.loads(original)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(value))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["hostile", "random", "delete", "deep"]))
        if action == "delete" and path:
            value = _delete(value, path)
        elif action == "deep":
            value = _replace(value, path, deep(draw(st.sampled_from([50, 400, 900, 990]))))
            break  # the last mutation: one inside another would pass json's own nesting limit
        else:
            new = draw(st.sampled_from(HOSTILE) if action == "hostile" else json_values)
            value = _replace(value, path, new)
    text = json.dumps(value, separators=(",", ":")).encode()
    return draw(text_level(text))


@st.composite
def text_level(draw, text: bytes) -> bytes:
    """Mutations a parser sees before any model: bytes, keys, numbers, nesting."""
    action = draw(
        st.sampled_from(["none", "none", "truncate", "flip", "utf8", "dupkey", "number", "nest"])
    )
    if action == "truncate" and text:
        return text[: draw(st.integers(0, len(text) - 1))]
    if action == "flip" and text:
        at = draw(st.integers(0, len(text) - 1))
        return text[:at] + bytes([draw(st.integers(0, 255))]) + text[at + 1 :]
    if action == "utf8":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]))
        return text[:at] + junk + text[at:]
    if action == "dupkey" and text[:1] in (b"{", b"["):
        at = text.find(b"{")
        if at >= 0 and text[at + 1 : at + 2] == b'"':
            key = text[at + 1 : text.find(b'"', at + 2) + 1]
            return text[: at + 1] + key + b":0," + text[at + 1 :]
    if action == "number":
        number = draw(st.sampled_from([b"1" * 5000, b"1e400", b"-1e400", b"1" * 300 + b".5"]))
        return text.replace(b":", b":" + number + b',"x":', 1) if b":" in text else number
    if action == "nest":
        depth = draw(st.sampled_from([1000, 5000, 100_000]))
        return b"[" * depth + b"]" * depth
    return text


# --- the fields receivers read: times, identity, scores ---------------------------------------

ID_KEYS = {"id", "customer_id", "customerid", "customer id", "user_id", "userid", "objectid"}
SCORE_KEYS = {"score", "number", "nps"}


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    else:
        yield path, value


def _is_time(leaf) -> bool:
    """ISO 8601 text or Unix seconds/milliseconds: how the samples write their times."""
    if isinstance(leaf, bool):
        return False
    if isinstance(leaf, int):
        return 10**9 <= leaf < 10**13
    if isinstance(leaf, str) and len(leaf) >= 16 and leaf[4:5] == "-" and "T" in leaf:
        try:
            datetime.fromisoformat(leaf.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return False


def _key(path) -> str:
    named = [step for step in path if isinstance(step, str)]
    return named[-1].lower() if named else ""


FIELDS = {
    "time": lambda path, leaf: _is_time(leaf),
    "identity": lambda path, leaf: "email" in _key(path) or _key(path) in ID_KEYS,
    "score": lambda path, leaf: _key(path) in SCORE_KEYS,
}

NOW = datetime.now(UTC)
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
# a day inside datetime's range at both ends: any offset then converts to UTC (the strategies
# below do), and year 1 and 9999 are still drawn
any_instant = st.builds(
    lambda moment, tz: moment.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30, 23, 59, 59)),
    offsets,
)
around_now = st.integers(-3 * 86_400, 3 * 86_400).map(lambda s: NOW + timedelta(seconds=s))
edges = st.sampled_from(
    [
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=UTC),
        NOW + timedelta(days=1, minutes=-1),
        NOW + timedelta(days=1, minutes=1),
    ]
)
instants = any_instant | around_now | edges
unix_times = st.integers(-(2**63), 2**64) | st.sampled_from(
    [0, -1, 946_684_799, 946_684_800, int(NOW.timestamp()) + 2 * 86_400, 10**11, 10**13]
)
TIME_VALUES = (
    instants.map(lambda t: t.isoformat())
    | instants.map(lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    | instants.filter(lambda t: t.year >= 1971).map(lambda t: int(t.timestamp()))
    | instants.filter(lambda t: t.year >= 1971).map(lambda t: int(t.timestamp() * 1000))
    | unix_times
    | st.sampled_from(HOSTILE)
)
IDENTITY_VALUES = (
    st.integers()
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
    | st.lists(st.text(max_size=8), max_size=3)
    | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
    | st.sampled_from(["", " ", "@", "a@", "@b", "a@b", " A@B.C ", "x" * 600 + "@y.z", "\u0000@x"])
)
SCORE_VALUES = (
    st.sampled_from(["9", "10", " 9", "9.0", "nine", "", "0x9", "1e1"])
    | st.integers(-(10**20), 10**20)
    | st.integers(-2, 12)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
    | st.lists(st.integers(0, 10), max_size=2)
)
VALUES = {"time": TIME_VALUES, "identity": IDENTITY_VALUES, "score": SCORE_VALUES}


def base_payload(kind: str, provider: str, name: str):
    """The sample, with every identity a receiver may read present: Typeform's e-mail answer
    is not in the sample."""
    payload = json.loads(sample(kind, name))
    if provider == "typeform":
        payload["form_response"]["answers"].append(
            {"type": "email", "email": "ana@example.com", "field": {"id": "e1", "type": "email"}}
        )
    return payload


@st.composite
def field_mutated(draw, kind: str, provider: str, name: str, field: str) -> bytes:
    payload = base_payload(kind, provider, name)
    paths = [path for path, leaf in _leaves(payload) if FIELDS[field](path, leaf)]
    assert paths, f"the {provider} sample has no {field} field to mutate"
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3, unique=True)):
        payload = _replace(payload, path, draw(VALUES[field]))
    return json.dumps(payload, separators=(",", ":")).encode()


# --- signatures -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "provider", "name"), RECEIVERS, ids=IDS)
def test_each_sample_is_accepted_as_sent(target, kind, provider, name):
    """The baseline: the unmutated, signed sample is stored."""
    before = target.items()
    status, _ = target.send(kind, signed_event(kind, provider, sample(kind, name)))
    assert status in (200, 202) and target.items() > before
    target.everything_stored_is_valid()


@pytest.mark.parametrize(("kind", "provider", "name"), JSON_RECEIVERS, ids=IDS[:5] + IDS[6:])
@FUZZ
@given(data=st.data())
def test_a_forged_or_damaged_signature_is_refused_and_stores_nothing(
    target, kind, provider, name, data
):
    event = signed_event(kind, provider, sample(kind, name))
    headers = dict(event["headers"])
    for header in data.draw(st.sets(st.sampled_from(AUTH_HEADERS[provider]), min_size=1)):
        how = data.draw(st.sampled_from(["drop", "random", "flip", "empty", "other-provider"]))
        if how == "drop":
            headers.pop(header)
        elif how == "random":
            headers[header] = data.draw(st.text(max_size=200))
        elif how == "empty":
            headers[header] = ""
        elif how == "flip":
            value = headers[header]
            at = data.draw(st.integers(0, len(value) - 1))
            # the auth scheme ("Basic ") is case-insensitive: a case swap there is no forgery
            fold = str.lower if header == "authorization" and at < 6 else str
            swap = data.draw(
                st.characters(codec="ascii").filter(
                    lambda c, o=value[at], fold=fold: fold(c) != fold(o)
                )
            )
            headers[header] = value[:at] + swap + value[at + 1 :]
        else:  # a signature some other receiver would accept
            other = build(kind, "generic" if provider != "generic" else "stripe", b"{}")
            headers = {**headers, **other["headers"]}
            headers.pop(header, None)
    event["headers"] = headers
    status = target.refused_and_nothing_stored(kind, event)
    assert status == 401


@FUZZ
@given(token=st.text(max_size=60).filter(lambda t: t != "dev-salesforce-token"))
def test_salesforce_without_our_token_is_refused_and_stores_nothing(target, token):
    event = signed_event("crm", "salesforce", sample("crm", "salesforce-contact.xml"))
    event["queryStringParameters"] = {"token": token} if token else {}
    event["rawQueryString"] = ""
    assert target.refused_and_nothing_stored("crm", event) == 401


# --- payloads, signed properly ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "provider", "name"), JSON_RECEIVERS, ids=IDS[:5] + IDS[6:])
@FUZZ
@given(data=st.data())
def test_a_mutated_payload_signed_properly_never_gives_a_500(target, kind, provider, name, data):
    body = data.draw(mutated_json(sample(kind, name)))
    target.valid_or_nothing_stored(kind, signed_event(kind, provider, body))


FIELD_CASES = [
    (kind, provider, name, field)
    for kind, provider, name in JSON_RECEIVERS
    for field in FIELDS
    if field != "score" or kind == "survey"  # profiles have no score
]


@pytest.mark.parametrize(
    ("kind", "provider", "name", "field"),
    FIELD_CASES,
    ids=[f"{kind}-{provider}-{field}" for kind, provider, _, field in FIELD_CASES],
)
@settings(FUZZ, max_examples=30)
@given(data=st.data())
def test_times_identities_and_scores_of_any_value_are_refused_or_stored_valid(
    target, kind, provider, name, field, data
):
    """Far past, far future, no UTC equivalent; e-mails and ids that are numbers, lists or
    objects; scores as strings or out of 0-10: a 4xx, or a record that is valid."""
    body = data.draw(field_mutated(kind, provider, name, field))
    target.valid_or_nothing_stored(kind, signed_event(kind, provider, body))


@pytest.mark.parametrize(("kind", "provider", "name"), RECEIVERS, ids=IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=2000))
def test_random_bytes_signed_properly_are_refused_and_store_nothing(
    target, kind, provider, name, body
):
    event = signed_event(kind, provider, body)
    target.refused_and_nothing_stored(kind, event, statuses=(400, 401, 422, 200, 202))


@pytest.mark.parametrize(
    ("kind", "provider", "path", "value"),
    [
        ("survey", "generic", (0, "score"), 11),
        ("survey", "generic", (0, "score"), -1),
        ("survey", "generic", (0, "score"), "9"),
        ("survey", "generic", (0, "score"), 9.5),
        ("survey", "generic", (0, "score"), True),
        ("survey", "generic", (0, "score"), 10**30),
        ("survey", "delighted", ("event_data", "score"), 11),
        ("survey", "delighted", ("event_data", "score"), "9"),
        ("survey", "formbricks", ("data", "data", "nps"), 11),
        ("survey", "formbricks", ("data", "data", "nps"), "9"),
        ("survey", "generic", (0, "submitted_at"), "2026-03-02T10:15:00"),  # no offset
        ("survey", "generic", (0, "submitted_at"), "9999-12-31T23:00:00-05:00"),
        ("survey", "generic", (1, "submitted_at"), "0001-01-01T00:00:00+14:00"),
        ("survey", "generic", (0, "submitted_at"), "1999-12-31T23:59:59Z"),
        ("survey", "generic", (0, "submitted_at"), HOSTILE_FUTURE),
        ("survey", "typeform", ("form_response", "submitted_at"), "9999-12-31T23:00:00-05:00"),
        ("survey", "typeform", ("form_response", "submitted_at"), HOSTILE_FUTURE),
        ("survey", "formbricks", ("data", "createdAt"), "0001-01-01T00:00:00+14:00"),
        ("survey", "formbricks", ("data", "updatedAt"), HOSTILE_FUTURE),
        ("survey", "delighted", ("event_data", "created_at"), 0),
        ("survey", "delighted", ("event_data", "updated_at"), 10**11 - 1),
        ("crm", "generic", (0, "updated_at"), "9999-12-31T23:00:00-05:00"),
        ("crm", "generic", (0, "updated_at"), "1970-01-01T00:00:00Z"),
        ("billing", "generic", (0, "updated_at"), "0001-01-01T00:00:00+14:00"),
        ("billing", "generic", (0, "updated_at"), HOSTILE_FUTURE),
        ("billing", "generic", (0, "renews_at"), "9999-12-31T23:00:00-05:00"),
        ("billing", "stripe", ("created",), 10**20),
        ("billing", "chargebee", ("occurred_at",), -1),
        ("crm", "hubspot", (0, "occurredAt"), 10**20),
    ],
)
def test_out_of_range_values_are_refused_with_422(target, kind, provider, path, value):
    name = next(n for k, p, n in RECEIVERS if (k, p) == (kind, provider))
    body = json.dumps(_replace(json.loads(sample(kind, name)), path, value)).encode()
    status = target.refused_and_nothing_stored(kind, signed_event(kind, provider, body))
    assert status == 422


def test_typeform_score_outside_0_to_10_is_refused(target):
    payload = json.loads(sample("survey", "typeform.json"))
    for answer in payload["form_response"]["answers"]:
        if answer["field"]["type"] == "nps":
            answer["number"] = 11
    body = json.dumps(payload).encode()
    assert target.refused_and_nothing_stored("survey", signed_event("survey", "typeform", body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"a","id":"b"}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
        b"1" * 5000,
        b'{"score": NaN}',
        b'{"score": Infinity}',
        b"",
        b"null",
        b"[]",
        b'"text"',
    ],
    ids=[
        "duplicate-key",
        "utf16",
        "deep",
        "huge-int",
        "nan",
        "infinity",
        "empty",
        "null",
        "empty-list",
        "string",
    ],
)
@pytest.mark.parametrize(("kind", "provider", "name"), JSON_RECEIVERS, ids=IDS[:5] + IDS[6:])
def test_unreadable_json_is_refused(target, kind, provider, name, body):
    event = signed_event(kind, provider, body)
    target.refused_and_nothing_stored(kind, event, statuses=(400, 422, 202))


@pytest.mark.parametrize(("kind", "provider", "name"), JSON_RECEIVERS, ids=IDS[:5] + IDS[6:])
def test_json_nested_deeper_than_the_limit_is_refused(target, kind, provider, name):
    for depth, refused in ((60, False), (100, True), (980, True), (5000, True)):
        nested = b'{"k":[' * (depth // 2) + b"1" + b"]}" * (depth // 2)  # text: no recursion
        body = sample(kind, name).replace(b'{"', b'{"x_nested":' + nested + b',"', 1)
        status = target.valid_or_nothing_stored(kind, signed_event(kind, provider, body))
        assert (status == 400) == refused, depth


# --- XML attacks on the Salesforce SOAP receiver ---------------------------------------------

ENVELOPE = sample("crm", "salesforce-contact.xml").decode()
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
""" + ENVELOPE.split("?>", 1)[1].replace("<sf:Email>ana@example.com", "<sf:Email>&lol4;")
XXE = """<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
""" + ENVELOPE.split("?>", 1)[1].replace("<sf:Email>ana@example.com", "<sf:Email>&xxe;")
EXTERNAL_DTD = (
    '<?xml version="1.0"?>\n<!DOCTYPE foo SYSTEM "http://169.254.169.254/latest/meta-data/">\n'
    + ENVELOPE.split("?>", 1)[1]
)
PARAMETER_ENTITY = (
    '<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x"> %p;]>\n'
    + ENVELOPE.split("?>", 1)[1]
)
QUADRATIC = (
    '<?xml version="1.0"?>\n<!DOCTYPE foo [<!ENTITY a "'
    + "x" * 50_000
    + '">]>\n'
    + ENVELOPE.split("?>", 1)[1].replace("<sf:Email>ana@example.com", "<sf:Email>" + "&a;" * 3)
)
XINCLUDE = ENVELOPE.replace(
    "<sf:Email>ana@example.com</sf:Email>",
    '<sf:Email><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
    'href="file:///etc/passwd" parse="text"/></sf:Email>',
)
DEEP_XML = ENVELOPE.replace(
    "<sf:Email>ana@example.com</sf:Email>", "<sf:Deep>" * 5000 + "</sf:Deep>" * 5000
)


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, XXE, EXTERNAL_DTD, PARAMETER_ENTITY, QUADRATIC, XINCLUDE, DEEP_XML],
    ids=[
        "billion-laughs",
        "xxe",
        "external-dtd",
        "parameter-entity",
        "quadratic",
        "xinclude",
        "deep",
    ],
)
def test_xml_attacks_on_salesforce_are_refused_or_inert(target, body):
    event = signed_event("crm", "salesforce", body.encode())
    before = target.items()
    status, answer = target.send("crm", event)
    if "<!DOCTYPE" in body:
        assert status == 400 and answer["error"] == "malformed_body"
        assert target.items() == before
    else:  # no DTD: parsed as plain elements, nothing included or expanded
        stored = boto3.client("dynamodb").scan(TableName=_records_table())["Items"]
        assert "root:" not in json.dumps(stored, default=str)


def _records_table() -> str:
    return os.environ["RECORDS_TABLE"]


xml_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)


@FUZZ
@given(data=st.data())
def test_mutated_soap_envelopes_never_give_a_500(target, data):
    text = ENVELOPE
    for _ in range(data.draw(st.integers(1, 3))):
        action = data.draw(st.sampled_from(["value", "drop", "truncate", "flip", "attack"]))
        if action == "value":
            old = data.draw(
                st.sampled_from(
                    [
                        "0035g00000XyZaBAAV",
                        "2026-03-02T10:15:00.000Z",
                        "00D000000000001AAA",
                        "ana@example.com",
                        "04l5g00000LBnJqAAL",
                        "sf:Contact",
                        "EMEA",
                    ]
                )
            )
            new = data.draw(st.sampled_from([str(v) for v in HOSTILE[:25]]) | xml_text)
            text = text.replace(old, escape(new, {'"': "&quot;"}), 1)
        elif action == "drop":
            tag = data.draw(
                st.sampled_from(
                    ["<sf:Id>", "<Id>", "<OrganizationId>", "<sObject ", "<notifications "]
                )
            )
            text = text.replace(tag, "<dropped" + tag[1:] if tag.endswith(" ") else "<x>", 1)
        elif action == "truncate":
            text = text[: data.draw(st.integers(0, len(text)))]
        elif action == "flip" and text:
            at = data.draw(st.integers(0, len(text) - 1))
            text = text[:at] + data.draw(st.characters(codec="utf-8")) + text[at + 1 :]
        else:
            text = data.draw(st.sampled_from([BILLION_LAUGHS, XXE, EXTERNAL_DTD, DEEP_XML]))
    body = text.encode("utf-8", "surrogatepass")
    target.valid_or_nothing_stored("crm", signed_event("crm", "salesforce", body))


# --- replay -----------------------------------------------------------------------------------

TIMESTAMPED = [r for r in JSON_RECEIVERS if r[1] in ("formbricks", "generic", "stripe", "hubspot")]
UNTIMED = [r for r in RECEIVERS if r[1] in ("typeform", "delighted", "chargebee", "salesforce")]


def captured(kind: str, provider: str, name: str, at: int) -> dict:
    """A request as the provider signed it at ``at``; sending it now is replaying it."""
    event = build(kind, provider, sample(kind, name))
    url = f"https://{event['requestContext']['domainName']}{event['rawPath']}"
    event["headers"] = {
        **event["headers"],
        **signed_headers(provider, sample(kind, name), now=at, url=url),
    }
    return event


def snapshot() -> list:
    """Every item, minus what re-writing a raw payload's copy refreshes (its receipt time
    and expiry): the records, profiles, links and markers must not change at all."""
    items = boto3.client("dynamodb").scan(TableName=_records_table(), ConsistentRead=True)
    return sorted(
        json.dumps(
            {k: v for k, v in item.items() if k not in ("received_at", "expires_at")},
            sort_keys=True,
            default=str,
        )
        for item in items["Items"]
    )


@pytest.mark.parametrize(
    ("kind", "provider", "name"), TIMESTAMPED, ids=[f"{k}-{p}" for k, p, _ in TIMESTAMPED]
)
def test_a_replay_outside_the_window_is_refused(target, kind, provider, name):
    tolerance = 300  # SIGNATURE_TOLERANCE_SECONDS' default
    now = int(time.time())
    for at in (now - tolerance - 5, now - 86_400, now + tolerance + 5):
        event = captured(kind, provider, name, at)
        status, answer = target.send(kind, event)
        assert (status, answer["error"]) == (401, "invalid_signature"), at
    before = snapshot()
    target.send(kind, captured(kind, provider, name, now - tolerance - 5))
    assert snapshot() == before


@pytest.mark.parametrize(
    ("kind", "provider", "name"),
    TIMESTAMPED + UNTIMED,
    ids=[f"{k}-{p}" for k, p, _ in TIMESTAMPED + UNTIMED],
)
def test_a_replay_inside_the_window_or_without_one_changes_nothing(target, kind, provider, name):
    event = captured(kind, provider, name, int(time.time()) - 60)
    first_status, first = target.send(kind, event)
    after_first = snapshot()

    again_status, again = target.send(kind, event)  # the captured request, sent again

    assert again_status == first_status
    if provider != "salesforce":  # Salesforce is answered with its Ack either way
        assert again["accepted"] == 0
        assert again["duplicates"] == first["accepted"] + first["duplicates"]
    assert snapshot() == after_first
