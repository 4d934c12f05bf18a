from __future__ import annotations

import pytest

from token_vendor.access.caller_policy import CallerPolicy, glob_matches, normalise_principal

POLICY = CallerPolicy(
    {
        "arn:aws:iam::111122223333:role/reporting": ["fr:idm:*"],
        "arn:aws:iam::111122223333:role/ops-*": ["fr:idm:*", "fr:am:*", "fr:idc:esv:*"],
    }
)


@pytest.mark.parametrize(
    ("arn", "role"),
    [
        (
            "arn:aws:sts::111122223333:assumed-role/reporting/i-0abc",
            "arn:aws:iam::111122223333:role/reporting",
        ),
        ("arn:aws:iam::111122223333:role/service/team/reporting", "arn:aws:iam::111122223333:role/reporting"),
        ("arn:aws-us-gov:sts::111122223333:assumed-role/r/s", "arn:aws-us-gov:iam::111122223333:role/r"),
        ("arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/alice"),
    ],
)
def test_sessions_and_role_paths_normalise_to_the_role(arn: str, role: str) -> None:
    assert normalise_principal(arn) == role


def test_an_assumed_role_session_gets_what_its_role_is_allowed() -> None:
    session = "arn:aws:sts::111122223333:assumed-role/reporting/job-42"
    assert POLICY.allows(session, ("fr:idm:*",))
    assert not POLICY.allows(session, ("fr:am:*", "fr:idm:*"))


def test_every_scope_must_be_covered_by_one_entry() -> None:
    ops = "arn:aws:sts::111122223333:assumed-role/ops-oncall/alice"
    assert POLICY.allows(ops, ("fr:am:*", "fr:idc:esv:read", "fr:idm:*"))
    assert not POLICY.allows(ops, ("fr:iga:*",))


def test_unknown_callers_and_other_accounts_are_denied() -> None:
    assert not POLICY.allows("arn:aws:sts::999999999999:assumed-role/reporting/x", ("fr:idm:*",))
    assert not POLICY.allows("arn:aws:iam::111122223333:user/reporting", ("fr:idm:*",))
    assert not CallerPolicy({}).allows("arn:aws:iam::111122223333:role/reporting", ("fr:idm:*",))


def test_globs_treat_brackets_literally() -> None:
    assert glob_matches("fr:idm:*", "fr:idm:*")
    assert glob_matches("fr:idm:*", "fr:idm:read")
    assert not glob_matches("fr:[a]dm", "fr:adm")
    assert glob_matches("role/app-?", "role/app-1")
    assert not glob_matches("role/app", "role/app-1")
