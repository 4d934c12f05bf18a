"""Checks what ``make build`` produced: the function package, a dependencies layer built for the Lambda
platform (arm64, CPython 3.13), the client layer, and 3.13 bytecode for at least 95% of shipped modules.
Run by ``make build-check`` (and CI); exits non-zero on a problem, a missing bytecode included."""

from __future__ import annotations

import sys
from pathlib import Path

BUILD = Path(".aws-sam/build")
AARCH64_ELF = b"\x7fELF\x02\x01\x01"  # 64-bit little-endian ELF
EM_AARCH64 = 183
# importlib.util.MAGIC_NUMBER of CPython 3.13 (3571): a .pyc written by any other version is ignored.
MAGIC_313 = (3571).to_bytes(2, "little") + b"\r\n"
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked
MIN_BYTECODE_SHARE = 0.95
FORBIDDEN_IN_LAYER = ("boto3", "s3transfer")  # the runtime ships boto3; we use botocore only


def machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    if not header.startswith(AARCH64_ELF):
        return -1
    return int.from_bytes(header[18:20], "little")


def bytecode_share(folder: Path) -> tuple[int, int]:
    """(modules with a valid 3.13 unchecked-hash .pyc, shipped .py files) under ``folder``."""
    sources = [p for p in folder.rglob("*.py") if "__pycache__" not in p.parts]
    good = 0
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if pyc.is_file():
            header = pyc.read_bytes()[:8]
            if header[:4] == MAGIC_313 and int.from_bytes(header[4:8], "little") == UNCHECKED_HASH:
                good += 1
    return good, len(sources)


def main() -> int:
    problems: list[str] = []
    source = sorted(p.name for p in Path("functions/token_vendor/token_vendor").glob("*.py"))
    for function in (BUILD / "TokenVendorFunction", BUILD / "TokenApiFunction"):  # one package, two handlers
        built = sorted(p.name for p in (function / "token_vendor").glob("*.py"))
        if source != built:
            problems.append(f"{function.name} package differs: missing {sorted(set(source) - set(built))}")
        strays = sorted(p.name for p in function.glob("*.py"))
        if strays:
            problems.append(f"{function.name} has top-level modules outside the package: {strays}")
    layer = BUILD / "DependenciesLayer" / "python"
    for package in ("jwt", "cryptography", "aws_lambda_powertools", "urllib3", "botocore"):
        if not (layer / package).is_dir():
            problems.append(f"layer lacks {package}")
    for package in FORBIDDEN_IN_LAYER:
        if (layer / package).is_dir():
            problems.append(f"layer ships {package}, which the function does not use (docs/decisions.md)")
    binaries = list(layer.rglob("*.so"))
    if not binaries:
        problems.append("layer has no compiled extension (cryptography's)")
    for binary in binaries:
        if machine(binary) != EM_AARCH64:
            problems.append(f"{binary} is not an aarch64 ELF")
    if not list(layer.glob("cryptography/hazmat/bindings/_rust*.so")):
        problems.append("cryptography's Rust binding is missing")
    if layer.is_dir() and not any(
        p.name.startswith("cryptography-") and "dist-info" in p.name for p in layer.iterdir()
    ):
        problems.append("cryptography's dist-info is missing")
    client = BUILD / "TokenClientLayer" / "python" / "token_client" / "client.py"
    if not client.exists():
        problems.append("the token_client layer is missing")
    shares = []
    for name, folder in (
        ("vendor function", BUILD / "TokenVendorFunction"),
        ("API function", BUILD / "TokenApiFunction"),
        ("dependencies layer", layer),
        ("client layer", client.parent.parent),
    ):
        good, total = bytecode_share(folder)
        share = good / total if total else 0.0
        shares.append(f"{name} {good}/{total}")
        if share < MIN_BYTECODE_SHARE:
            problems.append(
                f"BYTECODE SHORTFALL: {name} has 3.13 bytecode for {good} of {total} modules ({share:.0%}, "
                f"needs >= {MIN_BYTECODE_SHARE:.0%}); install a CPython 3.13 and run 'make build'"
            )
    for problem in problems:
        print(f"build-check: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"build-check: ok ({len(built)} function modules, {len(binaries)} aarch64 extensions; "
            f"3.13 bytecode: {', '.join(shares)})"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
