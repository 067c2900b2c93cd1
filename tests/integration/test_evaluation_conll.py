"""Entity spans over a joined CoNLL sentence back to IOB2 word tags (evaluation.tasks.conll)."""

from __future__ import annotations

from export.evaluation.tasks.conll import join_words, spans_to_tags


def test_join_words_gives_each_word_its_start() -> None:
    text, starts = join_words(["Peter", "Blackburn", "visited", "U.S.", "."])
    assert text == "Peter Blackburn visited U.S. ."
    assert [text[s:].split(" ")[0] for s in starts] == ["Peter", "Blackburn", "visited", "U.S.", "."]


def test_an_entity_tags_the_words_whose_first_character_it_covers() -> None:
    words = ["Peter", "Blackburn", "visited", "U.S.", "Army", "bases"]
    text, starts = join_words(words)
    person = ("PER", 0, text.index(" visited"))
    us = text.index("U.S.")
    # "U." is an ORG; another begins inside the word ("S.") and runs on: "Army" continues it (I-).
    first = ("ORG", us, us + 2)
    second = ("ORG", us + 2, text.index(" bases"))
    assert spans_to_tags(starts, [person, first, second]) == ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O"]


def test_an_entity_inside_a_word_tags_nothing() -> None:
    text, starts = join_words(["anti-German", "feeling"])
    assert spans_to_tags(starts, [("MISC", text.index("German"), text.index(" feeling"))]) == ["O", "O"]


def test_adjacent_entities_of_one_type_stay_apart() -> None:
    _, starts = join_words(["Paris", "London"])
    spans = [("LOC", 0, 5), ("LOC", 6, 12)]
    assert spans_to_tags(starts, spans) == ["B-LOC", "B-LOC"]
    assert spans_to_tags(starts, []) == ["O", "O"]
