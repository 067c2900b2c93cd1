"""Extractive QA head: SQuAD v1.1 windows with overlap, best span by start+end logit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from training.batching import Feature
from training.config import TrainConfig
from training.data import QAExample, read_squad
from training.heads.base import Head
from training.inference import forward_all
from training.metrics import squad_evaluate

N_BEST = 20
MAX_ANSWER_TOKENS = 30


def encode_windows(
    tokenizer: PreTrainedTokenizerFast, examples: Sequence[QAExample], max_length: int, stride: int
) -> list[Feature]:
    """Question + context windows (`stride` tokens of overlap), with offsets and the answer's tokens.

    `start_positions`/`end_positions` mark the first answer inside the window, or 0 ([CLS]) when it
    is not wholly inside. `offsets` is None outside the context.
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
                "offsets": offsets,
            }
        )
    return features


def best_span(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: Sequence[tuple[int, int] | None],
    n_best: int = N_BEST,
    max_answer_tokens: int = MAX_ANSWER_TOKENS,
) -> tuple[float, int, int] | None:
    """(score, start char, end char) of the best context span in one window, or None."""
    best: tuple[float, int, int] | None = None
    starts = np.argsort(start_logits)[::-1][:n_best]
    ends = np.argsort(end_logits)[::-1][:n_best]
    for s in starts:
        for e in ends:
            start_offset, end_offset = offsets[s], offsets[e]
            if start_offset is None or end_offset is None or e < s or e - s + 1 > max_answer_tokens:
                continue
            score = float(start_logits[s] + end_logits[e])
            if best is None or score > best[0]:
                best = (score, start_offset[0], end_offset[1])
    return best


class QAHead(Head):
    """BertForQuestionAnswering; scored by the official SQuAD v1.1 exact match and F1."""

    def read(self, path: Path) -> list[QAExample]:
        return read_squad(path)

    def encode_train(
        self, tokenizer: PreTrainedTokenizerFast, examples: Sequence[QAExample], cfg: TrainConfig
    ) -> list[Feature]:
        features = encode_windows(tokenizer, examples, cfg.max_length, cfg.stride)
        for feature in features:
            del feature["example_index"], feature["offsets"]
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
        best: dict[int, tuple[float, int, int]] = {}
        for feature, output in zip(features, outputs, strict=True):
            span = best_span(output["start_logits"], output["end_logits"], feature["offsets"])
            index = feature["example_index"]
            if span is not None and (index not in best or span[0] > best[index][0]):
                best[index] = span
        predictions = {
            e.id: (e.context[best[i][1] : best[i][2]] if i in best else "") for i, e in enumerate(examples)
        }
        scores: dict[str, Any] = squad_evaluate({e.id: e.answers for e in examples}, predictions)
        scores.update(
            questions=len(examples),
            windows=len(features),
            max_length=cfg.max_length,
            stride=cfg.stride,
            n_best=N_BEST,
            max_answer_tokens=MAX_ANSWER_TOKENS,
        )
        return scores
