"""Two of moto's costs that grow with the data, taken out without changing what it answers.

- A Query on a global secondary index walks (and sorts) every item of the table, so with the
  demo data or 10^5 benchmark responses each one costs milliseconds per thousand items.
  ``install()`` keeps, per table, which items carry which value of each index's hash key and
  hands moto's own Query only those; moto still applies every condition, projection and page
  limit itself.
- Building an item re-sums the size of every attribute set so far for each attribute it sets
  (quadratic in the attributes); the size limit is checked once per item instead.
- A TransactWriteItems copies every table it touches, stream records included, to be able to
  roll back (``_transactions``).
- An UpdateExpression is parsed twice per call; the parse depends on its text only and every
  user of it reads it or works on a copy, so each text is parsed once.
- Validating one walks its tree once per check, asking ``isinstance`` of abstract classes at
  every node, on a ``deepcopy`` of the tree (``_expressions``): the class answers are kept per
  node class, two whole-expression checks run once instead of once per clause, and the copy is
  made by pickle, several times faster for the same tree.
- Answers to item operations are written by walking the botocore output shape attribute by
  attribute; their JSON is the result itself, less what the shape lacks (``_answers``).
- In server mode each request's host is matched against ~300 URL patterns (``_hosts``).

The local runtime, the benchmarks and the tests run on it; tests/integration/
test_moto_speed.py checks the answers against moto's own code.
"""

import base64
import calendar
import functools
import json
import threading
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any


def _key(table, item) -> tuple:
    range_value = item.range_key.value if item.range_key is not None else None
    return (item.hash_key.value, range_value)


def _index_attributes(table) -> list[str]:
    names = []
    for index in table.global_indexes:
        for part in index.schema:
            if part["KeyType"] == "HASH" and part["AttributeName"] not in names:
                names.append(part["AttributeName"])
    return names


def _state(table) -> dict[str, Any]:
    """The table's index of index hash values, built on first use (it lives on the table, so
    moto's copy of the tables for a failed transaction copies it in step)."""
    state = table.__dict__.get("_bench_index")
    if state is None:
        state = {"values": defaultdict(dict), "of": {}}  # (attr, value) -> {key: item}
        table.__dict__["_bench_index"] = state
        for item in table.all_items():
            _add(table, state, item)
    return state


def _add(table, state, item) -> None:
    key = _key(table, item)
    held = {}
    for name in _index_attributes(table):
        value = item.attrs.get(name)
        if value is not None:
            state["values"][(name, value.type, value.value)][key] = item
            held[name] = (name, value.type, value.value)
    state["of"][key] = held


def _remove(state, key) -> None:
    for entry in state["of"].pop(key, {}).values():
        state["values"][entry].pop(key, None)


def _refresh(table, hash_value, range_value) -> None:
    state = table.__dict__.get("_bench_index")
    if state is None:
        return
    key = (hash_value.value, range_value.value if range_value is not None else None)
    _remove(state, key)
    item = table.get_item(hash_value, range_value)
    if item is not None:
        _add(table, state, item)


_originals: dict[str, Any] = {}


def install() -> None:
    """Patch moto in this process (once; ``uninstall`` takes it out again)."""
    if _originals:
        return
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.models.utilities import bytesize
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    original_query = Table.query
    original_put = Table.put_item
    original_delete = Table.delete_item
    original_update = DynamoDBBackend.update_item
    _originals.update(
        query=original_query,
        put=original_put,
        delete=original_delete,
        update=original_update,
        item_init=Item.__init__,
        make=UpdateExpressionParser.__dict__["make"],
    )
    parse = UpdateExpressionParser.make
    parsed = functools.lru_cache(maxsize=1024)(parse)

    def item_init(self, hash_key, range_key, attrs):
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in values.items()) > 405000:
            raise ItemSizeTooLarge  # moto's own limit, checked as its LimitedSizeDict does
        self.attrs = LimitedSizeDict()
        dict.update(self.attrs, values)

    def query(self, *args, **kwargs):
        index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)
        conditions = kwargs.get("hash_key_conditions") or []
        if not index_name or len(conditions) != 1:
            return original_query(self, *args, **kwargs)
        name, value = conditions[0]
        found = _state(self)["values"].get((name, value.type, value.value), {}).values()
        candidates = sorted(  # the order of moto's own all_items()
            found, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key
        )
        self.__dict__["all_items"] = lambda: candidates
        try:
            return original_query(self, *args, **kwargs)
        finally:
            del self.__dict__["all_items"]

    def put_item(self, item_attrs, *args, **kwargs):
        item = original_put(self, item_attrs, *args, **kwargs)
        state = self.__dict__.get("_bench_index")
        if state is not None:
            _remove(state, _key(self, item))
            _add(self, state, item)
        return item

    def delete_item(self, hash_key, range_key=None, *args, **kwargs):
        item = original_delete(self, hash_key, range_key, *args, **kwargs)
        _refresh(self, hash_key, range_key)
        return item

    def update_item(self, table_name, key, *args, **kwargs):
        try:
            return original_update(self, table_name, key, *args, **kwargs)
        finally:
            table = self.get_table(table_name)
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            _refresh(table, hash_value, range_value)

    Table.query = query
    Table.put_item = put_item
    Table.delete_item = delete_item
    DynamoDBBackend.update_item = update_item
    Item.__init__ = item_init
    UpdateExpressionParser.make = staticmethod(parsed)
    _transactions()
    _expressions()
    _answers()
    _hosts()


def _expressions() -> None:
    import pickle

    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node

    # These two check "the UpdateExpression", and every clause is one too, so moto checks
    # each subtree again (a quadratic walk); whatever a subtree breaks, the whole breaks, so
    # the root alone decides.
    whole = (validators.ActionCountValidator, validators.OverlappingPathsValidator)
    processed: dict[tuple[type, type], bool] = {}
    nodes: dict[type, bool] = {}

    def traverse_node_recursively(self, node, child_id=-1):
        kind = type(node)
        is_node = nodes.get(kind)
        if is_node is None:
            is_node = nodes[kind] = issubclass(kind, Node)
        if not is_node:
            return node
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        hit = processed.get((type(self), kind))
        if hit is None:
            hit = processed[(type(self), kind)] = issubclass(kind, self.nodes_to_be_processed())
        if hit and (parent_node is None or not isinstance(self, whole)):
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    def deepcopy(value, memo=None):
        if isinstance(value, Node):
            return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own objects
        return _originals["validators_deepcopy"](value, memo)

    _originals.update(
        traverse=DepthFirstTraverser.traverse_node_recursively,
        validators_deepcopy=validators.deepcopy,
    )
    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively
    validators.deepcopy = deepcopy


ITEM_OPERATIONS = frozenset(
    {
        "GetRecords",  # of dynamodbstreams
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def _json_default(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):  # as moto's serializer writes a unix timestamp
        seconds = calendar.timegm(value.timetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    raise TypeError(type(value).__name__)


def _answers() -> None:
    from moto.core.responses import ActionResult

    original = ActionResult.execute_result

    def execute_result(self, context):
        if (
            context.service_model.service_name not in ("dynamodb", "dynamodbstreams")
            or context.operation_model.name not in ITEM_OPERATIONS
            or not isinstance(self.result, dict)
        ):
            return original(self, context)
        members = context.operation_model.output_shape.members
        answer = {k: v for k, v in self.result.items() if k in members}
        body = json.dumps(_present(answer), default=_json_default)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    _originals["execute_result"] = original
    ActionResult.execute_result = execute_result


def _present(value):
    """What the serializer leaves out: members that are None (and, above, any not in the
    output shape)."""
    if isinstance(value, dict):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(v) for v in value]
    return value


def _hosts() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self, host):
        if host not in known:
            known[host] = original(self, host)
        return known[host]

    _originals["hosts"] = original
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


_skip_table_copy = threading.local()


def _transactions() -> None:
    """Spare moto's whole-table copies on TransactWriteItems (requests must be serialized, as
    the local runtime's emulator and single-threaded tests have them).

    moto backs up every table a transaction touches (copy.deepcopy, stream records included) so
    that it can roll back; with thousands of items that is slow and, under load, grows memory by
    gigabytes. With requests serialized, checking every condition first is equivalent: a
    transaction whose conditions all hold runs without the backup, and one whose conditions do
    not is refused with the same reasons moto gives, having changed nothing. Anything unusual
    (two operations on one item, a malformed request) goes to moto's own code, backup and all.
    """
    import copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models.table import Table

    class _Copy:
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value, memo=None):
            if getattr(_skip_table_copy, "on", False) and isinstance(value, Table):
                return value
            return copy.deepcopy(value, memo)

    def reasons(backend, items) -> list[tuple]:
        """Per operation, as moto reports it: (None, None, None) or the failed condition."""
        found, seen = [], set()
        for item in items:
            ((kind, op),) = item.items()
            table = backend.get_table(op["TableName"])
            if kind == "Put":
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            unique = (op["TableName"], json.dumps(key, sort_keys=True))
            if unique in seen:
                raise ValueError("two operations on one item: moto's own error")
            seen.add(unique)
            if op.get("ConditionExpression") is None:
                found.append((None, None, None))
                continue
            condition = get_filter_expression(
                op["ConditionExpression"],
                op.get("ExpressionAttributeNames"),
                op.get("ExpressionAttributeValues"),
            )
            current = backend.get_item(op["TableName"], key)
            if condition.expr(current):
                found.append((None, None, None))
                continue
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            found.append(("ConditionalCheckFailed", "The conditional request failed", old))
        return found

    original = dynamodb_models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        try:
            found = reasons(self, transact_items)
        except Exception:  # anything unusual: let moto's own code decide, with its backup
            found = None
        if found is not None and any(code is not None for code, _, _ in found):
            raise TransactionCanceledException(found)
        _skip_table_copy.on = found is not None
        try:
            return original(self, transact_items)
        finally:
            _skip_table_copy.on = False

    _originals.update(copy=dynamodb_models.copy, transact=original)
    dynamodb_models.copy = _Copy()
    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


def uninstall() -> None:
    if not _originals:
        return
    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    dynamodb_models.copy = _originals["copy"]
    dynamodb_models.DynamoDBBackend.transact_write_items = _originals["transact"]
    UpdateExpressionParser.make = _originals["make"]
    import moto.dynamodb.parsing.validators as validators
    from moto.core.responses import ActionResult
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    DepthFirstTraverser.traverse_node_recursively = _originals["traverse"]
    validators.deepcopy = _originals["validators_deepcopy"]
    ActionResult.execute_result = _originals["execute_result"]
    DomainDispatcherApplication.get_backend_for_host = _originals["hosts"]
    Table.query = _originals["query"]
    Table.put_item = _originals["put"]
    Table.delete_item = _originals["delete"]
    DynamoDBBackend.update_item = _originals["update"]
    Item.__init__ = _originals["item_init"]
    _originals.clear()
