"""Fast tokenization with the `tokenizers` library: single texts, pairs, truncation, overflow windows."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Literal

from tokenizers import Encoding, Tokenizer

TruncationStrategy = Literal["longest_first", "only_first", "only_second"]


class TextEncoder:
    """A `tokenizers.Tokenizer` safe to share between threads.

    Truncation is per call (QA windows, NER chunks and classification all differ), and the Rust
    tokenizer keeps it as state, so each thread works on its own clone.
    """

    def __init__(self, tokenizer_json: str) -> None:
        self._json = tokenizer_json
        self._local = threading.local()
        probe = self._tokenizer()
        self.decoder = probe.decoder

    @classmethod
    def from_file(cls, path: Path) -> TextEncoder:
        return cls(path.read_text(encoding="utf-8"))

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
        return tokenizer.encode(text, pair, add_special_tokens=True)

    def encode_batch(
        self, texts: list[str] | list[tuple[str, str]], *, max_length: int | None,
        strategy: TruncationStrategy = "longest_first",
    ) -> list[Encoding]:
        """Encode many inputs in one call (the Rust side parallelises)."""
        tokenizer = self._tokenizer()
        if max_length is None:
            tokenizer.no_truncation()
        else:
            tokenizer.enable_truncation(max_length, strategy=strategy)
        return tokenizer.encode_batch(list(texts), add_special_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self._tokenizer().token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tokenizer().id_to_token(token_id)

    def tokens_to_string(self, tokens: list[str]) -> str:
        """What transformers' `convert_tokens_to_string` returns for a fast tokenizer."""
        if self.decoder is None:
            return " ".join(tokens)
        return str(self.decoder.decode(tokens))
