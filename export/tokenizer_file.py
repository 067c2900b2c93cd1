"""Save the fast tokenizer as a bare tokenizer.json the server loads with `tokenizers` alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from export.errors import ConversionError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, path: Path) -> None:
    """Write tokenizer.json with truncation and padding off (some checkpoints ship them on, fixed at 128)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    backend.save(str(path))


def check_tokenizer(
    path: Path, tokenizer: PreTrainedTokenizerFast, texts: Sequence[tuple[str, str | None]]
) -> None:
    """The saved file must give the same ids and type ids as transformers for every text."""
    from tokenizers import Tokenizer

    saved = Tokenizer.from_file(str(path))
    for first, second in texts:
        got = saved.encode(first, second, add_special_tokens=True)
        want = tokenizer(first, second, add_special_tokens=True, truncation=False, return_token_type_ids=True)
        if got.ids != want["input_ids"] or got.type_ids != want["token_type_ids"]:
            raise ConversionError(
                f"the saved tokenizer.json encodes {first[:40]!r} differently from transformers"
            )
