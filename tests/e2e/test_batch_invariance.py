"""An answer is a function of its own request: the same input gets the same answer alone and mixed
into batches with other clients' inputs under concurrent load, for every precision served on CPU."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import run_server

TEXTS = [
    "good",
    "The film was a slow, dull mess from start to finish.",
    "Paris is the capital of France and Berlin is in Germany.",
    "I loved every minute of it, the actors and the music were wonderful " * 3,
    "meh",
    "John Smith works for the United Nations in New York City.",
    "An utterly forgettable sequel.",
    "Short.",
]
QUESTIONS = [
    {"question": "Where is the capital?", "context": TEXTS[2]},
    {"question": "Who works there?", "context": TEXTS[5]},
    {"question": "What was loved?", "context": TEXTS[3]},
    {"question": "What kind of sequel?", "context": TEXTS[6] + " " + TEXTS[1]},
]
ROUTES: dict[str, tuple[str, list[Any], dict[str, Any]]] = {
    "tiny-classify": ("/classify", TEXTS, {"top_k": None}),
    "tiny-ner": ("/ner", TEXTS, {"aggregation_strategy": "simple"}),
    "tiny-qa": ("/qa", QUESTIONS, {"top_k": 3}),
}
CLIENTS = 16
ROUNDS = 3
SCORE_TOLERANCE = 1e-5


def same_answer(alone: Any, mixed: Any, where: str) -> None:
    """Equal structures; scores within SCORE_TOLERANCE, every other value identical."""
    if isinstance(alone, dict):
        assert isinstance(mixed, dict) and alone.keys() == mixed.keys(), where
        for key in alone:
            same_answer(alone[key], mixed[key], f"{where}.{key}")
    elif isinstance(alone, list):
        assert isinstance(mixed, list) and len(alone) == len(mixed), where
        for index, (a, b) in enumerate(zip(alone, mixed, strict=True)):
            same_answer(a, b, f"{where}[{index}]")
    elif isinstance(alone, float):
        assert mixed == pytest.approx(alone, abs=SCORE_TOLERANCE), where
    else:
        assert alone == mixed, where


async def answers(client: httpx.AsyncClient, model: str, inputs: list[Any]) -> list[Any]:
    route, _, options = ROUTES[model]
    response = await client.post(route, json={"model": model, "inputs": inputs, **options})
    assert response.status_code == 200, response.text
    results: list[Any] = response.json()["results"]
    return results


async def alone_then_mixed(url: str, model: str) -> tuple[list[Any], list[list[tuple[int, Any]]]]:
    """Each input in a request of its own, one at a time; then shuffled groups from many clients."""
    _, inputs, _ = ROUTES[model]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        alone = [(await answers(client, model, [one]))[0] for one in inputs]
        rng = random.Random(7)

        async def one_client() -> list[tuple[int, Any]]:
            seen: list[tuple[int, Any]] = []
            for _ in range(ROUNDS):
                picked = rng.sample(range(len(inputs)), rng.randint(1, len(inputs)))
                results = await answers(client, model, [inputs[i] for i in picked])
                seen.extend(zip(picked, results, strict=True))
            return seen

        mixed = await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return alone, mixed


def batched_items(url: str, model: str) -> tuple[float, float]:
    """(batches, items) the server ran for `model`, from its metrics."""
    text = httpx.get(f"{url}/metrics").text
    count = re.search(rf'^bertserve_batch_size_count\{{model="{model}"\}} (\S+)$', text, re.M)
    total = re.search(rf'^bertserve_batch_size_sum\{{model="{model}"\}} (\S+)$', text, re.M)
    assert count and total
    return float(count.group(1)), float(total.group(1))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_same_input_gets_the_same_answer_alone_and_in_any_batch(
    tiny_models: Path, tmp_path: Path, precision: str
) -> None:
    env = {
        "BERTSERVE_PRECISION": precision,
        # companions are waited for, so concurrent requests share batches
        "BERTSERVE_BATCH__MAX_DELAY_MS": "20",
        "BERTSERVE_BATCH__ALWAYS_WAIT": "true",
    }
    with run_server(tiny_models, tmp_path, env=env) as server:
        for model in ROUTES:
            alone, mixed = asyncio.run(alone_then_mixed(server.url, model))
            for client, seen in enumerate(mixed):
                for index, result in seen:
                    same_answer(alone[index], result, f"{precision} {model} input {index} (client {client})")
            batches, items = batched_items(server.url, model)
            assert items > batches, f"{model}: no batch held more than one item"
        listing = httpx.get(f"{server.url}/v1/models").json()["models"]
        for entry in listing:
            if entry["name"] in ROUTES:
                assert entry["precision"] == precision
                assert entry["one_sequence_per_run"] is (precision == "int8")
