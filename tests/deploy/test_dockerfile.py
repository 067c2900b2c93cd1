"""The Dockerfile's shape: export stage apart, a torch-free non-root runtime with a readiness health check.

These tests read its instructions; hadolint and checkov lint it (test_checkov.py); tests/container builds
the CPU image and serves from it."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

import pytest

from app.settings import Settings
from tests.deploy.tools import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def global_args() -> dict[str, str]:
    """ARGs before the first FROM (usable in FROM lines), with their defaults."""
    found: dict[str, str] = {}
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.startswith("FROM "):
            break
        if raw.startswith("ARG "):
            key, _, value = raw.removeprefix("ARG ").partition("=")
            found[key.strip()] = value.strip()
    return found


def parse() -> dict[str, Stage]:
    """Stages by name, each with its (INSTRUCTION, arguments) in order; continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"stage{len(stages)}"
            current = Stage(name, words[0])
            stages[name] = current
        elif current is not None:
            current.instructions.append((keyword, rest.strip()))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in stage.args("ENV"):
        for word in shlex.split(rest):
            key, _, value = word.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse()


def test_stages(stages: dict[str, Stage]) -> None:
    assert list(stages) == [
        "python-base",
        "checkpoints",
        "data",
        "export",
        "models",
        "runtime-deps",
        "runtime",
    ]
    # Named contexts can replace these three: --build-context checkpoints=DIR / data=DIR / models=DIR.
    assert stages["checkpoints"].base == "scratch"
    assert stages["data"].base == "scratch" and not stages["data"].args("COPY"), "no data unless given"
    assert stages["models"].base == "scratch"
    assert stages["python-base"].base == "${PYTHON_IMAGE}", "the base is a build argument (pin by digest)"
    assert global_args()["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    assert stages["runtime"].base == "python-base"


def test_export_stage_builds_the_model_repository(stages: dict[str, Stage]) -> None:
    export = stages["export"]
    runs = " ".join(export.args("RUN"))
    assert "'export'" in runs, "the export stage installs the export extra"
    assert "python -m export.repository --demo-dir /src/demo --data-dir /src/data --out /models" in runs
    copies = [f"COPY {a}" for a in export.args("COPY")]
    assert "COPY --from=checkpoints / /src/demo/" in copies and "COPY --from=data / /src/data/" in copies
    assert stages["models"].args("COPY") == ["--from=export /models/ /"]


def test_runtime_has_no_torch_and_a_chosen_onnxruntime(stages: dict[str, Stage]) -> None:
    deps = " ".join(stages["runtime-deps"].args("RUN"))
    assert "export" not in deps and "torch==" not in deps
    assert "['optional-dependencies'][sys.argv[1]]" in deps and '"${RUNTIME}"' in deps
    assert "gpu|cpu" in deps, "RUNTIME is checked"
    assert "find_spec('torch')" in deps and "must not be in the runtime image" in deps, (
        "torch sneaks in: fails"
    )
    assert "venv --without-pip" in deps and "pip --python /opt/venv/bin/python install" in deps
    runtime = stages["runtime"]
    copies = runtime.args("COPY")
    assert "--from=runtime-deps /opt/venv /opt/venv" in copies
    assert "--from=models / /models/" in copies
    assert not any("--from=export" in c for c in copies)
    args = {
        a.split("=")[0]: a.partition("=")[2]
        for s in ("runtime-deps", "runtime")
        for a in stages[s].args("ARG")
    }
    assert args["RUNTIME"] == "gpu", "the default image is the CUDA one"


def test_no_frontend_image_is_fetched() -> None:
    """A `# syntax=` line makes every BuildKit build pull a frontend image from Docker Hub."""
    first = DOCKERFILE.read_text().splitlines()[0]
    assert not first.lower().replace(" ", "").startswith("#syntax="), first


def test_package_indexes_are_build_arguments_of_the_build_stages_only(stages: dict[str, Stage]) -> None:
    export_runs = " ".join(stages["export"].args("RUN"))
    assert '--extra-index-url "${TORCH_INDEX_URL}"' in export_runs, "the torch index must not replace PyPI"
    assert "--index-url" not in export_runs.replace("--extra-index-url", "")
    assert "torch.version.cuda is None" in export_runs, "a CUDA torch from the wrong index fails the build"
    mirror = {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"}
    for name in ("export", "runtime-deps"):
        declared = {a.split("=")[0] for a in stages[name].args("ARG")}
        assert mirror <= declared, f"{name}: a mirror's settings are build arguments"
    for name in ("python-base", "runtime"):
        stage = stages[name]
        named = {a.split("=")[0] for a in stage.args("ARG")} | set(env_of(stage))
        assert not named & (mirror | {"TORCH_INDEX_URL"}), f"{name} must not carry an index URL"


def test_each_image_carries_the_variants_its_runtime_serves(stages: dict[str, Stage]) -> None:
    export = " ".join(stages["export"].args("RUN"))
    assert "gpu) candidates=fp16,fp32;;" in export and "cpu) candidates=int8,fp32;;" in export
    assert '--precisions "${PRECISIONS:-$candidates}"' in export
    assert 'scripts/serving_variants.py --runtime "${RUNTIME}" /models' in export
    assert "PRECISIONS=" in stages["export"].args("ARG")


def test_runtime_runs_as_non_root_with_health_check(stages: dict[str, Stage]) -> None:
    runtime = stages["runtime"]
    users = runtime.args("USER")
    assert users == ["10001:10001"]
    assert runtime.instructions[-1] == ("CMD", '["python", "-m", "app"]')
    assert runtime.args("EXPOSE") == ["8000"]
    assert runtime.args("STOPSIGNAL") == ["SIGTERM"]
    (health,) = runtime.args("HEALTHCHECK")
    assert "/health/ready" in health and "CMD [" in health
    exec_form = json.loads(health[health.index("CMD [") + 4 :])
    assert exec_form[:2] == ["python", "-c"]
    compile(exec_form[2], "<healthcheck>", "exec")  # the probe is valid Python
    assert re.search(r"--start-period=\d+s", health)


def test_runtime_env_names_real_settings(stages: dict[str, Stage]) -> None:
    env = {**env_of(stages["python-base"]), **env_of(stages["runtime"])}
    fields = set(Settings.model_fields)
    settings = {k: v for k, v in env.items() if k.startswith("BERTSERVE_")}
    assert settings["BERTSERVE_MODEL_DIR"] == "/models"
    assert settings["BERTSERVE_PORT"] == "8000"
    for key in settings:
        assert key.removeprefix("BERTSERVE_").split("__")[0].lower() in fields, f"{key} is no setting"
    Settings.model_validate({k.removeprefix("BERTSERVE_").lower(): v for k, v in settings.items()})
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "a read-only root filesystem: no .pyc writes"
    assert env["CUDA_CACHE_PATH"].startswith("/tmp/")
    assert env["PYTHONPATH"] == "/opt/bertserve"


def test_dockerignore_sends_only_what_the_build_uses() -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "allowlist: everything is ignored unless re-included"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert included == {
        "pyproject.toml",
        "app",
        "export",
        "demo",
        "scripts/serving_variants.py",
        "scripts/fetch_eval_data.py",
    }
    copied = {
        source.rstrip("/")
        for stage in parse().values()
        for rest in stage.args("COPY")
        if not rest.startswith("--from")
        for source in rest.split()[:-1]
    }
    assert copied <= included, f"COPY sources the context does not send: {copied - included}"
    for path in copied:
        if path != "demo":  # the checkpoints may come from --build-context checkpoints=DIR instead
            assert (ROOT / path).exists(), path
