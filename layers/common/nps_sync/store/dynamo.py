"""DynamoDB calls of the storage adapters, in one place: a failure that may pass becomes
StorageUnavailable (a webhook answers 503, a stream or queue batch is retried), and Query and
Scan results are followed page by page."""

import itertools
import queue
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from nps_sync.core.errors import StorageUnavailable


def call(client: Any, operation: str, *, passing: Collection[str] = (), **kwargs: Any) -> dict:
    """``passing``: error codes the caller handles itself (a failed condition, say)."""
    try:
        return getattr(client, operation)(**kwargs)
    except ClientError as error:
        if error.response["Error"]["Code"] in passing:
            raise
        raise StorageUnavailable(f"DynamoDB {operation} failed") from error
    except BotoCoreError as error:
        raise StorageUnavailable(f"DynamoDB {operation} failed") from error


def pages(client: Any, operation: str, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every item of a Query or Scan, page by page (botocore's paginator follows
    LastEvaluatedKey); a failure on any page is StorageUnavailable like a single call's."""
    try:
        for page in client.get_paginator(operation).paginate(**kwargs):
            yield from page.get("Items", [])
    except (ClientError, BotoCoreError) as error:
        raise StorageUnavailable(f"DynamoDB {operation} failed") from error


T = TypeVar("T")
R = TypeVar("R")
WRITERS = 8  # calls in flight at once: within botocore's 10 pooled connections per client
_pool: ThreadPoolExecutor | None = None  # made at the first ``each``: no thread at init
_pool_made = threading.Lock()
_sections = itertools.count()
_worker = threading.local()


def each(fn: Callable[[T], R], items: Iterable[T]) -> list[R | Exception]:
    """``fn`` of every item, up to WRITERS at a time (boto3 clients are thread-safe), in the
    items' order: its result, or the exception it raised (each item's failure is its caller's
    to report, the others still run). For calls that do not depend on each other, such as a
    batch's writes to different counter keys: a round trip each, overlapped. One item, or
    none, runs on the caller's thread. Not for ``fn`` that calls ``each`` itself (one pool)."""
    items = list(items)
    number = next(_sections)

    def attempt(item: T) -> R | Exception:
        _worker.section = number
        try:
            return fn(item)
        except Exception as error:  # handed back to the caller, per item
            return error
        finally:
            _worker.section = None

    if len(items) <= 1:
        return [attempt(item) for item in items]
    return list(_writers().map(attempt, items))


def section() -> int | None:
    """The ``each`` call this thread works for, if any (bench/meter.py counts the calls of one
    as overlapping)."""
    return getattr(_worker, "section", None)


def _writers() -> ThreadPoolExecutor:
    """One pool for the process, kept: making 8 threads costs ~3 ms, once per batch twice."""
    global _pool
    with _pool_made:
        if _pool is None:
            _pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="dynamo-writes")
        return _pool


SEGMENTS = 4  # parallel Scan segments: a few threads, each its own paginator


def scan(client: Any, kwargs: dict[str, Any], segments: int = SEGMENTS) -> Iterator[dict[str, Any]]:
    """Every item of a Scan, read as ``segments`` parallel segments (``Segment`` of
    ``TotalSegments``, one thread and paginator each; boto3 clients are thread-safe), yielded as
    their pages arrive: at most two pages per segment are held, never the whole table. A
    failure in any segment is StorageUnavailable like a single call's."""
    if segments <= 1:
        yield from pages(client, "scan", kwargs)
        return
    arrived: queue.Queue = queue.Queue(maxsize=2 * segments)
    stop = threading.Event()

    def offer(entry: Any) -> bool:
        while not stop.is_set():
            try:
                arrived.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(segment: int) -> None:
        try:
            paginator = client.get_paginator("scan")
            for page in paginator.paginate(**kwargs, Segment=segment, TotalSegments=segments):
                if not offer(page.get("Items", [])):
                    return
            offer(_DONE)
        except BaseException as error:  # handed to the reading thread, which raises it
            offer(error)

    threads = [threading.Thread(target=read, args=(s,), daemon=True) for s in range(segments)]
    for thread in threads:
        thread.start()
    try:
        running = segments
        while running:
            entry = arrived.get()
            if entry is _DONE:
                running -= 1
            elif isinstance(entry, ClientError | BotoCoreError):
                raise StorageUnavailable("DynamoDB scan failed") from entry
            elif isinstance(entry, BaseException):
                raise entry
            else:
                yield from entry
    finally:
        stop.set()
        for thread in threads:
            thread.join()


_DONE = object()


def update_if(client: Any, **kwargs: Any) -> bool:
    """A conditional UpdateItem: False when its condition does not hold."""
    try:
        call(client, "update_item", passing=("ConditionalCheckFailedException",), **kwargs)
    except ClientError:
        return False
    return True


# --- many items in few calls (docs/storage.md "Calls per request") ------------------------------

Key = dict[str, Any]
Item = dict[str, Any]
BATCH_GET_KEYS = 100  # DynamoDB's limits per call
BATCH_WRITE_ITEMS = 25
TRANSACTION_ITEMS = 100
ATTEMPTS = 8  # for what DynamoDB left unprocessed, or cancelled for another item's sake
RETRIED_REASONS = {
    "None",
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
}


def item_key(item: Item) -> tuple[str, str]:
    return item["pk"]["S"], item["sk"]["S"]


def get_all(client: Any, table: str, keys: Iterable[Key]) -> dict[tuple[str, str], Item]:
    """Consistent reads of many items: the ones found, by (pk, sk). One key is a GetItem,
    more are BatchGetItem calls (``batch_get``)."""
    unique = list({item_key(key): {"pk": key["pk"], "sk": key["sk"]} for key in keys}.values())
    if len(unique) == 1:
        item = call(client, "get_item", TableName=table, Key=unique[0], ConsistentRead=True)
        return {item_key(unique[0]): item["Item"]} if "Item" in item else {}
    return batch_get(client, table, unique)


def batch_get(client: Any, table: str, keys: list[Key]) -> dict[tuple[str, str], Item]:
    """Consistent BatchGetItem calls of up to 100 keys (distinct ones), unprocessed keys sent
    again: the items found, by (pk, sk)."""
    found: dict[tuple[str, str], Item] = {}
    for start in range(0, len(keys), BATCH_GET_KEYS):
        chunk = keys[start : start + BATCH_GET_KEYS]
        request: dict[str, Any] = {table: {"Keys": chunk, "ConsistentRead": True}}
        for _ in range(ATTEMPTS):
            page = call(client, "batch_get_item", RequestItems=request)
            found.update((item_key(i), i) for i in page.get("Responses", {}).get(table, []))
            request = page.get("UnprocessedKeys") or {}
            if not request:
                break
        if request:
            raise StorageUnavailable("DynamoDB batch_get_item left keys unprocessed")
    return found


def put_all(client: Any, table: str, items: list[Item]) -> None:
    """Unconditional puts of many items: BatchWriteItem calls of up to 25, unprocessed items
    sent again (one item: a PutItem)."""
    unique = list({item_key(item): item for item in items}.values())
    if len(unique) == 1:
        call(client, "put_item", TableName=table, Item=unique[0])
        return
    for start in range(0, len(unique), BATCH_WRITE_ITEMS):
        chunk = unique[start : start + BATCH_WRITE_ITEMS]
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": i}} for i in chunk]}
        for _ in range(ATTEMPTS):
            pending = call(client, "batch_write_item", RequestItems=pending).get("UnprocessedItems")
            if not pending:
                break
        if pending:
            raise StorageUnavailable("DynamoDB batch_write_item left items unprocessed")


def write_all_if(client: Any, actions: list[dict[str, Any]]) -> list[Item | None]:
    """Independent conditional writes, each a TransactWriteItems action (``{"Put": …}`` or
    ``{"Update": …}``) on an item of its own: for each, None when it was written, else the
    item its condition failed on as it is stored ({} if there is none).

    One action is a PutItem or UpdateItem. More go in transactions of up to 100, which cost
    twice the write units of single writes but one call: a transaction is all or nothing, so
    a failed condition cancels the rest of its call, and those are sent again."""
    results: list[Item | None] = [None] * len(actions)
    if len(actions) == 1:
        ((kind, request),) = actions[0].items()
        operation = {"Put": "put_item", "Update": "update_item"}[kind]
        try:
            call(
                client,
                operation,
                passing=("ConditionalCheckFailedException",),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **request,
            )
        except ClientError as error:
            results[0] = error.response.get("Item", {})
        return results
    for start in range(0, len(actions), TRANSACTION_ITEMS):
        pending = list(range(start, min(start + TRANSACTION_ITEMS, len(actions))))
        for _ in range(ATTEMPTS):
            if not pending:
                break
            pending = _transact(client, actions, pending, results)
        if pending:
            raise StorageUnavailable("DynamoDB transact_write_items kept being cancelled")
    return results


def _transact(client: Any, actions: list, indexes: list[int], results: list) -> list[int]:
    """One transaction of ``actions[i] for i in indexes``; the indexes to send again."""
    items = []
    for i in indexes:
        ((kind, request),) = actions[i].items()
        items.append({kind: {**request, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}})
    try:
        call(
            client,
            "transact_write_items",
            passing=("TransactionCanceledException", "TransactionConflictException"),
            TransactItems=items,
        )
        return []
    except ClientError as error:
        reasons = error.response.get("CancellationReasons") or []
        if len(reasons) != len(indexes):  # a conflict with another transaction as a whole
            return indexes
        again = []
        for i, reason in zip(indexes, reasons, strict=True):
            code = reason.get("Code", "None")
            if code == "ConditionalCheckFailed":
                results[i] = reason.get("Item", {})
            elif code in RETRIED_REASONS:
                again.append(i)
            else:
                raise StorageUnavailable(f"DynamoDB transact_write_items: {code}") from error
        return again
