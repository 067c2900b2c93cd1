"""Fast tokenization with the `tokenizers` library: single texts, pairs, truncation, overflow windows."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from tokenizers import Encoding, Tokenizer

TruncationStrategy = Literal["longest_first", "only_first", "only_second"]


GIL_FREE_CHARS = 2000
"""Inputs of more characters are encoded through `encode_batch`, which releases the GIL (`encode`
holds it for the whole call): a long text tokenized in a worker thread leaves the event loop free."""


def _encode_one(tokenizer: Tokenizer, text: str, pair: str | None) -> Encoding:
    """One input with special tokens: short ones directly (cheapest), long ones without the GIL."""
    if len(text) + len(pair or "") <= GIL_FREE_CHARS:
        return tokenizer.encode(text, pair, add_special_tokens=True)
    encodings: list[Encoding] = tokenizer.encode_batch([(text, pair) if pair is not None else text])
    return encodings[0]


class TextEncoder:
    """A `tokenizers.Tokenizer` safe to share between threads.

    Truncation is per call (QA windows, NER chunks and classification all differ), and the Rust
    tokenizer keeps it as state, so each thread works on its own clone.
    """

    def __init__(self, tokenizer_json: str, special_tokens: Mapping[str, int] | None = None) -> None:
        self._json = tokenizer_json
        self._local = threading.local()
        probe = self._tokenizer()
        self.decoder = probe.decoder
        self.special_tokens_single: int = probe.num_special_tokens_to_add(False)
        """Special tokens added around one sequence ([CLS] x [SEP] for BERT: 2)."""
        self.special_tokens_pair: int = probe.num_special_tokens_to_add(True)
        """Special tokens added around a pair ([CLS] a [SEP] b [SEP] for BERT: 3)."""
        self.continuing_subword_prefix: str | None = (
            getattr(probe.model, "continuing_subword_prefix", None) or None
        )
        """`##` for WordPiece; None where the model does not mark subwords (NER falls back to a heuristic)."""
        unk_token = getattr(probe.model, "unk_token", None)
        self.unk_token_id: int | None = probe.token_to_id(unk_token) if unk_token else None
        sample = probe.encode("a", add_special_tokens=True)
        self.cls_token_id: int | None = (
            sample.ids[0] if sample.special_tokens_mask and sample.special_tokens_mask[0] else None
        )
        """The id of the leading special token ([CLS], <s>), kept answerable by QA like the pipeline."""
        if special_tokens:  # the exporter's record of what transformers says, e.g. Unigram's <unk>
            self.unk_token_id = special_tokens.get("unk", self.unk_token_id)
            self.cls_token_id = special_tokens.get("cls", self.cls_token_id)

    @classmethod
    def from_file(cls, path: Path, special_tokens: Mapping[str, int] | None = None) -> TextEncoder:
        return cls(path.read_text(encoding="utf-8"), special_tokens)

    def _tokenizer(self) -> Tokenizer:
        tokenizer: Tokenizer | None = getattr(self._local, "tokenizer", None)
        if tokenizer is None:
            tokenizer = Tokenizer.from_str(self._json)
            tokenizer.no_padding()
            tokenizer.no_truncation()
            self._local.tokenizer = tokenizer
        return tokenizer

    def encode(
        self,
        text: str,
        pair: str | None = None,
        *,
        max_length: int | None,
        stride: int = 0,
        strategy: TruncationStrategy = "longest_first",
    ) -> Encoding:
        """Encode with special tokens; with `max_length`, the overflow windows are in `.overflowing`."""
        tokenizer = self._tokenizer()
        if max_length is None:
            tokenizer.no_truncation()
        else:
            tokenizer.enable_truncation(max_length, stride=stride, strategy=strategy)
        return _encode_one(tokenizer, text, pair)

    def encode_batch(
        self,
        texts: list[str] | list[tuple[str, str]],
        *,
        max_length: int | None,
        strategy: TruncationStrategy = "longest_first",
    ) -> list[Encoding]:
        """Encode many inputs in one call (the Rust side parallelises; one input skips its thread pool)."""
        tokenizer = self._tokenizer()
        if max_length is None:
            tokenizer.no_truncation()
        else:
            tokenizer.enable_truncation(max_length, strategy=strategy)
        if len(texts) == 1:
            text = texts[0]
            return [
                _encode_one(tokenizer, *((text[0], text[1]) if isinstance(text, tuple) else (text, None)))
            ]
        encodings: list[Encoding] = tokenizer.encode_batch(list(texts), add_special_tokens=True)
        return encodings

    def token_to_id(self, token: str) -> int | None:
        token_id: int | None = self._tokenizer().token_to_id(token)
        return token_id

    def id_to_token(self, token_id: int) -> str | None:
        token: str | None = self._tokenizer().id_to_token(token_id)
        return token

    def tokens_to_string(self, tokens: list[str]) -> str:
        """What transformers' `convert_tokens_to_string` returns for a fast tokenizer."""
        if self.decoder is None:
            return " ".join(tokens)
        return str(self.decoder.decode(tokens))
