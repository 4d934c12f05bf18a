"""Issue 33: the vendor's structure holds its rules in one place each (no sockets).

The error tree: every exception the package defines is in ``token_vendor.errors``, drawn in its docstring.
The composition: each collaborator of the vendor takes what it uses in its constructor; none inherits
from another.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import token_vendor
from token_vendor import errors
from token_vendor.fleet_lease import FleetLease
from token_vendor.minting import Minter
from token_vendor.retirement import Retirement
from token_vendor.vending import SlowPath, TokenVendor
from token_vendor.vendor_state import VendContext


def _package_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.iter_modules(token_vendor.__path__):
        module = importlib.import_module(f"token_vendor.{info.name}")
        for name, value in vars(module).items():
            ours = inspect.isclass(value) and value.__module__.startswith("token_vendor.")
            if ours and issubclass(value, BaseException):
                found[f"{value.__module__}.{name}"] = value
    return found


def test_every_exception_of_the_package_is_defined_in_errors() -> None:
    elsewhere = {
        where for where, cls in _package_exceptions().items() if cls.__module__ != "token_vendor.errors"
    }
    assert elsewhere == set()


def test_the_errors_docstring_draws_every_exception_of_the_tree() -> None:
    tree = errors.__doc__ or ""
    for cls in _package_exceptions().values():
        assert f" {cls.__name__} " in tree, cls.__name__
    # Everything a caller can read is a TokenVendorError; everything else never reaches a caller.
    for cls in _package_exceptions().values():
        assert issubclass(cls, errors.TokenVendorError | errors.InternalFault) or cls is errors.NoTimeLeft


def test_the_vendors_collaborators_are_composed_not_inherited() -> None:
    for cls in (VendContext, Minter, FleetLease, SlowPath, Retirement, TokenVendor):
        assert cls.__bases__ == (object,), cls
    # Each takes its collaborators by name in its constructor.
    assert list(inspect.signature(FleetLease).parameters)[:2] == ["context", "minter"]
    assert list(inspect.signature(Retirement).parameters)[:3] == ["context", "minter", "lease"]
    assert "slow_path" in inspect.signature(Retirement).parameters
    assert {"authorizer", "slow_path", "retirement", "locks"} <= set(
        inspect.signature(TokenVendor).parameters
    )


def test_the_wiring_keeps_the_collaborators_it_is_given_even_when_empty() -> None:
    """An empty KeyLocks has a length of 0: ``locks or KeyLocks()`` dropped the simulator's cooperative
    locks for real ones, and a history with two callers of one scope set in one environment hung."""
    from tests.unit.test_runtime import VALID
    from token_vendor.coordination import KeyLocks
    from token_vendor.memory_cache import MemoryCache
    from token_vendor.runtime import compose_vendor
    from token_vendor.settings import load_settings

    locks, memory = KeyLocks(), MemoryCache()
    vendor = compose_vendor(
        load_settings(VALID),
        key_source=object(),  # type: ignore[arg-type]
        endpoint=object(),  # type: ignore[arg-type]
        dynamodb=object(),  # type: ignore[arg-type]
        memory=memory,
        locks=locks,
    )
    assert vendor._locks is locks
    assert vendor.context.memory is memory
