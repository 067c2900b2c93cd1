"""Generated requests: schemathesis against the server's own /openapi.json."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from bench.stress.report import Row

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"


async def schemathesis(url: str, examples: int, work: Path) -> Row:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
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
        "2",
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
        {"0 failures (no 5xx, answers conform to the schema)": process.returncode == 0 and failures == 0},
    )
