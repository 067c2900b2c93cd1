"""From entity spans over a joined CoNLL sentence back to one IOB2 tag per CoNLL token.

The sentence is sent as its tokens joined with single spaces. A token takes the entity group
that covers its first character (where its first sub-token, the one the head was trained on,
begins): B- when the group begins exactly there, I- when it began earlier (in a previous token,
or inside one: "U.S. Army" split as "U" + "S. Army" is still one ORG). A token whose first
character no group covers is O; a group that ends inside a token leaves the next one alone.
"""

from __future__ import annotations

from collections.abc import Sequence

Span = tuple[str, int, int]  # (entity group, start char, end char)


def join_words(words: Sequence[str]) -> tuple[str, list[int]]:
    """The sentence text and the start character of each word."""
    starts: list[int] = []
    position = 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    return " ".join(words), starts


def spans_to_tags(starts: Sequence[int], spans: Sequence[Span]) -> list[str]:
    """IOB2 tags, one per word starting at `starts`, from non-overlapping entity spans."""
    tags = ["O"] * len(starts)
    for group, begin, end in spans:
        for i, start in enumerate(starts):
            if begin <= start < end:
                tags[i] = f"{'B' if start == begin else 'I'}-{group}"
    return tags
