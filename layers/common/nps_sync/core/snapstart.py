"""SnapStart's restore hook: drop what one initialization cached before many instances share it.

With SnapStart (template.yaml parameter ``SnapStart``), Lambda snapshots one instance after its
handler module is imported and resumes every new instance from that snapshot, so they all start
with the same memory: the same ``random`` state, and whatever a cold start cached (boto3 clients
with their connections and credentials, settings, the secrets document). ``restore`` runs once in
each resumed instance before its first invocation: it reseeds ``random`` and drops those caches,
so each instance makes its own clients and reads the secrets again (they may have rotated since
the snapshot). Unique values (uuid4, ``secrets`` tokens, AES-GCM nonces, Standard Webhooks ids)
are drawn from the OS when needed and never cached at import, so they need nothing here.

Lambda runs a hook only if the handler's imports register it; importing this module does so
through ``snapshot_restore_py``, which only Lambda's Python runtimes provide (elsewhere it is a
no-op). Imports nothing of ours and no boto3: the caches are found among the modules already
loaded, so this stays in ``core``.
"""

import contextlib
import gc
import os
import random
import sys
from collections.abc import Callable, Iterator

# Module-level caches that are not lru_caches: module -> the function that empties them.
RESETS: dict[str, str] = {"nps_sync.store.secrets": "clear_cache"}

_callbacks: list[Callable[[], None]] = []
_registered = False


def on_restore(callback: Callable[[], None]) -> Callable[[], None]:
    """Also run ``callback`` on restore: for a cache ``restore`` cannot find by itself (one held
    in a closure, like a resolver's stores). Usable as a decorator."""
    _callbacks.append(callback)
    return callback


def _our_modules() -> list[object]:
    """nps_sync's modules and the handler's (``_HANDLER`` is ``app.lambda_handler``): only
    their caches hold our clients; a library's caches are its own business."""
    handler_module = os.environ.get("_HANDLER", "").rpartition(".")[0]
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None
        and (name == "nps_sync" or name.startswith("nps_sync.") or name == handler_module)
    ]


def _cached_functions(modules: list[object]) -> list[Callable]:
    """Each functools.lru_cache/cache function once (modules import each other's)."""
    found: dict[int, Callable] = {}
    for module in modules:
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
                found[id(value)] = value
    return list(found.values())


def restore() -> int:
    """The after-restore hook; answers how many caches it emptied (for the tests and a log)."""
    random.seed()  # from os.urandom: each instance its own sequence
    emptied = 0
    for cached in _cached_functions(_our_modules()):
        cached.cache_clear()
        emptied += 1
    for name, reset in RESETS.items():
        module = sys.modules.get(name)
        if module is not None:
            getattr(module, reset)()
            emptied += 1
    boto3 = sys.modules.get("boto3")
    if boto3 is not None and boto3.DEFAULT_SESSION is not None:
        # A new default session resolves credentials again for the clients made from now on.
        boto3.DEFAULT_SESSION = None
        emptied += 1
    for callback in _callbacks:
        callback()
        emptied += 1
    return emptied


def register() -> bool:
    """Register ``restore`` with the Lambda runtime, once; False where there is no runtime
    (tests, ``make run``) or it is already registered."""
    global _registered
    if _registered:
        return False
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:
        return False
    register_after_restore(restore)
    _registered = True
    return True


register()


@contextlib.contextmanager
def cold_start() -> Iterator[None]:
    """Around a handler module's imports: no garbage collection while they run, and what they
    made frozen after (it lives as long as the instance; a full collection scanning it made the
    first request's boto3 clients ~25% slower, docs/decisions.md). An import that fails leaves
    the collector as it was."""
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()
