"""Checks what ``make build`` produced: the function's modules and a dependencies layer built for the
Lambda platform (arm64, CPython 3.13). Run by ``make build-check`` (and CI); exits non-zero on a problem."""

from __future__ import annotations

import sys
from pathlib import Path

BUILD = Path(".aws-sam/build")
AARCH64_ELF = b"\x7fELF\x02\x01\x01"  # 64-bit little-endian ELF
EM_AARCH64 = 183


def machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    if not header.startswith(AARCH64_ELF):
        return -1
    return int.from_bytes(header[18:20], "little")


def main() -> int:
    problems: list[str] = []
    function = BUILD / "TokenVendorFunction"
    source = sorted(p.name for p in Path("functions/token_vendor").glob("*.py"))
    built = sorted(p.name for p in function.glob("*.py"))
    if source != built:
        problems.append(f"function modules differ: missing {sorted(set(source) - set(built))}")
    layer = BUILD / "DependenciesLayer" / "python"
    for package in ("jwt", "cryptography", "aws_lambda_powertools", "urllib3", "boto3"):
        if not (layer / package).is_dir():
            problems.append(f"layer lacks {package}")
    binaries = list(layer.rglob("*.so"))
    if not binaries:
        problems.append("layer has no compiled extension (cryptography's)")
    for binary in binaries:
        if machine(binary) != EM_AARCH64:
            problems.append(f"{binary} is not an aarch64 ELF")
    rust = list(layer.glob("cryptography/hazmat/bindings/_rust*.so"))
    if not rust:
        problems.append("cryptography's Rust binding is missing")
    if not any(p.name.startswith("cryptography-") and "dist-info" in p.name for p in layer.iterdir()):
        problems.append("cryptography's dist-info is missing")
    client = BUILD / "TokenClientLayer" / "python" / "token_client" / "client.py"
    if not client.exists():
        problems.append("the token_client layer is missing")
    for problem in problems:
        print(f"build-check: {problem}", file=sys.stderr)
    if not problems:
        print(f"build-check: ok ({len(built)} function modules, {len(binaries)} aarch64 extensions)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
