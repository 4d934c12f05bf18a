"""Cold start whose first vend mints (a scope set the table does not hold): import the handler, sign, exchange.
The parent times the whole process and chooses the mode by the environment (a secret or SIGNING_KEY_ID)."""

import os
import sys

sys.stdout = open(os.devnull, "w")  # the function's own logs

from local.lambda_context import LocalContext
from token_vendor import app

result = app.lambda_handler({"scope": sys.argv[1]}, LocalContext())
assert result["expires_in"] > 0
