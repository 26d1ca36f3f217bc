"""Our own documented CRM body (DESIGN.md §5), signed per Standard Webhooks.

A field left out stays None, which the store reads as "unchanged".
"""

from typing import Annotated

import msgspec

from nps_sync.core.models import CrmProfile, Key
from nps_sync.ingest.receive import Batch, GenericProfile, generic_batch, verify_standard

verify = verify_standard

PropertyName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
PropertyValue = Annotated[str, msgspec.Meta(max_length=2_000)]
Properties = Annotated[dict[PropertyName, PropertyValue], msgspec.Meta(max_length=100)]


class GenericCrm(GenericProfile, frozen=True, kw_only=True):
    account: Key | None = None
    region: Key | None = None
    country: Key | None = None
    owner: Key | None = None
    lifecycle_stage: Key | None = None
    properties: Properties | None = None


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
