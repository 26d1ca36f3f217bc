"""CRM adapters on realistic payloads: signatures and tokens, mapping, hostile bodies."""

import json
import time
from datetime import UTC, datetime
from functools import partial

import msgspec
import pytest

from billing_providers import generic as billing_generic
from crm_providers import ADAPTERS, generic, hubspot, salesforce
from local.signer import signed_headers
from nps_sync.core.errors import InvalidPayload, MalformedBody, NotConfigured, SignatureError
from nps_sync.core.signing import hubspot_signature, hubspot_signed_uri
from nps_sync.ingest.receive import Receipt, WebhookRequest
from nps_sync.store.secrets import provider_credentials
from nps_sync.store.subscriptions import new_secret
from tests.conftest import BODIES, body_of, signed

NOW = int(time.time())
# Verified against NOW, so signed at NOW: the suite may reach this module minutes after import.
signed = partial(signed, now=NOW)
REFUSED = (InvalidPayload, MalformedBody)
HUBSPOT_SECRET = "dev-hubspot-client-secret"  # local/dev-secrets.json
HUBSPOT_URL = "https://api.example.com/webhooks/crm/hubspot"
SF_TOKEN = "dev-salesforce-token"
SF_ORG = "00D000000000001AAA"


def at_ms(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def test_adapters_are_registered_by_provider_name():
    assert set(ADAPTERS) == {"hubspot", "salesforce", "generic"}
    assert (ADAPTERS["hubspot"], ADAPTERS["salesforce"]) == (hubspot, salesforce)


# --- HubSpot: signature v3 ---------------------------------------------------------------


def hubspot_request(
    body: bytes,
    url: str = HUBSPOT_URL,
    signed_url: str | None = None,
    timestamp_ms: int | None = None,
    secret: str = HUBSPOT_SECRET,
) -> WebhookRequest:
    timestamp = str(NOW * 1000 if timestamp_ms is None else timestamp_ms)
    signature = hubspot_signature(secret, "POST", signed_url or url, body, timestamp)
    headers = {
        "content-type": "application/json",
        "x-hubspot-signature-v3": signature,
        "x-hubspot-request-timestamp": timestamp,
    }
    return WebhookRequest(body=body, headers=headers, method="POST", url=url)


def hubspot_verify(request, settings, credentials=None) -> None:
    credentials = credentials or provider_credentials(settings, "hubspot")
    hubspot.verify(request, credentials, NOW, settings)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1693657560000", "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="),  # SDK test, today
        ("15000000", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="),  # the SDK's older test
    ],
)
def test_hubspot_sign_matches_the_official_python_sdk_vectors(timestamp, expected):
    signature = hubspot_signature(
        "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
        "POST",
        "https://www.example.com/webhook_uri",
        b"{'example_field':'example_value'}",
        timestamp,
    )
    assert signature == expected


def test_hubspot_accepts_its_own_signature(test_settings):
    hubspot_verify(
        hubspot_request(body_of("crm", "hubspot-contact.propertyChange.json")), test_settings
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: WebhookRequest(r.body.replace(b"DE", b"FR"), r.headers, r.method, r.url),
        lambda r: WebhookRequest(r.body, r.headers, "PUT", r.url),
        lambda r: WebhookRequest(r.body, r.headers, r.method, r.url + "/"),
        lambda r: WebhookRequest(r.body, r.headers, r.method, r.url.replace("https", "http")),
        lambda r: WebhookRequest(r.body, {}, r.method, r.url),
        lambda r: WebhookRequest(
            r.body, {**r.headers, "x-hubspot-request-timestamp": "1e12"}, r.method, r.url
        ),
        lambda r: WebhookRequest(
            r.body, {**r.headers, "x-hubspot-request-timestamp": "١٢٣"}, r.method, r.url
        ),
    ],
    ids=["body", "method", "trailing-slash", "scheme", "no-headers", "float-ts", "arabic-digits"],
)
def test_hubspot_refuses_anything_not_signed_exactly(test_settings, mutate):
    request = mutate(hubspot_request(body_of("crm", "hubspot-contact.propertyChange.json")))
    with pytest.raises(SignatureError):
        hubspot_verify(request, test_settings)


def test_hubspot_refuses_another_apps_secret(test_settings):
    request = hubspot_request(b"[]", secret="another-app-secret")
    with pytest.raises(SignatureError):
        hubspot_verify(request, test_settings)


@pytest.mark.parametrize("offset_seconds", [-301, 301])
def test_hubspot_refuses_a_timestamp_5_minutes_old_or_ahead(test_settings, offset_seconds):
    request = hubspot_request(b"[]", timestamp_ms=(NOW + offset_seconds) * 1000)
    with pytest.raises(SignatureError, match=r"too old|future"):
        hubspot_verify(request, test_settings)


def test_hubspot_accepts_a_timestamp_within_the_window(test_settings):
    hubspot_verify(hubspot_request(b"[]", timestamp_ms=(NOW - 299) * 1000), test_settings)


def test_hubspot_signs_the_registered_target_url_not_the_one_we_see(test_settings):
    registered = "https://hooks.example.org/hubspot"
    request = hubspot_request(b"[]", url=HUBSPOT_URL, signed_url=registered)
    credentials = {**provider_credentials(test_settings, "hubspot"), "target_url": registered}

    hubspot_verify(request, test_settings, credentials)
    with pytest.raises(SignatureError):
        hubspot_verify(request, test_settings)


def test_hubspot_uri_decodes_only_the_documented_escapes():
    url = "https://api.example.com/h?a=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%26%3D%2a%5B"
    assert hubspot_signed_uri(url) == "https://api.example.com/h?a=:/?@!$'()*,;&b=%20%26%3D*%5B"


def test_hubspot_verifies_a_url_with_escapes_as_hubspot_hashes_it(test_settings):
    url = HUBSPOT_URL + "?portal=46851201&tag=a%3Ab%20c"
    request = hubspot_request(b"[]", url=url)
    assert "a:b%20c" in hubspot_signed_uri(url)
    hubspot_verify(request, test_settings)


# --- HubSpot: events ---------------------------------------------------------------------


def hubspot_parse(body: bytes | list, settings):
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = hubspot_request(body)
    hubspot_verify(request, settings)
    return hubspot.parse(request, settings)


def hubspot_events(name: str) -> list[dict]:
    return json.loads(body_of("crm", name))


def test_hubspot_property_changes_become_one_field_profiles(test_settings):
    batch = hubspot_parse(body_of("crm", "hubspot-contact.propertyChange.json"), test_settings)

    profiles = [item.record for item in batch.records]
    by_field = {
        name: p
        for p in profiles
        for name in ("email", "lifecycle_stage", "country", "owner", "region")
        if getattr(p, name)
    }
    assert by_field["email"].email == "Ana@Example.com"
    assert by_field["email"].customer_key == "ana@example.com"
    assert by_field["lifecycle_stage"].customer_key == "hubspot:contact-901"
    assert by_field["lifecycle_stage"].lifecycle_stage == "customer"
    assert (by_field["country"].country, by_field["owner"].owner) == ("DE", "52831077")
    assert by_field["region"].region == "EMEA"  # new-style object.propertyChange, type 0-1
    assert by_field["email"].event_id == "2401519-1817204451-901-1772446500000"
    assert by_field["email"].source_updated_at == at_ms(1772446500000)
    assert all(p.provider == "hubspot" and p.object_type == "contact" for p in profiles)
    (deleted,) = [p for p in profiles if p.deleted]
    assert (deleted.source_id, deleted.email) == ("contact-904", None)
    # plan_tier is not configured and an association change carries no field of its own
    assert (len(profiles), batch.ignored) == (6, 2)
    assert batch.records[0].raw["subscriptionId"] == 2401519


def test_hubspot_event_ids_tell_apart_events_sharing_an_event_id(test_settings):
    batch = hubspot_parse(body_of("crm", "hubspot-contact.propertyChange.json"), test_settings)
    event_ids = [item.record.event_id for item in batch.records]
    assert len(set(event_ids)) == len(event_ids)


def test_hubspot_keeps_configured_extra_properties(test_settings):
    configured = msgspec.structs.replace(
        test_settings,
        crm_fields={"hubspot": {"region": "sales_region", "properties": ["plan_tier"]}},
    )
    batch = hubspot_parse(body_of("crm", "hubspot-contact.propertyChange.json"), configured)

    profiles = [item.record for item in batch.records]
    assert {"plan_tier": "enterprise"} in [p.properties for p in profiles]
    assert all(p.region is None for p in profiles)  # "region" is no longer the region property


def test_hubspot_company_creation_profiles_use_a_company_scoped_key(test_settings):
    batch = hubspot_parse(body_of("crm", "hubspot-company.creation.json"), test_settings)

    assert [(r.record.object_type, r.record.customer_key) for r in batch.records] == [
        ("company", "hubspot:company-5790939450"),
        ("company", "hubspot:company-5790939451"),
    ]
    assert batch.records[0].record.account is None


def test_hubspot_contact_and_company_with_the_same_id_do_not_collide(test_settings):
    events = [
        {
            "eventId": 1,
            "subscriptionId": 1,
            "occurredAt": 1772446500000,
            "objectId": 5,
            "subscriptionType": kind,
        }
        for kind in ("contact.creation", "company.creation")
    ]
    keys = {item.record.customer_key for item in hubspot_parse(events, test_settings).records}
    assert keys == {"hubspot:contact-5", "hubspot:company-5"}


def test_hubspot_company_name_change_sets_the_account(test_settings):
    events = [
        {
            "eventId": 9,
            "subscriptionId": 3,
            "occurredAt": 1772446500000,
            "objectId": 77,
            "subscriptionType": "company.propertyChange",
            "propertyName": "name",
            "propertyValue": "Acme GmbH",
        }
    ]
    (item,) = hubspot_parse(events, test_settings).records
    assert (item.record.object_type, item.record.account) == ("company", "Acme GmbH")


@pytest.mark.parametrize(
    "event",
    [
        {
            "subscriptionType": "contact.propertyChange",
            "propertyName": "email",
            "propertyValue": "",
        },
        {
            "subscriptionType": "contact.propertyChange",
            "propertyName": "firstname",
            "propertyValue": "x",
        },
        {"subscriptionType": "deal.creation"},
        {"subscriptionType": "object.creation", "objectTypeId": "0-3"},
        {"subscriptionType": "contact.merge", "primaryObjectId": 5, "mergedObjectIds": [6]},
    ],
)
def test_hubspot_events_with_nothing_to_store_are_ignored(test_settings, event):
    event = {"eventId": 1, "subscriptionId": 1, "occurredAt": 1772446500000, "objectId": 5, **event}
    batch = hubspot_parse([event], test_settings)
    assert (list(batch.records), batch.ignored) == ([], 1)


@pytest.mark.parametrize(
    "body",
    [
        b'{"eventId": 1}',
        b"[1, null]",
        b'[{"eventId": 1}]',
        json.dumps(
            [
                {
                    "eventId": 1,
                    "subscriptionId": 1,
                    "occurredAt": 1,
                    "objectId": 1,
                    "subscriptionType": "contact.creation",
                }
            ]
            * 101
        ).encode(),
        b'[{"eventId": true, "subscriptionId": 1, "occurredAt": 1, "objectId": 1,'
        b' "subscriptionType": "contact.creation"}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": 1, "objectId": {"a": 1},'
        b' "subscriptionType": "contact.creation"}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": 1, "objectId": "../x",'
        b' "subscriptionType": "contact.creation"}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": 1, "objectId": "5\\n",'
        b' "subscriptionType": "contact.creation"}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": 1,'
        b' "objectId": 100000000000000000000, "subscriptionType": "contact.creation"}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": 1, "objectId": 1,'
        b' "subscriptionType": "contact.associationChange", "toObjectId": 100000000000000000000}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": 99999999999999999999,'
        b' "objectId": 1, "subscriptionType": "contact.creation"}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": -1, "objectId": 1,'
        b' "subscriptionType": "contact.creation"}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": 1, "objectId": 1,'
        b' "subscriptionType": "contact.propertyChange", "propertyName": "email",'
        b' "propertyValue": {"x": 1}}]',
        b'[{"eventId": 1, "subscriptionId": 1, "occurredAt": 1, "objectId": 1,'
        b' "subscriptionType": "contact.propertyChange", "propertyName": "email",'
        b' "propertyValue": "' + b"a" * 600 + b'@example.com"}]',
        b"[{",
        b"\xff\xfe",
        b'[{"eventId": 1, "eventId": 2}]',
    ],
)
def test_hubspot_hostile_bodies_are_refused_as_bad_input(test_settings, body):
    with pytest.raises(REFUSED):
        hubspot_parse(body, test_settings)


def test_hubspot_needs_fetch_lists_contacts_lacking_data_once_and_not_deleted_ones():
    events = hubspot_events("hubspot-contact.propertyChange.json")
    events.append({**events[0], "objectId": 904, "propertyName": "country"})  # deleted later

    # 901: lifecyclestage change; 902: country/owner + association; 903: region/plan_tier
    assert hubspot.needs_fetch(events) == [
        ("contact", "901"),
        ("contact", "902"),
        ("contact", "903"),
    ]


def test_hubspot_needs_fetch_lists_created_companies_and_merge_survivors():
    events = [
        *hubspot_events("hubspot-company.creation.json"),
        {
            "eventId": 5,
            "subscriptionId": 8,
            "occurredAt": 1772446500000,
            "subscriptionType": "contact.merge",
            "primaryObjectId": 950,
            "mergedObjectIds": [951],
        },
        {
            "eventId": 6,
            "subscriptionId": 9,
            "occurredAt": 1772446500000,
            "subscriptionType": "company.associationChange",
            "associationType": "COMPANY_TO_CONTACT",
            "fromObjectId": 5790939450,
            "toObjectId": 960,
        },
    ]
    assert hubspot.needs_fetch(events) == [
        ("company", "5790939450"),
        ("company", "5790939451"),
        ("contact", "950"),
        ("contact", "960"),
    ]


def test_hubspot_needs_fetch_reads_a_company_whose_contacts_take_the_changed_property(
    test_settings,
):
    def change(object_id: int, name: str) -> dict:
        return {
            "eventId": object_id,
            "subscriptionId": 3,
            "occurredAt": 1772446500000,
            "objectId": object_id,
            "subscriptionType": "company.propertyChange",
            "propertyName": name,
            "propertyValue": "x",
        }

    events = [change(1, "name"), change(2, "sales_region"), change(3, "hubspot_owner_id")]
    configured = msgspec.structs.replace(
        test_settings, crm_fields={"hubspot": {"region": "sales_region"}}
    )

    assert hubspot.needs_fetch(events, configured) == [("company", "1"), ("company", "2")]
    assert hubspot.needs_fetch(events) == [("company", "1")]  # default region property


def test_hubspot_needs_fetch_refuses_hostile_input_like_parse():
    with pytest.raises(InvalidPayload, match=r"Expected `array`, got `object`"):
        hubspot.needs_fetch({"not": "a list"})


# --- Salesforce --------------------------------------------------------------------------

SF_BODY = (BODIES / "crm" / "salesforce-contact.xml").read_bytes()


def sf_request(body: bytes = SF_BODY, token: str | None = SF_TOKEN) -> WebhookRequest:
    query = {} if token is None else {"token": token}
    return WebhookRequest(
        body=body,
        headers={"content-type": "text/xml; charset=utf-8", "soapaction": '""'},
        url=HUBSPOT_URL.replace("hubspot", "salesforce") + (f"?token={token}" if token else ""),
        query=query,
    )


def sf_verify(request, settings, credentials=None) -> None:
    credentials = credentials or provider_credentials(settings, "salesforce")
    salesforce.verify(request, credentials, NOW, settings)


def sf_parse(body: bytes, settings, clock=lambda: NOW):
    request = sf_request(body)
    sf_verify(request, settings)
    return salesforce.parse(request, settings, clock=clock)


def notification(sobject_type: str, fields: str, notification_id: str = "04l5g00000LBnJsAAL"):
    return f"""
   <Notification>
    <Id>{notification_id}</Id>
    <sObject xsi:type="sf:{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     {fields}
    </sObject>
   </Notification>"""


def envelope(*notifications: str, org: str = SF_ORG) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{org}</OrganizationId>
   <ActionId>04k5g000000TWyzAAG</ActionId>
   <SessionId>00D000000000001!AQ4AQLb.secret.session</SessionId>
   {"".join(notifications)}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


@pytest.mark.parametrize("configured", [SF_ORG, SF_ORG[:15]])
def test_salesforce_accepts_our_token_and_org_in_15_or_18_characters(test_settings, configured):
    credentials = {"token": SF_TOKEN, "organization_ids": ["00Dxxxxxxxxxxxx", configured]}
    sf_verify(sf_request(), test_settings, credentials)
    sf_verify(sf_request(envelope(org=SF_ORG[:15])), test_settings, credentials)


@pytest.mark.parametrize(
    "request_",
    [
        sf_request(token=None),
        sf_request(token="dev-salesforce-tokeN"),
        sf_request(token="dev-salesforce-token-and-more"),
        sf_request(token="é"),
        sf_request(envelope(org="00D000000000002AAA")),
        sf_request(envelope(org="00d000000000001AAA")),  # ids are case-sensitive
        sf_request(envelope(org="")),
    ],
    ids=["no-token", "case", "longer", "non-ascii", "other-org", "org-case", "empty-org"],
)
def test_salesforce_refuses_a_wrong_token_or_another_org(test_settings, request_):
    with pytest.raises(SignatureError):
        sf_verify(request_, test_settings)


def test_salesforce_checks_the_token_before_reading_any_xml(test_settings):
    with pytest.raises(SignatureError):
        sf_verify(sf_request(b"<not xml", token="wrong"), test_settings)


def test_salesforce_contact_notifications_become_profiles(test_settings):
    batch = sf_parse(SF_BODY, test_settings)

    first = batch.records[0].record
    assert (first.provider, first.object_type, first.source_id) == (
        "salesforce",
        "contact",
        "0035g00000XyZaBAAV",
    )
    assert (first.customer_key, first.email, first.event_id) == (
        "ana@example.com",
        "ana@example.com",
        "04l5g00000LBnJqAAL",
    )
    assert (first.account, first.country, first.region, first.owner) == (
        None,  # not the raw Id: the stored Account's name, once it is known
        "DE",  # MailingCountryCode wins over the country's name
        "EMEA",
        "0055g00000K1mNoAAJ",
    )
    assert first.organization_id == "0015g00000AbCdEAAV"
    assert first.properties == {"NPS_Segment__c": "mid-market"}  # Region__c is the region
    assert first.source_updated_at == datetime(2026, 3, 2, 10, 15, 2, tzinfo=UTC)
    assert batch.ignored == 0


def test_salesforce_nil_fields_are_absent(test_settings):
    second = sf_parse(SF_BODY, test_settings).records[1].record

    assert (second.email, second.account, second.country, second.region) == (None,) * 4
    assert second.properties is None
    assert second.customer_key == "salesforce:0035g00000XyZbCAAV"
    assert second.source_updated_at == datetime(2026, 3, 2, 9, 58, 41, tzinfo=UTC)


def test_salesforce_raw_keeps_the_fields_but_never_the_session_id(test_settings):
    body = envelope(notification("Contact", "<sf:Id>0035g00000XyZaBAAV</sf:Id>"))
    (item,) = sf_parse(body, test_settings).records
    assert "secret.session" not in json.dumps(item.raw)
    assert item.raw["fields"] == {"Id": "0035g00000XyZaBAAV"}
    assert item.raw["NotificationId"] == "04l5g00000LBnJsAAL"


def test_salesforce_without_modification_dates_uses_the_time_of_receipt(test_settings):
    body = envelope(notification("Contact", "<sf:Id>0035g00000XyZaBAAV</sf:Id>"))
    (item,) = sf_parse(body, test_settings, clock=lambda: 1772446500.0).records
    assert item.record.source_updated_at == at_ms(1772446500000)


def test_salesforce_accounts_use_their_name_and_billing_country(test_settings):
    fields = """<sf:Id>0015g00000AbCdEAAV</sf:Id><sf:Name>Acme GmbH</sf:Name>
     <sf:BillingCountry>Germany</sf:BillingCountry><sf:Type>Customer</sf:Type>"""
    configured = msgspec.structs.replace(
        test_settings, crm_fields={"salesforce": {"lifecycle": "Type"}}
    )
    (item,) = sf_parse(envelope(notification("Account", fields)), configured).records
    record = item.record
    assert (record.object_type, record.account, record.country, record.lifecycle_stage) == (
        "account",
        "Acme GmbH",
        "Germany",
        "Customer",
    )
    assert record.customer_key == "salesforce:0015g00000AbCdEAAV"


def test_salesforce_contact_account_field_is_configurable(test_settings):
    fields = """<sf:Id>0035g00000XyZaBAAV</sf:Id><sf:AccountId>0015g00000AbCdEAAV</sf:AccountId>
     <sf:Account_Name__c>Acme GmbH</sf:Account_Name__c>"""
    configured = msgspec.structs.replace(
        test_settings, crm_fields={"salesforce": {"account": ["Account_Name__c"]}}
    )
    (item,) = sf_parse(envelope(notification("Contact", fields)), configured).records
    assert item.record.account == "Acme GmbH"
    assert item.record.organization_id == "0015g00000AbCdEAAV"
    assert item.record.properties is None  # the account field is not also a property


def test_salesforce_contact_account_id_field_is_configurable_and_checked(test_settings):
    fields = """<sf:Id>0035g00000XyZaBAAV</sf:Id><sf:Parent_Account__c>0015g00000AbCdEAAV
     </sf:Parent_Account__c><sf:AccountId>0015g00000ZzZzZAAV</sf:AccountId>"""
    configured = msgspec.structs.replace(
        test_settings, crm_fields={"salesforce": {"account_id": "Parent_Account__c"}}
    )
    (item,) = sf_parse(envelope(notification("Contact", fields)), configured).records
    assert (item.record.organization_id, item.record.properties) == ("0015g00000AbCdEAAV", None)

    bad = fields.replace("0015g00000AbCdEAAV", "not-an-id")
    with pytest.raises(InvalidPayload, match="Parent_Account__c") as refused:
        sf_parse(envelope(notification("Contact", bad)), configured)
    assert "not-an-id" not in str(refused.value)


def test_salesforce_other_objects_are_ignored(test_settings):
    body = envelope(notification("Lead", "<sf:Id>00Q5g00000AbCdEAAV</sf:Id>"))
    batch = sf_parse(body, test_settings)
    assert (list(batch.records), batch.ignored) == ([], 1)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>00D000000000001AAA</OrganizationId><ActionId>&lol4;</ActionId>
</notifications></soapenv:Body></soapenv:Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>00D000000000001AAA</OrganizationId><ActionId>&xxe;</ActionId>
</notifications></soapenv:Body></soapenv:Envelope>"""

EXTERNAL_DTD = SF_BODY.replace(
    b"?>", b'?>\n<!DOCTYPE soapenv:Envelope SYSTEM "http://169.254.169.254/latest/">', 1
)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE, EXTERNAL_DTD], ids=["laughs", "xxe", "dtd"])
def test_salesforce_refuses_entity_expansion_and_external_entities(test_settings, body):
    with pytest.raises(MalformedBody):
        sf_verify(sf_request(body), test_settings)
    with pytest.raises(MalformedBody):
        salesforce.parse(sf_request(body), test_settings)


def test_salesforce_body_in_an_unknown_encoding_is_malformed_not_a_500(test_settings):
    # found by the hostile-input fuzzing: expat raises LookupError for encoding="U0F-8"
    body = SF_BODY.replace(b'encoding="UTF-8"', b'encoding="U0F-8"', 1)
    assert body != SF_BODY
    with pytest.raises(MalformedBody):
        sf_verify(sf_request(body), test_settings)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<not xml",
        b"\xff\xfe<a/>",
        b"<Envelope/>",
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>',
        envelope(notification("Contact", "<sf:Email>a@example.com</sf:Email>")),  # no Id
        envelope(notification("Contact", "<sf:Id>../../etc</sf:Id>")),
        envelope(notification("Contact", "<sf:Id>0035g00000XyZaBAAV</sf:Id>", "not-an-id")),
        envelope(
            notification(
                "Contact",
                "<sf:Id>0035g00000XyZaBAAV</sf:Id><sf:LastModifiedDate>yesterday"
                "</sf:LastModifiedDate>",
            )
        ),
        envelope(
            *[notification("Contact", "<sf:Id>0035g00000XyZaBAAV</sf:Id>")] * 101,
        ),
        envelope(
            """<Notification><Id>04l5g00000LBnJsAAL</Id></Notification>"""  # no sObject
        ),
    ],
    ids=[
        "empty",
        "broken",
        "not-utf8",
        "not-soap",
        "no-body",
        "no-id",
        "bad-id",
        "bad-notification-id",
        "bad-date",
        "101-notifications",
        "no-sobject",
    ],
)
def test_salesforce_malformed_or_invalid_messages_are_refused_as_bad_input(test_settings, body):
    with pytest.raises(REFUSED):
        salesforce.parse(sf_request(body), test_settings)


def test_salesforce_ack_is_the_exact_soap_acknowledgement():
    status, headers, body = salesforce.ack_response()

    assert status == 200
    assert headers["content-type"].startswith("text/xml")
    assert body == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">\n'
        "  <soapenv:Body>\n"
        '    <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">\n'
        "      <Ack>true</Ack>\n"
        "    </notificationsResponse>\n"
        "  </soapenv:Body>\n"
        "</soapenv:Envelope>\n"
    )


def test_salesforce_acknowledge_answers_the_ack_for_stored_and_duplicate_messages():
    response = salesforce.acknowledge(Receipt(accepted=0, duplicates=2, ignored=0))
    assert (response.status_code, response.body) == (200, salesforce.ACK)
    assert response.content_type.startswith("text/xml")


def test_salesforce_fault_is_a_soap_server_fault_with_5xx():
    status, headers, body = salesforce.fault_response("storage <down>")
    assert status == 500 and headers["content-type"].startswith("text/xml")
    assert "<faultcode>soapenv:Server</faultcode>" in body
    assert "storage &lt;down&gt;" in body


# --- Generic -----------------------------------------------------------------------------


def generic_parse(body: bytes, settings):
    request = signed("generic", body)
    generic.verify(request, provider_credentials(settings, "generic"), NOW, settings)
    return generic.parse(request, settings)


def test_generic_crm_body_maps_every_field_and_leaves_absent_ones_none(test_settings):
    batch = generic_parse(body_of("crm", "generic.json"), test_settings)

    first, second = (item.record for item in batch.records)
    assert (first.customer_key, first.customer_id, first.event_id) == (
        "ana@example.com",
        "cust-1001",
        "evt-12",
    )
    assert (first.account, first.region, first.country, first.owner, first.lifecycle_stage) == (
        "Acme GmbH",
        "EMEA",
        "DE",
        "owner-17",
        "customer",
    )
    assert first.properties == {"segment": "mid-market"}
    assert batch.records[0].raw["crm_url"] == "https://crm.example.com/c/1001"  # kept raw
    assert (second.customer_key, second.region) == ("cust-1002", "APAC")
    assert (second.account, second.country, second.owner, second.properties) == (None,) * 4
    assert second.source_updated_at == datetime(2026, 3, 2, 10, 40, tzinfo=UTC)


def test_generic_accepts_a_single_object(test_settings):
    body = json.dumps(json.loads(body_of("crm", "generic.json"))[0]).encode()
    assert len(generic_parse(body, test_settings).records) == 1


def test_generic_refuses_a_bad_signature(test_settings):
    request = signed("generic", body_of("crm", "generic.json"))
    request = WebhookRequest(request.body.replace(b"EMEA", b"APAC"), request.headers)
    with pytest.raises(SignatureError):
        generic.verify(request, provider_credentials(test_settings, "generic"), NOW, test_settings)


@pytest.mark.parametrize(
    "item",
    [
        {"id": "e", "customer": {}, "updated_at": "2026-03-02T10:15:00Z"},
        {"id": "e", "customer": {"email": "a@example.com"}},
        {"id": "e", "customer": {"email": "a@example.com"}, "updated_at": "2026-03-02T10:15:00"},
        {
            "id": "e",
            "customer": {"email": "a@example.com"},
            "updated_at": "2026-03-02T10:15:00Z",
            "properties": {"n": 1},
        },
        {"id": "e", "customer": {"email": "not-an-email"}, "updated_at": "2026-03-02T10:15:00Z"},
        [{"id": "e"}],
    ],
)
def test_generic_invalid_bodies_are_refused(test_settings, item):
    with pytest.raises(REFUSED):
        generic_parse(json.dumps(item).encode(), test_settings)


# --- rotation: a provider's secret may be a list (README "Secrets") -----------------------


def test_hubspot_during_a_rotation_the_old_and_the_new_secret_verify_and_a_third_does_not(
    test_settings,
):
    body = body_of("crm", "hubspot-contact.propertyChange.json")
    rotating = {"client_secret": ["hs-new", "hs-old"]}
    for secret in ("hs-old", "hs-new"):
        hubspot_verify(hubspot_request(body, secret=secret), test_settings, rotating)
    with pytest.raises(SignatureError):
        hubspot_verify(hubspot_request(body, secret="hs-third"), test_settings, rotating)


def test_salesforce_during_a_rotation_the_old_and_the_new_token_verify_and_a_third_does_not(
    test_settings,
):
    rotating = {"token": ["sf-new-token", "sf-old-token"], "organization_ids": [SF_ORG]}
    for token in ("sf-old-token", "sf-new-token"):
        sf_verify(sf_request(token=token), test_settings, rotating)
    with pytest.raises(SignatureError):
        sf_verify(sf_request(token="sf-third-token"), test_settings, rotating)


@pytest.mark.parametrize(
    ("kind", "adapter"), [("crm", generic), ("billing", billing_generic)], ids=["crm", "billing"]
)
def test_generic_during_a_rotation_the_old_and_the_new_secret_verify_not_a_third(
    test_settings, kind, adapter
):
    """Our generic CRM and billing receivers (the survey one: test_survey_providers.py)."""
    old, new, third = new_secret(), new_secret(), new_secret()
    body = body_of(kind, "generic.json")
    rotating = {"secret": [new, old]}

    def request(secret):
        return WebhookRequest(body, signed_headers("generic", body, {"secret": secret}, now=NOW))

    for secret in (old, new):
        adapter.verify(request(secret), rotating, NOW, test_settings)
    with pytest.raises(SignatureError):
        adapter.verify(request(third), rotating, NOW, test_settings)


@pytest.mark.parametrize(
    ("adapter", "request_", "credentials"),
    [
        (hubspot, hubspot_request(b"[]"), {}),
        (hubspot, hubspot_request(b"[]"), {"client_secret": []}),
        (hubspot, hubspot_request(b"[]"), {"client_secret": [HUBSPOT_SECRET, ""]}),
        (salesforce, sf_request(), {"organization_ids": [SF_ORG]}),
        (salesforce, sf_request(), {"token": [], "organization_ids": [SF_ORG]}),
        (salesforce, sf_request(), {"token": [SF_TOKEN, 1], "organization_ids": [SF_ORG]}),
        (salesforce, sf_request(), {"token": SF_TOKEN}),
        (salesforce, sf_request(), {"token": SF_TOKEN, "organization_ids": []}),
    ],
)
def test_misconfigured_crm_credentials_are_not_configured_not_a_crash(
    test_settings, adapter, request_, credentials
):
    with pytest.raises(NotConfigured):
        adapter.verify(request_, credentials, NOW, test_settings)
