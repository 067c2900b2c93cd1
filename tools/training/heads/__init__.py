"""The one registry of demo heads: `HEADS[name]`."""

from __future__ import annotations

from transformers import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification

from export.evaluation.datasets import read_mrpc, read_sst2
from tools.training.heads.base import CardInfo, Head, HeadSpec
from tools.training.heads.classification import ClassificationHead
from tools.training.heads.ner import NerHead
from tools.training.heads.qa import QAHead

NER_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")

SST2 = HeadSpec(
    name="sst2",
    task="classify",
    model_class=BertForSequenceClassification,
    train_file="sst2/train.tsv",
    dev_file="sst2/dev.tsv",
    labels=("NEGATIVE", "POSITIVE"),
    defaults={"max_length": 64, "epochs": 1.0, "batch_size": 32, "lr": 5e-5, "train_limit": 20000},
    card=CardInfo(
        dataset="SST-2 (Stanford Sentiment Treebank, binary; Socher et al. 2013, as packaged by GLUE)",
        dataset_source="GLUE SST-2 train/dev splits",
        licence="research use (the GLUE/SST terms); the test split was not used",
        licence_id="other",
        metric="accuracy",
        intended_use="Binary sentiment (NEGATIVE/POSITIVE) of short English texts, as a demo of the "
        "`classify` task of bertserve.",
        limitations="Trained on movie-review sentences and phrases; other domains, sarcasm, negation "
        "across long texts and non-English input are out of scope. No neutral class.",
    ),
)

MRPC = HeadSpec(
    name="mrpc",
    task="pair",
    model_class=BertForSequenceClassification,
    train_file="mrpc/train.tsv",
    dev_file="mrpc/dev.tsv",
    labels=("not_equivalent", "equivalent"),
    defaults={"max_length": 128, "epochs": 3.0, "batch_size": 16, "lr": 5e-5},
    card=CardInfo(
        dataset="MRPC (Microsoft Research Paraphrase Corpus; Dolan & Brockett 2005, as packaged by GLUE)",
        dataset_source="GLUE MRPC train/dev splits",
        licence="Microsoft Research Shared Source License: **non-commercial use only**. A model trained "
        "on it carries those terms; do not use it commercially",
        licence_id="other",
        metric="accuracy and F1 of the `equivalent` class",
        intended_use="Paraphrase detection for a pair of English sentences (segment A, segment B with "
        "token type 1), as a demo of the `pair` task of bertserve. Non-commercial use only.",
        limitations="Trained on 3.7k newswire sentence pairs; small data, so scores vary with the seed. "
        "Long or non-news texts and non-English input are out of scope.",
    ),
)

CONLL = HeadSpec(
    name="conll",
    task="ner",
    model_class=BertForTokenClassification,
    train_file="conll2003/train.txt",
    dev_file="conll2003/valid.txt",
    labels=NER_LABELS,
    defaults={"max_length": 128, "epochs": 2.0, "batch_size": 32, "lr": 8e-5},
    card=CardInfo(
        dataset="CoNLL-2003 English NER (Tjong Kim Sang & De Meulder 2003; Reuters RCV1 text)",
        dataset_source="CoNLL-2003 train / valid (testa) splits",
        licence="research use (Reuters/NIST terms for RCV1); the test split was not used",
        licence_id="other",
        metric="entity-level F1 (seqeval, conlleval mode)",
        intended_use="Tagging PER, ORG, LOC and MISC entities (IOB2) in English text, as a demo of the "
        "`ner` task of bertserve. Only the first sub-token of each word was trained; read the "
        "tag of a word from its first sub-token (or aggregate with `first`).",
        limitations="1996 Reuters newswire; other domains, lower-cased text and non-English input "
        "score lower. Uncased model: capitalisation cues are lost.",
    ),
)

SQUAD = HeadSpec(
    name="squad",
    task="qa",
    model_class=BertForQuestionAnswering,
    train_file="squad/train.json",
    dev_file="squad/dev.json",
    labels=None,
    defaults={"max_length": 384, "stride": 128, "epochs": 2.0, "batch_size": 16, "lr": 8e-5},
    card=CardInfo(
        dataset="SQuAD v1.1 (Rajpurkar et al. 2016), re-split by article: 38 articles / 8,582 questions "
        "to train, 4 other articles / 843 questions to score",
        dataset_source="the official SQuAD v1.1 development set, split by article",
        licence="CC BY-SA 4.0 (attribution, share-alike)",
        licence_id="cc-by-sa-4.0",
        metric="exact match and F1 (official SQuAD v1.1 normalisation)",
        intended_use="Extractive question answering over English paragraphs, as a demo of the `qa` "
        "task of bertserve.",
        limitations="Trained on only 8.6k questions (a tenth of SQuAD's training set), so it is far "
        "below a full SQuAD model. Always returns a span: no 'no answer' (SQuAD 2.0) ability.",
    ),
)

HEADS: dict[str, Head] = {
    "sst2": ClassificationHead(SST2, read_sst2),
    "mrpc": ClassificationHead(MRPC, read_mrpc),
    "conll": NerHead(CONLL),
    "squad": QAHead(SQUAD),
}

__all__ = ["HEADS", "NER_LABELS", "Head", "HeadSpec"]
