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


class EvalData(_Strict):
    """The labelled data every variant was scored on at export."""

    name: str = Field(description="the data file, as given to --eval-data (e.g. sst2/dev.tsv)")
    sha256: str = Field(description="sha256 of the data file")
    examples: int = Field(description="examples scored")
    total: int = Field(description="examples in the file (more than `examples` when a subset was drawn)")
    seed: int = Field(0, description="seed of the subset drawn when `examples` < `total`")
    labelled: bool = Field(description="the examples carry gold answers, so the task metric is known")


class AccuracyBudget(_Strict):
    """How close to PyTorch fp32 a variant must answer on the evaluation data to be served by default."""

    min_agreement: float = Field(
        0.97, description="fraction of examples whose whole answer equals PyTorch fp32's, at least"
    )
    max_metric_drop: float = Field(
        0.5, description="points each task metric may lose against PyTorch fp32, at most"
    )


class Accuracy(_Strict):
    """A variant's answers on the evaluation data, beside PyTorch fp32's on the same examples."""

    examples: int
    agreement: float = Field(
        description="fraction of examples whose whole answer (label; span; the list of entities) equals "
        "PyTorch fp32's, through the server's own pre- and post-processing"
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="the task metric in percent (empty without gold answers)"
    )
    reference_metrics: dict[str, float] = Field(
        default_factory=dict, description="PyTorch fp32's task metric on the same examples"
    )
    within_budget: bool = Field(description="agreement and every metric drop within the export's budget")


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
    accuracy: Accuracy | None = Field(
        None, description="on the evaluation data; null without --eval-data or when refused on parity"
    )
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
    accuracy: Accuracy | None = Field(
        None, description="answers on the evaluation data beside PyTorch fp32's (null without --eval-data)"
    )
    default: bool = Field(
        True,
        description="served when BERTSERVE_PRECISION is auto: int8 only within the accuracy budget "
        "(or when exported with --int8-choice fastest); an explicit precision serves any variant that passed",
    )
    batch_dependent: bool = Field(
        False,
        description="the graph's answer for one sequence depends on the others in its tensor (dynamic int8 "
        "quantization scales activations over the whole tensor): the server runs it one sequence at a time",
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
    evaluation: EvalData | None = Field(None, description="the labelled data the variants were scored on")
    budget: AccuracyBudget | None = Field(None, description="the budget int8 was held to (with evaluation)")
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

    def variant(self, precision: Precision, *, by_default: bool = False) -> Variant | None:
        """The variant of this precision, if it was built and passed validation (and, with
        `by_default`, is one the exporter allows to be served without being asked for)."""
        for variant in self.variants:
            if (
                variant.precision == precision
                and variant.parity.passed
                and (variant.default or not by_default)
            ):
                return variant
        return None

    def write(self, folder: Path) -> None:
        (folder / MANIFEST_FILE).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        return cls.model_validate_json((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
