"""JSON/form calls to a provider's API, standard library only (the layer gains no
dependency). Maps answers to ``base``'s errors: 429 and 5xx (and the network) are
``Retryable`` with the provider's Retry-After, other 4xx ``DestinationError`` unless the
caller expects them (HubSpot answers a batch with missing ids 207, Stripe a missing customer
404)."""

import base64
import email.utils
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nps_sync.destinations.base import DestinationError, Retryable

TIMEOUT = 10.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or the text when it is not JSON
    headers: Mapping[str, str] = field(default_factory=dict)


def retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str = "") -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def form(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe/Chargebee form encoding: nested maps as ``a[b]=``; None as an empty value
    (which both read as "unset")."""
    pairs: list[tuple[str, str]] = []
    for name, value in data.items():
        key = f"{prefix}[{name}]" if prefix else str(name)
        if isinstance(value, Mapping):
            pairs.extend(form(value, key))
        elif isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        else:
            pairs.append((key, "" if value is None else str(value)))
    return pairs


class Api:
    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float = TIMEOUT,
        opener: Callable[..., Any] = urllib.request.urlopen,
    ):
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.timeout = timeout
        self.opener = opener
        self.calls = 0  # requests sent, for the bench's calls per 1,000 customers

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form_body: Iterable[tuple[str, str]] | None = None,
        query: Mapping[str, Any] | Iterable[tuple[str, str]] | None = None,
        expect: Iterable[int] = (),
    ) -> Answer:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        headers = {"Accept": "application/json", **self.headers}
        data = None
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        elif form_body is not None:
            data = urllib.parse.urlencode(list(form_body)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - https or a local stand-in (vetted in settings)
        self.calls += 1
        try:
            with self.opener(request, timeout=self.timeout) as answer:
                return Answer(answer.status, _parsed(answer.read()), dict(answer.headers))
        except urllib.error.HTTPError as e:
            answer = Answer(e.code, _parsed(e.read()), dict(e.headers or {}))
        except (OSError, TimeoutError) as e:  # URLError is an OSError
            raise Retryable(f"{method} {path}: {type(e).__name__}") from None
        if answer.status in set(expect):
            return answer
        if answer.status == 429 or answer.status >= 500:
            raise Retryable(
                f"{method} {path}: HTTP {answer.status}",
                answer.status,
                retry_after(answer.headers.get("Retry-After")),
            )
        raise DestinationError(f"{method} {path}: HTTP {answer.status}", answer.status)


def _parsed(raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text
