"""Build the real trainers on tiny models for tests, through the same code path as `secml_recipes.train.sft`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from datasets import Dataset

from secml_recipes.train.recipe import load_recipe
from secml_recipes.train.run_settings import Environment, detect_environment
from secml_recipes.train.sft import build_trainer, resolve_run

ROOT = Path(__file__).resolve().parents[1]
# Machines the tests describe without having them (the trainer itself still runs on this CPU).
XLA = Environment(accelerator="xla")


def make_trainer(
    task: str, model_path, rows: list[dict], tmp_path, *overrides: str, eval_rows=None, env: Environment | None = None
):
    recipe = ROOT / "recipes" / "tiny" / f"{task}.yaml"
    # The smoke recipes say use_cpu: true, which wins over any accelerator; a described machine needs it off.
    described = ["--use_cpu", "false"] if env is not None and env.accelerator != "cpu" else []
    args = [
        *described,
        "--model_name_or_path",
        str(model_path),
        "--output_dir",
        str(tmp_path / f"out-{task}"),
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--dataloader_num_workers",
        "0",
        *overrides,
    ]
    data_args, model_args, sft_args, speed_args = load_recipe(recipe, args)
    settings, tokenizer = resolve_run(data_args, model_args, sft_args, speed_args, env or detect_environment())
    eval_ds = Dataset.from_list(eval_rows) if eval_rows else None
    return build_trainer(settings, model_args, sft_args, Dataset.from_list(rows), eval_ds, tokenizer)


def first_batch(trainer):
    return next(iter(trainer.get_train_dataloader()))


@contextmanager
def served(gguf, *args: str, startup_seconds: float = 180):
    """`python -m secml_recipes.use.serve --model GGUF ARGS...` on a free localhost port: yields its base URL, stops it
    after. A server that does not come up fails the test with the end of its stderr."""
    import pytest

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "secml_recipes.use.serve", "--model", str(gguf), "--port", str(port), *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + startup_seconds
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/v1/models", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    proc.kill()
                    pytest.fail(f"the server did not come up: {proc.stderr.read()[-2000:]}")
                time.sleep(1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post_json(url: str, body: dict, timeout: float = 300) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read())
