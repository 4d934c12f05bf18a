"""Runs inside the built artefact under CPython 3.13 (``python3.13 -S``, read-only code, as Lambda runs it):
imports the handler and vends once (a table hit), timing the phases the cold start is made of. Prints one
JSON line: milliseconds spent importing, creating AWS clients, in each AWS operation, and in the vend.

Only botocore's public entry points are timed (``Session.create_client`` and the client's API call), by
wrapping them before the handler is imported; ``-X importtime`` (``benchmarks/cold_profile.py``) gives
the import side in detail.
"""

import json
import sys
import time

started, started_cpu = time.perf_counter(), time.process_time()
import botocore.client
import botocore.session

botocore_imported, botocore_imported_cpu = time.perf_counter(), time.process_time()
clients: dict[str, float] = {}
calls: dict[str, float] = {}
cpu: dict[str, float] = {}  # the same phases in CPU time (steadier than wall time on a busy machine)
_create_client = botocore.session.Session.create_client
_make_api_call = botocore.client.BaseClient._make_api_call


def create_client(self, service_name, *args, **kwargs):
    begin, begin_cpu = time.perf_counter(), time.process_time()
    try:
        return _create_client(self, service_name, *args, **kwargs)
    finally:
        clients[service_name] = clients.get(service_name, 0.0) + (time.perf_counter() - begin) * 1000
        cpu[service_name] = cpu.get(service_name, 0.0) + (time.process_time() - begin_cpu) * 1000


def make_api_call(self, operation_name, api_params):
    begin, begin_cpu = time.perf_counter(), time.process_time()
    try:
        return _make_api_call(self, operation_name, api_params)
    finally:
        calls[operation_name] = calls.get(operation_name, 0.0) + (time.perf_counter() - begin) * 1000
        cpu[operation_name] = cpu.get(operation_name, 0.0) + (time.process_time() - begin_cpu) * 1000


botocore.session.Session.create_client = create_client
botocore.client.BaseClient._make_api_call = make_api_call


class Context:
    function_name = "token-vendor"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:token-vendor"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self):
        return 10_000


from token_vendor import app
from token_vendor.kernel import observability

imported, imported_cpu = time.perf_counter(), time.process_time()
observability.set_output(open("/dev/null", "w"))
clients_at_init = dict(clients)
result = app.lambda_handler({"scope": sys.argv[1] if len(sys.argv) > 1 else "fr:idm:*"}, Context())
vended, vended_cpu = time.perf_counter(), time.process_time()
cpu.update(
    botocore_import=(botocore_imported_cpu - started_cpu) * 1000,
    init=(imported_cpu - botocore_imported_cpu) * 1000,
    first_vend=(vended_cpu - imported_cpu) * 1000,
    in_process=(vended_cpu - started_cpu) * 1000,
)
assert result["expires_in"] > 0
print(
    json.dumps(
        {
            "botocore_import_ms": (botocore_imported - started) * 1000,
            "init_ms": (imported - botocore_imported) * 1000,
            "clients_at_init_ms": clients_at_init,
            "clients_ms": clients,
            "calls_ms": calls,
            "first_vend_ms": (vended - imported) * 1000,
            "in_process_ms": (vended - started) * 1000,
            "modules": len(sys.modules),
            "cpu_ms": cpu,
        }
    )
)
