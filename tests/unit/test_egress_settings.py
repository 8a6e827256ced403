"""The egress proxy's settings: which worker variables runs' secrets may name, and the extra
CAs it trusts for secret hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from tether.settings import SettingsError, TetherSettings, read_settings


def test_brokered_variables_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_BROKERED_ENV", "GITHUB_TOKEN, NPM_TOKEN,,")
    assert TetherSettings().brokered_env == ["GITHUB_TOKEN", "NPM_TOKEN"]


def test_no_variable_is_brokered_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_BROKERED_ENV", raising=False)
    assert TetherSettings().brokered_env == []


def test_an_egress_ca_file_that_is_not_there_stops_the_process_naming_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TETHER_EGRESS_CA_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsError, match=f"TETHER_EGRESS_CA_FILE={tmp_path}/missing.pem: "
                       f"{tmp_path}/missing.pem is not a file: name a PEM file of CA certificates"):
        read_settings()
