"""Extractive QA head: SQuAD v1.1 windows with overlap, scored with the server's own answer decoder
(app.tasks.qa at its request defaults), so the model card's dev scores are what /qa answers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from app.tasks.qa import QAInput, QARequest, Question, Window, answer_question, p_mask_of
from export.evaluation.datasets import QAExample, read_squad
from export.evaluation.metrics import squad_evaluate
from tools.training.batching import Feature
from tools.training.config import TrainConfig
from tools.training.heads.base import Head
from tools.training.inference import forward_all

# The served decoder at the defaults of a /qa request (top_k 1, max_answer_len 15, whole words).
SERVED = QARequest(inputs=QAInput(question="-", context="-"))


def encode_windows(
    tokenizer: PreTrainedTokenizerFast, examples: Sequence[QAExample], max_length: int, stride: int
) -> list[Feature]:
    """Question + context windows (`stride` tokens of overlap), with offsets and the answer's tokens.

    `start_positions`/`end_positions` mark the first answer inside the window, or 0 ([CLS]) when it
    is not wholly inside. `encoding` is the window's tokenizers Encoding (what the server decodes).
    """
    enc = tokenizer(
        [e.question.lstrip() for e in examples],
        [e.context for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    features: list[Feature] = []
    for i, ids in enumerate(enc["input_ids"]):
        example_index = enc["overflow_to_sample_mapping"][i]
        example = examples[example_index]
        sequence_ids = enc.sequence_ids(i)
        offsets = [o if s == 1 else None for o, s in zip(enc["offset_mapping"][i], sequence_ids, strict=True)]
        context = [p for p, s in enumerate(sequence_ids) if s == 1]
        start = end = 0
        if context and example.answers:
            start_char = example.answer_starts[0]
            end_char = start_char + len(example.answers[0])
            first, last = context[0], context[-1]
            if offsets[first][0] <= start_char and offsets[last][1] >= end_char:  # type: ignore[index]
                start = next(p for p in context if offsets[p][1] > start_char)  # type: ignore[index]
                end = next(p for p in reversed(context) if offsets[p][0] < end_char)  # type: ignore[index]
        features.append(
            {
                "input_ids": ids,
                "token_type_ids": enc["token_type_ids"][i],
                "start_positions": start,
                "end_positions": end,
                "example_index": example_index,
                "encoding": enc.encodings[i],
            }
        )
    return features


def predict(
    examples: Sequence[QAExample],
    features: Sequence[Feature],
    outputs: Sequence[dict[str, np.ndarray]],
    cls_token_id: int | None,
) -> dict[str, str]:
    """Each question's answer text, decoded from its windows' logits as the server decodes them."""
    windows: dict[int, list[tuple[Window, dict[str, np.ndarray]]]] = {}
    for feature, output in zip(features, outputs, strict=True):
        window = Window(feature["encoding"], p_mask_of(feature["encoding"], cls_token_id))
        windows.setdefault(feature["example_index"], []).append((window, output))
    predictions: dict[str, str] = {}
    for i, example in enumerate(examples):
        pairs = windows.get(i, [])
        question = Question(example.context, [window for window, _ in pairs])
        answers = answer_question(SERVED, question, [output for _, output in pairs])
        predictions[example.id] = answers[0].answer if answers else ""
    return predictions


class QAHead(Head):
    """BertForQuestionAnswering; scored by the official SQuAD v1.1 exact match and F1."""

    def read(self, path: Path) -> list[QAExample]:
        return read_squad(path)

    def encode_train(
        self, tokenizer: PreTrainedTokenizerFast, examples: Sequence[QAExample], cfg: TrainConfig
    ) -> list[Feature]:
        features = encode_windows(tokenizer, examples, cfg.max_length, cfg.stride)
        for feature in features:
            del feature["example_index"], feature["encoding"]
        return features

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerFast,
        examples: Sequence[QAExample],
        cfg: TrainConfig,
    ) -> dict[str, Any]:
        features = encode_windows(tokenizer, examples, cfg.max_length, cfg.stride)
        outputs = forward_all(model, features, cfg.eval_batch_size)
        predictions = predict(examples, features, outputs, tokenizer.cls_token_id)
        scores: dict[str, Any] = squad_evaluate({e.id: e.answers for e in examples}, predictions)
        scores.update(
            questions=len(examples),
            windows=len(features),
            max_length=cfg.max_length,
            stride=cfg.stride,
            decoder="app.tasks.qa (the server's)",
            max_answer_tokens=SERVED.max_answer_len,
        )
        return scores
