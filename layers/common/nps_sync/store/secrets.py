"""Provider signing secrets and API tokens, read once per container and cached.

Cloud: one Secrets Manager secret (SECRET_ID). Local: a JSON file (NPS_SYNC_SECRETS_FILE).
Both hold the same document, described in README "Secrets".
"""

import json
import time
from typing import Any

from pydantic import BaseModel, Field

from nps_sync.core.errors import NotConfigured, StorageUnavailable
from nps_sync.core.settings import Settings

CACHE_SECONDS = 300


class SecretsDocument(BaseModel):
    api_tokens: list[str] = Field(default_factory=list)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)


_cache: tuple[float, SecretsDocument] | None = None


def load(settings: Settings, now: float | None = None) -> SecretsDocument:
    global _cache
    now = time.monotonic() if now is None else now
    if _cache and now - _cache[0] < CACHE_SECONDS:
        return _cache[1]
    if settings.secrets_file:
        with open(settings.secrets_file, encoding="utf-8") as handle:
            text = handle.read()
    elif settings.secret_id:
        text = _read_secret(settings.secret_id)
    else:
        text = "{}"
    document = SecretsDocument.model_validate(json.loads(text))
    _cache = (now, document)
    return document


def _read_secret(secret_id: str) -> str:
    """One GetSecretValue per container and CACHE_SECONDS, with the default session's client:
    this module caches already, and a second session (powertools' parameters) would load
    botocore's endpoint data again on the cold start of every webhook function."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (ClientError, BotoCoreError) as error:
        raise StorageUnavailable("reading the secrets failed") from error  # 503: retried


def provider_credentials(settings: Settings, provider: str) -> dict[str, Any]:
    """Credentials of one provider; a provider missing from the secrets is refused (401)."""
    credentials = load(settings).providers.get(provider)
    if not credentials:
        raise NotConfigured(f"no credentials configured for provider {provider!r}")
    return credentials


def clear_cache() -> None:
    global _cache
    _cache = None
