#!/usr/bin/env bash
# Installs the client distribution in a clean virtual environment outside the repository, as a user
# would (pip install ./layers/token_client), and checks the console script: --help works, and a bad
# argument exits 2 with one line on stderr; urllib3 2 comes with it; without the extras the auth=
# adapters' import fails with a one-line hint, and with aic-token-client[requests] / [httpx] (each in its
# own clean venv) they import. Run by `make client-check` (and CI).
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
major=$(venv/bin/python -c "import urllib3; print(urllib3.__version__.split('.')[0])")
if [ "$major" -lt 2 ]; then
  echo "client-check: the client installed urllib3 $major.x; it declares urllib3>=2" >&2
  exit 1
fi
venv/bin/aic-token exec --help | grep -q -- "--env"
# Without the extras, the auth= adapters fail to import with a one-line hint naming the extra.
for extra in requests httpx; do
  if venv/bin/python -c "import $extra" 2>/dev/null; then
    echo "client-check: $extra was installed without the [$extra] extra" >&2
    exit 1
  fi
  set +e
  venv/bin/python -c "import token_client.${extra}_auth" 2> err.txt
  code=$?
  set -e
  if [ "$code" = 0 ] || ! grep -q "aic-token-client\[$extra\]" err.txt || [ "$(tail -n 1 err.txt | grep -c "^ImportError: token_client.${extra}_auth needs $extra")" != 1 ]; then
    echo "client-check: importing token_client.${extra}_auth without $extra did not fail with the hint:" >&2
    cat err.txt >&2
    exit 1
  fi
done
# With each extra, in its own clean venv: the adapter imports and is the library's own auth type.
for extra in requests httpx; do
  "$python" -m venv "venv-$extra"
  "venv-$extra/bin/pip" install --disable-pip-version-check --quiet "$repo/layers/token_client[$extra]"
  "venv-$extra/bin/python" -c "
import token_client.${extra}_auth as adapter, ${extra}
base = ${extra}.auth.AuthBase if '$extra' == 'requests' else ${extra}.Auth
assert issubclass(adapter.VendorAuth, base), adapter.VendorAuth
"
done
echo "client-check: ok (installed outside the repository: $(venv/bin/pip list 2>/dev/null | grep -ci aic-token) distribution with urllib3 $major; aic-token --help, exec --help and exit code 2 as documented; the adapters' import hint without the extras; [requests] and [httpx] each in a clean venv)"
