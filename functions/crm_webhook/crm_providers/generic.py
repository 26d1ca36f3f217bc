"""Our own documented CRM body (DESIGN.md §5), signed per Standard Webhooks.

A field left out stays None, which the store reads as "unchanged".
"""

from typing import Annotated

from pydantic import Field

from nps_sync.core.models import CrmProfile, Key
from nps_sync.ingest.receive import Batch, GenericProfile, generic_batch, verify_standard

verify = verify_standard

PropertyName = Annotated[str, Field(min_length=1, max_length=128)]
PropertyValue = Annotated[str, Field(max_length=2_000)]


class GenericCrm(GenericProfile):
    account: Key | None = None
    region: Key | None = None
    country: Key | None = None
    owner: Key | None = None
    lifecycle_stage: Key | None = None
    properties: Annotated[dict[PropertyName, PropertyValue], Field(max_length=100)] | None = None


def parse(request, settings) -> Batch:
    return generic_batch(request, GenericCrm, _profile)


def _profile(item: GenericCrm, key: str) -> CrmProfile:
    return CrmProfile(
        **item.identity(key),
        object_type="contact",
        email=item.customer.email,
        account=item.account,
        region=item.region,
        country=item.country,
        owner=item.owner,
        lifecycle_stage=item.lifecycle_stage,
        properties=item.properties,
    )
