"""The hostile requests: one request each, built to cost the server far more than it looks (options
that multiply work, bodies whose validation grows with them, inputs that pass validation and fail
later, malformed HTTP). Each case names the statuses it may get: a clear 4xx, or (where a bounded
answer is fine) a 200; the scenario (hostile.py) holds every one to its time limit."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from tools.bench.corpus import sentences
from tools.bench.stress.rawhttp import CLOSED, LITERAL, Raw, Sending, json_body

QUESTION = "What is this about?"
SURROGATE = "\ud800"  # json_body sends it as the six characters \ud800: valid JSON, invalid Unicode

# What a case may be answered with (CLOSED: the server closed the connection, no answer).
INVALID = frozenset({400, 422})
OVER_LIMIT = frozenset({413, 422})
V2_INVALID = frozenset({400, 413, 422})
BOUNDED_ANSWER_OR_INVALID = frozenset({200, 413, 422})


@dataclass(frozen=True)
class Facts:
    """What the cases are built from: the served models and their windows, and some prose."""

    models: dict[str, str]  # task -> the model that serves it by default
    ner_window: int  # text tokens per NER window (the model's maximum length less the special tokens)
    qa_max_seq_len: int  # tokens per QA window by default: min(384, the model's maximum length)
    qa_room: int  # context tokens per QA window with QUESTION
    qa_tiny_seq_len: int  # the max_seq_len that leaves QUESTION two context tokens per window
    corpus: tuple[str, ...]

    def prose(self, chars: int) -> str:
        """About `chars` characters of real sentences, cut at a space."""
        text = ""
        for sentence in itertools.cycle(self.corpus):
            text = f"{text} {sentence}" if text else sentence
            if len(text) >= chars:
                break
        return text[:chars].rsplit(" ", 1)[0]


def read_facts(model_dir: Path, described: list[dict[str, object]]) -> Facts:
    """Facts from /v1/models' answer and the default models' tokenizers."""
    models: dict[str, str] = {}
    max_length: dict[str, int] = {}
    for model in described:
        if model.get("default") and isinstance(model.get("task"), str):
            task, name = str(model["task"]), str(model["name"])
            models[task], max_length[task] = name, int(str(model["max_length"]))
    missing = sorted({"classify", "qa", "ner"} - set(models))
    if missing:
        raise RuntimeError(f"the hostile cases need a model for each task; none serves {missing}")
    ner = Tokenizer.from_file(str(model_dir / models["ner"] / "tokenizer.json"))
    qa = Tokenizer.from_file(str(model_dir / models["qa"] / "tokenizer.json"))
    question_tokens = len(qa.encode(QUESTION, add_special_tokens=False).ids)
    pair_specials = qa.num_special_tokens_to_add(True)
    qa_max_seq_len = min(384, max_length["qa"])
    return Facts(
        models=models,
        ner_window=max_length["ner"] - ner.num_special_tokens_to_add(False),
        qa_max_seq_len=qa_max_seq_len,
        qa_room=qa_max_seq_len - pair_specials - question_tokens,
        qa_tiny_seq_len=pair_specials + question_tokens + 2,
        corpus=tuple(sentences()),
    )


@dataclass(frozen=True)
class Case:
    """One hostile request and the statuses it may get, with the API key and without it."""

    name: str
    build: Callable[[Facts], Raw]
    expected: frozenset[int]
    # Statuses the server may answer without the key (besides 401): refusals made before it
    # could know who asks (the transport's, the declared body size).
    before_key: frozenset[int] = frozenset()
    sending: Sending | None = None  # how the body goes out, when not all at once


def post(path: str, document: object) -> Raw:
    return Raw(path, json_body(document))


def v2_infer(model: str, inputs: list[dict[str, object]], **extra: object) -> Raw:
    return post(f"/v2/models/{model}/infer", {"inputs": inputs, **extra})


def text_tensor(*texts: str, name: str = "text") -> dict[str, object]:
    return {"name": name, "datatype": "BYTES", "shape": [len(texts)], "data": list(texts)}


# --- HTTP and JSON that is not what it says ---------------------------------------------------


def declared_body_too_big(_: Facts) -> Raw:
    return Raw("/classify", b"", declared=10**12)


def body_shorter_than_declared(_: Facts) -> Raw:
    """100 bytes of a body declared at 1,000, then the client half-closes (its case says so)."""
    return Raw("/classify", json_body({"inputs": "x" * 200})[:100], declared=1000)


def chunked_body_over_limit(f: Facts) -> Raw:
    """3 MB with no Content-Length: the limit has to be counted as the body arrives."""
    return Raw("/classify", json_body({"inputs": [f.prose(1000)] * 3000}), chunked=True)


def headers_flood(_: Facts) -> Raw:
    """10,000 headers, 1 MB: refused by the transport, or answered as if they were not there."""
    headers = tuple((f"x-pad-{i}", "a" * 100) for i in range(10_000))
    return Raw("/classify", json_body({"inputs": "hello"}), extra_headers=headers)


def not_json(_: Facts) -> Raw:
    return Raw("/classify", b'{"inputs": "unterminated, ')


def wrong_content_type(_: Facts) -> Raw:
    return Raw("/classify", json_body({"inputs": "a plain sentence"}), content_type="text/plain")


def huge_integer(f: Facts) -> Raw:
    """A 5,000-digit integer: past Python's limit for int() of a decimal string."""
    document = {"inputs": {"question": QUESTION, "context": f.prose(200)}, "top_k": LITERAL}
    return Raw("/qa", json_body(document, b"1" + b"0" * 5000))


def huge_exponent(f: Facts) -> Raw:
    document = {"inputs": {"question": QUESTION, "context": f.prose(200)}, "top_k": LITERAL}
    return Raw("/qa", json_body(document, b"1e999999"))


def nested_json_task_route(_: Facts) -> Raw:
    depth = 50_000
    return Raw("/classify", b'{"inputs": ' + b"[" * depth + b'"x"' + b"]" * depth + b"}")


# --- options that multiply work -------------------------------------------------------------


def ner_stride_window_minus_1(f: Facts) -> Raw:
    """Windows one token apart: a 16,000-character text becomes thousands of them."""
    return post("/ner", {"inputs": f.prose(16_000), "stride": f.ner_window - 1})


def ner_stride_hf_parameters(f: Facts) -> Raw:
    return post("/ner", {"inputs": f.prose(16_000), "parameters": {"stride": f.ner_window - 1}})


def qa_doc_stride_max_seq_len_minus_1(f: Facts) -> Raw:
    qa = {"question": QUESTION, "context": f.prose(16_000)}
    return post("/qa", {"inputs": qa, "doc_stride": f.qa_max_seq_len - 1})


def qa_doc_stride_room_minus_1(f: Facts) -> Raw:
    """The largest doc_stride the context's room in a window allows: windows one token apart."""
    qa = {"question": QUESTION, "context": f.prose(16_000)}
    return post("/qa", {"inputs": qa, "doc_stride": f.qa_room - 1})


def qa_doc_stride_v2_parameters(f: Facts) -> Raw:
    inputs = [text_tensor(QUESTION, name="question"), text_tensor(f.prose(16_000), name="context")]
    return v2_infer(f.models["qa"], inputs, parameters={"doc_stride": f.qa_room - 1})


def qa_tiny_windows(f: Facts) -> Raw:
    """Windows of two context tokens, one apart, over 16 long contexts: tens of thousands of items."""
    inputs = [{"question": QUESTION, "context": f.prose(16_000)} for _ in range(16)]
    return post("/qa", {"inputs": inputs, "max_seq_len": f.qa_tiny_seq_len, "doc_stride": 1})


def qa_top_k_100000(f: Facts) -> Raw:
    return post("/qa", {"inputs": {"question": QUESTION, "context": f.prose(1900)}, "top_k": 100_000})


def qa_top_k_hf_parameters(f: Facts) -> Raw:
    qa = {"question": QUESTION, "context": f.prose(1900)}
    return post("/qa", {"inputs": qa, "parameters": {"top_k": 100_000}})


def qa_top_k_v2_parameters(f: Facts) -> Raw:
    inputs = [text_tensor(QUESTION, name="question"), text_tensor(f.prose(1900), name="context")]
    return v2_infer(f.models["qa"], inputs, parameters={"top_k": 100_000})


def qa_max_answer_len_1e30(f: Facts) -> Raw:
    qa = {"question": QUESTION, "context": f.prose(1900)}
    return post("/qa", {"inputs": qa, "max_answer_len": 10**30})


def ner_ignore_labels_400k(f: Facts) -> Raw:
    labels = ["O", "X"] * 200_000
    return post("/ner", {"inputs": f.prose(1900), "ignore_labels": labels})


# --- bodies whose validation grows with them ----------------------------------------------------


def classify_400k_empty_strings(_: Facts) -> Raw:
    return post("/classify", {"inputs": [""] * 400_000})


def v2_shape_huge_ints(f: Facts) -> Raw:
    """450 dimensions of 4,000 digits each: their product is a 1.8-million-digit number."""
    tensor = {**text_tensor("hello"), "shape": LITERAL}
    shape = b"[" + b",".join([b"9" * 4000] * 450) + b"]"
    return Raw(f"/v2/models/{f.models['classify']}/infer", json_body({"inputs": [tensor]}, shape))


def v2_data_nested_900(f: Facts) -> Raw:
    data: object = "hello"
    for _ in range(900):
        data = [data]
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1], "data": data}
    return v2_infer(f.models["classify"], [tensor])


# --- inputs that pass validation and fail later ------------------------------------------------


def surrogate_in_text(_: Facts) -> Raw:
    return post("/classify", {"inputs": f"a lone {SURROGATE} surrogate"})


def surrogate_in_qa_context(_: Facts) -> Raw:
    return post("/qa", {"inputs": {"question": QUESTION, "context": f"It is about {SURROGATE} this."}})


def surrogate_in_model_name(_: Facts) -> Raw:
    return post("/classify", {"inputs": "hello", "model": f"sst2{SURROGATE}"})


def surrogate_in_option_name(_: Facts) -> Raw:
    """An unknown option is rejected by name: the error message carries the surrogate."""
    return post("/classify", {"inputs": "hello", "parameters": {f"top{SURROGATE}": 1}})


def surrogate_in_v2_model_path(_: Facts) -> Raw:
    """A model name in the path, percent-encoded as the UTF-8 bytes of a surrogate."""
    return v2_infer("sst2%ED%A0%80", [text_tensor("hello")])


def surrogate_in_v2_id(f: Facts) -> Raw:
    return v2_infer(f.models["classify"], [text_tensor("hello")], id=f"id-{SURROGATE}")


def surrogate_in_v2_data(f: Facts) -> Raw:
    return v2_infer(f.models["classify"], [text_tensor(f"hello {SURROGATE}")])


def surrogate_in_v2_binary_data(f: Facts) -> Raw:
    """The binary tensor extension: the surrogate as UTF-8 bytes (ED A0 80), which are not UTF-8."""
    encoded = b"\xed\xa0\x80"
    data = struct.pack("<I", len(encoded)) + encoded
    tensor = {
        "name": "text",
        "datatype": "BYTES",
        "shape": [1],
        "parameters": {"binary_data_size": len(data)},
    }
    header = json_body({"inputs": [tensor]})
    return Raw(
        f"/v2/models/{f.models['classify']}/infer",
        header + data,
        content_type="application/octet-stream",
        extra_headers=(("Inference-Header-Content-Length", str(len(header))),),
    )


def invalid_utf8_in_text(_: Facts) -> Raw:
    return Raw("/classify", b'{"inputs":"caf\xc3 \xff\xfe \xed\xa0\x80"}')


def control_characters_in_text(_: Facts) -> Raw:
    return post("/ner", {"inputs": "Ada\x00 Lovelace\x07 in \x1bLondon\u2028\ufeff\uffff."})


TRANSPORT = frozenset({CLOSED, 400, 413, 431})  # what an HTTP server answers malformed HTTP with

CASES: tuple[Case, ...] = (
    Case("declared_body_too_big", declared_body_too_big, frozenset({413}), before_key=frozenset({413})),
    Case(
        "body_shorter_than_declared",
        body_shorter_than_declared,
        frozenset({CLOSED, 400}),
        before_key=frozenset({CLOSED, 400}),
        sending=Sending(then="half_close"),
    ),
    Case(
        "chunked_body_over_limit",
        chunked_body_over_limit,
        frozenset({CLOSED, 413}),
        before_key=frozenset({CLOSED, 413}),
    ),
    Case("headers_flood", headers_flood, TRANSPORT | {200}, before_key=TRANSPORT),
    Case("not_json", not_json, INVALID),
    Case("wrong_content_type", wrong_content_type, frozenset({200, 400, 415, 422})),
    Case("huge_integer", huge_integer, INVALID),
    Case("huge_exponent", huge_exponent, INVALID),
    Case("nested_json_task_route", nested_json_task_route, INVALID),
    Case("classify_400k_empty_strings", classify_400k_empty_strings, OVER_LIMIT),
    Case("v2_shape_huge_ints", v2_shape_huge_ints, V2_INVALID),
    Case("v2_data_nested_900", v2_data_nested_900, V2_INVALID),
    Case("surrogate_in_text", surrogate_in_text, INVALID),
    Case("surrogate_in_qa_context", surrogate_in_qa_context, INVALID),
    Case("surrogate_in_model_name", surrogate_in_model_name, frozenset({400, 404, 422})),
    Case("surrogate_in_option_name", surrogate_in_option_name, INVALID),
    Case("surrogate_in_v2_model_path", surrogate_in_v2_model_path, frozenset({400, 404})),
    Case("surrogate_in_v2_id", surrogate_in_v2_id, V2_INVALID),
    Case("surrogate_in_v2_data", surrogate_in_v2_data, V2_INVALID),
    Case("surrogate_in_v2_binary_data", surrogate_in_v2_binary_data, V2_INVALID),
    Case("invalid_utf8_in_text", invalid_utf8_in_text, INVALID),
    Case("control_characters_in_text", control_characters_in_text, frozenset({200, 400, 422})),
    Case("qa_doc_stride_max_seq_len_minus_1", qa_doc_stride_max_seq_len_minus_1, OVER_LIMIT),
    Case("qa_doc_stride_room_minus_1", qa_doc_stride_room_minus_1, OVER_LIMIT),
    Case("qa_doc_stride_v2_parameters", qa_doc_stride_v2_parameters, V2_INVALID),
    Case("qa_tiny_windows", qa_tiny_windows, OVER_LIMIT),
    Case("ner_stride_window_minus_1", ner_stride_window_minus_1, OVER_LIMIT),
    Case("ner_stride_hf_parameters", ner_stride_hf_parameters, OVER_LIMIT),
    Case("qa_max_answer_len_1e30", qa_max_answer_len_1e30, BOUNDED_ANSWER_OR_INVALID),
    Case("qa_top_k_100000", qa_top_k_100000, BOUNDED_ANSWER_OR_INVALID),
    Case("qa_top_k_hf_parameters", qa_top_k_hf_parameters, BOUNDED_ANSWER_OR_INVALID),
    Case("qa_top_k_v2_parameters", qa_top_k_v2_parameters, frozenset({200, 400, 413})),
    Case("ner_ignore_labels_400k", ner_ignore_labels_400k, BOUNDED_ANSWER_OR_INVALID),
)
"""In order: the cheap refusals first, the cases that multiply work last (on a server that does not
bound them, each of those holds it for a while, and the ones after would inherit the delay)."""
