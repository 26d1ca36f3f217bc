"""SurveyWebhookFunction's handler, as Lambda calls it, against template-defined tables in moto."""

import json

import boto3
import pytest

from local.events import build
from local.lambdas import LocalFunction
from nps_sync.store.records import RecordsStore
from tests.conftest import body_of


@pytest.fixture
def invoke(function_env, template):
    function = LocalFunction(template.functions["SurveyWebhookFunction"])

    def call(event):
        answer = function.invoke(event)
        return answer["statusCode"], json.loads(answer["body"])

    return call


@pytest.fixture
def store(function_env):
    return RecordsStore(function_env.refs["RecordsTable"], boto3.client("dynamodb"))


def event_for(provider: str, body: bytes) -> dict:
    return build("survey", provider, body)


@pytest.mark.parametrize("provider", ["typeform", "delighted", "formbricks", "generic"])
def test_each_provider_sample_is_stored_once(invoke, store, provider):
    event = event_for(provider, body_of("survey", f"{provider}.json"))

    first = invoke(event)
    again = invoke(event)  # the provider re-delivers

    expected = 2 if provider == "generic" else 1
    assert first == (202, {"accepted": expected, "duplicates": 0, "ignored": 0, "conflicts": 0})
    assert again == (202, {"accepted": 0, "duplicates": expected, "ignored": 0, "conflicts": 0})


def test_stored_response_keeps_its_raw_payload(invoke, store):
    invoke(event_for("typeform", body_of("survey", "typeform.json")))

    response = store.get_response("typeform", "a3a12ec67a1365927098a606107fac15")
    assert response is not None and response.score == 4
    (raw,) = store.raw_payloads("typeform", response.response_id)
    assert raw == json.loads(body_of("survey", "typeform.json"))


def test_a_provider_update_replaces_and_an_older_one_is_ignored(invoke, store):
    payload = json.loads(body_of("survey", "delighted.json"))
    created = json.loads(json.dumps(payload))
    created["event_type"] = "survey_response.created"
    created["event_data"].update(score=5, comment=None, updated_at=1772446200)

    assert invoke(event_for("delighted", json.dumps(created).encode()))[1]["accepted"] == 1
    assert invoke(event_for("delighted", json.dumps(payload).encode()))[1]["accepted"] == 1
    stale = invoke(event_for("delighted", json.dumps(created).encode()))  # late re-delivery

    assert stale[1] == {"accepted": 0, "duplicates": 1, "ignored": 0, "conflicts": 0}
    stored = store.get_response("delighted", "58201771")
    assert (stored.score, stored.comment) == (9, "Support answered within minutes.")
    assert len(store.raw_payloads("delighted", "58201771")) == 2


def test_bad_input_gets_a_clear_4xx(invoke):
    body = body_of("survey", "generic.json")
    cases = {
        "unsigned": ({**event_for("generic", body), "headers": {}}, 401, "invalid_signature"),
        "unknown provider": (
            _provider(event_for("generic", body), "qualtrix"),
            404,
            "unknown_provider",
        ),
        "not json": (event_for("generic", b"{oops"), 400, "malformed_body"),
        "invalid": (event_for("generic", b'{"id": "x"}'), 422, "invalid_payload"),
        "too large": (event_for("generic", b" " * (256 * 1024 + 1)), 413, "payload_too_large"),
    }
    for name, (event, status, code) in cases.items():
        got_status, got = invoke(event)
        assert (got_status, got["error"]) == (status, code), name
        assert got["message"], name


def test_invalid_payload_message_names_the_field_not_the_value(invoke):
    body = (
        b'{"id": "r1", "customer": {"email": "secret.person@example.com"}, "score": 42,'
        b' "submitted_at": "2026-01-01T00:00:00Z"}'
    )
    status, answer = invoke(event_for("generic", body))
    assert status == 422
    assert "score" in answer["message"]
    assert "secret.person" not in answer["message"] and "42" not in answer["message"]


def test_provider_missing_from_the_secrets_is_refused(invoke, tmp_path, monkeypatch):
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"api_tokens": [], "providers": {}}))
    monkeypatch.setenv("NPS_SYNC_SECRETS_FILE", str(secrets_file))

    status, answer = invoke(event_for("typeform", body_of("survey", "typeform.json")))
    assert (status, answer["error"]) == (401, "provider_not_configured")


def test_storage_failure_answers_503_so_the_provider_retries(invoke, monkeypatch):
    monkeypatch.setenv("RECORDS_TABLE", "a-table-that-does-not-exist")
    status, answer = invoke(event_for("typeform", body_of("survey", "typeform.json")))
    assert (status, answer["error"]) == (503, "storage_unavailable")


def test_no_email_or_comment_in_any_log_line(invoke, caplog, capsys):
    caplog.set_level("DEBUG", logger="nps-sync")
    for provider in ("typeform", "delighted", "formbricks", "generic"):
        invoke(event_for(provider, body_of("survey", f"{provider}.json")))
    invoke(event_for("generic", b'{"id": "x", "customer": {"email": "leak@example.com"}}'))

    # every attribute of every record (message, extra keys, appended keys), and raw output
    ours = [r for r in caplog.records if r.name.startswith("nps-sync")]
    text = "\n".join(json.dumps(r.__dict__, default=str) for r in ours)
    text += capsys.readouterr().out
    assert [r.getMessage() for r in ours].count("webhook received") == 4
    assert "request refused" in text
    for secret in ("@example", "Exports keep", "Support answered", "mobile app", "Best tool"):
        assert secret not in text


def _provider(event: dict, provider: str) -> dict:
    event = json.loads(json.dumps(event))
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/webhooks/survey/{provider}"
    event["pathParameters"] = {"provider": provider}
    return event


OUT_OF_RANGE = {
    "typeform": (("form_response", "submitted_at"), "9999-12-31T23:00:00-05:00"),
    "formbricks": (("data", "createdAt"), "0001-01-01T00:00:00+14:00"),
    "generic": ((0, "submitted_at"), "2999-12-31T23:59:59Z"),
    "delighted": (("event_data", "created_at"), 10**11 - 1),
}


@pytest.mark.parametrize("provider", OUT_OF_RANGE)
def test_a_time_out_of_range_is_422_naming_the_field_not_the_value(invoke, store, provider):
    path, value = OUT_OF_RANGE[provider]
    payload = json.loads(body_of("survey", f"{provider}.json"))
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value

    status, answer = invoke(event_for(provider, json.dumps(payload).encode()))

    assert (status, answer["error"]) == (422, "invalid_payload")
    assert path[-1] in answer["message"]
    assert str(value) not in answer["message"] and str(value)[:4] not in answer["message"]
    assert not boto3.client("dynamodb").scan(TableName=store.table_name)["Items"]


@pytest.mark.parametrize("provider", ["typeform", "delighted"])
@pytest.mark.parametrize("credentials", [{}, {"secret": 7}, {"api_key": "dev"}])
def test_a_misconfigured_secret_is_refused_with_401(
    invoke, tmp_path, monkeypatch, provider, credentials
):
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"providers": {provider: {"x": 1, **credentials}}}))
    monkeypatch.setenv("NPS_SYNC_SECRETS_FILE", str(secrets_file))

    status, answer = invoke(event_for(provider, body_of("survey", f"{provider}.json")))
    assert (status, answer["error"]) == (401, "provider_not_configured")


def test_a_non_string_email_answer_is_422_not_a_crash(invoke):
    payload = json.loads(body_of("survey", "typeform.json"))
    payload["form_response"]["hidden"] = {}
    payload["form_response"]["answers"].append({"type": "email", "email": {"a": 1}})

    status, answer = invoke(event_for("typeform", json.dumps(payload).encode()))
    assert (status, answer["error"]) == (422, "invalid_payload")
    assert "email" in answer["message"]


# --- an update is never mistaken for a duplicate ------------------------------------------------


def test_a_generic_correction_without_a_later_updated_at_is_a_409_and_stores_nothing(invoke, store):
    payload = json.loads(body_of("survey", "generic.json"))
    assert invoke(event_for("generic", json.dumps(payload).encode()))[0] == 202
    corrected = json.loads(json.dumps(payload))
    corrected[0]["score"] = 6  # no updated_at: the version of the stored answer, other content
    corrected.append(
        {
            "id": "resp-90",
            "customer": {"email": "eve@example.com"},
            "score": 8,
            "submitted_at": "2026-03-03T09:00:00Z",
        }
    )

    status, answer = invoke(event_for("generic", json.dumps(corrected).encode()))

    assert (status, answer["error"]) == (409, "conflict")
    assert "(resp-81)" in answer["message"] and "later updated_at" in answer["message"]
    assert "Nothing of this body was stored" in answer["message"]
    assert store.get_response("generic", "resp-81").score == 10
    assert store.get_response("generic", "resp-90") is None
    assert len(store.raw_payloads("generic", "resp-81")) == 1

    # when: the sender does what the 409 says, the correction replaces the answer
    corrected[0]["updated_at"] = "2026-03-02T12:00:00Z"
    status, answer = invoke(event_for("generic", json.dumps(corrected).encode()))

    assert (status, answer) == (202, {"accepted": 2, "duplicates": 1, "ignored": 0, "conflicts": 0})
    assert store.get_response("generic", "resp-81").score == 6
    assert store.get_response("generic", "resp-90").score == 8


def test_two_items_of_one_generic_body_at_one_version_with_other_content_are_a_409(invoke, store):
    item = json.loads(body_of("survey", "generic.json"))[0]
    body = json.dumps([item, {**item, "score": 2}]).encode()

    status, answer = invoke(event_for("generic", body))

    assert (status, answer["error"]) == (409, "conflict")
    assert "earlier item of this body" in answer["message"]
    assert store.get_response("generic", "resp-81") is None


def _metrics(output: str) -> list[dict]:
    """The EMF documents powertools printed (one JSON object a line)."""
    lines = (line for line in output.splitlines() if line.startswith('{"_aws"'))
    return [json.loads(line) for line in lines]


def test_a_provider_redelivery_with_other_content_keeps_the_first_and_is_counted(
    invoke, store, caplog, capsys
):
    caplog.set_level("INFO", logger="nps-sync")
    payload = json.loads(body_of("survey", "typeform.json"))
    invoke(event_for("typeform", json.dumps(payload).encode()))
    changed = json.loads(json.dumps(payload))
    answers = changed["form_response"]["answers"]
    answers[0]["number"], answers[1]["text"] = 9, "Changed my mind about the exports."
    capsys.readouterr()

    status, answer = invoke(event_for("typeform", json.dumps(changed).encode()))

    # then: a 202 (Typeform cannot correct it) that says so, and the first version is kept
    assert (status, answer) == (202, {"accepted": 0, "duplicates": 0, "ignored": 0, "conflicts": 1})
    stored = store.get_response("typeform", "a3a12ec67a1365927098a606107fac15")
    assert (stored.score, stored.comment) == (4, "Exports keep timing out.")
    raws = store.raw_payloads("typeform", stored.response_id)
    assert sorted(r["form_response"]["answers"][0]["number"] for r in raws) == [4, 9]
    # counted, and logged by references only
    output = capsys.readouterr().out
    assert [m["WebhookConflicts"] for m in _metrics(output) if "WebhookConflicts" in m] == [[1.0]]
    (line,) = [r for r in caplog.records if r.getMessage().startswith("webhook record repeats")]
    assert (line.levelname, line.provider) == ("WARNING", "typeform")
    assert line.record.startswith("rec_") and line.customer.startswith("cust_")
    text = json.dumps([r.__dict__ for r in caplog.records], default=str) + output
    for secret in ("ana@example", "Exports keep", "Changed my mind", stored.response_id):
        assert secret not in text
