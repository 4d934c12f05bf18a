"""Peak RSS of a handler process after N vends spread over M scope sets (argv: N M)."""

import os
import sys

real_stdout = sys.stdout
sys.stdout = open(os.devnull, "w")

from local.lambda_context import LocalContext
from token_vendor import app

vends, sets = int(sys.argv[1]), int(sys.argv[2])
context = LocalContext(timeout_seconds=1e9)
for i in range(vends):
    app.lambda_handler({"scope": f"bench:s{i % sets}"}, context)
# VmHWM is this process's own peak; ru_maxrss would also count the parent's pages from before exec.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
real_stdout.write(f"{peak_kb}\n")
