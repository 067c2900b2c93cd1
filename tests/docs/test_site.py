"""The documentation site: it builds strictly (no broken link or anchor), its settings page is the one
the Settings model generates, every metric is documented, and every alert links its runbook section."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.metrics import Metrics
from tools.docs.settings import settings_page

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "rules" / "bertserve.rules.yml"
RUNBOOK_PAGE = "operations"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as `mkdocs build --strict` writes it (offline: the theme loads no web fonts)."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_site_builds_strictly_with_every_page(site: Path) -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = [page for entry in nav for page in entry.values()]
    assert sorted(pages) == sorted(path.name for path in DOCS.glob("*.md")), "a page is missing from nav"
    for page in pages:
        built = site / ("index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html")
        assert built.is_file(), page


def test_the_settings_page_is_generated_from_the_settings_model() -> None:
    assert (DOCS / "settings.md").read_text() == settings_page(), (
        "docs/settings.md differs from app/settings.py: "
        "run `.venv/bin/python -m tools.docs.settings > docs/settings.md`"
    )


class Limits(BaseModel):
    """Limits of one thing."""

    size: int = Field(3, ge=1, le=9, description="how many | at most")


class ExampleSettings(BaseSettings):
    """Example settings."""

    model_config = SettingsConfigDict(env_prefix="EX_", env_nested_delimiter="__")

    mode: str = Field("fast", description="the mode")
    names: list[str] | None = Field(None, description="names to use")
    limits: Limits = Field(default_factory=Limits, description="the limits")
    per_name: dict[str, Limits] = Field(default_factory=dict, description="limits by name")


def test_the_generator_writes_every_field_with_its_variable_type_default_and_description() -> None:
    page = settings_page(ExampleSettings)
    assert "| `EX_MODE` | string | `fast` | the mode |" in page
    assert "| `EX_NAMES` | JSON list of string (optional) | unset | names to use |" in page
    # a nested model: a section of its own, one row per field, names joined with the delimiter
    assert "## Limits (`EX_LIMITS__*`)" in page
    assert "| `EX_LIMITS__SIZE` | int, ≥ 1, ≤ 9 | `3` | how many \\| at most |" in page
    # a model inside a map: one JSON value
    assert "| `EX_PER_NAME` | JSON map string → Limits (`size`) | `{}` | limits by name |" in page
    assert "EX_LIMITS |" not in page


def test_every_metric_is_documented() -> None:
    operations = (DOCS / "operations.md").read_text()
    names = [family.name for family in Metrics().registry.collect()]
    assert names
    missing = [name for name in names if f"`{name}" not in operations]
    assert not missing, f"metrics missing from docs/operations.md#metrics: {missing}"


def test_every_alert_links_its_runbook_section(site: Path) -> None:
    site_url = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["site_url"]
    html = (site / RUNBOOK_PAGE / "index.html").read_text()
    anchors = set(re.findall(r'<h3 id="([^"]+)"', html))
    rules = [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"] for rule in group["rules"]]
    alerts = [rule for rule in rules if "alert" in rule]
    assert alerts
    for rule in alerts:
        anchor = rule["alert"].lower()
        assert rule["annotations"].get("runbook_url") == f"{site_url}{RUNBOOK_PAGE}/#{anchor}", rule["alert"]
        assert anchor in anchors, f"docs/{RUNBOOK_PAGE}.md has no runbook section for {rule['alert']}"


README_MAX_LINES = 250


def test_the_readme_is_short_and_its_links_stay_in_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES, "the README grew: move the details into docs/"
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [target for target in targets if "://" not in target]
    assert local
    for target in local:
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"README links {target}: not in the repository"


# A path of the repository as the pages name it: `app/tasks/qa.py`, `k8s/overlays/gpu`, `app/tasks/*.py`.
REPOSITORY_PATH = re.compile(
    r"(?<![\w./-])((?:app|export|tools|tests|deploy|k8s|scripts|demo)/[\w./*-]*[\w*/])"
)


def test_every_file_the_pages_name_exists() -> None:
    pages = [*DOCS.glob("*.md"), ROOT / "README.md"]
    missing = [
        f"{page.name}: {path}"
        for page in pages
        for path in REPOSITORY_PATH.findall(page.read_text())
        if not (any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists())
    ]
    assert not missing, f"the pages name files that do not exist: {missing}"
