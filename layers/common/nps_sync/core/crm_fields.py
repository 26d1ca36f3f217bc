"""Which CRM field holds what: the names differ per company, so they are settings.

Read from ``settings.crm_fields`` (env ``CRM_FIELDS``, JSON keyed by provider), e.g.
``{"hubspot": {"region": "sales_region", "properties": ["plan_tier"]},
"salesforce": {"region": "Region__c", "account": ["Account_Name__c"]}}``.
A provider left out keeps the defaults below.

A Salesforce Contact names its Account by Id (``account_id``, ``AccountId`` by default): the
Account's own notifications are stored, and the contact takes the stored Account's name as its
account (docs/identity.md "Organizations"); ``account`` lists Contact fields that hold the
name itself (a formula field), which win when present.
"""

from typing import Annotated

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class CrmFieldNames(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    region: Name | None = None  # the field or property holding the sales region
    properties: tuple[Name, ...] = ()  # HubSpot: extra properties kept in ``properties``
    account: tuple[Name, ...] = ()  # Salesforce Contact: first present holds the account name
    account_id: Name | None = None  # Salesforce Contact: the field with its Account's Id
    lifecycle: Name | None = None  # Salesforce: the field holding a lifecycle stage


DEFAULTS = {
    "hubspot": CrmFieldNames(region="region"),
    "salesforce": CrmFieldNames(region="Region__c", account_id="AccountId"),
}


def field_names(settings, provider: str) -> CrmFieldNames:
    base = DEFAULTS.get(provider, CrmFieldNames())
    configured = (getattr(settings, "crm_fields", None) or {}).get(provider)
    if configured is None:
        return base
    if isinstance(configured, CrmFieldNames):
        return configured
    try:
        return msgspec.convert(
            {**msgspec.structs.asdict(base), **configured}, CrmFieldNames, strict=True
        )
    except (msgspec.ValidationError, TypeError) as error:
        # A deployment error, not bad input: fail loudly (5xx) so the provider retries.
        raise RuntimeError(f"CRM_FIELDS[{provider!r}] is not valid") from error
