"""Survey tool adapters: each module has ``verify`` and ``parse`` (see nps_sync.ingest.receive)."""

from . import delighted, formbricks, generic, typeform

ADAPTERS = {
    "typeform": typeform,
    "delighted": delighted,
    "formbricks": formbricks,
    "generic": generic,
}
