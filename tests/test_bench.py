"""The throughput benchmark runs both variants on the tiny shape and their losses agree (no timing asserted)."""

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.mark.slow
def test_benchmark_runs_both_variants_with_matching_losses(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/train_throughput.py"),
            "--shape",
            "tiny",
            "--mode",
            "full",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--batch-size",
            "2",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, BENCH_RESULTS=str(out)),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results) == {"trl", "secml"}
    assert all(r["tokens_per_s"] > 0 and len(r["losses"]) == 3 for r in results.values())
    for a, b in zip(results["trl"]["losses"], results["secml"]["losses"]):
        assert abs(a - b) <= 1e-4 * abs(a)
    assert "| trl |" in proc.stdout and "| secml |" in proc.stdout


@pytest.mark.slow
def test_attention_paths_agree_with_per_sequence_attention():
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/attention_paths.py"),
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--dim",
            "16",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "ms" not in line]
    assert [r.split("|")[1].strip() for r in rows] == [
        "padded sdpa (TRL default)",
        "packed sdpa + block mask",
        "varlen (this repository)",
    ]
    assert all(float(r.split("|")[4]) < 1e-4 for r in rows)


@pytest.mark.slow
def test_gpu_suite_dry_run_writes_the_summary_and_plot(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/gpu_suite.py"),
            "--out",
            str(tmp_path),
            "--shape",
            "tiny",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--only",
            "llama-8b LoRA,mixtral-8x7b LoRA",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (tmp_path / "summary.md").read_text()
    assert "| llama-8b LoRA r16 q/v |" in summary and "| mixtral-8x7b LoRA bf16 |" in summary
    assert "failed" not in summary and (tmp_path / "summary.png").stat().st_size > 10_000
    mixtral = json.loads((tmp_path / "mixtral-8x7b_LoRA_bf16.json").read_text())
    assert mixtral["secml"]["settings"]["attn_implementation"] == "varlen"
