"""Runs inside the built artefact under CPython 3.13, as Lambda would: ``/var/task`` is the function,
``/opt/python`` the layer, both read-only, with ``PYTHONDONTWRITEBYTECODE=1``. Imports only what ships.

Usage: python3.13 -S lambda_child.py RESULT.json EVENTS_DIR. Writes what happened to RESULT.json.
``python3.13 -S lambda_child.py --cold`` only imports the handler and vends once (the bench's cold start).
"""

import json
import os
import sys
import time
import uuid


class Context:
    function_name = "token-vendor"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:token-vendor"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + 10

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


def main():
    started = time.perf_counter()
    from token_vendor import app
    from token_vendor.kernel import observability

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    observability.set_output(sink)
    if sys.argv[1] == "--cold":
        assert app.lambda_handler({"scope": "fr:idm:*"}, Context())["expires_in"] > 0
        return
    result_path, events = sys.argv[1], sys.argv[2]
    out = {"import_ms": (time.perf_counter() - started) * 1000}
    direct = app.lambda_handler({"scope": "fr:idm:*"}, Context())
    out["direct"] = {"scope": direct["scope"], "expires_in": direct["expires_in"]}
    with open(os.path.join(events, "rest_get.json")) as handle:
        http = app.http_handler(json.load(handle), Context())
    out["http"] = {"status": http["statusCode"], "scope": json.loads(http["body"]).get("scope")}
    try:
        app.lambda_handler({"scope": 'bad"scope'}, Context())
        out["refused"] = None
    except Exception as exc:
        out["refused"] = {"error": type(exc).__name__}
    roots = [p for p in sys.path if p.endswith(("/task", "/opt/python"))]
    shipped = [
        m
        for m in list(sys.modules.values())
        if str(getattr(m, "__file__", "") or "").startswith(tuple(roots))
    ]
    out["shipped_modules"] = len(shipped)
    out["without_bytecode"] = sorted(
        m.__name__
        for m in shipped
        if m.__file__.endswith(".py") and not (m.__cached__ and os.path.exists(m.__cached__))
    )
    out["python"] = sys.version.split()[0]
    out["native"] = sorted(m.__name__ for m in shipped if str(m.__file__).endswith(".so"))
    with open(result_path, "w") as handle:
        json.dump(out, handle)


main()
