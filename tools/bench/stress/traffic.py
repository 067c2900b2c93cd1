"""Mixed request bodies for all four tasks: 1 to 32 inputs, mostly short texts, a few long ones."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tools.bench.corpus import sentences

TASK_WEIGHTS = {"classify": 0.4, "pair": 0.2, "ner": 0.25, "qa": 0.15}
QUESTIONS = ("What is this about?", "Who is it about?", "What happened?", "Why was it good or bad?")


@dataclass(frozen=True)
class Request:
    path: str
    body: dict[str, Any]
    inputs: int


class Traffic:
    """A seeded stream of request bodies; the same seed gives the same stream."""

    def __init__(self, seed: int = 7, long_share: float = 0.005) -> None:
        self.random = random.Random(seed)
        self.sentences = sentences()
        self.long_share = long_share

    def count(self) -> int:
        """Inputs per request: mostly one (80%), 15% 2-8, 5% 9-32."""
        draw = self.random.random()
        if draw < 0.8:
            return 1
        if draw < 0.95:
            return self.random.randint(2, 8)
        return self.random.randint(9, 32)

    def text(self, long: bool | None = None) -> str:
        """A sentence; or, now and then, 20-40 sentences (several windows for QA and NER)."""
        if long is None:
            long = self.random.random() < self.long_share
        if long:
            return " ".join(self.random.choices(self.sentences, k=self.random.randint(20, 40)))
        return self.random.choice(self.sentences)

    def context(self) -> str:
        if self.random.random() < self.long_share:
            return self.text(long=True)
        return " ".join(self.random.choices(self.sentences, k=self.random.randint(2, 6)))

    def next(self) -> Request:
        task = self.random.choices(list(TASK_WEIGHTS), weights=list(TASK_WEIGHTS.values()))[0]
        return self.make(task, self.count())

    def make(self, task: str, count: int) -> Request:
        inputs: list[Any]
        if task in {"classify", "ner"}:
            inputs = [self.text() for _ in range(count)]
        elif task == "pair":
            inputs = [{"text": self.text(False), "text_pair": self.text(False)} for _ in range(count)]
        else:
            inputs = [
                {"question": self.random.choice(QUESTIONS), "context": self.context()} for _ in range(count)
            ]
        return Request(f"/{task}", {"inputs": inputs[0] if count == 1 else inputs}, count)

    def heavy_qa(self) -> Request:
        """One QA request over long contexts: many windows, for the disconnect storm."""
        inputs = [{"question": QUESTIONS[0], "context": self.text(long=True)} for _ in range(8)]
        return Request("/qa", {"inputs": inputs}, len(inputs))


class FirstTenthAgain:
    """`total` requests from `traffic` whose last tenth repeats the first, in order.

    The soak compares the p99 of its last tenth with its first. Over different requests that
    compared their luck as well: at 80% of capacity, how many of the 5% big requests arrive close
    together moves one tenth's p99 by hundreds of milliseconds. Sent at a fixed rate, the repeated
    tenth has the same requests at the same offsets, and the server's state is what changed.
    """

    def __init__(self, traffic: Traffic, total: int) -> None:
        self.traffic = traffic
        self.tenth = max(1, total // 10)
        self.repeat_from = total - self.tenth
        self.first: list[Request] = []
        self.sent = 0

    def __call__(self) -> Request:
        index, self.sent = self.sent, self.sent + 1
        if index >= self.repeat_from:
            return self.first[(index - self.repeat_from) % len(self.first)]
        request = self.traffic.next()
        if index < self.tenth:
            self.first.append(request)
        return request
