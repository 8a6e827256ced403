"""The documentation says what the code has: every setting is in the README's configuration
table, every repository path the docs name exists, and no doc points outside the repository.

No Docker engine and no Temporal server: these read files and `TetherSettings` only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices, SecretStr
from tether.encryption import KeyRing
from tether.settings import TetherSettings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
DOCS_WITH_PATHS = [README, ARCHITECTURE]

FENCED_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REPOSITORY_PATH = re.compile(r"[A-Za-z0-9_.][\w.-]*(?:/[\w.-]+)*(?:\.(?:py|md|toml|yml|json)|/)")
PARENT_PATH = re.compile(r"(?:\.\./)+[\w./-]*")


def environment_variable(name: str, field) -> str:
    """The variable a field is read from: its first alias, else TETHER_<FIELD>."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    if isinstance(alias, str):
        return alias.upper()
    prefix = TetherSettings.model_config.get("env_prefix", "")
    return f"{prefix}{name}".upper()


def section(text: str, heading: str) -> str:
    """The body of a `## heading` section, up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def table_first_column(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        first = line.split("|")[1]
        names.update(INLINE_CODE.findall(first))
    return names


def prose(markdown: str) -> str:
    """The text outside fenced code blocks: commands there are not references to files."""
    return FENCED_BLOCK.sub("", markdown)


def mentioned_paths(doc: Path) -> list[tuple[str, Path]]:
    """Repository paths the doc names in backticks (relative to the repository's root) or
    links to (relative to the doc)."""
    text = prose(doc.read_text())
    found = []
    for span in INLINE_CODE.findall(text):
        span = span.strip()
        if REPOSITORY_PATH.fullmatch(span) and "://" not in span:
            found.append((span, ROOT / span))
    for target in MARKDOWN_LINK.findall(text):
        target = target.split("#", 1)[0]
        if target and ":" not in target:
            found.append((target, doc.parent / target))
    return found


def repository_markdown() -> list[Path]:
    skipped = {"tether.egg-info", "node_modules"}
    return sorted(
        path for path in ROOT.rglob("*.md")
        if not any(part.startswith(".") or part in skipped
                   for part in path.relative_to(ROOT).parts[:-1])
    )


def test_every_setting_is_in_the_readme_configuration_table():
    documented = table_first_column(section(README.read_text(), "Configuration"))
    expected = {environment_variable(name, field)
                for name, field in TetherSettings.model_fields.items()}
    missing = sorted(expected - documented)
    assert not missing, f"README.md's configuration table lacks {missing}"


PAIRED = {"deployment_name": "TETHER_BUILD_ID", "build_id": "TETHER_DEPLOYMENT_NAME"}
"""Settings given both or neither: each one's partner."""


def test_the_variable_names_are_the_ones_settings_read(monkeypatch: pytest.MonkeyPatch):
    """The names derived above are the ones pydantic-settings reads: each one sets its field."""
    # "7" is valid for every field but these, and no field's default.
    samples = {"encryption_keys": KeyRing.generate("7"), "store_url": "s3://7", "role": "sandbox",
               "trace_content": "true", "metrics_bind": "127.0.0.1:7", "allow_input_urls": "true",
               "model_endpoints": '{"7": {"provider": "openai", "base_url": "http://127.0.0.1:7"}}',
               "mcp_servers": '{"7": {"url": "http://127.0.0.1:7/mcp"}}'}
    for name, field in TetherSettings.model_fields.items():
        variable = environment_variable(name, field)
        sample = samples.get(name, "7")
        monkeypatch.setenv(variable, sample)
        if name in PAIRED:  # valid only with its partner
            monkeypatch.setenv(PAIRED[name], "partner")
        value = getattr(TetherSettings(), name)
        shown = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if isinstance(value, dict):  # JSON of endpoints by name: the one name given
            shown = ",".join(value)
        assert shown in {sample, "7", "7.0", "['7']", "True"}, \
            f"{variable}={sample} did not set TetherSettings.{name}"
        monkeypatch.delenv(variable)
        if name in PAIRED:
            monkeypatch.delenv(PAIRED[name])


@pytest.mark.parametrize("doc", DOCS_WITH_PATHS, ids=lambda doc: doc.name)
def test_every_repository_path_the_docs_name_exists(doc: Path):
    paths = mentioned_paths(doc)
    assert paths, f"{doc.name} names no repository path: the pattern no longer matches"
    missing = sorted({shown for shown, path in paths if not path.exists()})
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_no_markdown_file_points_outside_the_repository():
    docs = repository_markdown()
    assert {README, ARCHITECTURE, ROOT / "BENCHMARKS.md"} <= set(docs)
    # Any relative path, linked or written out, must resolve inside the repository (a file
    # name with no path is checked by the test above).
    offending = [f"{doc.relative_to(ROOT)}: {target}"
                 for doc in docs
                 for target in {*MARKDOWN_LINK.findall(doc.read_text()),
                                *PARENT_PATH.findall(doc.read_text())}
                 if "://" not in target and not target.startswith("#")
                 and not (doc.parent / target.split("#")[0]).resolve().is_relative_to(ROOT)]
    assert not offending, offending
