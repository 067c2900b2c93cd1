"""The raw-engine benchmark's code path, on a tiny shape on the CPU (the GPU run is the real one)."""

from __future__ import annotations

import json
from pathlib import Path

from tools.bench.engine import flops_per_sequence, main


def test_bert_base_costs_about_22_gflop_per_sequence_of_128() -> None:
    assert 21e9 < flops_per_sequence(12, 768, 128) < 23e9


def test_engine_benchmark_runs_every_engine(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    assert (
        main(["--shape", "tiny", "--batches", "1,2", "--seconds", "0.05", "--seq", "16", "--out", str(out)])
        == 0
    )
    summary = json.loads(out.read_text())
    assert set(summary["best_seq_per_s"]) == {"ort-fused", "ort-unfused", "torch-sdpa"}
    assert {t["batch"] for t in summary["timings"]} == {1, 2}
    assert all(t["seq_per_s"] > 0 for t in summary["timings"])


def test_ceiling_engines_tokenize_and_run_length_sorted_batches(tiny_models: Path) -> None:
    from app.contract.manifest import TOKENIZER_FILE, Manifest
    from tools.bench.ceiling import Engine, engine_speeds, single_text_ms
    from tools.bench.corpus import mixed_lengths

    folder = tiny_models / "tiny-classify"
    manifest = Manifest.read(folder)
    engines = {
        v.precision: Engine(folder / v.file, folder / TOKENIZER_FILE, manifest.max_length)
        for v in manifest.variants
        if v.precision in ("fp32", "int8")
    }
    texts = mixed_lengths(40)
    assert all(5 <= len(text.split()) <= 60 for text in texts)
    speeds = engine_speeds(engines, texts, batch_sizes=(8, 32), rounds=1)
    assert {(s.engine, s.batch_size) for s in speeds} == {(e, b) for e in engines for b in (8, 32)}
    assert all(s.seq_per_s > 0 for s in speeds)
    assert single_text_ms(engines["int8"], texts[:4]) > 0
