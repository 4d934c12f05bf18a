"""Who may have which scope (CONTRACT section 6): pure, decided before any I/O."""

from __future__ import annotations

from collections.abc import Callable

from token_vendor.access.caller_policy import CallerPolicy, normalise_principal, scopes_match
from token_vendor.kernel.errors import AccessDenied
from token_vendor.kernel.scopes import check_allowed
from token_vendor.kernel.settings import Settings
from token_vendor.kernel.vend_request import DIRECT_CALLER, VendRequest


class Authorizer:
    def __init__(self, settings: Settings, *, on_denied: Callable[[], None] = lambda: None) -> None:
        self._settings = settings
        self._policy = CallerPolicy(settings.caller_policy)
        self._on_denied = on_denied  # the vendor counts AccessDenied

    def authorize(self, request: VendRequest) -> None:
        """The caller's own grant is checked first, so a caller the policy does not cover learns nothing
        about ``ALLOWED_SCOPES`` (403 whatever it asks for); then what this deployment may mint at all.
        """
        if request.caller == DIRECT_CALLER:
            self._authorize_direct(request)
        else:
            self._authorize_http(request)
        check_allowed(request.scopes, self._settings.allowed_scopes)

    def _deny(self, message: str) -> AccessDenied:
        self._on_denied()
        return AccessDenied(message)

    def _authorize_direct(self, request: VendRequest) -> None:
        # lambda:InvokeFunction is often granted on "*" (PowerUserAccess): invoking is not a grant.
        globs = self._settings.direct_invoke_scopes
        if globs is None:
            raise self._deny(
                "direct invocation is not enabled for this deployment (DIRECT_INVOKE_SCOPES is not set)"
            )
        if not scopes_match(globs, request.scopes):
            raise self._deny(
                f"direct invokers may not obtain scope set '{' '.join(request.scopes)}' "
                "(DIRECT_INVOKE_SCOPES does not cover it)"
            )

    def _authorize_http(self, request: VendRequest) -> None:
        principal = normalise_principal(request.caller)
        evaluated = request.caller if principal == request.caller else f"{request.caller} (as {principal})"
        if not self._policy.names(request.caller):
            raise self._deny(f"caller {evaluated} is not named in CALLER_POLICY")
        if not self._policy.allows(request.caller, request.scopes):
            raise self._deny(
                f"caller {evaluated} is not allowed scope set '{' '.join(request.scopes)}' by CALLER_POLICY"
            )
