"""POST /ner: named entities (`pipeline("token-classification")`).

A text longer than the model's window is not cut: it is split into windows of the model's
maximum length overlapping by `stride` tokens (one item each), and the entities of all chunks
are merged as the pipeline merges them when given `stride`. With `stride` null the overlap is
min(128, half the window); a text that fits in one window is unaffected by either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, Strict, StringConstraints
from tokenizers import Encoding

from app.contract.items import ItemOutputs
from app.errors import InvalidInput
from app.tasks.base import ModelContext, Prepared, Task
from app.tasks.common import (
    LONGEST_WINDOW,
    WHOLE,
    NonEmptyList,
    TaskRequest,
    TaskResponse,
    Text,
    as_list,
    check_window_budget,
    mirror,
    outputs_per_input,
    prepare_windows,
    softmax,
    windows_needed,
)
from app.tasks.ner_entities import (
    Entity,
    Strategy,
    aggregate,
    aggregate_overlapping_entities,
    drop_ignored,
    gather_pre_entities,
    shift_index,
)
from app.tasks.tensors import Columns, Rows, TensorMapping

DEFAULT_STRIDE = 128
MAX_STRIDE = (LONGEST_WINDOW - 2) // 2
"""stride is at most half the window (the maximum length less [CLS] and [SEP]): consecutive windows
advance by half a window or more."""
STRIDE_NEEDS_AGGREGATION: dict[str, JsonValue] = {
    "not": {
        "required": ["aggregation_strategy", "stride"],
        "properties": {"aggregation_strategy": {"const": "none"}, "stride": {"type": "integer"}},
    }
}
"""The pipeline's rule between two options, as JSON Schema: no `stride` with aggregation none."""
MAX_IGNORE_LABELS = 256
MAX_LABEL_CHARS = 128

Label = Annotated[str, StringConstraints(max_length=MAX_LABEL_CHARS)]


class NERRequest(TaskRequest):
    """`TokenClassificationPipeline`'s options; aggregation defaults to simple (the pipeline's: none)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"inputs": "My name is Wolfgang and I live in Berlin"},
                {"inputs": ["Ada Lovelace worked in London."], "aggregation_strategy": "none"},
            ],
            **STRIDE_NEEDS_AGGREGATION,
        }
    )
    option_rules: ClassVar[dict[str, JsonValue]] = STRIDE_NEEDS_AGGREGATION

    inputs: Text | Annotated[list[Text], NonEmptyList] = Field(
        description="a text, or a list of texts (the results mirror it)"
    )
    aggregation_strategy: Strategy = Field(
        "simple",
        description="none: every token; simple: adjacent tokens of one type grouped; first, average, max: "
        "words take the label of their first token, of the average, or of their most confident token, "
        "then are grouped",
    )
    ignore_labels: list[Label] = Field(
        ["O"],
        max_length=MAX_IGNORE_LABELS,
        description=f"labels (or entity groups) left out of the answer: at most {MAX_IGNORE_LABELS}, "
        f"of at most {MAX_LABEL_CHARS} characters each",
    )
    stride: Annotated[int, Strict(), Field(ge=0, le=MAX_STRIDE), WHOLE] | None = Field(
        None,
        description="overlap in tokens between the windows of a text longer than the model's maximum length, "
        "at most half the window (the maximum length less the special tokens: 255 for a 512-token model; "
        "max_length in GET /v1/models; else 422); null: min(128, half the "
        "window). Not accepted with aggregation_strategy none (as in the pipeline)",
    )


class TokenEntity(BaseModel):
    """One token (aggregation_strategy none)."""

    entity: str = Field(description="the token's label")
    score: float
    index: int = Field(description="the token's position in the encoded text ([CLS] is 0)")
    word: str = Field(description="the token")
    start: int = Field(description="character offsets of the token in the text")
    end: int


class EntityGroup(BaseModel):
    """Adjacent tokens or words of one entity type."""

    entity_group: str = Field(description="the entity type, without B-/I- prefix")
    score: float = Field(description="mean score of the grouped tokens or words")
    word: str = Field(description="the grouped tokens decoded; text[start:end] is the exact source")
    start: int
    end: int


Entities = list[TokenEntity] | list[EntityGroup]


class NERResponse(TaskResponse):
    results: Entities | list[Entities] = Field(
        description="per input, its entities in text order (a list of those for a list of inputs)",
        examples=[[{"entity_group": "LOC", "score": 0.9991, "word": "berlin", "start": 34, "end": 40}]],
    )


@dataclass(frozen=True, slots=True)
class Chunked:
    text: str
    chunks: list[Encoding]
    step: int  # tokens between the starts of consecutive chunks

    @property
    def encodings(self) -> list[Encoding]:
        return self.chunks


def chunk_stride(request: NERRequest, window: int) -> int:
    """The overlap between chunks, validated like the pipeline (stride needs an aggregation)."""
    if request.stride is None:
        return min(DEFAULT_STRIDE, window // 2)
    if request.aggregation_strategy == "none":
        raise InvalidInput(
            '`stride` was provided to process all the text but `aggregation_strategy="none"`, '
            "please select another one instead."
        )
    if request.stride > window // 2:
        raise InvalidInput(
            f"stride ({request.stride}) must be at most half the model's window of {window} tokens "
            f"(its maximum length less the special tokens): {window // 2}"
        )
    return request.stride


def chunk_text(model: ModelContext, text: str, whole: Encoding, stride: int) -> list[Encoding]:
    """The chunks of one text encoded whole: itself when it fits, else the tokenizer's overflow windows."""
    max_length = model.manifest.max_length
    if len(whole.ids) <= max_length:
        return [whole]  # what the truncating call returns when nothing needs cutting
    first = model.encoder.encode(text, max_length=max_length, stride=stride)
    return [first, *first.overflowing]


class EntityRows(Rows):
    """`entity_group` rows; with aggregation none, token rows: `entity` and the token's `index`."""

    GROUPED: ClassVar[Columns] = (
        ("entity_group", "BYTES"),
        ("word", "BYTES"),
        ("score", "FP32"),
        ("start", "INT64"),
        ("end", "INT64"),
    )
    TOKENS: ClassVar[Columns] = (("entity", "BYTES"), *GROUPED[1:], ("index", "INT64"))

    def __init__(self) -> None:
        every = (self.GROUPED[0], self.TOKENS[0], *self.GROUPED[1:], self.TOKENS[-1])
        super().__init__(("text",), every, count_name="entity_count")

    def columns(self, request: BaseModel) -> Columns:
        token_level = isinstance(request, NERRequest) and request.aggregation_strategy == "none"
        return self.TOKENS if token_level else self.GROUPED


class NERTask(Task[NERRequest, NERResponse]):
    name = "ner"
    summary = "Find named entities, like transformers' token-classification pipeline"
    request_model: ClassVar[type[BaseModel]] = NERRequest
    response_model: ClassVar[type[BaseModel]] = NERResponse
    output_names: ClassVar[tuple[str, ...]] = ("logits",)
    tensors: ClassVar[TensorMapping] = EntityRows()

    def input_count(self, request: NERRequest) -> int:
        return len(as_list(request.inputs))

    def texts(self, request: NERRequest) -> list[str]:
        return as_list(request.inputs)

    def preprocess(
        self, request: NERRequest, model: ModelContext, max_windows: int | None = None
    ) -> Prepared:
        specials = model.encoder.special_tokens_single
        window = model.manifest.max_length - specials
        stride = chunk_stride(request, window)
        texts = as_list(request.inputs)
        wholes = [model.encoder.encode(text, max_length=None) for text in texts]
        needed = sum(windows_needed(len(whole.ids) - specials, window, stride) for whole in wholes)
        check_window_budget(model.name, needed, max_windows)
        plan = [
            Chunked(text, chunk_text(model, text, whole, stride), window - stride)
            for text, whole in zip(texts, wholes, strict=True)
        ]
        return prepare_windows(plan)

    def postprocess(
        self,
        request: NERRequest,
        prepared: Prepared,
        outputs: Sequence[ItemOutputs],
        model: ModelContext,
    ) -> NERResponse:
        plan: list[Chunked] = prepared.plan
        results = [
            [to_schema(e) for e in text_entities(request, text, outs, model)]
            for text, outs in outputs_per_input(plan, outputs)
        ]
        return NERResponse(model=model.name, results=mirror(results, isinstance(request.inputs, str)))


def text_entities(
    request: NERRequest, text: Chunked, outputs: Sequence[ItemOutputs], model: ModelContext
) -> list[Entity]:
    """`TokenClassificationPipeline.postprocess` over the chunks of one text."""
    encoder = model.encoder
    strategy = request.aggregation_strategy
    ignored = frozenset(request.ignore_labels)
    entities: list[Entity] = []
    for position, (chunk, out) in enumerate(zip(text.chunks, outputs, strict=True)):
        pre_entities = gather_pre_entities(
            text.text,
            softmax(out["logits"]),
            tokens=chunk.tokens,
            input_ids=chunk.ids,
            offsets=chunk.offsets,
            special_tokens_mask=chunk.special_tokens_mask,
            unk_token_id=encoder.unk_token_id,
            word_aware=encoder.continuing_subword_prefix is not None,
        )
        found = aggregate(pre_entities, strategy, model.manifest.id2label, encoder.tokens_to_string)
        if position and strategy == "none":
            found = shift_index(found, position * text.step)
        entities.extend(drop_ignored(found, ignored))
    if len(text.chunks) > 1:
        entities = aggregate_overlapping_entities(entities)
    return entities


def to_schema(entity: Entity) -> TokenEntity | EntityGroup:
    if entity.grouped:
        return EntityGroup(
            entity_group=entity.label,
            score=float(entity.score),
            word=entity.word,
            start=entity.start,
            end=entity.end,
        )
    assert entity.index is not None, "an ungrouped entity is a token"
    return TokenEntity(
        entity=entity.label,
        score=float(entity.score),
        index=entity.index,
        word=entity.word,
        start=entity.start,
        end=entity.end,
    )
