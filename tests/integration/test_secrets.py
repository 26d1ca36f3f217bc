"""Secrets Manager in the cloud (moto here): read once, cached, and a failure is a 503."""

import json

import boto3
import pytest
from moto import mock_aws

from nps_sync.core.errors import StorageUnavailable
from nps_sync.core.settings import Settings
from nps_sync.store import secrets

DOCUMENT = {"api_tokens": ["t1"], "providers": {"generic": {"secret": "whsec_abc"}}}


def settings_for(secret_id: str) -> Settings:
    return Settings.model_validate({"RECORDS_TABLE": "t", "SECRET_ID": secret_id})


def test_the_secret_is_read_once_per_cache_period():
    with mock_aws():
        client = boto3.client("secretsmanager")
        arn = client.create_secret(Name="nps", SecretString=json.dumps(DOCUMENT))["ARN"]
        first = secrets.load(settings_for(arn), now=1000.0)
        client.put_secret_value(SecretId=arn, SecretString=json.dumps({"api_tokens": ["t2"]}))
        cached = secrets.load(settings_for(arn), now=1000.0 + secrets.CACHE_SECONDS - 1)
        renewed = secrets.load(settings_for(arn), now=1000.0 + secrets.CACHE_SECONDS)
    assert first.api_tokens == cached.api_tokens == ["t1"]
    assert first.providers["generic"] == {"secret": "whsec_abc"}
    assert renewed.api_tokens == ["t2"]


def test_a_missing_secret_is_unavailable_not_a_crash():
    with mock_aws(), pytest.raises(StorageUnavailable):
        secrets.load(settings_for("arn:aws:secretsmanager:us-east-1:123456789012:secret:gone"))
