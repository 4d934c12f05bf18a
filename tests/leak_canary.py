"""Secret-leak canary: a pytest plugin that watches the whole session's output for secrets.

It gathers every log record (any logger), every test's captured stdout/stderr, every failure report and
the text of every ``TokenVendorError`` raised, and at the end of the session looks in all of it for:
the value of every private-key member (``d p q dp dq qi``) and every PEM body of a key the tests made
(registered through ``register_key``), and every assertion and access token the AIC stand-in saw or
issued. Any hit fails the session.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable
from typing import Any

import pytest

_KEY_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")
_MIN_SECRET_CHARS = 24


class _Canary:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.secrets: dict[str, str] = {}  # secret text -> what it is
        self.standins: list[Any] = []
        self.errors_seen = 0

    def add_secret(self, value: str, label: str) -> None:
        if len(value) >= _MIN_SECRET_CHARS:
            self.secrets[value] = label

    def register_key(self, key: Any) -> None:
        from cryptography.hazmat.primitives import serialization
        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(key))
        for member in _KEY_MEMBERS:
            self.add_secret(jwk[member], f"private JWK member '{member}'")
        for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
            pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
            body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
            # Any 64-character line of the body is enough to recognise a leak, even a partial one.
            for line in pem.splitlines()[1:-1][:3]:
                self.add_secret(line, "PEM body line")
            self.add_secret(body[:64], "PEM body")
            der = base64.b64decode(body)
            self.add_secret(der.hex()[:64], "DER (hex)")

    def leaks(self) -> list[str]:
        for standin in self.standins:
            for token in standin.issued_tokens():
                self.add_secret(token, "access token issued by the stand-in")
            for assertion in standin.assertions_seen():
                self.add_secret(assertion, "assertion")
                # the signature alone is unique to the assertion
                self.add_secret(assertion.rsplit(".", 1)[-1], "assertion signature")
        haystack = "\n".join(self.texts)
        return sorted({label for secret, label in self.secrets.items() if secret in haystack})


CANARY = _Canary()

# Figures the README quotes, counted by the tests that produce them (issue 6).
FIGURES: dict[str, int] = {"faults": 0, "bad_inputs": 0, "fuzz_examples": 0}


class _CollectingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken record must not break the canary
            text = str(record.msg)
        parts = [text, repr(record.args), repr({k: v for k, v in record.__dict__.items() if k not in _STD})]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(record.exc_info))
        CANARY.texts.append("\n".join(parts))


_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_HANDLER = _CollectingHandler(level=logging.DEBUG)


def _install_handler(names: Iterable[str]) -> None:
    for name in names:
        logger = logging.getLogger(name)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)


def pytest_configure(config: pytest.Config) -> None:
    # Our loggers at DEBUG (more than production's INFO); third-party loggers stay at their defaults,
    # as on Lambda (botocore's DEBUG output includes response bodies by design).
    _install_handler(["", "token_vendor", "token_client"])
    logging.getLogger("token_vendor").setLevel(logging.DEBUG)
    from token_vendor.kernel.errors import TokenVendorError

    original = TokenVendorError.__init__

    def recording_init(self: Any, message: str, *args: Any, **kwargs: Any) -> None:
        CANARY.texts.append(message)
        CANARY.errors_seen += 1
        original(self, message, *args, **kwargs)

    TokenVendorError.__init__ = recording_init  # type: ignore[method-assign]

    # Issue 21: every identity proof a client signs is watched too, its signature and its session token.
    from token_client.identity import IdentityProver

    original_sign = IdentityProver._sign

    def watched_sign(self: Any) -> dict[str, Any]:
        proof: dict[str, Any] = original_sign(self)
        headers = proof["headers"]
        CANARY.add_secret(headers["Authorization"].rsplit("Signature=", 1)[-1], "identity proof signature")
        CANARY.add_secret(headers.get("X-Amz-Security-Token", ""), "identity proof session token")
        return proof

    IdentityProver._sign = watched_sign  # type: ignore[method-assign]


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Powertools replaces the handlers of its service logger on construction; keep ours attached.
    _install_handler(["token_vendor", "token_client"])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for _, text in report.sections:
        CANARY.texts.append(text)
    if report.longrepr is not None:
        CANARY.texts.append(str(report.longrepr))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = CANARY.leaks()
    session.config.stash[_RESULT] = (found, len(CANARY.secrets), len(CANARY.texts))
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_RESULT = pytest.StashKey[tuple[list[str], int, int]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _RESULT not in config.stash:
        return
    found, secrets, texts = config.stash[_RESULT]
    terminalreporter.write_sep("-", "secret-leak canary")
    terminalreporter.write_line(
        f"leak canary: {len(found)} leaks found, {secrets} secrets watched in {texts} captured texts"
    )
    terminalreporter.write_line(
        f"figures: {FIGURES['faults']} faults tried, {FIGURES['bad_inputs']} bad inputs tried, "
        f"{FIGURES['fuzz_examples']} fuzz examples run, {len(found)} leaks found"
    )
    for label in found:
        terminalreporter.write_line(f"LEAK: {label} appeared in logs, output or an error message", red=True)
