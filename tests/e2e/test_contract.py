"""The OpenAPI contract tells the truth, checked by the tools that read it, against a real server over
the demo heads in models/ (built by `make models`; `make test` builds them first):

- schemathesis with every check and every phase finds no failure (a short run; `make stress` runs a
  longer one), through the same runner as the stress scenario;
- a client generated from /openapi.json by openapi-python-client calls each task route and gets the
  answers the trained heads give.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.harness import ROOT, RunningServer, run_server
from tools.bench.stress.generated import schemathesis

pytestmark = pytest.mark.slow

MODELS = ROOT / "models"
EXAMPLES = 10
"""Examples per operation and phase: about a thousand requests, a minute on two cores."""
MIN_CASES = 500
CLIENT_PACKAGE = "bertserve_contract_client"


def served_models() -> list[str]:
    return sorted(path.parent.name for path in MODELS.glob("*/manifest.json"))


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    if not served_models():
        pytest.skip("no demo models in models/: `make models` builds them (make test does)")
    with run_server(
        MODELS, tmp_path_factory.mktemp("contract-logs"), env={"BERTSERVE_PRECISION": "fp32"}, timeout=300
    ) as server:
        yield server


@pytest.mark.timeout(600)
def test_schemathesis_with_every_check_finds_no_failure(demo_server: RunningServer, tmp_path: Path) -> None:
    row = asyncio.run(schemathesis(demo_server.url, EXAMPLES, tmp_path, served_models(), MIN_CASES))
    log = (tmp_path / "schemathesis.log").read_text()
    assert row.passed, f"{row.figures}\n{log[-8000:]}"
    assert row.figures["operations_tested"] == 16, row.figures
    assert "Coverage" in log and "Stateful" in log  # every phase ran


@pytest.fixture(scope="module")
def client_package(demo_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The client openapi-python-client generates from the server's /openapi.json, imported."""
    import httpx

    work = tmp_path_factory.mktemp("generated-client")
    (work / "openapi.json").write_bytes(httpx.get(f"{demo_server.url}/openapi.json").content)
    (work / "config.yaml").write_text(f"package_name_override: {CLIENT_PACKAGE}\npost_hooks: []\n")
    generated = subprocess.run(
        [
            str(Path(sys.executable).with_name("openapi-python-client")),
            "generate",
            "--path",
            str(work / "openapi.json"),
            "--config",
            str(work / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(work / CLIENT_PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    sys.path.insert(0, str(work))
    try:
        return importlib.import_module(CLIENT_PACKAGE)
    finally:
        sys.path.remove(str(work))


def submodule(package: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_generated_client_calls_each_task_route(
    client_package: ModuleType, demo_server: RunningServer
) -> None:
    api = submodule(client_package, "api.inference")
    models = submodule(client_package, "models")
    client = client_package.Client(base_url=demo_server.url, raise_on_unexpected_status=True)
    calls = {
        "classify": models.ClassifyRequest(inputs="I loved this film, the acting was wonderful."),
        "pair": models.PairRequest(
            inputs=models.TextPair(
                text="He bought a new car yesterday.", text_pair="Yesterday he purchased a new car."
            )
        ),
        "qa": models.QARequest(
            inputs=models.QAInput(
                question="Where does Ada live?", context="Ada lives in London and works in Cambridge."
            )
        ),
        "ner": models.NERRequest(inputs="Angela Merkel met Emmanuel Macron in Paris."),
    }
    answers = {}
    for task, body in calls.items():
        route = submodule(api, f"{task}_{task}_post")
        answers[task] = route.sync(client=client, body=body)
    assert answers["classify"].results[0].label == "POSITIVE"
    assert answers["pair"].results[0].label == "equivalent"
    assert answers["qa"].results.answer == "London"
    assert {(e.entity_group, e.word) for e in answers["ner"].results} >= {
        ("PER", "angela merkel"),
        ("LOC", "paris"),
    }


def test_a_generated_client_speaks_the_hugging_face_format_too(
    client_package: ModuleType, demo_server: RunningServer
) -> None:
    qa = submodule(client_package, "api.inference.qa_qa_post")
    models = submodule(client_package, "models")
    client = client_package.Client(base_url=demo_server.url, raise_on_unexpected_status=True)
    body = models.HFQARequest(
        inputs=models.QAInput(question="Where does Ada live?", context="Ada lives in London."),
        parameters=models.QAParameters(top_k=2),
    )
    answers = qa.sync(client=client, body=body)
    assert [type(answer).__name__ for answer in answers] == ["QAAnswer", "QAAnswer"]
    assert answers[0].answer == "London"
