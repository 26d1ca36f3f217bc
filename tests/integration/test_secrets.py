"""The secrets document: a Parameter Store SecureString in the cloud (moto here), read once,
cached, and a failure is a 503; its API tokens with their scopes, and the at-risk cursor key."""

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.settings import Settings
from nps_sync.store import secrets

DOCUMENT = {"api_tokens": ["t1"], "providers": {"generic": {"secret": "whsec_abc"}}}


def settings_for(name: str) -> Settings:
    return Settings.of({"RECORDS_TABLE": "t", "SECRETS_PARAMETER": name})


def test_the_secret_is_read_once_per_cache_period():
    with mock_aws():
        client = boto3.client("ssm")
        name = "/nps-sync/secrets"
        client.put_parameter(Name=name, Value=json.dumps(DOCUMENT), Type="SecureString")
        first = secrets.load(settings_for(name), now=1000.0)
        client.put_parameter(
            Name=name, Value=json.dumps({"api_tokens": ["t2"]}), Type="SecureString", Overwrite=True
        )
        cached = secrets.load(settings_for(name), now=1000.0 + secrets.CACHE_SECONDS - 1)
        renewed = secrets.load(settings_for(name), now=1000.0 + secrets.CACHE_SECONDS)
    assert [t.token for t in first.api_tokens] == [t.token for t in cached.api_tokens] == ["t1"]
    assert first.providers["generic"] == {"secret": "whsec_abc"}
    assert [t.token for t in renewed.api_tokens] == ["t2"]


def test_a_missing_secret_is_unavailable_not_a_crash():
    """Not put yet after a deploy: 503, so providers retry until the operator puts it."""
    with mock_aws(), pytest.raises(StorageUnavailable):
        secrets.load(settings_for("/nps-sync/not-put-yet"))


# --- the document: tokens with scopes, the cursor key ----------------------------------------


def test_a_bare_token_is_admin_and_an_object_names_its_scope():
    document = secrets.parse(
        json.dumps({"api_tokens": ["old-style", {"token": "reader", "scope": "read"}, ""]})
    )
    assert [(t.token, t.scope) for t in document.api_tokens] == [
        ("old-style", "admin"),
        ("reader", "read"),
    ]
    admin, reader = document.api_tokens
    assert admin.allows("admin") and admin.allows("read")
    assert reader.allows("read") and not reader.allows("admin")
    assert "reader" not in repr(reader) and "old-style" not in repr(document)


def test_the_dev_secrets_have_an_admin_and_a_read_token():
    document = secrets.parse((Path(__file__).parents[2] / "local/dev-secrets.json").read_text())
    assert {(t.token, t.scope) for t in document.api_tokens} == {
        ("dev-token-change-me", "admin"),
        ("dev-read-token", "read"),
    }


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"api_tokens": [{"token": "s3cr3t-value", "scope": "root"}]}, "api_tokens.0.scope"),
        (
            {"api_tokens": [{"token": "s3cr3t-value"}]},
            "api_tokens.0: Object missing required field `scope`",
        ),
        (
            {"api_tokens": [{"token": "s3cr3t-value", "scope": "read", "x": 1}]},
            "api_tokens.0: Object contains unknown field `x`",
        ),
        ({"api_tokens": ["s3cr3t-value", {"token": "s3cr3t-value", "scope": "read"}]}, "twice"),
        ({"api_tokens": [7]}, "api_tokens.0"),
        ({"api_tokens": "s3cr3t-value"}, "api_tokens"),
        ({"cursor_key": "s3cr3t-value"}, "cursor_key"),
    ],
)
def test_a_document_that_is_not_valid_says_where_but_never_a_value(document, named):
    with pytest.raises(StorageUnavailable, match="the secrets document is not valid") as refused:
        secrets.parse(json.dumps(document))
    assert named in refused.value.message
    assert "s3cr3t" not in refused.value.message


def test_a_secrets_text_that_is_not_json_is_unavailable_not_a_crash():
    with pytest.raises(StorageUnavailable):
        secrets.parse("{not json")


def test_the_cursor_key_is_the_documents_own_or_derived_from_its_secrets():
    keyed = {**DOCUMENT, "cursor_key": "k" * 32}
    assert len(secrets.parse(json.dumps(keyed)).cursor_secret()) == 32
    assert secrets.parse(json.dumps(keyed)).cursor_secret() == (
        secrets.parse(json.dumps({"cursor_key": "k" * 32})).cursor_secret()
    )  # only the cursor_key counts when it is given
    derived = secrets.parse(json.dumps(DOCUMENT)).cursor_secret()
    assert derived == secrets.parse(json.dumps(DOCUMENT)).cursor_secret()
    assert derived != secrets.parse(json.dumps(keyed)).cursor_secret()
    rotated = {**DOCUMENT, "providers": {"generic": {"secret": ["whsec_new", "whsec_abc"]}}}
    assert derived != secrets.parse(json.dumps(rotated)).cursor_secret()
