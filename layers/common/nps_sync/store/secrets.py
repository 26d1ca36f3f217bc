"""Provider signing secrets and API tokens, read once per container and cached.

Cloud: one SSM Parameter Store SecureString (SECRETS_PARAMETER; docs/decisions.md "Secrets in
Parameter Store"). Local: a JSON file (NPS_SYNC_SECRETS_FILE). Both hold the same document,
described in README "Secrets".
"""

import hashlib
import hmac
import json
import time
from typing import Annotated, Any, Literal

import msgspec

from nps_sync.core.errors import NotConfigured, StorageUnavailable
from nps_sync.core.schema import message
from nps_sync.core.settings import Settings
from nps_sync.store import aws

CACHE_SECONDS = 300

Scope = Literal["read", "admin"]
# What each scope may do: ``admin`` includes ``read``.
GRANTS: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "admin": frozenset({"read", "admin"}),
}


class ApiToken(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A bearer token of the query API and what it may do (README "Secrets")."""

    token: Annotated[str, msgspec.Meta(min_length=1)]
    scope: Scope

    def __repr__(self) -> str:  # a token never reaches a log line or a traceback
        return f"ApiToken(scope={self.scope!r})"

    @classmethod
    def of(cls, entry: "str | ApiToken") -> "ApiToken":
        """A bare string is an ``admin`` token: that is what every token could do before
        tokens had scopes (docs/decisions.md)."""
        return entry if isinstance(entry, ApiToken) else cls(token=entry, scope="admin")

    def allows(self, scope: str) -> bool:
        return scope in GRANTS[self.scope]


# A msgspec Struct, as the settings: the webhook functions read this document on a cold start.
class SecretsDocument(msgspec.Struct, frozen=True, kw_only=True):
    # A bare string is an admin token (ApiToken.of); an empty one matched nothing before
    # scopes and still does, rather than fail.
    api_tokens: list[ApiToken | str] = msgspec.field(default_factory=list)
    providers: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    # CRM/billing destinations' API credentials, by the key a destination names
    # (docs/destinations.md "Credentials"): never returned by the API.
    destinations: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)
    # Seals GET /outcomes/at-risk cursors; absent: derived from the rest of the document.
    cursor_key: Annotated[str, msgspec.Meta(min_length=32)] | None = None

    def __post_init__(self) -> None:
        tokens = [ApiToken.of(entry) for entry in self.api_tokens if entry != ""]
        if len({t.token for t in tokens}) != len(tokens):
            raise ValueError("api_tokens: a token is listed twice")
        msgspec.structs.force_setattr(self, "api_tokens", tokens)

    def cursor_secret(self) -> bytes:
        """The 32-byte key of the at-risk cursors (nps_sync.core.sealing). Derived from
        ``cursor_key``, else from every secret of the document, so that it is as secret as
        they are; changing it (or, without ``cursor_key``, any secret) voids the cursors given
        out, which then answer 400 and the listing starts again from its first page."""
        material = self.cursor_key or json.dumps(msgspec.to_builtins(self), sort_keys=True)
        return hmac.new(b"nps-sync at-risk cursor v1", material.encode(), hashlib.sha256).digest()


_cache: tuple[float, SecretsDocument] | None = None


def load(settings: Settings, now: float | None = None) -> SecretsDocument:
    global _cache
    now = time.monotonic() if now is None else now
    if _cache and now - _cache[0] < CACHE_SECONDS:
        return _cache[1]
    if settings.secrets_file:
        with open(settings.secrets_file, encoding="utf-8") as handle:
            text = handle.read()
    elif settings.secrets_parameter:
        text = _read_parameter(settings.secrets_parameter)
    else:
        text = "{}"
    document = parse(text)
    _cache = (now, document)
    return document


def parse(text: str) -> SecretsDocument:
    """The document; one that is not valid is an operator's error to alarm on and fix while the
    providers retry (503, like a failed read), and the message never quotes a value."""
    try:
        return msgspec.json.decode(text, type=SecretsDocument)
    except msgspec.ValidationError as error:  # names the rule and the path (``$.api_tokens[0]``)
        reason = message(error)
    except msgspec.DecodeError:
        reason = "it is not JSON"
    raise StorageUnavailable(f"the secrets document is not valid: {reason}")


def _read_parameter(name: str) -> str:
    """One GetParameter (decrypted) per container and CACHE_SECONDS, with a client of the
    default session (nps_sync.store.aws: an "ssm" client of the full model parses ~1.5 MB on a
    cold start): this module caches already, and a second session (powertools' parameters)
    would load botocore's data again on the cold start of every webhook function. A parameter
    not put yet is the operator's to fix while providers retry (503)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)
    except (ClientError, BotoCoreError) as error:
        raise StorageUnavailable("reading the secrets failed") from error  # 503: retried
    return answer["Parameter"]["Value"]


def provider_credentials(settings: Settings, provider: str) -> dict[str, Any]:
    """Credentials of one provider; a provider missing from the secrets is refused (401)."""
    credentials = load(settings).providers.get(provider)
    if not credentials:
        raise NotConfigured(f"no credentials configured for provider {provider!r}")
    return credentials


def clear_cache() -> None:
    global _cache
    _cache = None
