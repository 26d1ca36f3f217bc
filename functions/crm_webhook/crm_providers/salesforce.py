"""Salesforce Outbound Messages: SOAP 1.1, up to 100 Notifications, answered with an Ack.

Salesforce does not sign them. A message is accepted when the ``token`` query parameter of
the endpoint URL configured in Salesforce matches ours (constant time) and its OrganizationId
is one of ours (first 15 characters, so 15- and 18-character ids both match). The token is
checked before any XML is read; a body that declares a DTD is refused before it is parsed
into a tree, so entity expansion and external entities never happen.

The handler must answer the Ack (``acknowledge(receipt)``, ``ack_response()``) whenever the
message is stored, duplicates included: anything else (JSON, an empty 200) counts as not
delivered and is retried for 24 h. Any non-200 is a NACK; on a storage failure
``fault_response()`` (a SOAP fault, HTTP 500) says so in Salesforce's own terms.

An Account is stored as an organization, not a customer; a Contact names its Account by Id
(``organization_id``) and takes the stored Account's name and region (nps_sync.store.records).

``source_updated_at`` is the later of LastModifiedDate and SystemModstamp when the outbound
message selects them (select at least one: the record sent is its state at send time, and
messages arrive out of order); without either it is the time of receipt.
"""

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from xml.etree.ElementTree import Element, ParseError, XMLParser
from xml.parsers import expat

import msgspec

from nps_sync.core.crm_fields import CrmFieldNames, field_names
from nps_sync.core.errors import InvalidPayload, MalformedBody, NotConfigured, SignatureError
from nps_sync.core.identity import customer_key
from nps_sync.core.models import CrmProfile, UtcDatetime
from nps_sync.core.signing import any_equal
from nps_sync.destinations.fields import default_names
from nps_sync.ingest.receive import Batch, Record, signing_secrets, validate
from nps_sync.web.http import Answer

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_NIL = f"{{{XSI}}}nil"  # read on every field of every notification: formatted once
ECHO_FIELDS = default_names("salesforce")
OBJECT_TYPES = {"Contact": "contact", "Account": "account"}
MAX_NOTIFICATIONS = 100

ACK = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Body>
    <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">
      <Ack>true</Ack>
    </notificationsResponse>
  </soapenv:Body>
</soapenv:Envelope>
"""

FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Body>
    <soapenv:Fault>
      <faultcode>soapenv:Server</faultcode>
      <faultstring>{reason}</faultstring>
    </soapenv:Fault>
  </soapenv:Body>
</soapenv:Envelope>
"""

XML_HEADERS = {"content-type": "text/xml; charset=utf-8"}


def ack_response() -> tuple[int, dict[str, str], str]:
    """The only answer Salesforce takes as delivered: HTTP 200 with this exact SOAP body."""
    return 200, dict(XML_HEADERS), ACK


def acknowledge(receipt) -> Answer:
    """The webhook route's answer once the message is stored, duplicates included."""
    status, headers, body = ack_response()
    return Answer(status_code=status, content_type=headers["content-type"], body=body)


def fault_response(reason: str = "temporarily unavailable") -> tuple[int, dict[str, str], str]:
    """A SOAP 1.1 Server fault (HTTP 500): not delivered, Salesforce retries."""
    safe = reason.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return 500, dict(XML_HEADERS), FAULT.format(reason=safe)


SF_ID = r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?\Z"  # \Z: ``$`` would take a trailing newline
SfId = Annotated[str, msgspec.Meta(pattern=SF_ID)]
_SF_ID = re.compile(SF_ID)


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    id: SfId
    sobject_type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    fields: dict[str, str | None]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    organization_id: SfId
    action_id: SfId | None = None
    notifications: Annotated[list[Notification], msgspec.Meta(max_length=MAX_NOTIFICATIONS)]


class Checked(msgspec.Struct, frozen=True, kw_only=True, rename="pascal"):
    """The sObject fields read as more than text (``Id``, ``LastModifiedDate``, …): checked
    in one pass over the fields, the others are ignored here and kept as they are."""

    id: SfId
    last_modified_date: UtcDatetime | None = None
    system_modstamp: UtcDatetime | None = None


def verify(request, credentials, now, settings) -> None:
    tokens = signing_secrets(credentials, "token")  # several while the URL's token is rotated
    org_ids = credentials.get("organization_ids")
    if not (isinstance(org_ids, list) and org_ids):
        raise NotConfigured("the salesforce credentials need organization_ids")
    given = request.query.get("token")
    if not isinstance(given, str) or not given:
        raise SignatureError("missing token query parameter")
    if not any_equal(tokens, given):
        raise SignatureError("the token does not match")
    organization = _organization_id(_envelope(request.body, keep=True))
    ours = {org[:15] for org in org_ids if isinstance(org, str) and len(org) in (15, 18)}
    if organization is None or len(organization) not in (15, 18) or organization[:15] not in ours:
        raise SignatureError("OrganizationId is not one of ours")


def parse(request, settings, clock: Callable[[], float] = time.time) -> Batch:
    message = read_message(request.body)
    names = field_names(settings, "salesforce")
    received = datetime.fromtimestamp(clock(), UTC)
    records, ignored = [], 0
    for notification in message.notifications:
        object_type = OBJECT_TYPES.get(notification.sobject_type)
        if object_type is None:
            ignored += 1  # Lead, Opportunity, …: not a CRM profile
            continue
        profile = _profile(notification, object_type, names, received)
        records.append(Record(profile, _raw(message, notification)))
    return Batch(records=records, ignored=ignored)


def read_message(body: bytes) -> Message:
    """The notifications of an Outbound Message envelope (raises MalformedBody, InvalidPayload)."""
    notifications = _notifications(_envelope(body))
    message = {
        "organization_id": _text(notifications, "OrganizationId") or "",
        "action_id": _text(notifications, "ActionId"),
        "notifications": [
            _notification(item) for item in notifications.findall(f"{{{OUTBOUND}}}Notification")
        ],
    }
    return validate(message, Message)


_kept: tuple[bytes, Element] | None = None  # the envelope verify read, until parse takes it


def _envelope(body: bytes, keep: bool = False) -> Element:
    """The SOAP envelope, read once per request: verify reads and keeps it, parse takes it
    (the same body object, found by ``is``: held here, its id cannot be reused meanwhile).
    Taken once, so every request is read, a repeated one too."""
    global _kept
    kept, _kept = _kept, None
    if kept is not None and kept[0] is body:
        return kept[1]
    _refuse_dtd(body)
    try:
        # no DTD (checked above): nothing for defusedxml to refuse, and the C parser reads it
        # in ~50 us where defusedxml's pure-Python one took ~115 us
        parser = XMLParser()  # noqa: S314
        parser.feed(body)
        root = parser.close()
    except (ParseError, ValueError, LookupError) as error:  # LookupError: unknown encoding=
        raise MalformedBody("the body is not well-formed XML") from error
    if root.tag != f"{{{SOAP}}}Envelope":
        raise InvalidPayload("the body is not a SOAP 1.1 envelope")
    if keep:
        _kept = (body, root)
    return root


def _refuse_dtd(body: bytes) -> None:
    """One expat pass with only the DTD handlers set (so it runs in C) refuses any DOCTYPE
    or entity declaration, as defusedxml's ``forbid_dtd`` did, before a tree is built."""
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _dtd_found
    parser.EntityDeclHandler = _dtd_found
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, ValueError, LookupError) as error:
        raise MalformedBody("the body is not well-formed XML") from error


def _dtd_found(*_: Any) -> None:
    raise MalformedBody("the XML body declares a DTD or entities, which are refused")


def _notifications(root: Element) -> Element:
    found = root.find(f"{{{SOAP}}}Body/{{{OUTBOUND}}}notifications")
    if found is None:
        raise InvalidPayload("the SOAP body has no outbound notifications element")
    return found


def _organization_id(root: Element) -> str | None:
    return _text(_notifications(root), "OrganizationId")


def _text(parent: Element, name: str) -> str | None:
    element = parent.find(f"{{{OUTBOUND}}}{name}")
    return None if element is None else _value(element)


def _value(element: Element) -> str | None:
    """An element's text; ``xsi:nil="true"``, empty and nested elements count as absent."""
    if element.get(XSI_NIL) in ("true", "1") or len(element):
        return None
    text = (element.text or "").strip()
    return text or None


def _notification(element: Element) -> dict[str, Any]:
    sobject = element.find(f"{{{OUTBOUND}}}sObject")
    if sobject is None:
        raise InvalidPayload("a Notification has no sObject")
    declared = sobject.get(f"{{{XSI}}}type") or ""
    return {
        "id": _text(element, "Id") or "",
        "sobject_type": declared.rpartition(":")[2],  # "sf:Contact" -> "Contact"
        "fields": {
            child.tag.rpartition("}")[2]: _value(child)
            for child in sobject
            if isinstance(child.tag, str)
        },
    }


def _profile(
    notification: Notification, object_type: str, names: CrmFieldNames, received: datetime
) -> CrmProfile:
    fields = {k: v for k, v in notification.fields.items() if v is not None}
    if "Id" not in fields:
        raise InvalidPayload("an sObject has no Id")
    checked = validate(fields, Checked)
    source_id = checked.id
    email = fields.get("Email") if object_type == "contact" else None
    organization = None
    if object_type == "contact":
        account = _first(fields, names.account)
        country = _first(fields, ("MailingCountryCode", "MailingCountry"))
        if names.account_id and fields.get(names.account_id):
            organization = fields[names.account_id]
            if not _SF_ID.search(organization):
                raise InvalidPayload(f"{names.account_id}: must be a Salesforce Id")
    else:
        account = fields.get("Name")
        country = _first(fields, ("BillingCountryCode", "BillingCountry"))
    stamps = [s for s in (checked.last_modified_date, checked.system_modstamp) if s is not None]
    used = {names.region, names.lifecycle, names.account_id, *names.account}
    # what our write-back sets is not read back (docs/destinations.md "Echoes")
    custom = {
        k: v
        for k, v in fields.items()
        if k.endswith("__c") and k not in used and k not in ECHO_FIELDS
    }
    return CrmProfile(
        provider="salesforce",
        source_id=source_id,
        object_type=object_type,
        customer_key=customer_key(email, None, "salesforce", source_id),
        event_id=notification.id,
        source_updated_at=max(stamps) if stamps else received,
        email=email,
        account=account,
        region=fields.get(names.region) if names.region else None,
        country=country,
        owner=fields.get("OwnerId"),
        lifecycle_stage=fields.get(names.lifecycle) if names.lifecycle else None,
        properties=custom or None,
        organization_id=organization,
    )


def _first(fields: dict[str, str], names: tuple[str, ...]) -> str | None:
    return next((fields[name] for name in names if name in fields), None)


def _raw(message: Message, notification: Notification) -> dict[str, Any]:
    """What is kept of the message: never the SessionId, which is a live API session."""
    return {
        "OrganizationId": message.organization_id,
        "ActionId": message.action_id,
        "NotificationId": notification.id,
        "sObjectType": notification.sobject_type,
        "fields": notification.fields,
    }
