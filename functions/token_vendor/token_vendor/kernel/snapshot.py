"""What an execution environment may carry into a Lambda SnapStart snapshot, and what it redoes after a
restore (docs/decisions.md, "SnapStart: what the snapshot holds").

With SnapStart, init runs once when a version is published; its memory is snapshotted and every new
execution environment resumes from that copy. So the init phase holds only what may be shared by every
environment: imports, settings, AWS clients with their models, HTTP pools without connections. It never
loads a private key or data key, caches a token, opens a connection or starts a thread (``app`` calls
nothing that would, and the built-artefact restore test checks it).

Some state is made on first use and would be wrong in a copy: pooled connections (the peer saw one
process), the watchdog's thread (threads do not survive a snapshot or a fork), and the state of random
generators whose later draws must differ between environments (retry jitter). Their owners register a
renewal here (``after_restore``); ``renew`` runs them, in registration order:

- after a SnapStart restore, through the runtime hook ``snapshot_restore_py.register_after_restore``
  (the package ships with Lambda's Python runtimes; it is not a dependency of this one, and is used when
  present);
- in the child of ``os.fork`` (memory copied, other threads gone: what a restore looks like, and how the
  tests stand in for one).

Before the snapshot (``register_before_snapshot``, which runs only when SnapStart takes one),
``before_snapshot`` imports what the first vend does not need but later invocations may: a cold start
defers those imports (``-X importtime``), a snapshot can hold them for free. Imports only: nothing is
loaded, opened or started by them.

``uuid.uuid4`` (the assertion's ``jti``) and ``secrets`` read ``os.urandom`` at every call, so they are
fresh after a restore without any renewal.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import threading
import weakref
from collections.abc import Callable

RUNTIME_HOOKS = "snapshot_restore_py"  # provided by the Lambda runtime, never shipped with the function

# Imported lazily by a cold start, into the snapshot by SnapStart: PyJWT and RSA keys (a mint), the HTTP
# front, identity proofs and their XML, the scheduled refresh, Powertools' logger (the first warning).
SNAPSHOT_IMPORTS = (
    "jwt",
    "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "token_vendor.fronts.http_api",
    "token_vendor.adapters.aws.identity_proof",
    "xml.etree.ElementTree",
    "token_vendor.vend.scheduled_refresh",
    "aws_lambda_powertools.logging",
)

_renewals: list[weakref.WeakMethod[Callable[[], object]]] = []
_lock = threading.Lock()
_installed = False


def after_restore(renew: Callable[[], object]) -> None:
    """Call the bound method ``renew`` after every restore (and fork) while its object lives."""
    with _lock:
        _renewals.append(weakref.WeakMethod(renew))


def renew() -> None:
    """Redo, in this process, what a copy of another process must not share (see the module's docstring)."""
    with _lock:
        alive = [method for method in (ref() for ref in _renewals) if method is not None]
        _renewals[:] = [weakref.WeakMethod(method) for method in alive]
    for method in alive:
        method()


def before_snapshot() -> None:
    """Import what a cold start leaves for later (``SNAPSHOT_IMPORTS``): with SnapStart, init is paid once
    per published version, and a restored copy then finds them imported."""
    for name in SNAPSHOT_IMPORTS:
        importlib.import_module(name)


def fresh_random() -> random.Random:
    """A generator for jitter, re-seeded from ``os.urandom`` after every restore."""
    rng = random.Random()  # noqa: S311 - jitter, not cryptography
    after_restore(rng.seed)
    return rng


def install() -> bool:
    """Run ``renew`` after a restore and in a forked child, ``before_snapshot`` before a snapshot; once per
    process. True when the SnapStart runtime hooks are present (on Lambda's Python runtimes)."""
    global _installed
    with _lock:
        first, _installed = not _installed, True
    if not first:
        return importlib.util.find_spec(RUNTIME_HOOKS) is not None
    os.register_at_fork(after_in_child=renew)
    if importlib.util.find_spec(RUNTIME_HOOKS) is None:
        return False
    hooks = importlib.import_module(RUNTIME_HOOKS)
    hooks.register_before_snapshot(before_snapshot)
    hooks.register_after_restore(renew)
    return True


# botocore's retry jitter draws from the ``random`` module's own generator: a fork re-seeds it, a
# restore does not.
after_restore(random.seed)
