"""Cold start, measured from outside: a fresh interpreter imports the handler and serves one request
(memory miss, table hit). The parent times the whole process; this file only does the work."""

import os
import sys

sys.stdout = open(os.devnull, "w")

from local.lambda_context import LocalContext
from token_vendor import app

result = app.lambda_handler({"scope": "fr:idm:*"}, LocalContext())
assert result["expires_in"] > 0
