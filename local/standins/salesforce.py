"""A Salesforce REST API stand-in: what the destination client uses (SOQL query, sObject
Collections update and retrieve, describe) on Contact and Account records.

Answers like Salesforce does (docs/destinations.md, "Salesforce", has the sources): errors are
a JSON list of ``{"message", "errorCode", "fields"}``; a wrong bearer token is 401
INVALID_SESSION_ID; more than 200 records in an update is 400 EXCEEDED_ID_LIMIT; an update
answers 200 with one SaveResult ``{id, success, errors: [{statusCode, message, fields}]}`` per
record, in order; a retrieve answers a record or null per id; numbers come back as JSON
numbers, an unchecked checkbox as false, anything unset as null. Limits: ``daily_limit``
requests per rolling 24 h, then 403 REQUEST_LIMIT_EXCEEDED "TotalRequests Limit exceeded."
(Developer Edition: 15,000); ``limit_exceeded`` queues that 403 or its concurrent-requests
twin. Salesforce documents no 429 and no Retry-After for these APIs; ``fail_next`` queues any
answer. Ids are 18 characters (Contact 003…, Account 001…) with the real case-safe suffix.

    python -m local.standins.salesforce --port 8026 --token dev-salesforce-access-token
"""

import re
import threading
from datetime import date

from local.standins.base import Reply, Request, Standin, reply, serve
from nps_sync.destinations import fields as fields_
from nps_sync.destinations.base import ORGANIZATION, PERSON

BATCH_LIMIT = 200  # records per sObject Collections update
READ_LIMIT = 2000  # ids per sObject Collections retrieve (POST)
GET_IDS = 800  # about as many ids as fit a GET URL before 414
QUERY_BATCH = 2000  # records per query page
DAILY_LIMIT = 15_000  # Developer Edition's 24 h allocation
PREFIXES = {"Contact": "003", "Account": "001"}
TYPES = {"number": "double", "text": "string", "date": "date", "bool": "boolean"}
BASE_FIELDS = {
    "Contact": {
        "Id": "id",
        "Email": "email",
        "FirstName": "string",
        "LastName": "string",
        "AccountId": "reference",
    },
    "Account": {"Id": "id", "Name": "string", "BillingCountry": "string"},
}
READ_ONLY = {"Id"}
LEVELS = {PERSON: "Contact", ORGANIZATION: "Account"}
VERSION = r"/services/data/v(?P<version>\d+\.\d+)"
QUERY = re.compile(VERSION + r"/query/?$")
MORE = re.compile(VERSION + r"/query/(?P<locator>[\w-]+)$")
COLLECTION = re.compile(VERSION + r"/composite/sobjects/?$")
RETRIEVE = re.compile(VERSION + r"/composite/sobjects/(?P<type>\w+)$")
DESCRIBE = re.compile(VERSION + r"/sobjects/(?P<type>\w+)/describe/?$")
SELECT = re.compile(
    r"^\s*SELECT\s+(?P<fields>[\w\s,]+?)\s+FROM\s+(?P<type>\w+)"
    r"(?:\s+WHERE\s+(?P<field>\w+)\s*(?P<op>=|IN)\s*(?P<values>.+?))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def errors(code: str, message: str, fields: list[str] | None = None) -> list[dict]:
    """Salesforce's REST error body: a list of errors."""
    return [{"message": message, "errorCode": code, "fields": fields or []}]


def record_id(prefix: str, n: int) -> str:
    """An 18-character id: 15 characters and the suffix that encodes their case."""
    short = f"{prefix}5g00000{n:05d}"[:15]
    return short + case_suffix(short)


def case_suffix(short: str) -> str:
    """Three characters, one per five of the 15: a bit for each upper-case letter."""
    return "".join(
        SUFFIX[sum(1 << i for i, ch in enumerate(short[start : start + 5]) if ch.isupper())]
        for start in range(0, 15, 5)
    )


class SalesforceStandin(Standin):
    kind = "salesforce"

    def __init__(
        self,
        token: str = "dev-salesforce-access-token",  # noqa: S107 - a local stand-in
        *,
        daily_limit: int | None = DAILY_LIMIT,
        omit: tuple[str, ...] = (),  # custom fields the org lacks (``check`` names them)
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        rate = (daily_limit, 86_400.0) if daily_limit else None
        super().__init__(token, rate=rate, host=host, port=port)
        self.fields: dict[str, dict[str, str]] = {t: dict(f) for t, f in BASE_FIELDS.items()}
        for logical, (level, kind, _) in fields_.FIELDS.items():
            name = fields_.default_name("salesforce", logical)
            if name not in omit:
                sobject = LEVELS[level]
                self.fields[sobject][name] = "textarea" if logical == "comment" else TYPES[kind]
        self.records: dict[str, dict[str, dict]] = {t: {} for t in BASE_FIELDS}
        self.deleted: set[str] = set()
        self.query_batch = QUERY_BATCH
        self._cursors: dict[str, list[dict]] = {}
        self._serial = 0
        self._ids = threading.Lock()

    # -- seeding and reading back --------------------------------------------------------

    def add(self, sobject: str, **values) -> str:
        """A record with these fields (unset fields are null); answers its id."""
        with self._ids:
            self._serial += 1
            new_id = record_id(PREFIXES[sobject], self._serial)
        stored = {name: _unset(kind) for name, kind in self.fields[sobject].items()}
        stored.update(values)
        stored["Id"] = new_id
        self.records[sobject][new_id] = stored
        return new_id

    def delete(self, record: str) -> None:
        for stored in self.records.values():
            if stored.pop(record, None) is not None:
                self.deleted.add(record)

    def populate(self, customers: list[dict]) -> None:
        """One Account per distinct account name, one Contact per customer (Email, AccountId):
        demo data finds them by e-mail and name."""
        accounts: dict[str, str] = {}
        for customer in customers:
            name = customer.get("account")
            if name and name not in accounts:
                accounts[name] = self.add("Account", Name=name)
            local_part = str(customer["email"]).split("@")[0]
            self.add(
                "Contact",
                Email=customer["email"],
                LastName=local_part,
                AccountId=accounts.get(name) if name else None,
            )

    def find(self, sobject: str, field: str, value: str) -> dict | None:
        for stored in self.records[sobject].values():
            held = stored.get(field)
            if isinstance(held, str) and held.lower() == value.lower():
                return stored
        return None

    def fields_of(self, email: str) -> dict:
        """The Contact with this e-mail, every field (our NPS fields among them)."""
        found = self.find("Contact", "Email", email)
        return dict(found) if found else {}

    def account_fields(self, name: str) -> dict:
        found = self.find("Account", "Name", name)
        return dict(found) if found else {}

    def limit_exceeded(self, concurrent: bool = False, times: int = 1) -> None:
        """The next ``times`` calls answer 403 REQUEST_LIMIT_EXCEEDED, as Salesforce does for
        its 24 h allocation or (``concurrent``) its long-running concurrent requests."""
        self.failures.extend([Reply(403, _limit(concurrent))] * times)

    # -- Salesforce's answers ------------------------------------------------------------

    def unauthorized(self, request: Request) -> Reply:
        return reply(401, errors("INVALID_SESSION_ID", "Session expired or invalid"))

    def error(self, status: int) -> list[dict]:
        if status == 403:
            return _limit(False)
        if status == 404:
            return errors("NOT_FOUND", "The requested resource does not exist")
        if status == 503:
            return errors("SERVER_UNAVAILABLE", "Server temporarily unavailable")
        if status >= 500:
            return errors("UNKNOWN_EXCEPTION", "An unexpected error occurred.")
        return errors("BAD_REQUEST", f"HTTP {status}")

    def rate_limited(self, retry_after: float) -> Reply:
        return reply(403, _limit(False))  # the 24 h allocation: no Retry-After

    def route(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if QUERY.match(path) and method == "GET":
            return self._query(request.arg("q") or "", QUERY.match(path)["version"])
        if (found := MORE.match(path)) and method == "GET":
            return self._more(found["locator"], found["version"])
        if COLLECTION.match(path) and method == "PATCH":
            return self._update(request.json(), COLLECTION.match(path)["version"])
        if (found := RETRIEVE.match(path)) and method in ("GET", "POST"):
            return self._retrieve(found["type"], request, found["version"])
        if (found := DESCRIBE.match(path)) and method == "GET":
            return self._describe(found["type"])
        return reply(404, errors("NOT_FOUND", "The requested resource does not exist"))

    # -- SOQL ----------------------------------------------------------------------------

    def _query(self, soql: str, version: str) -> Reply:
        """The SOQL the client sends: ``SELECT f, … FROM T [WHERE f = 'v' | f IN ('v', …)]``;
        text compares case-insensitively, as SOQL does."""
        parsed = SELECT.match(soql)
        if not parsed:
            return reply(400, errors("MALFORMED_QUERY", "unexpected token"))
        sobject = parsed["type"]
        if sobject not in self.fields:
            return reply(400, errors("INVALID_TYPE", f"sObject type '{sobject}' is not supported."))
        names = [n.strip() for n in parsed["fields"].split(",") if n.strip()]
        unknown = [n for n in [*names, parsed["field"] or "Id"] if n not in self.fields[sobject]]
        if unknown:
            message = f"No such column '{unknown[0]}' on entity '{sobject}'."
            return reply(400, errors("INVALID_FIELD", message))
        matched = list(self.records[sobject].values())
        if parsed["field"]:
            values = _literals(parsed["values"], parsed["op"].upper() == "IN")
            if values is None:
                return reply(400, errors("MALFORMED_QUERY", "unexpected token"))
            wanted = {v.lower() for v in values}
            matched = [
                r
                for r in matched
                if isinstance(r.get(parsed["field"]), str) and r[parsed["field"]].lower() in wanted
            ]
        rows = [self._row(sobject, r, names, version) for r in matched]
        return reply(200, self._page(rows, version))

    def _page(self, rows: list[dict], version: str, total: int | None = None) -> dict:
        page, rest = rows[: self.query_batch], rows[self.query_batch :]
        answer: dict = {"totalSize": len(rows) if total is None else total, "done": not rest}
        if rest:
            with self._ids:
                self._serial += 1
                locator = f"01gSTANDIN{self._serial:05d}-{self.query_batch}"
            self._cursors[locator] = rest
            answer["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}"
        answer["records"] = page
        return answer

    def _more(self, locator: str, version: str) -> Reply:
        rows = self._cursors.pop(locator, None)
        if rows is None:
            return reply(400, errors("INVALID_QUERY_LOCATOR", "invalid query locator"))
        return reply(200, self._page(rows, version))

    def _row(self, sobject: str, stored: dict, names: list[str], version: str) -> dict:
        url = f"/services/data/v{version}/sobjects/{sobject}/{stored['Id']}"
        row: dict = {"attributes": {"type": sobject, "url": url}}
        row.update({name: stored.get(name) for name in names})
        return row

    # -- sObject Collections -------------------------------------------------------------

    def _retrieve(self, sobject: str, request: Request, version: str) -> Reply:
        if sobject not in self.fields:
            return reply(404, errors("NOT_FOUND", "The requested resource does not exist"))
        if request.method == "GET":
            ids = [i for v in request.query.get("ids", []) for i in v.split(",") if i]
            names = [n for v in request.query.get("fields", []) for n in v.split(",") if n]
            if len(ids) > GET_IDS:
                return reply(414, errors("URI_TOO_LONG", "URI Too Long"))
        else:
            body = request.json()
            if not isinstance(body, dict):
                return reply(400, errors("JSON_PARSER_ERROR", "Unexpected end of input"))
            ids, names = body.get("ids") or [], body.get("fields") or []
            if len(ids) > READ_LIMIT:
                message = f"record limit reached. cannot submit more than {READ_LIMIT} records"
                return reply(400, errors("EXCEEDED_ID_LIMIT", message))
        if not ids or not names:
            return reply(400, errors("MISSING_ARGUMENT", "ids and fields are required"))
        unknown = [n for n in names if n not in self.fields[sobject]]
        if unknown:
            message = f"No such column '{unknown[0]}' on entity '{sobject}'."
            return reply(400, errors("INVALID_FIELD", message))
        found = []
        for wanted in ids:
            stored = self._get(sobject, str(wanted))
            found.append(self._row(sobject, stored, names, version) if stored else None)
        return reply(200, found)

    def _get(self, sobject: str, wanted: str) -> dict | None:
        """By the 18-character id or its 15-character case-sensitive form."""
        held = self.records[sobject]
        if len(wanted) == 15:
            wanted += case_suffix(wanted)
        return held.get(wanted)

    def _update(self, body, version: str) -> Reply:
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list):
            return reply(400, errors("JSON_PARSER_ERROR", "records is required"))
        if len(records) > BATCH_LIMIT:
            message = (
                f"record limit reached. cannot submit more than {BATCH_LIMIT} records into "
                "this call"
            )
            return reply(400, errors("EXCEEDED_ID_LIMIT", message))
        if any(
            not isinstance(r, dict) or not isinstance(r.get("attributes"), dict) for r in records
        ):
            return reply(400, errors("INVALID_TYPE", "Must send a concrete entity type."))
        types = [r["attributes"].get("type") for r in records]
        if sum(1 for i, t in enumerate(types) if i == 0 or t != types[i - 1]) > 10:
            message = "Cannot have more than 10 chunks in a single operation."
            return reply(400, errors("INVALID_BATCH_REQUEST", message))
        results, changes = [], []
        for record in records:
            problem, change = self._validate(record)
            if problem:
                results.append({"success": False, "errors": [problem]})
            else:
                results.append({"id": change[1]["Id"], "success": True, "errors": []})
                changes.append(change)
        if body.get("allOrNone") and len(changes) < len(records):
            rolled = {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header",
                "fields": [],
            }
            results = [
                r if not r["success"] else {"success": False, "errors": [rolled]} for r in results
            ]
            return reply(200, results)
        for values, stored in changes:
            stored.update(values)
        return reply(200, results)

    def _validate(self, record: dict) -> tuple[dict | None, tuple]:
        """One record's SaveResult error, or the values to store on which record."""
        sobject = record["attributes"].get("type")
        if sobject not in self.fields:
            return _error("INVALID_TYPE", f"sObject type '{sobject}' is not supported."), ()
        wanted = str(record.get("id") or "")
        if not wanted:
            return _error("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]), ()
        stored = self._get(sobject, wanted)
        if stored is None:
            if wanted in self.deleted:
                return _error("ENTITY_IS_DELETED", "entity is deleted"), ()
            message = f"{sobject} ID: id value of incorrect type: {wanted}"
            return _error("MALFORMED_ID", message, ["Id"]), ()
        values = {}
        for name, value in record.items():
            if name in ("attributes", "id"):
                continue
            kind = self.fields[sobject].get(name)
            if kind is None or name in READ_ONLY:
                message = f"No such column '{name}' on sobject of type {sobject}"
                return _error("INVALID_FIELD", message, [name]), ()
            converted = _convert(kind, value)
            if converted is _INVALID:
                message = f"{name}: value not of required type"
                return _error("INVALID_TYPE_ON_FIELD_IN_RECORD", message, [name]), ()
            values[name] = converted
        return None, (values, stored)

    # -- describe ------------------------------------------------------------------------

    def _describe(self, sobject: str) -> Reply:
        if sobject not in self.fields:
            message = f"The requested resource does not exist: {sobject}"
            return reply(404, errors("NOT_FOUND", message))
        described = [
            {
                "name": name,
                "label": name.removesuffix("__c").replace("_", " "),
                "type": kind,
                "custom": name.endswith("__c"),
                "nillable": kind not in ("id", "boolean"),
                "updateable": name not in READ_ONLY,
                "createable": name not in READ_ONLY,
            }
            for name, kind in self.fields[sobject].items()
        ]
        return reply(
            200,
            {
                "name": sobject,
                "label": sobject,
                "keyPrefix": PREFIXES[sobject],
                "updateable": True,
                "fields": described,
            },
        )


_INVALID = object()


def _unset(kind: str):
    return False if kind == "boolean" else None


def _convert(kind: str, value):
    """The stored form of a JSON value for a field type, or _INVALID; null clears (an
    unchecked checkbox for a boolean)."""
    if value is None:
        return _unset(kind)
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return _INVALID
        try:
            return float(value)
        except ValueError:
            return _INVALID
    if kind == "boolean":
        return value if isinstance(value, bool) else _INVALID
    if kind == "date":
        try:
            date.fromisoformat(str(value))
        except ValueError:
            return _INVALID
        return str(value) if len(str(value)) == 10 else _INVALID
    if isinstance(value, dict | list):
        return _INVALID
    return value if isinstance(value, str) else str(value)


def _error(code: str, message: str, fields: list[str] | None = None) -> dict:
    """An error inside a SaveResult (``statusCode``, where the REST error body says
    ``errorCode``)."""
    return {"statusCode": code, "message": message, "fields": fields or []}


def _limit(concurrent: bool) -> list[dict]:
    if concurrent:
        message = "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
    else:
        message = "TotalRequests Limit exceeded."
    return errors("REQUEST_LIMIT_EXCEEDED", message)


def _literals(text: str, many: bool) -> list[str] | None:
    """The string literals of ``'a'`` or ``('a', 'b')``, escapes undone; None if malformed."""
    text = text.strip()
    if many:
        if not (text.startswith("(") and text.endswith(")")):
            return None
        text = text[1:-1]
    values, i = [], 0
    while i < len(text):
        if text[i] in " ,":
            i += 1
            continue
        if text[i] != "'":
            return None
        i, current = i + 1, []
        while i < len(text) and text[i] != "'":
            if text[i] == "\\":
                if i + 1 >= len(text) or text[i + 1] not in ESCAPES:
                    return None
                current.append(ESCAPES[text[i + 1]])
                i += 2
            else:
                current.append(text[i])
                i += 1
        if i >= len(text):
            return None  # unterminated literal
        values.append("".join(current))
        i += 1
    if not many and len(values) != 1:
        return None
    return values


def local(credentials: dict, port: int = 0) -> SalesforceStandin:
    """For `make run`: the stand-in accepting ``destinations.salesforce-dev``'s token."""
    return SalesforceStandin(credentials["access_token"], port=port)


if __name__ == "__main__":
    serve(lambda token, port: SalesforceStandin(token, port=port), "Salesforce REST API stand-in")
