"""Survey tool adapters: each module has ``verify`` and ``parse``
(nps_sync.ingest.receive), imported when a request names it (receive.Adapters)."""

from collections.abc import Mapping

from nps_sync.core.errors import InvalidPayload
from nps_sync.ingest.receive import Adapters

ADAPTERS = Adapters(__name__, ("typeform", "delighted", "formbricks", "generic"))


def in_body_names(error: InvalidPayload, names: Mapping[str, str]) -> InvalidPayload:
    """A record's refusal ("submitted_at: is before 2000-01-01": the record bounds the times)
    told with the field's name in the provider's body, which its sender can find."""
    name, colon, rule = error.message.partition(":")
    return InvalidPayload(f"{names[name]}:{rule}") if colon and name in names else error
