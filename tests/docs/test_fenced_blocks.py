"""Issue 34: every ```-fenced block of README.md and docs/*.md is run here, or says next to it why not.

Each block carries a marker on the line before its fence (tests/docs/pages.py): ``<!-- run: KIND -->``,
run below as its kind says, or ``<!-- not run: REASON -->``. A new block with neither fails the first test.
Shell blocks run with ``bash -e -o pipefail`` against the local stack (tests/docs/conftest.py): the aws CLI
against moto, ``aic-token`` and ``curl`` against the local fronts, and no output may hold a token.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docs.conftest import DocWorld, need
from tests.docs.pages import KINDS, REPO, SAME_AS, Block, all_blocks, blocks_of

BLOCKS = all_blocks()
TOKEN_PREFIX = "eyJ0eXAi"  # every token the AIC stand-in issues starts so


# Blocks that fail today for a reason outside the pages, each with its reason; strict, so a fix shows.
KNOWN_FAILURES: dict[str, str] = {}  # block text -> why it fails today (strict: fixed, it must go)


def _of(*kinds: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind in kinds]


def _params(*kinds: str) -> list[object]:
    params = []
    for block in _of(*kinds):
        known = [reason for text, reason in KNOWN_FAILURES.items() if text in block.text]
        marks = [pytest.mark.xfail(reason=known[0], strict=True)] if known else []
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


def test_every_block_is_run_or_says_why_not() -> None:
    unmarked = [b.id for b in BLOCKS if b.kind is None and not (b.reason or "").strip()]
    assert not unmarked, f"blocks with neither <!-- run: KIND --> nor <!-- not run: REASON -->: {unmarked}"
    unknown = [(b.id, b.kind) for b in BLOCKS if b.kind and b.kind not in KINDS and not SAME_AS.match(b.kind)]
    assert not unknown, f"unknown kinds (known: {sorted(KINDS)}, or same-as PATH): {unknown}"


def test_most_blocks_are_run() -> None:
    run = [b for b in BLOCKS if b.kind]
    assert len(run) >= 2 * (len(BLOCKS) - len(run)), f"{len(run)} of {len(BLOCKS)} blocks run"


def test_an_unmarked_block_is_found() -> None:
    """The walk itself: a new block without a marker, indented or not, is seen as unmarked."""
    text = "Intro\n\n```sh\nls\n```\n\n1. Step\n\n   <!-- run: shell -->\n   ```sh\n   pwd\n   ```\n"
    first, second = blocks_of(text, "new.md")
    assert (first.kind, first.reason, first.line) == (None, None, 3)
    assert (second.kind, second.text) == ("shell", "pwd\n")


# -- shell ------------------------------------------------------------------------------------------------


def _preludes(block: Block) -> str:
    same_page = [b for b in BLOCKS if b.page == block.page and b.line < block.line]
    return "".join(b.text for b in same_page if b.kind == "shell-prelude")


def _run_shell(
    script: str, world: DocWorld, cwd: Path, *, invokes: bool = True
) -> subprocess.CompletedProcess[str]:
    """``invokes``: the block runs aic-token, whose Lambda calls go to the local Invoke endpoint (which
    serves invocations only); otherwise the aws CLI's Lambda calls go to moto with everything else."""
    env = world.env if invokes else {k: v for k, v in world.env.items() if k != "AWS_ENDPOINT_URL_LAMBDA"}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("block", _params("shell", "shell-prelude"))
def test_shell_block_runs_against_the_local_stack(block: Block, doc_world: DocWorld, workdir: Path) -> None:
    doc_world.fresh_secret(created_by_block="create-secret" in block.text)
    invokes = re.search(r"aic-token(?![\w-])", block.text) is not None  # the CLI, not a stack's name
    result = _run_shell(_preludes(block) + block.text, doc_world, workdir, invokes=invokes)

    assert result.returncode == 0, f"{block.id} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    assert TOKEN_PREFIX not in result.stdout + result.stderr, f"{block.id} printed a token"


@pytest.mark.parametrize("block", _params("shell-first-aws-call"))
def test_aws_only_block_gets_as_far_as_its_first_aws_call(block: Block, workdir: Path) -> None:
    """No credentials at all: the command line is accepted (options, --query) and stops at the first call."""
    if ".venv-sam/" in block.text and not (REPO / ".venv-sam" / "bin" / "sam").exists():
        pytest.skip("no .venv-sam (make test and make build create it)")
    (workdir / ".venv-sam").symlink_to(REPO / ".venv-sam")
    env = {
        "PATH": os.pathsep.join([str(REPO / ".venv-clients" / "bin"), os.environ["PATH"]]),
        "HOME": str(workdir),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "eu-west-2",
        "SAM_CLI_TELEMETRY": "0",
    }
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.text],
        input="y\n",
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0, result.stdout
    assert "Unable to locate credentials" in result.stderr, result.stderr


def test_the_smoke_test_prints_one_fingerprint_per_line(doc_world: DocWorld, workdir: Path) -> None:
    """Deploy step 8: three vends (REST, function URL, direct), each a 12-hex fingerprint, one token."""
    smoke = next(b for b in _of("shell") if b.page == "docs/deploy.md" and "vend()" in b.text)
    result = _run_shell(smoke.text, doc_world, workdir)

    lines = result.stdout.split()
    assert result.returncode == 0, result.stderr
    assert len(lines) == 3, lines
    assert all(re.fullmatch(r"[0-9a-f]{12}", line) for line in lines), lines
    assert len(set(lines)) == 1  # the vendor served one cached token to all three paths


def test_a_failed_vend_fails_the_smoke_test_line(doc_world: DocWorld, workdir: Path) -> None:
    """A refused vend is its error and exit code, not the fingerprint of an empty string."""
    smoke = next(b for b in _of("shell") if b.page == "docs/deploy.md" and "vend()" in b.text)
    result = _run_shell(smoke.text.replace("'fr:idm:*'", "'fr:nothing'", 1), doc_world, workdir)

    assert result.returncode != 0
    assert "e3b0c44298fc" not in result.stdout  # sha256 of nothing


def _current_version(secrets: Any, secret_id: str) -> str:
    versions = secrets.list_secret_version_ids(SecretId=secret_id)["Versions"]
    return next(str(v["VersionId"]) for v in versions if "AWSCURRENT" in v["VersionStages"])


def test_the_rotation_block_rotates_the_key_from_a_shell_in_the_functions_region(
    doc_world: DocWorld, workdir: Path
) -> None:
    """Operations, "Rotating the key": the dry run changes nothing, the run promotes a key AIC accepted."""
    rotation = next(b for b in _of("shell") if "aic-token rotate" in b.text)
    prelude = _preludes(rotation).replace("eu-west-2", "us-east-1")  # the local endpoints' region
    secrets = doc_world.client("secretsmanager", "us-east-1")
    before = _current_version(secrets, "token-vendor/doc-world")

    result = _run_shell(prelude + rotation.text, doc_world, workdir)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("dry run: would create a pending key"), result.stdout
    assert "promoted:" in result.stdout, result.stdout
    assert _current_version(secrets, "token-vendor/doc-world") != before
    assert doc_world.stack.standin.admin_token not in result.stdout + result.stderr


def test_the_logging_role_check_prints_nothing_without_a_role(doc_world: DocWorld, workdir: Path) -> None:
    """Deploy step 4: moto's account has no API Gateway logging role, and the check says so with nothing
    (a plain --query cloudwatchRoleArn prints None with --output text, and null with --output json)."""
    check = next(b for b in _of("shell") if "get-account" in b.text)
    result = _run_shell(check.text, doc_world, workdir, invokes=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


# -- python -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", _of("python"), ids=lambda b: b.id)
def test_python_block_runs_against_the_local_stack(block: Block, doc_world: DocWorld, workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", block.text],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=doc_world.env,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, f"{block.id}:\n{result.stderr}"
    assert TOKEN_PREFIX not in result.stdout + result.stderr


# -- documents ---------------------------------------------------------------------------------------------


def _listed(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("block", _of("json", "iam-policy"), ids=lambda b: b.id)
def test_json_block_parses(block: Block) -> None:
    document = json.loads(block.text)
    if block.kind != "iam-policy":
        return
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert set(statement) <= {"Effect", "Action", "Resource", "Condition", "Sid"}, statement
        assert statement["Effect"] == "Allow"
        actions, resources = _listed(statement["Action"]), _listed(statement["Resource"])
        assert all(re.fullmatch(r"(lambda|execute-api):[A-Za-z]+", a) for a in actions), actions
        assert all(r.startswith(("arn:aws:", "<Token")) for r in resources), resources


@pytest.mark.parametrize("block", _of("sam-template"), ids=lambda b: b.id)
def test_sam_template_block_passes_cfn_lint(block: Block, tmp_path: Path) -> None:
    cfn_lint = REPO / ".venv-lint" / "bin" / "cfn-lint"
    if not cfn_lint.exists():
        pytest.skip("no .venv-lint (make test creates it)")
    template = tmp_path / "consumer.yaml"
    template.write_text(block.text)
    result = subprocess.run(
        [str(cfn_lint), "--regions", "eu-west-2", "--", str(template)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.kind and SAME_AS.match(b.kind)], ids=lambda b: b.id)
def test_block_is_the_file_another_test_runs(block: Block) -> None:
    match = SAME_AS.match(block.kind or "")
    assert match
    assert block.text == (REPO / match["path"]).read_text()


# -- make run's output ---------------------------------------------------------------------------------------


_WILD = re.compile(r"(?P<fingerprint>\b[0-9a-f]{12}\b)|(?P<digits>\d+)|(?P<ellipsis>…|\.\.\.)")


def _line_pattern(line: str) -> re.Pattern[str]:
    """A line as shown, where a fingerprint, a number, … or ... may be anything of its kind."""
    parts, position = [], 0
    for wild in _WILD.finditer(line.rstrip()):
        parts.append(re.escape(line[position : wild.start()]))
        parts.append("[0-9a-f]{12}" if wild["fingerprint"] else r"\d+" if wild["digits"] else ".*")
        position = wild.end()
    parts.append(re.escape(line.rstrip()[position:]))
    return re.compile("".join(parts))


@pytest.mark.parametrize("block", _of("demo-output"), ids=lambda b: b.id)
def test_demo_output_block_is_what_make_run_prints(block: Block) -> None:
    need("bash")
    result = subprocess.run(
        [sys.executable, "-m", "local.demo", "--once"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    shown = [line for line in block.text.splitlines() if line.strip() not in ("", "...")]
    position = 0
    for line in shown:
        pattern = _line_pattern(line)
        at = next((i for i in range(position, len(printed)) if pattern.fullmatch(printed[i])), None)
        assert at is not None, f"{block.id}: make run printed no line like {line!r} (after line {position})"
        position = at + 1
