"""Patches that take moto's slow paths out without changing what it answers (moto 5.2.5 only).

The local runtime (local/aws.py), the benchmarks and the tests run moto with these patches.
They replace moto internals as moto ``MOTO_VERSION``'s source has them, so ``install()``
refuses any other version; ``UnverifiedMoto`` says what to do after an upgrade. There is no
environment override: trying another moto means setting ``MOTO_VERSION`` to it in a working
copy, one edit that shows in review, where a variable left set in a shell or CI would quietly
patch a moto nobody checked.

Verified: tests/integration/test_moto_speed.py runs a random workload of the pipeline's writes,
transactions (refused and applied) and index Queries, and a set of every attribute type and
of validation errors, once on moto's own code and once patched, and compares the answers.
Measured: ``python -m bench.moto_speed`` runs each workload with every patch, with every patch
but one, and with none, in one process (process CPU time, best of 5; moto 5.2.5, 2-core VM,
December 2026): below, "A → B ms" is without the patch → with all. With none, 500 UpdateItem
take 4,749 ms instead of 1,802.

- ``gsi_query`` replaces ``moto.dynamodb.models.table.Table.query`` (and wraps its
  ``put_item``, ``delete_item`` and ``DynamoDBBackend.update_item`` to keep its index current).
  moto walks and sorts every item of the table for each Query on a global secondary index; the
  patch keeps, per table, which items hold which value of each index hash key and hands moto's
  own ``query`` only those, in moto's order, so moto still applies every condition, projection
  and page limit. 100 Queries over 5,000 items: 3,898 → 915 ms.
- ``item_size`` replaces ``moto.dynamodb.models.dynamo_type.Item.__init__``: moto's
  ``LimitedSizeDict`` re-sums the size of every attribute set so far for each one it sets
  (quadratic in the attributes); the patch checks the same limit (405,000 bytes, counted as
  moto counts) once per item. 2,000 response items straight into a table (the scale
  benchmarks' prefill): 591 → 348 ms; 500 PutItem: 938 → 882 ms.
- ``parse_once`` replaces ``moto.dynamodb.parsing.expressions.UpdateExpressionParser.make``
  with an LRU cache of it: moto parses an UpdateExpression twice per call (``responses.py``,
  then ``DynamoDBBackend.update_item``); the parse depends on the text only, and every user
  reads the tree or works on a copy of it. 500 UpdateItem: 2,436 → 1,802 ms.
- ``transactions`` replaces ``moto.dynamodb.models.DynamoDBBackend.transact_write_items`` and
  that module's ``copy``: moto deep-copies every table a transaction touches, stream records
  included, to be able to roll back. With requests serialized (local/aws.py's server,
  single-threaded tests) checking every condition first is equivalent: a transaction whose
  conditions hold runs without the copy, one whose conditions fail is refused with moto's
  reasons having changed nothing, and anything unusual (two operations on one item, a
  malformed request) goes to moto's code, copy and all. 10 TransactWriteItems over 2,000
  items: 7,783 → 23 ms (the copy grows with the table).
- ``validation`` replaces ``moto.dynamodb.parsing.ast_nodes.DepthFirstTraverser.traverse`` and
  ``.traverse_node_recursively``. Validating an UpdateExpression walks its tree once per check,
  asking ``isinstance`` of abstract classes at every node: the class answers are kept per node
  class. The two checks of the whole expression (``ActionCountValidator``,
  ``OverlappingPathsValidator``), which moto repeats on every subtree, run on the whole; only
  if it fails does moto's walk run, to raise the error moto raises first (a subtree holds
  some of the whole's actions, so it fails only if the whole does). 500 UpdateItem: 3,172 →
  1,802 ms.
- ``tree_copy`` replaces ``moto.dynamodb.parsing.validators.deepcopy`` for parsed trees: each
  validation copies the tree, and pickle copies the same tree faster. 500 UpdateItem: 2,085 →
  1,802 ms.
- ``answers`` replaces ``moto.core.responses.ActionResult.execute_result`` for DynamoDB item
  operations: moto's serializer walks the botocore output shape attribute by attribute; the
  answer's JSON is the result itself, less the members the shape lacks and those that are
  None. 500 UpdateItem: 2,418 → 1,802 ms; 100 Queries: 4,643 → 915 ms.
- ``hosts`` replaces ``moto.moto_server.werkzeug_app.DomainDispatcherApplication.
  get_backend_for_host`` with a cache of it: in server mode each request lists moto's package
  directory and matches its host against ~300 URL patterns; the answer depends on the host
  only. 500 GetItem + 500 SQS SendMessage through local/aws.py's server: 5,062 → 4,352 ms.
"""

import base64
import calendar
import functools
import importlib.metadata
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

MOTO_VERSION = "5.2.5"  # the moto whose source these patches were read against and tested on


class UnverifiedMoto(RuntimeError):
    def __init__(self, found: str):
        super().__init__(
            f"local/moto_speed.py patches moto {MOTO_VERSION}'s internals and was verified "
            f"against that version only, but moto {found} is installed. Either install the "
            f"pinned one (moto[server]=={MOTO_VERSION} in requirements-dev.txt: "
            f"pip install -r requirements-dev.txt), or move the patches to {found}: set "
            f'MOTO_VERSION = "{found}" in local/moto_speed.py, check each patch its docstring '
            f"lists against moto {found}'s source, run tests/integration/test_moto_speed.py "
            "(same answers) and python -m bench.moto_speed (drop a patch that no longer pays)."
        )


_replaced: list[tuple[Any, str, Any]] = []  # (owner, attribute, what it was), in order


def _replace(owner: Any, name: str, new: Any) -> None:
    _replaced.append((owner, name, vars(owner)[name]))
    setattr(owner, name, new)


def installed() -> bool:
    return bool(_replaced)


def install(moto_version: str | None = None, patches: Iterable[str] | None = None) -> None:
    """Patch moto in this process (once; ``uninstall`` takes it out again). ``moto_version``
    is the installed one unless given; ``patches`` are names of ``PATCHES``, all by default."""
    found = moto_version if moto_version is not None else importlib.metadata.version("moto")
    if found != MOTO_VERSION:
        raise UnverifiedMoto(found)
    if _replaced:
        return
    for name in PATCHES if patches is None else patches:
        PATCHES[name]()


def uninstall() -> None:
    while _replaced:
        owner, name, old = _replaced.pop()
        setattr(owner, name, old)


# --- gsi_query ----------------------------------------------------------------------------


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


def _gsi_query() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_put = Table.put_item
    original_delete = Table.delete_item
    original_update = DynamoDBBackend.update_item

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

    _replace(Table, "query", query)
    _replace(Table, "put_item", put_item)
    _replace(Table, "delete_item", delete_item)
    _replace(DynamoDBBackend, "update_item", update_item)


# --- item_size, parse_once ------------------------------------------------------------------


def _item_size() -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    def item_init(self, hash_key, range_key, attrs):
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: DynamoType(value) for key, value in attrs.items()}
        if sum(bytesize(key) + value.size() for key, value in values.items()) > 405000:
            raise ItemSizeTooLarge  # moto's own limit, checked as its LimitedSizeDict does
        self.attrs = LimitedSizeDict()
        dict.update(self.attrs, values)

    _replace(Item, "__init__", item_init)


def _parse_once() -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parsed = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make)
    _replace(UpdateExpressionParser, "make", staticmethod(parsed))


# --- transactions ----------------------------------------------------------------------------

_skip_table_copy = threading.local()


def _transactions() -> None:
    """Spare moto's whole-table copies on TransactWriteItems (requests must be serialized, as
    the local runtime's emulator and single-threaded tests have them)."""
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

    _replace(dynamodb_models, "copy", _Copy())
    _replace(dynamodb_models.DynamoDBBackend, "transact_write_items", transact_write_items)


# --- validation, tree_copy -------------------------------------------------------------------


def _validation() -> None:
    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node, UpdateExpression

    processed: dict[tuple[type, type], bool] = {}
    nodes: dict[type, bool] = {}

    def traverse_node_recursively(self, node, child_id=-1):  # moto's, class answers kept
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
        if hit:
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    # These two check "the UpdateExpression", and every clause is one too, so moto checks
    # each subtree again (a quadratic walk). A subtree's actions are some of the whole's, so
    # if the whole passes, every subtree does; when it fails, moto's walk finds moto's error.
    whole = (validators.ActionCountValidator, validators.OverlappingPathsValidator)
    walk = DepthFirstTraverser.traverse

    def traverse(self, node):
        if isinstance(self, whole) and isinstance(node, UpdateExpression):
            try:
                self.process(node)  # only reads the tree
            except Exception:  # moto's own walk raises what moto raises (first)
                return walk(self, node)
            return node
        return walk(self, node)

    _replace(DepthFirstTraverser, "traverse_node_recursively", traverse_node_recursively)
    _replace(DepthFirstTraverser, "traverse", traverse)


def _tree_copy() -> None:
    import pickle

    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import Node

    original = validators.deepcopy

    def deepcopy(value, memo=None):
        if isinstance(value, Node):
            return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own objects
        return original(value, memo)

    _replace(validators, "deepcopy", deepcopy)


# --- answers, hosts --------------------------------------------------------------------------

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


def _present(value):
    """What the serializer leaves out: members that are None (and, above, any not in the
    output shape)."""
    if isinstance(value, dict):
        return {k: _present(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_present(v) for v in value]
    return value


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

    _replace(ActionResult, "execute_result", execute_result)


def _hosts() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self, host):
        if host not in known:
            known[host] = original(self, host)
        return known[host]

    _replace(DomainDispatcherApplication, "get_backend_for_host", get_backend_for_host)


PATCHES: dict[str, Callable[[], None]] = {  # in the docstring's order
    "gsi_query": _gsi_query,
    "item_size": _item_size,
    "parse_once": _parse_once,
    "transactions": _transactions,
    "validation": _validation,
    "tree_copy": _tree_copy,
    "answers": _answers,
    "hosts": _hosts,
}
