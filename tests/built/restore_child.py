"""Stands in for a SnapStart restore inside the built artefact under CPython 3.13 (issue 37).

Run as ``python3.13 -S restore_child.py`` in the Lambda layout (``tools/lambda_layout.py``). It runs the
init phase (imports the handler) and reports what init did: the AWS calls made (none may load a key, a
data key or a token), the threads running and the sockets open. Then it serves one JSON command per line
on stdin, answering one JSON line on stdout:

- ``{"op": "vend", "scope": S, "remaining_ms": N}``: vend in this process;
- ``{"op": "fork", ...}``: ``os.fork`` (memory copied, other threads gone, as after a restore) and vend
  in the child, which answers and exits; the parent answers ``{"forked": pid, "status": code}`` after.

A vend answers the token's fingerprint (never the token), or the stable error's name, the time taken
(for a fork: from just before the fork to the end of the child's vend), and for a fork the parent's
sockets that were still open in the child before and after its vend.
"""

import hashlib
import json
import os
import sys
import threading
import time
import warnings

import botocore.client

ANSWERS = os.fdopen(os.dup(1), "w")  # the function's own log lines go to stderr, answers here
sys.stdout = sys.stderr
# The parent forks with the exchange's watchdog thread running, on purpose: a restore leaves it behind too.
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)

calls = []
_make_api_call = botocore.client.BaseClient._make_api_call


def recording_api_call(self, operation_name, api_params):
    calls.append(operation_name)
    return _make_api_call(self, operation_name, api_params)


botocore.client.BaseClient._make_api_call = recording_api_call


class Context:
    function_name = "token-vendor"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:token-vendor"

    def __init__(self, remaining_ms):
        self.aws_request_id = f"req-{os.getpid()}-{time.monotonic_ns()}"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


def sockets():
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def answer(document):
    ANSWERS.write(json.dumps(document) + "\n")
    ANSWERS.flush()


def vend(command, started):
    try:
        result = app.lambda_handler({"scope": command["scope"]}, Context(command.get("remaining_ms", 10_000)))
        outcome = {
            "scope": result["scope"],
            "expires_in": result["expires_in"],
            "fingerprint": hashlib.sha256(result["access_token"].encode()).hexdigest()[:12],
        }
    except Exception as exc:  # the stable error's name is the answer
        outcome = {"error": type(exc).__name__}
    return {**outcome, "elapsed_ms": (time.perf_counter() - started) * 1000}


init_started = time.perf_counter()
from token_vendor import app  # noqa: E402 - the init phase, timed and watched
from token_vendor.kernel import observability, snapshot  # noqa: E402 - as above

snapshot.before_snapshot()  # what SnapStart's runtime hook runs before it takes the snapshot
init_ms = (time.perf_counter() - init_started) * 1000
observability.set_output(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
answer(
    {
        "python": sys.version.split()[0],
        "init_ms": init_ms,
        "init_calls": list(calls),
        "init_threads": [t.name for t in threading.enumerate()],
        "init_sockets": len(sockets()),
    }
)
for line in sys.stdin:
    command = json.loads(line)
    if command["op"] == "vend":
        answer(vend(command, time.perf_counter()))
        continue
    parent_sockets = sockets()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        inherited = sockets() & parent_sockets  # the parent's connections still open here
        outcome = vend(command, started)
        cpu_ms = time.process_time() * 1000  # a forked child's CPU times start at zero
        reused = len(sockets() & parent_sockets)
        answer({**outcome, "cpu_ms": cpu_ms, "inherited_open": len(inherited), "reused": reused})
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    answer({"forked": pid, "status": code, "parent_sockets": len(parent_sockets)})
