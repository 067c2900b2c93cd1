"""Generated requests: schemathesis against the server's own /openapi.json."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from tools.bench.stress.report import Row

REJECTIONS = ("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx")
"""What a schema-violating request may get: schemathesis's list, and 413 for a list or text over the
server's limit (the schema states the limits as maxItems and maxLength; over them is 413)."""

ACCEPTED = ("2xx", "3xx", "401", "403", "404", "409", "429", "5xx")
"""What a schema-valid request may get: schemathesis's list (a wrong model name is 404)."""

CROSS_FIELD_RULES = {
    "POST /qa": (
        "422",
        "the question must leave room for the context in max_seq_len, and doc_stride "
        "be under half of max_seq_len and under that room: token counts JSON Schema cannot state",
    ),
    "POST /v2/models/{name}/infer": (
        "400",
        "the tensors a model takes depend on its task, and a shape "
        "must hold as many elements as its data: rules JSON Schema cannot state",
    ),
    "POST /v2/models/{name}/versions/{version}/infer": ("400", "as POST /v2/models/{name}/infer"),
}
"""Operations whose schema-valid requests the server refuses by a rule between fields (documented in
the operation): that one status is also accepted there, every check still runs."""


def write_config(work: Path, models: list[str]) -> Path:
    """A schemathesis.toml that draws model names in paths mostly from the served ones, so the
    /v2 routes get past 404 and their inference is exercised too, and that states the statuses
    above."""
    path = work / "schemathesis.toml"
    names = ", ".join(json.dumps(name) for name in models)
    operations = "".join(
        f"\n[[operations]]\ninclude-name = {json.dumps(name)}\n"
        f"checks.positive_data_acceptance.expected-statuses = {toml_list((*ACCEPTED, status))}\n"
        for name, (status, _) in CROSS_FIELD_RULES.items()
    )
    path.write_text(
        f"[dictionaries.models]\nvalues = [{names}]\n\n"
        '[dictionaries.versions]\nvalues = ["1"]\n\n'
        "[parameters]\n"
        '"path.name" = {dictionary = "models", probability = 0.8}\n'
        '"path.version" = {dictionary = "versions", probability = 0.8}\n\n'
        f"[checks.negative_data_rejection]\nexpected-statuses = {toml_list(REJECTIONS)}\n"
        f"{operations}"
    )
    return path


def toml_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


def command(url: str, examples: int, config: Path) -> list[str]:
    """The schemathesis run: every check, every phase, one worker, a fixed seed."""
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--exclude-path-regex",
        "^/v2/repository/",  # loads and unloads: they would take the models under test away
        "--suppress-health-check",
        "all",
        "--seed",
        "20261201",
        "--workers",
        "1",  # ast.parse from two threads trips a CPython 3.11 bug inside the generator
        "--request-timeout",
        "60",
    ]


async def schemathesis(url: str, examples: int, work: Path, models: list[str], min_cases: int = 0) -> Row:
    config = write_config(work, models)
    process = await asyncio.create_subprocess_exec(
        *command(url, examples, config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=work,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    (work / "schemathesis.log").write_text(text)
    generated = re.search(r"(\d+) generated", text)
    failed = re.search(r"(\d+) failed", text.split("Test cases:")[-1]) if "Test cases:" in text else None
    operations = re.search(r"Tested: (\d+)", text)
    cases = int(generated.group(1)) if generated else 0
    failures = int(failed.group(1)) if failed else 0
    return Row(
        "generated_requests",
        {
            "cases": cases,
            "failures": failures,
            "operations_tested": int(operations.group(1)) if operations else 0,
            "exit_code": process.returncode,
            "log": str(work / "schemathesis.log"),
        },
        {
            "0 failures of any check (--checks all)": process.returncode == 0 and failures == 0,
            f">= {min_cases} cases": cases >= min_cases,
        },
    )
