"""Cold start, measured from outside: a fresh interpreter imports the handler and serves one request
(memory miss, table hit). The parent times the whole process; this file only does the work."""

import os
import sys

sys.stdout = open(os.devnull, "w")

import app
from local.lambda_context import LocalContext

result = app.lambda_handler({"scope": "fr:idm:*"}, LocalContext())
assert result["expires_in"] > 0
