"""The model folder's manifest: written by export/, read by the server. One schema for both."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
FORMAT_VERSION = 1

# The graph's dynamic axes: the exporter names them, the runtime finds token-level outputs by them.
BATCH_AXIS = "batch"
SEQUENCE_AXIS = "sequence"

TaskName = Literal["classify", "pair", "qa", "ner"]
Precision = Literal["fp32", "fp16", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Parity(_Strict):
    """How one variant compares with PyTorch fp32 on the validation texts."""

    samples: int = Field(description="number of validation inputs")
    max_abs_diff: dict[str, float] = Field(description="max |ORT - PyTorch| per output name")
    decision_agreement: float = Field(
        description="fraction of decisions that match: argmax label per input (classify, pair), "
        "best span per input (qa), argmax tag per real token (ner)"
    )
    atol: float = Field(
        description="bound the max |diff| was held to (the exporter's atol + rtol x max |PyTorch output|)"
    )
    min_agreement: float = Field(description="agreement the variant was held to")
    passed: bool
    provider: str = Field(
        default="CPUExecutionProvider", description="execution provider the figures were measured on"
    )


class Int8Candidate(_Strict):
    """One int8 graph the exporter built, timed and validated before choosing the one it wrote."""

    name: str = Field(description="e.g. unfused-tensor, fused-channel, unfused-tensor-keep-head")
    graph: Literal["fused", "partial", "unfused"] = Field(
        description="quantized from the fused graph, the partly fused one (attention unfused) "
        "or the plain export"
    )
    per_channel: bool
    fp32_nodes: int = Field(0, description="MatMul/Gemm nodes kept in fp32 (partial quantization)")
    sequences_per_second: float | None = Field(
        default=None,
        description="CPU speed on length-sorted batches of 8 and 32 validation inputs (best of rounds); "
        "null for a refused candidate, which is not timed",
    )
    parity: Parity
    chosen: bool = False


class Variant(_Strict):
    """One ONNX file of the model at one precision."""

    precision: Precision
    file: str = Field(description="file name inside the model folder")
    providers: list[str] = Field(description="execution providers this variant is meant for")
    fused_ops: dict[str, int] = Field(description="count of each fused contrib op in the graph")
    node_count: int
    size_bytes: int
    sha256: str
    parity: Parity
    sequences_per_second: float | None = Field(
        default=None, description="CPU speed measured at export (fp32, int8), as for the int8 candidates"
    )
    candidates: list[Int8Candidate] = Field(
        default_factory=list, description="int8: every graph tried, with its speed and parity"
    )


class Source(_Strict):
    checkpoint: str = Field(description="hub id, or path (relative to the repository root when inside it)")
    architecture: str
    fingerprint: str | None = Field(
        default=None, description="sha256 of the checkpoint's config, weight and tokenizer files"
    )


class Manifest(_Strict):
    """`models/<name>/manifest.json`."""

    format_version: int = FORMAT_VERSION
    name: str
    task: str = Field(description="the task that serves the model: a name in app.tasks.TASKS")
    architecture: str
    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    id2label: dict[int, str]
    problem_type: str | None = None
    input_names: list[str] = Field(
        description="the graph's inputs, in order (RoBERTa, DistilBERT and most DeBERTa: no token_type_ids)"
    )
    output_names: list[str]
    max_length: int = Field(description="longest sequence the model accepts, special tokens included")
    pad_token_id: int
    special_tokens: dict[str, int] = Field(
        default_factory=dict,
        description="ids of the tokenizer's special tokens by role (cls, sep, pad, unk, mask), as "
        "transformers reports them; the server takes the cls (QA) and unk (NER) ids from here",
    )
    fusions: list[str] = Field(
        default_factory=list,
        description="the ONNX Runtime fusions the exporter required and verified for this architecture "
        "(Attention, SkipLayerNormalization, EmbedLayerNormalization, Gelu); what is missing runs unfused",
    )
    tokenizer_file: str = TOKENIZER_FILE
    opset: int
    variants: list[Variant]
    source: Source
    versions: dict[str, str]
    created_at: str

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, version: int) -> int:
        if version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {version} is not the one this server reads ({FORMAT_VERSION}):"
                " re-export the model with this version of bertserve"
            )
        return version

    def variant(self, precision: Precision) -> Variant | None:
        """The variant of this precision, if it was built and passed validation."""
        for variant in self.variants:
            if variant.precision == precision and variant.parity.passed:
                return variant
        return None

    def write(self, folder: Path) -> None:
        (folder / MANIFEST_FILE).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        return cls.model_validate_json((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
