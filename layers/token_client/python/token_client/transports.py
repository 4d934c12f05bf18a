"""How a ``TokenClient`` reaches the vendor: Lambda invoke, or SigV4-signed HTTPS through API Gateway."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import botocore.session
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from token_client.aws_hosts import signing_scope
from token_client.errors import (
    BY_NAME,
    BY_OAUTH_CODE,
    AccessDenied,
    InternalError,
    SetupError,
    TokenClientError,
    TransportError,
    UpstreamUnavailable,
)
from token_client.identity import IdentityProver, audience_for
from token_client.proxies import ProxyAwarePool
from token_client.regions import NO_REGION, resolve_region


class Transport(Protocol):
    def fetch(
        self, scopes: tuple[str, ...], min_validity: int | None, rejected: str | None = None
    ) -> dict[str, Any]:
        """Return the vendor's result document, or raise a ``TokenClientError``."""


def region_of(url: str) -> str | None:
    """``https://abc123.execute-api.eu-west-2.amazonaws.com/v1/token`` -> ``eu-west-2`` (also for a
    function URL, ``https://xyz.lambda-url.eu-west-2.on.aws/token``, and in every partition)."""
    scope = signing_scope(url)
    return scope[1] if scope else None


def service_of(url: str) -> str:
    """SigV4 signs for ``lambda`` at a function URL, for ``execute-api`` at API Gateway."""
    scope = signing_scope(url)
    return scope[0] if scope else "execute-api"


def _payload(scopes: tuple[str, ...], min_validity: int | None, rejected: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"scopes": list(scopes)}
    if min_validity is not None:
        payload["minValiditySeconds"] = min_validity
    if rejected is not None:
        payload["rejected"] = rejected
    return payload


_EXPIRED = "AWS says the credentials have expired ({}): refresh them (aws sso login, a new session token)"
REFUSED_CREDENTIALS = {
    "UnrecognizedClientException": "AWS refused the credentials (UnrecognizedClientException): check them",
    "InvalidSignatureException": "AWS refused the credentials (InvalidSignatureException): check the secret",
    "ExpiredTokenException": _EXPIRED.format("ExpiredTokenException"),
    "ExpiredToken": _EXPIRED.format("ExpiredToken"),
    "RequestExpired": "AWS says the request expired (RequestExpired): check this machine's clock",
}


def new_session(profile: str | None = None) -> Any:
    """A botocore session (the default credential chain, or a named profile). boto3 is not needed."""
    return botocore.session.Session(profile=profile)


def local_problem(exc: BotoCoreError) -> TokenClientError:
    """botocore's complaints about this machine's setup, as one line with a hint; anything else that
    kept a request from AWS is worth a retry (a network blip)."""
    if isinstance(exc, ProfileNotFound):
        return SetupError(f"{exc} (check --profile or AWS_PROFILE; profiles live in ~/.aws/config)")
    if isinstance(exc, NoRegionError):
        return SetupError(NO_REGION)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return SetupError(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "or run where a role provides them)"
        )
    return TransportError(f"cannot reach AWS ({type(exc).__name__})")


def _session_region(session: Any) -> str | None:
    region = getattr(session, "region_name", None)  # a boto3 Session
    if region is None and hasattr(session, "get_config_variable"):
        region = session.get_config_variable("region")  # a botocore Session
    return region if isinstance(region, str) and region else None


class LambdaTransport:
    """Invokes the vendor function directly (``lambda:InvokeFunction`` on its ARN).

    ``endpoint_url`` (or the standard ``AWS_ENDPOINT_URL_LAMBDA``) points it at another Invoke endpoint,
    such as the local stack's.
    """

    def __init__(
        self,
        function_name: str,
        *,
        client: Any = None,
        session: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        prove_identity: bool = True,
        prover: IdentityProver | None = None,
    ) -> None:
        self._function = function_name
        needs_region = client is None or (prove_identity and prover is None)
        session = session or (new_session() if needs_region else None)
        if needs_region:  # never a silent default region (CONTRACT section 9)
            try:
                resolved_region = resolve_region(
                    region, session=session, arn=function_name, also="; or give the function's ARN"
                )
            except BotoCoreError as exc:  # an unknown profile, say
                raise local_problem(exc) from exc
            if client is None:
                client = session.create_client(
                    "lambda", region_name=resolved_region, endpoint_url=endpoint_url
                )
            # By default every invoke carries a proof of who calls, so the vendor applies CALLER_POLICY.
            if prover is None and prove_identity:
                prover = IdentityProver(session, resolved_region, audience_for(function_name))
        self._client = client
        self._prover = prover

    def fetch(
        self, scopes: tuple[str, ...], min_validity: int | None, rejected: str | None = None
    ) -> dict[str, Any]:
        payload = _payload(scopes, min_validity, rejected)
        try:
            if self._prover is not None:
                payload["identity"] = self._prover.proof()
            response = self._client.invoke(
                FunctionName=self._function,
                InvocationType="RequestResponse",
                Payload=json.dumps(payload).encode(),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("AccessDeniedException", "AccessDenied"):
                raise AccessDenied(f"not allowed to invoke {self._function}") from exc
            if code == "ResourceNotFoundException":
                raise SetupError(
                    f"no function {self._function} (check the name, the region and AWS_ENDPOINT_URL_LAMBDA)"
                ) from exc
            if code in REFUSED_CREDENTIALS:
                raise SetupError(REFUSED_CREDENTIALS[code]) from exc
            raise TransportError(f"Lambda invoke failed: {code or 'error'}") from exc
        except BotoCoreError as exc:
            raise local_problem(exc) from exc
        try:
            body = json.loads(response["Payload"].read() or b"null")
        except ValueError as exc:
            raise TransportError("the vendor answered something that is not JSON") from exc
        if response.get("FunctionError"):
            name = body.get("errorType", "") if isinstance(body, dict) else ""
            message = body.get("errorMessage", "") if isinstance(body, dict) else ""
            raise BY_NAME.get(name, InternalError)(str(message) or name or "the vendor failed")
        if not isinstance(body, dict):
            raise TransportError("the vendor answered something that is not a token result")
        return body


class HttpTransport:
    """GET ``url?scope=…`` signed with SigV4 (service ``execute-api``) from the default credential chain."""

    def __init__(
        self,
        url: str,
        *,
        session: Any = None,
        region: str | None = None,
        pool: urllib3.PoolManager | ProxyAwarePool | None = None,
        timeout: float = 10.0,
        service: str | None = None,
    ) -> None:
        self._url = url
        self._service = service or service_of(url)
        self._session = session or new_session()
        # SigV4 must name the API's region: take it from an execute-api host, else the session's.
        self._region = region or region_of(url) or _session_region(self._session) or "us-east-1"
        self._pool = pool or ProxyAwarePool(retries=False)  # HTTPS_PROXY and NO_PROXY as botocore reads them
        self._timeout = timeout

    def fetch(
        self, scopes: tuple[str, ...], min_validity: int | None, rejected: str | None = None
    ) -> dict[str, Any]:
        query: list[tuple[str, str]] = [("scope", s) for s in scopes]
        if min_validity is not None:
            query.append(("minValiditySeconds", str(min_validity)))
        if rejected is not None:
            query.append(("rejected", rejected))
        url = f"{self._url}?{urlencode(query)}"
        credentials = self._session.get_credentials()
        if credentials is None:
            raise AccessDenied("no AWS credentials found to sign the request")
        request = AWSRequest(method="GET", url=url)
        SigV4Auth(credentials.get_frozen_credentials(), self._service, self._region).add_auth(request)
        try:
            response = self._pool.request(
                "GET", url, headers=dict(request.headers.items()), timeout=self._timeout, retries=False
            )
        except urllib3.exceptions.NameResolutionError as exc:
            host = urlsplit(self._url).hostname
            raise SetupError(f"host {host} does not resolve (check the URL)") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(f"cannot reach the token API ({type(exc).__name__})") from exc
        try:
            body = json.loads(response.data or b"null")
        except ValueError:
            body = None
        if response.status == 200 and isinstance(body, dict) and "access_token" in body:
            return body
        raise _http_error(response.status, body, response.headers.get("Retry-After"))


def _http_error(status: int, body: Any, retry_after: str | None) -> TokenClientError:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        cls = BY_OAUTH_CODE.get(body["error"], InternalError)
        message = str(body.get("error_description") or body["error"])
        if cls is UpstreamUnavailable:
            seconds = float(retry_after) if retry_after and re.fullmatch(r"[0-9]{1,4}", retry_after) else None
            return UpstreamUnavailable(message, status=status, retry_after=seconds)
        return cls(message, status=status)
    if status == 403 and isinstance(body, dict) and "message" in body:
        return AccessDenied(str(body["message"]), status=status)  # API Gateway's own IAM refusal
    if status in (429, 502, 503, 504):
        return UpstreamUnavailable(f"token API answered HTTP {status}", status=status)
    return TransportError(f"token API answered HTTP {status}", status=status)
