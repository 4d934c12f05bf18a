#!/usr/bin/env bash
# Installs the client distribution in a clean virtual environment outside the repository, as a user
# would (pip install ./layers/token_client), and checks the console script: --help works, and a bad
# argument exits 2 with one line on stderr. Run by `make client-check` (and CI).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
"$python" -m venv venv
venv/bin/pip install --disable-pip-version-check --quiet "$repo/layers/token_client"
venv/bin/aic-token --help > help.txt
grep -q -- "--function" help.txt
set +e
venv/bin/aic-token --url notaurl --scope x 2> err.txt
code=$?
set -e
lines=$(wc -l < err.txt)
if [ "$code" != 2 ] || [ "$lines" != 1 ]; then
  echo "client-check: 'aic-token --url notaurl' exited $code with $lines line(s) on stderr:" >&2
  cat err.txt >&2
  exit 1
fi
if venv/bin/python -c "import boto3" 2>/dev/null; then
  echo "client-check: boto3 was installed; the client needs botocore and urllib3 only" >&2
  exit 1
fi
echo "client-check: ok (installed outside the repository: $(venv/bin/pip list 2>/dev/null | grep -ci aic-token) distribution; aic-token --help and exit code 2 as documented)"
