"""Entities from token scores: `transformers.TokenClassificationPipeline`'s post-processing, ported.

The entities are dataclasses instead of dicts; the logic, the numpy calls and their dtypes (float32
scores averaged with `np.nanmean`) are the pipeline's, so grouping, ties and scores come out the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

Strategy = Literal["none", "simple", "first", "average", "max"]
Decode = Callable[[list[str]], str]
"""`convert_tokens_to_string`: tokens (or words) to text, through the tokenizer's decoder."""


@dataclass(frozen=True, slots=True)
class PreEntity:
    """One non-special token with its label probabilities."""

    word: str
    scores: np.ndarray  # float32 [labels]
    start: int
    end: int
    index: int
    is_subword: bool


@dataclass(frozen=True, slots=True)
class Entity:
    """A token (strategy none), a word, or a group of them (`grouped`: label is the entity_group)."""

    label: str
    score: np.floating[Any]
    word: str
    start: int
    end: int
    index: int | None = None
    grouped: bool = False


def gather_pre_entities(
    sentence: str,
    scores: np.ndarray,
    *,
    tokens: Sequence[str],
    input_ids: Sequence[int],
    offsets: Sequence[tuple[int, int]],
    special_tokens_mask: Sequence[int],
    unk_token_id: int | None,
    word_aware: bool,
) -> list[PreEntity]:
    """Pair each non-special token with its scores, offsets and whether it continues a word.

    `word_aware`: the tokenizer marks continuation pieces (WordPiece's `##`); otherwise a token is
    a subword when no space precedes it (the pipeline's fallback heuristic).
    """
    pre_entities = []
    for idx, token_scores in enumerate(scores):
        if special_tokens_mask[idx]:
            continue
        word = tokens[idx]
        start_ind, end_ind = offsets[idx]
        word_ref = sentence[start_ind:end_ind]
        if word_aware:
            is_subword = len(word) != len(word_ref)
        else:
            is_subword = start_ind > 0 and " " not in sentence[start_ind - 1 : start_ind + 1]
        if int(input_ids[idx]) == unk_token_id:
            word = word_ref
            is_subword = False
        pre_entities.append(PreEntity(word, token_scores, start_ind, end_ind, idx, is_subword))
    return pre_entities


def aggregate(
    pre_entities: list[PreEntity], strategy: Strategy, id2label: dict[int, str], decode: Decode
) -> list[Entity]:
    """Tokens (none), or groups of adjacent same-type tokens or words (the other strategies)."""
    if strategy in {"none", "simple"}:
        entities = []
        for pre_entity in pre_entities:
            entity_idx = int(pre_entity.scores.argmax())
            score = pre_entity.scores[entity_idx]
            entities.append(
                Entity(
                    id2label[entity_idx],
                    score,
                    pre_entity.word,
                    pre_entity.start,
                    pre_entity.end,
                    index=pre_entity.index,
                )
            )
    else:
        entities = aggregate_words(pre_entities, strategy, id2label, decode)
    if strategy == "none":
        return entities
    return group_entities(entities, decode)


def aggregate_word(
    entities: list[PreEntity], strategy: Strategy, id2label: dict[int, str], decode: Decode
) -> Entity:
    """One word from its tokens: the label of the first token, the most confident one, or the average."""
    word = decode([entity.word for entity in entities])
    if strategy == "first":
        scores = entities[0].scores
        idx = int(scores.argmax())
        score = scores[idx]
    elif strategy == "max":
        max_entity = max(entities, key=lambda entity: entity.scores.max())
        scores = max_entity.scores
        idx = int(scores.argmax())
        score = scores[idx]
    elif strategy == "average":
        stacked = np.stack([entity.scores for entity in entities])
        average_scores = np.nanmean(stacked, axis=0)
        idx = int(average_scores.argmax())
        score = average_scores[idx]
    else:
        raise ValueError("Invalid aggregation_strategy")
    return Entity(id2label[idx], score, word, entities[0].start, entities[-1].end)


def aggregate_words(
    entities: list[PreEntity], strategy: Strategy, id2label: dict[int, str], decode: Decode
) -> list[Entity]:
    """Force the tokens of a word to agree (first, average, max)."""
    if strategy in {"none", "simple"}:
        raise ValueError("NONE and SIMPLE strategies are invalid for word aggregation")
    word_entities = []
    word_group: list[PreEntity] | None = None
    for entity in entities:
        if word_group is None:
            word_group = [entity]
        elif entity.is_subword:
            word_group.append(entity)
        else:
            word_entities.append(aggregate_word(word_group, strategy, id2label, decode))
            word_group = [entity]
    if word_group is not None:
        word_entities.append(aggregate_word(word_group, strategy, id2label, decode))
    return word_entities


def group_sub_entities(entities: list[Entity], decode: Decode) -> Entity:
    """One group: the type without its B-/I- prefix, the mean score, the decoded words."""
    entity = entities[0].label.split("-", 1)[-1]
    scores = np.nanmean([entity.score for entity in entities])
    tokens = [entity.word for entity in entities]
    return Entity(entity, np.mean(scores), decode(tokens), entities[0].start, entities[-1].end, grouped=True)


def get_tag(entity_name: str) -> tuple[str, str]:
    """("B" or "I", type); a label without a B-/I- prefix counts as a continuation."""
    if entity_name.startswith("B-"):
        return "B", entity_name[2:]
    if entity_name.startswith("I-"):
        return "I", entity_name[2:]
    return "I", entity_name


def group_entities(entities: list[Entity], decode: Decode) -> list[Entity]:
    """Group adjacent entities of one type; a B- tag starts a new group."""
    entity_groups = []
    entity_group_disagg: list[Entity] = []
    for entity in entities:
        if not entity_group_disagg:
            entity_group_disagg.append(entity)
            continue
        bi, tag = get_tag(entity.label)
        _, last_tag = get_tag(entity_group_disagg[-1].label)
        if tag == last_tag and bi != "B":
            entity_group_disagg.append(entity)
        else:
            entity_groups.append(group_sub_entities(entity_group_disagg, decode))
            entity_group_disagg = [entity]
    if entity_group_disagg:
        entity_groups.append(group_sub_entities(entity_group_disagg, decode))
    return entity_groups


def drop_ignored(entities: list[Entity], ignore_labels: Set[str]) -> list[Entity]:
    """Leave out entities whose label (entity or entity_group) is ignored (a set: one lookup each)."""
    return [entity for entity in entities if entity.label not in ignore_labels]


def aggregate_overlapping_entities(entities: list[Entity]) -> list[Entity]:
    """Merge the entities of overlapping chunks: of overlapping ones keep the longest, then the best."""
    if len(entities) == 0:
        return entities
    entities = sorted(entities, key=lambda x: x.start)
    aggregated_entities = []
    previous_entity = entities[0]
    for entity in entities:
        if previous_entity.start <= entity.start < previous_entity.end:
            current_length = entity.end - entity.start
            previous_length = previous_entity.end - previous_entity.start
            if current_length > previous_length or (
                current_length == previous_length and entity.score > previous_entity.score
            ):
                previous_entity = entity
        else:
            aggregated_entities.append(previous_entity)
            previous_entity = entity
    aggregated_entities.append(previous_entity)
    return aggregated_entities


def shift_index(entities: list[Entity], offset: int) -> list[Entity]:
    """Token indices of a later chunk, made positions in the whole text's encoding."""
    return [replace(e, index=e.index + offset) if e.index is not None else e for e in entities]
