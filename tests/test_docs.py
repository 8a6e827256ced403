"""The documentation says what the code has: every setting is in the configuration page's
table, every repository path and link the docs name exists (anchors too), no doc points
outside the repository, the README stays a short page, and the site builds with
`mkdocs build --strict`.

No Docker engine and no Temporal server: these read files and `TetherSettings` only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import AliasChoices, SecretStr
from tether.encryption import KeyRing
from tether.settings import TetherSettings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
ARCHITECTURE = DOCS / "architecture.md"
CONFIGURATION = DOCS / "configuration.md"
DOCS_WITH_PATHS = [README, *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 400

FENCED_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.M)
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


def anchors(doc: Path) -> set[str]:
    """The ids of a page's headings, as GitHub and MkDocs both make them."""
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            for title in HEADING.findall(prose(doc.read_text()))}


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


def test_every_setting_is_in_the_configuration_page_table():
    documented = table_first_column(CONFIGURATION.read_text())
    expected = {environment_variable(name, field)
                for name, field in TetherSettings.model_fields.items()}
    missing = sorted(expected - documented)
    assert not missing, f"docs/configuration.md's table lacks {missing}"


PAIRED = {"deployment_name": "TETHER_BUILD_ID", "build_id": "TETHER_DEPLOYMENT_NAME"}
"""Settings given both or neither: each one's partner."""


def test_the_variable_names_are_the_ones_settings_read(monkeypatch: pytest.MonkeyPatch):
    """The names derived above are the ones pydantic-settings reads: each one sets its field."""
    # "7" is valid for every field but these, and no field's default.
    samples = {"encryption_keys": KeyRing.generate("7"), "store_url": "s3://7", "role": "sandbox",
               "trace_content": "true", "metrics_bind": "127.0.0.1:7", "allow_input_urls": "true",
               "model_endpoints": '{"7": {"provider": "openai", "base_url": "http://127.0.0.1:7"}}',
               "mcp_servers": '{"7": {"url": "http://127.0.0.1:7/mcp"}}',
               "egress_ca_file": __file__}  # a file that is there
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


def test_the_path_patterns_still_find_paths_in_the_readme_and_the_architecture():
    for doc in (README, ARCHITECTURE):
        assert mentioned_paths(doc), f"{doc.name} names no repository path: the pattern no longer matches"


@pytest.mark.parametrize("doc", DOCS_WITH_PATHS, ids=lambda doc: doc.name)
def test_every_repository_path_the_docs_name_exists(doc: Path):
    missing = sorted({shown for shown, path in mentioned_paths(doc) if not path.exists()})
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS_WITH_PATHS, ids=lambda doc: doc.name)
def test_every_anchor_the_docs_link_to_is_a_heading_of_its_page(doc: Path):
    broken = []
    for target in MARKDOWN_LINK.findall(prose(doc.read_text())):
        page, _, anchor = target.partition("#")
        if not anchor or ":" in page:
            continue
        linked = (doc.parent / page) if page else doc
        if linked.suffix == ".md" and linked.exists() and anchor not in anchors(linked):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)} links to headings that do not exist: {broken}"


def test_the_readme_is_a_short_page():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, \
        f"README.md has {lines} lines, over {README_MAX_LINES}: move reference text to a page in docs/"


def test_the_readme_links_to_every_page_of_the_docs():
    linked = {(ROOT / target.split("#")[0]).resolve()
              for target in MARKDOWN_LINK.findall(README.read_text()) if ":" not in target}
    unlinked = sorted(page.name for page in DOCS.glob("*.md")
                      if page.resolve() not in linked and page.name != "index.md")
    assert not unlinked, f"README.md's map of the docs lacks {unlinked}"


def test_the_site_builds_with_strict_checks(tmp_path: Path):
    """`make docs`: any warning (a broken link or anchor, a page missing from the nav) fails."""
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                            "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").exists()


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


def product_files() -> list[Path]:
    outside = {"tests", "bench", "scripts", "docs", "examples", "build", "site", "node_modules"}
    found = [ROOT / "docker-compose.yml", ROOT / "Makefile"]
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        if parts[0] not in outside and not any(part.startswith(".") for part in parts):
            found.append(path)
    return found


def test_the_product_points_to_docs_pages_that_exist_not_to_the_readme():
    """The reference moved from the README to docs/: a pointer to the README sends a reader
    to a page that no longer holds it."""
    to_readme, missing = [], []
    for path in product_files():
        text = path.read_text(errors="replace")
        if "README" in text:
            to_readme.append(str(path.relative_to(ROOT)))
        missing += [page for page in re.findall(r"docs/[\w.-]+\.md", text) if not (ROOT / page).exists()]
    assert not to_readme, f"these point to the README; name the docs page instead: {to_readme}"
    assert not missing, f"the product names docs pages that do not exist: {missing}"
