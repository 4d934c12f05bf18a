"""Writes the sample events in this folder (run: python events/generate.py). The files are committed;
this script only documents how they were made and keeps them consistent."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ACCOUNT = "123456789012"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/reporting/reporting-job-7f3a"


def rest(
    method: str,
    *,
    query: dict[str, list[str]] | None = None,
    body: str | None = None,
    path: str = "/token",
    user_arn: str | None = CALLER,
    b64: bool = False,
) -> dict[str, Any]:
    identity: dict[str, Any] = {
        "accessKey": "ASIAXAMPLEKEY0000000",
        "accountId": ACCOUNT,
        "caller": "AROAEXAMPLEROLEID0000:reporting-job-7f3a",
        "cognitoAuthenticationProvider": None,
        "cognitoAuthenticationType": None,
        "cognitoIdentityId": None,
        "cognitoIdentityPoolId": None,
        "principalOrgId": "o-exampleorg1",
        "sourceIp": "10.0.12.34",
        "user": "AROAEXAMPLEROLEID0000:reporting-job-7f3a",
        "userAgent": "token-client/0.1 botocore/1.44",
        "userArn": user_arn,
    }
    if user_arn is None:
        del identity["userArn"]
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Host": "abc123.execute-api.eu-west-2.amazonaws.com", "Content-Type": "application/json"},
        "multiValueHeaders": {
            "Host": ["abc123.execute-api.eu-west-2.amazonaws.com"],
            "Content-Type": ["application/json"],
        },
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-2.amazonaws.com",
            "httpMethod": method,
            "identity": identity,
            "path": f"/v1{path}",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTimeEpoch": 1795000000000,
            "resourceId": "a1b2c3",
            "resourcePath": path,
            "stage": "v1",
        },
        "body": base64.b64encode(body.encode()).decode() if (b64 and body is not None) else body,
        "isBase64Encoded": b64,
    }


def http_v2(raw_query: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "GET /token",
        "rawPath": "/token",
        "rawQueryString": raw_query,
        "headers": {"host": "def456.execute-api.eu-west-2.amazonaws.com"},
        "queryStringParameters": {"scope": "fr:idm:*"},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "def456",
            "authorizer": {
                "iam": {
                    "accessKey": "ASIAXAMPLEKEY0000000",
                    "accountId": ACCOUNT,
                    "callerId": "AROAEXAMPLEROLEID0000:reporting-job-7f3a",
                    "principalOrgId": "o-exampleorg1",
                    "userArn": CALLER,
                    "userId": "AROAEXAMPLEROLEID0000:reporting-job-7f3a",
                }
            },
            "domainName": "def456.execute-api.eu-west-2.amazonaws.com",
            "http": {
                "method": "GET",
                "path": "/token",
                "protocol": "HTTP/1.1",
                "sourceIp": "10.0.12.34",
                "userAgent": "token-client/0.1",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "GET /token",
            "stage": "$default",
            "time": "23/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795000000000,
        },
        "isBase64Encoded": False,
    }


GOOD: dict[str, Any] = {
    "direct.json": {"scope": "fr:idm:*"},
    "step_functions.json": {"scopes": ["fr:idm:*", "fr:am:*"], "minValiditySeconds": 600},
    "rest_get.json": rest("GET", query={"scope": ["fr:idm:*"]}),
    "rest_post.json": rest("POST", body=json.dumps({"scope": "fr:idm:*", "minValiditySeconds": 300})),
    "http_api_v2.json": http_v2("scope=fr%3Aidm%3A%2A"),
}

BAD: dict[str, Any] = {
    "direct_unknown_member.json": {"scope": "fr:idm:*", "audience": "x"},
    "direct_wrong_type.json": {"scope": 42},
    "direct_not_an_object.json": ["fr:idm:*"],
    "direct_min_validity_negative.json": {"scope": "fr:idm:*", "minValiditySeconds": -1},
    "rest_post_invalid_json.json": rest("POST", body='{"scope": '),
    "rest_post_oversized_body.json": rest(
        "POST", body=json.dumps({"scope": "fr:idm:*", "pad": "x" * 20_000})
    ),
    "rest_post_wrong_types.json": rest(
        "POST", body=json.dumps({"scopes": "fr:idm:*", "minValiditySeconds": "600"})
    ),
    "rest_post_unknown_member.json": rest("POST", body=json.dumps({"scope": "fr:idm:*", "grant_type": "x"})),
    "rest_post_not_an_object.json": rest("POST", body=json.dumps(["fr:idm:*"])),
    "rest_post_empty_body.json": rest("POST", body=None),
    "rest_post_bad_base64.json": {**rest("POST", body="%%%"), "isBase64Encoded": True},
    "rest_get_1000_scopes.json": rest("GET", query={"scope": [f"fr:s{i}" for i in range(1000)]}),
    "rest_get_control_character.json": rest("GET", query={"scope": ["fr:idm:\u0007"]}),
    "rest_get_non_ascii.json": rest("GET", query={"scope": ["fr:idm:\u00e9\u00e8"]}),
    "rest_get_10kb_scope.json": rest("GET", query={"scope": ["f" * 10_240]}),
    "rest_get_min_validity_negative.json": rest(
        "GET", query={"scope": ["fr:idm:*"], "minValiditySeconds": ["-5"]}
    ),
    "rest_get_min_validity_huge.json": rest(
        "GET", query={"scope": ["fr:idm:*"], "minValiditySeconds": ["99999999999999999999"]}
    ),
    "rest_get_no_scope.json": rest("GET", query=None),
    "rest_get_unknown_parameter.json": rest("GET", query={"scope": ["fr:idm:*"], "debug": ["1"]}),
    "rest_get_missing_identity.json": rest("GET", query={"scope": ["fr:idm:*"]}, user_arn=None),
    "rest_get_unknown_caller.json": rest(
        "GET", query={"scope": ["fr:idm:*"]}, user_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/intruder/x"
    ),
    "rest_get_scope_beyond_policy.json": rest("GET", query={"scope": ["fr:idm:*", "fr:am:*"]}),
    "rest_delete_not_served.json": rest("DELETE", query={"scope": ["fr:idm:*"]}),
    "rest_put_not_served.json": rest("PUT", body=json.dumps({"scope": "fr:idm:*"})),
    "rest_get_unknown_path.json": rest("GET", path="/admin", query={"scope": ["fr:idm:*"]}),
    "http_api_v2_bad_scope.json": http_v2("scope=%22quoted%22"),
}


def main() -> None:
    for name, event in GOOD.items():
        (HERE / name).write_text(json.dumps(event, indent=2) + "\n")
    for name, event in BAD.items():
        (HERE / "bad" / name).write_text(json.dumps(event, indent=2) + "\n")


if __name__ == "__main__":
    main()
