"""4-bit GPTQ through GPTQModel, the maintained successor of AutoGPTQ (which does not import under
transformers 5). GPTQModel 7.7 needs torch>=2.14.1, so it lives in its own environment
(`.cache/gptq-venv`, `make gptq-env`); this module drives `gptq_worker.py` there."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from secml_recipes import layout
from secml_recipes.deploy.gguf import DeployError

WORKER = Path(__file__).with_name("gptq_worker.py")


def gptq_python() -> Path:
    env = os.environ.get("GPTQ_PYTHON")
    path = Path(env) if env else layout.gptq_venv() / "bin" / "python"
    if not path.exists():
        raise DeployError(f"the GPTQ environment is missing ({path}): run `make gptq-env` or set GPTQ_PYTHON")
    return path


def _run(args: list[str]) -> dict:
    """Run the worker (given absolute paths) from a scratch folder: GPTQModel writes ./logs where it runs."""
    env = dict(
        os.environ, GPTQMODEL_CPU_WORKERS=os.environ.get("GPTQMODEL_CPU_WORKERS", str(min(2, os.cpu_count() or 1)))
    )
    scratch = Path(tempfile.gettempdir()) / "secml-gptq"
    scratch.mkdir(exist_ok=True)
    proc = subprocess.run(
        [str(gptq_python()), str(WORKER), *args], capture_output=True, text=True, env=env, cwd=scratch
    )
    if proc.returncode != 0:
        raise DeployError(f"GPTQ worker failed ({' '.join(args[:1])}):\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def quantize_gptq(src: Path, out: Path, calibration_texts: list[str], bits: int, group_size: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        fh.writelines(json.dumps({"text": t}) + "\n" for t in calibration_texts)
        calib = fh.name
    try:
        return _run(
            [
                "quantize",
                str(Path(src).resolve()),
                str(Path(out).resolve()),
                calib,
                "--bits",
                str(bits),
                "--group-size",
                str(group_size),
            ]
        )
    finally:
        os.unlink(calib)


def gptq_logits(model_dir: Path, ids: list[list[int]]) -> tuple[list[np.ndarray], float]:
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens.json"
        tokens.write_text(json.dumps(ids))
        t0 = time.perf_counter()
        info = _run(["logits", str(Path(model_dir).resolve()), str(tokens), str(Path(tmp) / "logits.npz")])
        data = np.load(Path(tmp) / "logits.npz")
        return [data[f"l{i}"] for i in range(len(ids))], info.get("load_seconds", time.perf_counter() - t0)
