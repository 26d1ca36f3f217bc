"""Who a record belongs to: one customer key across survey, CRM and billing systems.

The key is the normalized e-mail, else an explicit customer id, else the provider's own id
(``<provider>:<id>``) so that a record whose identity is not known yet is kept, not dropped.
"""


def normalize_email(email: object) -> str | None:
    """The e-mail as a key (trimmed, lower-cased), or None for anything that is not one:
    payloads put numbers, lists and objects where an e-mail should be."""
    if not isinstance(email, str) or not email:
        return None
    email = email.strip().lower()
    return email if "@" in email[1:-1] else None


def customer_key(
    email: str | None = None,
    customer_id: str | None = None,
    provider: str | None = None,
    provider_id: str | None = None,
) -> str | None:
    if normalized := normalize_email(email):
        return normalized
    if customer_id is not None and str(customer_id).strip():
        return str(customer_id).strip()
    if provider and provider_id is not None and str(provider_id).strip():
        return f"{provider}:{str(provider_id).strip()}"
    return None


def aliases(
    key: str,
    customer_id: str | None = None,
    provider: str | None = None,
    provider_id: str | None = None,
) -> list[str]:
    """The other keys this record's customer may already be stored under.

    A record keyed by e-mail that also names a customer id or a provider id links those ids
    to the e-mail, so records that arrived earlier under them are moved to the e-mail key.
    """
    found = []
    if customer_id is not None and str(customer_id).strip():
        found.append(str(customer_id).strip())
    if provider and provider_id is not None and str(provider_id).strip():
        found.append(f"{provider}:{str(provider_id).strip()}")
    return [alias for alias in dict.fromkeys(found) if alias != key]


def is_email_key(key: str) -> bool:
    return normalize_email(key) == key
