"""Tiny BERT heads built on the fly: small config, random init, the real uncased WordPiece tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.bench.model import minilm_dir

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
CLASSIFY_LABELS = ["NEGATIVE", "POSITIVE"]
PAIR_LABELS = ["entailment", "neutral", "contradiction"]


def build_tiny_checkpoint(
    task: str,
    out: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    seed: int = 0,
    initializer_range: float = 0.2,
) -> Path:
    """Save a randomly initialised BERT head for `task` (classify, pair, qa, ner) into `out`."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertForTokenClassification,
    )

    labels = {"classify": CLASSIFY_LABELS, "pair": PAIR_LABELS, "ner": NER_LABELS, "qa": None}[task]
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=512,
        initializer_range=initializer_range,
    )
    if labels is not None:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    model_class = {
        "classify": BertForSequenceClassification,
        "pair": BertForSequenceClassification,
        "ner": BertForTokenClassification,
        "qa": BertForQuestionAnswering,
    }[task]
    torch.manual_seed(seed)
    model = model_class(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(out)
    return out


# -- the other encoder families ----------------------------------------------------------------------

# model_type -> the tokenizer kind its tiny checkpoints use
FAMILY_TOKENIZER = {
    "electra": "wordpiece",
    "distilbert": "wordpiece",
    "roberta": "bpe",
    "xlm-roberta": "unigram",
    "deberta-v2": "unigram",
}
TOKENIZER_SPECIALS = {
    "bpe": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    "unigram": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],  # XLM-R's order: <s> 0, <pad> 1, </s> 2
    "deberta": ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"],
}


def training_corpus() -> list[str]:
    """The texts the tiny BPE and Unigram tokenizers learn from: the exporter's validation texts."""
    from export import samples

    pairs = [text for pair in (*samples.PAIRS, *samples.QA) for text in pair if text]
    return [*samples.SENTENCES, *samples.NER, *pairs]


def _trained_bpe() -> Any:
    """A byte-level BPE (RoBERTa's scheme: `Ġ` marks a leading space) wrapped as RobertaTokenizerFast."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaTokenizerFast

    trainer = ByteLevelBPETokenizer()
    specials = TOKENIZER_SPECIALS["bpe"]
    trainer.train_from_iterator(training_corpus(), vocab_size=700, min_frequency=2, special_tokens=specials)
    backend = trainer._tokenizer
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>")), trim_offsets=True
    )
    return RobertaTokenizerFast(tokenizer_object=backend, model_max_length=512)


def _trained_unigram(kind: str) -> Any:
    """A SentencePiece-style Unigram (`▁` marks a word start) as XLM-R's or DeBERTa-v2's tokenizer."""
    from tokenizers import SentencePieceUnigramTokenizer, processors
    from transformers import DebertaV2TokenizerFast, XLMRobertaTokenizerFast

    specials = TOKENIZER_SPECIALS["deberta" if kind == "deberta-v2" else "unigram"]
    trainer = SentencePieceUnigramTokenizer()
    trainer.train_from_iterator(
        training_corpus(), vocab_size=500, special_tokens=specials, unk_token=specials[3]
    )
    backend = trainer._tokenizer
    ids = {token: backend.token_to_id(token) for token in specials}
    if kind == "deberta-v2":
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
        )
        return DebertaV2TokenizerFast(tokenizer_object=backend, model_max_length=512)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    return XLMRobertaTokenizerFast(tokenizer_object=backend, model_max_length=512)


def family_tokenizer(model_type: str) -> Any:
    """The transformers fast tokenizer for a family's tiny checkpoints (trained here, no download)."""
    from transformers import AutoTokenizer, DistilBertTokenizerFast

    kind = FAMILY_TOKENIZER[model_type]
    if kind == "bpe":
        return _trained_bpe()
    if kind == "unigram":
        return _trained_unigram(model_type)
    if model_type == "distilbert":  # the real uncased WordPiece, without token types
        tokenizer_file = str(minilm_dir() / "tokenizer.json")
        return DistilBertTokenizerFast(tokenizer_file=tokenizer_file, model_max_length=512)
    return AutoTokenizer.from_pretrained(minilm_dir())


def family_config(model_type: str, vocab_size: int, pad_token_id: int, *, hidden: int, layers: int) -> Any:
    """A tiny config of the family: `hidden` wide, `layers` deep, 2 heads, decisive random init."""
    from transformers import AutoConfig

    common = {"vocab_size": vocab_size, "pad_token_id": pad_token_id, "initializer_range": 0.2}
    if model_type == "distilbert":
        return AutoConfig.for_model(
            model_type, dim=hidden, n_layers=layers, n_heads=2, hidden_dim=hidden * 4, **common
        )
    sizes = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": hidden * 4,
    }
    if model_type in ("roberta", "xlm-roberta"):
        extra: dict[str, Any] = {"max_position_embeddings": 514, "type_vocab_size": 1, "bos_token_id": 0}
        extra["eos_token_id"] = 2
    elif model_type == "electra":
        extra = {"embedding_size": hidden}
    else:  # deberta-v2, shaped like v3: relative attention only, no token types
        extra = {
            "relative_attention": True,
            "position_buckets": 32,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "type_vocab_size": 0,
            "max_relative_positions": -1,
        }
    return AutoConfig.for_model(model_type, **sizes, **extra, **common)


def build_family_checkpoint(
    model_type: str, task: str, out: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0
) -> Path:
    """Save a random `model_type` head for `task` with its family's tokenizer into `out`."""
    import torch
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    tokenizer = family_tokenizer(model_type)
    config = family_config(
        model_type, len(tokenizer), int(tokenizer.pad_token_id), hidden=hidden, layers=layers
    )
    labels = {"classify": CLASSIFY_LABELS, "pair": PAIR_LABELS, "ner": NER_LABELS, "qa": None}[task]
    if labels is not None:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    auto = {
        "classify": AutoModelForSequenceClassification,
        "pair": AutoModelForSequenceClassification,
        "ner": AutoModelForTokenClassification,
        "qa": AutoModelForQuestionAnswering,
    }[task]
    torch.manual_seed(seed)
    model = auto.from_config(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
