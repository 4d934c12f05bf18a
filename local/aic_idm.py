"""The stand-in's IDM users endpoint, ``/openidm/managed/alpha_user``: what a vended token is for.

It honours a bearer token the stand-in issued, unexpired and not revoked (else 401), that carries
``fr:idm:*`` (else 403), and answers a fixed page of sample users. The svcacct object lives in
``local/svcacct_standin.py``.
"""

from __future__ import annotations

import json
import time

from local.aic_grant import StandInState

USERS_PATH = "/openidm/managed/alpha_user"
IDM_SCOPE = "fr:idm:*"

SAMPLE_USERS = [
    {"_id": "0b2c6b7a-1f0e-4a8e-9d1e-5f3c2a1b0c01", "userName": "bjensen", "givenName": "Babs"},
    {"_id": "0b2c6b7a-1f0e-4a8e-9d1e-5f3c2a1b0c02", "userName": "scarter", "givenName": "Sam"},
    {"_id": "0b2c6b7a-1f0e-4a8e-9d1e-5f3c2a1b0c03", "userName": "jdoe", "givenName": "Jo"},
]


def users_answer(state: StandInState, authorization: str) -> tuple[int, bytes]:
    """The status and JSON body of ``GET USERS_PATH`` with this ``Authorization`` header."""
    token = authorization[7:] if authorization.startswith("Bearer ") else ""
    with state.lock:
        issued = state.issued.get(token)
        revoked = token in state.revoked
    if issued is None or revoked or issued.expires_at < time.time():
        return 401, b'{"code":401,"reason":"Unauthorized","message":"Access Denied"}'
    if IDM_SCOPE not in issued.scopes:
        return 403, b'{"code":403,"reason":"Forbidden","message":"Insufficient scope"}'
    body = {"result": SAMPLE_USERS, "resultCount": len(SAMPLE_USERS), "totalPagedResults": -1}
    return 200, json.dumps(body).encode()
