"""TextEncoder: long inputs go through the GIL-free batch call and come out as the direct call makes them."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from app.runtime.tokenizer import GIL_FREE_CHARS, TextEncoder
from tools.bench.model import minilm_dir

SENTENCE = "Ada Lovelace wrote the first program for Babbage's engine in 1843, in London. "
LONG = SENTENCE * (2 * GIL_FREE_CHARS // len(SENTENCE))


def fields(encoding) -> tuple[object, ...]:  # type: ignore[no-untyped-def]
    return (
        encoding.ids,
        encoding.type_ids,
        encoding.offsets,
        encoding.sequence_ids,
        encoding.special_tokens_mask,
    )


@pytest.mark.parametrize("pair", [None, "Who wrote the first program?"])
@pytest.mark.parametrize("max_length", [None, 64])
def test_a_long_input_is_encoded_as_the_direct_call_encodes_it(
    pair: str | None, max_length: int | None
) -> None:
    path = minilm_dir() / "tokenizer.json"
    encoder = TextEncoder.from_file(path)
    direct = Tokenizer.from_file(str(path))
    direct.no_padding()
    direct.no_truncation()
    if max_length is not None:
        direct.enable_truncation(max_length, stride=16, strategy="only_second" if pair else "longest_first")
    # QA passes the question first and the long context second
    args = (pair, LONG) if pair else (LONG, None)
    ours = encoder.encode(
        *args, max_length=max_length, stride=16, strategy="only_second" if pair else "longest_first"
    )
    theirs = direct.encode(*args, add_special_tokens=True)
    assert len(LONG) > GIL_FREE_CHARS
    assert fields(ours) == fields(theirs)
    assert [fields(o) for o in ours.overflowing] == [fields(o) for o in theirs.overflowing]
    assert len(ours.overflowing) == (0 if max_length is None else len(theirs.overflowing))
