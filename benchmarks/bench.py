"""What every step of ``make bench`` measures against: the local stack, the handler in this process, a
connection pool to the stand-in, and the figures later steps compare with (memory hit, table hit).

Build it with ``Bench.start`` only after the function's environment is in ``os.environ``: importing the
handler reads it (Lambda's init phase).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import urllib3

from local.stack import LocalStack


@dataclass
class Bench:
    stack: LocalStack
    app: Any  # token_vendor.app, imported once the environment is set
    context: Any  # a LocalContext that never runs out of time
    settings: Any  # token_vendor.kernel.settings.Settings, from the same environment
    pool: urllib3.PoolManager  # direct POSTs to the stand-in (the bare sides)
    hit: list[float] = field(default_factory=list)  # memory-hit vends, whole handler (µs)
    table_hits: list[float] = field(default_factory=list)  # table-hit vends (µs)

    @classmethod
    def start(cls, stack: LocalStack) -> Bench:
        from local.lambda_context import LocalContext
        from token_vendor import app
        from token_vendor.kernel.settings import load_settings

        return cls(
            stack=stack,
            app=app,
            context=LocalContext(timeout_seconds=1e9),
            settings=load_settings(os.environ),
            pool=urllib3.PoolManager(num_pools=2, maxsize=4, retries=False),
        )

    @property
    def key(self) -> Any:
        return self.stack.key

    @property
    def audience(self) -> str:
        return self.stack.standin.token_url

    @staticmethod
    def new_jti() -> str:
        return str(uuid.uuid4())
