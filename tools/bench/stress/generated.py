"""Generated requests: schemathesis against the server's own /openapi.json."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

from tools.bench.stress.report import Row

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"


def write_config(work: Path, models: list[str]) -> Path:
    """A schemathesis.toml that draws model names in paths mostly from the served ones, so the
    /v2 routes get past 404 and their inference is exercised too."""
    path = work / "schemathesis.toml"
    names = ", ".join(json.dumps(name) for name in models)
    path.write_text(
        f"[dictionaries.models]\nvalues = [{names}]\n\n"
        '[dictionaries.versions]\nvalues = ["1"]\n\n'
        "[parameters]\n"
        '"path.name" = {dictionary = "models", probability = 0.8}\n'
        '"path.version" = {dictionary = "versions", probability = 0.8}\n'
    )
    return path


async def schemathesis(url: str, examples: int, work: Path, models: list[str], min_cases: int = 0) -> Row:
    config = write_config(work, models)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(examples),
        "--phases",
        "examples,coverage,fuzzing",
        "--suppress-health-check",
        "all",
        "--seed",
        "20261201",
        "--workers",
        "1",  # ast.parse from two threads trips a CPython 3.11 bug inside the generator
        "--request-timeout",
        "60",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=work
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
            "0 failures (no 5xx, answers conform to the schema)": process.returncode == 0 and failures == 0,
            f">= {min_cases} cases": cases >= min_cases,
        },
    )
