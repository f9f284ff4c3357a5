"""The approvers' secrets file (drp.adapters.approvers, over pyotp): enrolment, the 0600 file
and its refusal when others may read it, codes matched with one step of clock skew, lab-only
codes, and enrolments at once that lose nothing."""

from __future__ import annotations

import json
import os
import stat
import threading
import urllib.parse
from pathlib import Path

import pyotp
import pytest
from typer.testing import CliRunner

from drp.adapters.approvers import ApproverSecrets, ApproverSecretsError
from drp.cli import app

pytestmark = pytest.mark.unit
T = 1_800_000_015.0  # 15 s into a 30-second step
REPO = Path(__file__).resolve().parents[2]


def _secret(uri: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)["secret"][0]


def test_enrolment_writes_a_0600_file_in_a_0700_directory_and_returns_the_uri(
    tmp_path: Path,
) -> None:
    store = ApproverSecrets(tmp_path / "secrets" / "approvers.json")
    uri = store.enrol("Sari")
    assert uri.startswith("otpauth://totp/drp:Sari?") and "issuer=drp" in uri
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    data = json.loads(store.path.read_text())
    assert data["people"]["Sari"]["secret"] == _secret(uri)
    assert set(store.enrolled()) == {"Sari"} and store.is_enrolled("Sari")


def test_a_code_matches_its_step_and_one_step_either_side_but_not_two(tmp_path: Path) -> None:
    store = ApproverSecrets(tmp_path / "approvers.json")
    totp = pyotp.TOTP(_secret(store.enrol("Sari")))
    code, step = totp.at(T), totp.timecode(T)
    assert store.matching_step("Sari", code, T) == step
    assert store.matching_step("Sari", code, T + 30) == step  # the approver's clock is behind
    assert store.matching_step("Sari", code, T - 30) == step  # ... or ahead
    assert store.matching_step("Sari", code, T + 60) is None
    assert store.matching_step("Sari", "000000" if code != "000000" else "111111", T) is None
    assert store.matching_step("Budi", code, T) is None  # not enrolled
    assert store.matching_step("Sari", code + "0", T) is None


def test_a_file_others_may_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    store = ApproverSecrets(tmp_path / "approvers.json")
    store.enrol("Sari")
    os.chmod(store.path, 0o644)
    with pytest.raises(ApproverSecretsError, match=r"mode 0644.*chmod 600"):
        store.enrolled()


def test_enrolling_twice_is_refused_and_replace_voids_the_old_secret(tmp_path: Path) -> None:
    store = ApproverSecrets(tmp_path / "approvers.json")
    old = pyotp.TOTP(_secret(store.enrol("Sari")))
    with pytest.raises(ApproverSecretsError, match=r"already enrolled.*--replace"):
        store.enrol("Sari")
    store.enrol("Sari", replace=True)
    assert store.matching_step("Sari", old.at(T), T) is None
    assert store.revoke("Sari") and not store.is_enrolled("Sari") and not store.revoke("Sari")


def test_current_codes_are_shown_only_for_a_lab_file(tmp_path: Path) -> None:
    real = ApproverSecrets(tmp_path / "real.json")
    real.enrol("Sari")
    with pytest.raises(ApproverSecretsError, match="not the lab's"):
        real.code_now("Sari")
    lab = ApproverSecrets(tmp_path / "lab.json")
    lab.enrol("Sari", lab=True)
    assert lab.matching_step("Sari", lab.code_now("Sari", T), T) is not None


def test_enrolments_at_once_lose_nobody(tmp_path: Path) -> None:
    store = ApproverSecrets(tmp_path / "approvers.json")
    names = [f"person{i}" for i in range(12)]
    threads = [
        threading.Thread(target=lambda n=n: ApproverSecrets(store.path).enrol(n)) for n in names
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(store.enrolled()) == sorted(names)


def test_the_roster_commands_enrol_list_and_refuse_codes_outside_the_lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "approvers.json"
    monkeypatch.setenv("DRP_APPROVER_SECRETS", str(path))
    runner = CliRunner()
    lab = str(REPO / "runbooks" / "lab.yaml")
    enrolled = runner.invoke(app, ["roster", "enroll", "Sari", "--runbook", lab])
    assert enrolled.exit_code == 0, enrolled.output
    uri = next(line for line in enrolled.output.splitlines() if line.startswith("otpauth://"))
    assert _secret(uri) == json.loads(path.read_text())["people"]["Sari"]["secret"]
    listed = runner.invoke(app, ["roster", "list", "--runbook", lab, "--json"])
    people = {p["name"]: p for p in json.loads(listed.output)["people"]}
    assert people["Sari"]["enrolled"] and not people["Budi"]["enrolled"]
    assert people["Andi"]["may_confirm_isolation"] and not people["Andi"]["may_approve"]
    assert _secret(uri) not in listed.output
    stranger = runner.invoke(app, ["roster", "enroll", "Mallory", "--runbook", lab])
    assert stranger.exit_code == 2 and "not in the roster" in stranger.output
    refused = runner.invoke(app, ["roster", "code", "Sari", "--runbook", lab])
    assert refused.exit_code == 1 and "not the lab's" in refused.output
    ceisa = runner.invoke(
        app, ["roster", "code", "Sari", "--runbook", str(REPO / "runbooks" / "ceisa.yaml")]
    )
    assert ceisa.exit_code == 1 and "production runbook" in ceisa.output
