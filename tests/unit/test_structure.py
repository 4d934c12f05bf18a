"""Issue 33: the vendor's structure holds its rules in one place each (no sockets).

The error tree: every exception the package defines is in ``token_vendor.kernel.errors``, drawn in its
docstring.
The wings: each module imports only from the wings below its own (kernel at the bottom, then the
adapters, the protocol, access, the wiring, the fronts, and the entry points on top), so no import runs
back up and there is no circle between wings.
The composition: each collaborator of the vendor takes what it uses in its constructor; none inherits
from another.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import token_vendor
from token_vendor.kernel import errors
from token_vendor.vend.context import VendContext
from token_vendor.vend.fleet_lease import FleetLease
from token_vendor.vend.minting import Minter
from token_vendor.vend.retirement import Retirement
from token_vendor.vend.vending import SlowPath, TokenVendor


def _package_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(token_vendor.__path__, "token_vendor."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            ours = inspect.isclass(value) and value.__module__.startswith("token_vendor.")
            if ours and issubclass(value, BaseException):
                found[f"{value.__module__}.{name}"] = value
    return found


def test_every_exception_of_the_package_is_defined_in_errors() -> None:
    elsewhere = {
        where
        for where, cls in _package_exceptions().items()
        if cls.__module__ != "token_vendor.kernel.errors"
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
    from token_vendor.kernel.settings import load_settings
    from token_vendor.vend.locks import KeyLocks
    from token_vendor.vend.memory_cache import MemoryCache
    from token_vendor.wiring import compose_vendor

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


# The wings from the bottom up; a module outside them is an entry point (app, rotation), on top.
WINGS = ("kernel", "adapters.http", "adapters.aic|adapters.aws", "vend", "access", "wiring", "fronts")
PACKAGE = Path(token_vendor.__file__).parent


def _wing(module: str) -> tuple[int, str]:
    inside = module.removeprefix("token_vendor.")
    for level, names in enumerate(WINGS):
        for name in names.split("|"):
            if inside == name or inside.startswith(name + "."):
                return level, name
    return len(WINGS), "entry point"


def _imports() -> list[tuple[str, str]]:
    arrows = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("token_vendor", *path.relative_to(PACKAGE).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("token_vendor"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    is_module = (PACKAGE.parent / target.replace(".", "/")).with_suffix(".py").exists()
                    arrows.append((module, target if is_module else str(node.module)))
    return arrows


def test_every_import_points_down_the_wings() -> None:
    upward = []
    for source, target in _imports():
        (low, own), (high, other) = _wing(source), _wing(target)
        if own != other and high >= low:
            upward.append(f"{source} -> {target}")
    assert upward == []


def test_the_wings_hold_every_module_of_the_package() -> None:
    loose = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert loose == {"app", "rotation", "kms_rotation", "wiring"}
