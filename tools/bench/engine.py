"""Raw engine benchmark: fused vs unfused ONNX Runtime vs PyTorch, one model, one device, one run.

    python -m tools.bench.engine --shape base --seq 128 --batches 1,8,32,64,128,256     # BERT-base shape
    python -m tools.bench.engine --checkpoint demo/sst2-minilm                          # a demo head

On a GPU every engine runs in fp16 (ONNX Runtime on the CUDA provider with inputs and outputs
bound on the device; PyTorch eager with SDPA attention); on a CPU in fp32. Reports sequences/s
and latency per batch size, and on a GPU the fraction of the card's dense fp16 peak reached.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.bench.model import CACHE, minilm_dir, synthetic_checkpoint

PEAK_FP16_FLOPS = 790e12  # dense bf16/fp16 measured on the lent H100/H200 cards
SHAPES = {"base": (12, 768, 12), "minilm": (6, 384, 12), "tiny": (2, 64, 4)}


@dataclass(frozen=True)
class Timing:
    engine: str
    batch: int
    seq_per_s: float
    batch_ms: float


def flops_per_sequence(layers: int, hidden: int, seq: int) -> float:
    """Forward FLOPs of a BERT encoder per sequence: projections and FFN (24 h^2) plus attention (4 s h)."""
    return layers * seq * (24 * hidden * hidden + 4 * seq * hidden)


def random_checkpoint(shape: str) -> Path:
    """A randomly initialised BertForSequenceClassification of the given shape, saved once."""
    if shape == "minilm":
        return synthetic_checkpoint()
    out = CACHE / f"bert-{shape}-random"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    layers, hidden, heads = SHAPES[shape]
    config = BertConfig(  # type: ignore[no-untyped-call]
        num_hidden_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)  # type: ignore[no-untyped-call]
    model.eval().save_pretrained(out)  # type: ignore[no-untyped-call]
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(out)  # type: ignore[no-untyped-call]
    return out


def build_graphs(checkpoint: Path, work: Path, fp16: bool) -> tuple[dict[str, Path], Any]:
    """Unfused and fused ONNX graphs (fp16 on GPU), through the export pipeline's own stages."""
    from export.checkpoint import inspect_checkpoint, load_torch_model
    from export.convert import to_onnx
    from export.optimize import fuse, to_fp16
    from export.tasks import TASKS

    spec = TASKS["classify"]
    ckpt = inspect_checkpoint(checkpoint, str(checkpoint), spec)
    model = load_torch_model(ckpt, spec)
    work.mkdir(parents=True, exist_ok=True)
    unfused, fused = work / "unfused.onnx", work / "fused.onnx"
    to_onnx(model, spec, unfused, opset=17)
    fuse(unfused, fused, num_heads=model.config.num_attention_heads, hidden_size=model.config.hidden_size)
    graphs = {"ort-unfused": unfused, "ort-fused": fused}
    if fp16:
        to_fp16(unfused, work / "unfused.fp16.onnx")
        to_fp16(fused, work / "fused.fp16.onnx")
        graphs = {"ort-unfused": work / "unfused.fp16.onnx", "ort-fused": work / "fused.fp16.onnx"}
    return graphs, model


def time_call(run: Callable[[], None], seconds: float) -> float:
    """Mean seconds per call, after two warm-up calls, over at least `seconds`."""
    run()
    run()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or calls < 3:
        run()
        calls += 1
    return elapsed / calls


def ort_runner(path: Path, batch: int, seq: int, cuda: bool) -> Callable[[], None]:
    import onnxruntime as ort

    from app.runtime.providers import CPU, CUDA

    providers = [(CUDA, {"use_tf32": "0"}), CPU] if cuda else [CPU]
    session = ort.InferenceSession(str(path), providers=providers)
    ids = np.random.default_rng(0).integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    if not cuda:
        return lambda: session.run(None, feeds) and None
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
    binding.bind_output("logits", "cuda")
    return lambda: session.run_with_iobinding(binding)


def torch_runner(model: Any, batch: int, seq: int, cuda: bool) -> Callable[[], None]:
    import torch

    device = "cuda" if cuda else "cpu"
    model = model.to(device=device, dtype=torch.float16 if cuda else torch.float32)
    model.config._attn_implementation = "sdpa"
    ids = torch.randint(1000, 30000, (batch, seq), device=device)

    def run() -> None:
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        if cuda:
            torch.cuda.synchronize()

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="base")
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="use this classifier instead of --shape"
    )
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batches", default="1,8,32,64,128,256")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per engine and batch size")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import onnxruntime as ort

    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    checkpoint = args.checkpoint or random_checkpoint(args.shape)
    graphs, model = build_graphs(checkpoint, CACHE / "engine" / checkpoint.name, fp16=cuda)
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    flops = flops_per_sequence(layers, hidden, args.seq)
    print(
        f"{checkpoint.name}: {layers} layers, hidden {hidden}, seq {args.seq}, "
        f"{flops / 1e9:.1f} GFLOP/sequence, {'CUDA fp16' if cuda else 'CPU fp32'}",
        flush=True,
    )

    timings: list[Timing] = []
    for batch in (int(b) for b in args.batches.split(",")):
        engines: dict[str, Callable[[], None]] = {
            name: ort_runner(path, batch, args.seq, cuda) for name, path in graphs.items()
        }
        engines["torch-sdpa"] = torch_runner(model, batch, args.seq, cuda)
        for name, run in engines.items():
            per_call = time_call(run, args.seconds)
            rate = batch / per_call
            timings.append(Timing(name, batch, rate, per_call * 1000))
            peak = f"  {rate * flops / PEAK_FP16_FLOPS:6.1%} of peak" if cuda else ""
            print(
                f"  batch {batch:4d}  {name:12s} {rate:10.1f} seq/s  {per_call * 1000:8.2f} ms{peak}",
                flush=True,
            )

    best = {
        name: max(t.seq_per_s for t in timings if t.engine == name) for name in {t.engine for t in timings}
    }
    summary = {
        "model": checkpoint.name,
        "device": "cuda" if cuda else "cpu",
        "seq": args.seq,
        "gflop_per_seq": round(flops / 1e9, 2),
        "best_seq_per_s": {name: round(value, 1) for name, value in sorted(best.items())},
        "fused_vs_unfused": round(best["ort-fused"] / best["ort-unfused"], 2),
        "fused_vs_torch": round(best["ort-fused"] / best["torch-sdpa"], 2),
        "peak_fraction": round(best["ort-fused"] * flops / PEAK_FP16_FLOPS, 3) if cuda else None,
        "timings": [t.__dict__ for t in timings],
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "timings"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
