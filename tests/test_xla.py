"""On XLA (PJRT_DEVICE=CPU), a few training steps compile a bounded number of graphs. Needs torch_xla,
which lives in its own environment (torch_xla 2.9 needs torch 2.9); skipped here otherwise."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

HAS_XLA = importlib.util.find_spec("torch_xla") is not None
if not HAS_XLA:
    print("test_xla: skipped, torch_xla is not importable in this environment (see docs/tpu.md)")

SCRIPT = textwrap.dedent("""
    import json, sys
    import torch_xla.core.xla_model as xm
    import torch_xla.debug.metrics as met
    from datasets import Dataset
    sys.path.insert(0, "tests")
    from helpers import make_trainer
    from secml_recipes.scan.fixtures import real_reports
    from secml_recipes.tasks.split import specialist_examples
    examples = specialist_examples(next(real_reports()), "x", 1500)[:8]
    rows = [{k: r[k] for k in ("prompt", "completion")} for r in examples]
    counts = []
    class Count:
        pass
    from transformers import TrainerCallback
    class Cb(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            data = met.metric_data("CompileTime")
            counts.append(data[0] if data else 0)
    trainer = make_trainer("specialist", sys.argv[1], rows, __import__("pathlib").Path(sys.argv[2]),
                           "--max_steps", "8", "--per_device_train_batch_size", "1", "--max_length", "4096",
                           *json.loads(sys.argv[3]))
    trainer.add_callback(Cb())
    widths, collate = [], trainer.data_collator
    def recording(features):
        batch = collate(features)
        widths.append(batch["input_ids"].shape[1])
        return batch
    trainer.data_collator = recording
    trainer.train()
    print(json.dumps({"counts": counts, "buckets": collate.bucket_lengths, "widths": widths}))
""")


@pytest.mark.skipif(not HAS_XLA, reason="torch_xla is not importable (separate TPU environment, see docs/tpu.md)")
@pytest.mark.parametrize(
    "buckets", [["--xla_bucket_lengths", "[1024, 2048, 4096]"], ["--xla_bucket_count", "3"]], ids=["fixed", "planned"]
)
@pytest.mark.slow
def test_xla_steps_compile_a_bounded_number_of_graphs(tiny_models, tmp_path, buckets):
    import json

    env = dict(os.environ, PJRT_DEVICE="CPU")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_models["llama"]), str(tmp_path), json.dumps(buckets)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    counts, planned, widths = result["counts"], result["buckets"], result["widths"]
    assert 1 <= len(planned) <= 3 and set(widths) <= set(planned)
    # What compiles depends on the buckets of the current and the previous micro-batch (transformers' sdpa mask
    # reads a tensor value in every forward, which cuts the lazy graph there), so the count grows while new
    # pairs of buckets appear and stays a small multiple of the bucket count. Seen, 8 steps of 2 micro-batches:
    # fixed buckets (every row in the 2048 bucket) [3, 10, 12, 13, 13, 13, 13, 13]; 3 planned buckets, all in
    # use, [5, 14, 18, 19, 19, 20, 22, 22].
    if len(set(widths)) == 1:
        assert counts[-1] == counts[len(counts) // 2], json.dumps(result)
    assert counts[-1] <= 8 * len(planned), json.dumps(result)


# --- sharded: XLA SPMD FSDPv2 over four PJRT CPU devices against one device ----------------------------------------

SHARDED = {  # task: (tiny model, recipe overrides); SGD for the adapter, whose update then follows the gradient
    # The specialist's reports are longer than its 2048-token bucket: cut rows are kept (the comparison is of losses
    # on identical batches, one device against four), where training would drop them by default.
    "specialist": (
        "llama",
        ["--max_length", "2048", "--xla_bucket_lengths", "[2048]", "--keep_truncated_rows", "true"],
    ),
    "generalist": (
        "mixtral",
        [
            "--max_length",
            "3072",
            "--xla_bucket_lengths",
            "[3072]",
            "--lora_dropout",
            "0",
            "--router_aux_loss_coef",
            "0",
            "--optim",
            "sgd",
        ],
    ),
}


@pytest.fixture(scope="module")
def short_corpus(tmp_path_factory):
    """Scans cut to 800 prompt characters: rows of ~1.2k tokens, so the XLA steps stay short on a CPU."""
    from secml_recipes.corpus.tarball import build_corpus

    out = tmp_path_factory.mktemp("short") / "massive_datasets.tar.gz"
    build_corpus(out, n_specialist=40, n_generalist=20, seed=3, max_prompt_chars=800)
    return out


def _xla_sft(task, model, corpus, out, devices: int) -> list[float]:
    import json

    from helpers import ROOT

    args = [
        f"recipes/tiny/{task}.yaml",
        "--model_name_or_path",
        str(model),
        "--dataset_path",
        str(corpus),
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--num_train_epochs",
        "1",
        "--logging_steps",
        "1",
        "--max_train_samples",
        "8",
        "--gradient_accumulation_steps",
        "1",
        "--save_strategy",
        "no",
        "--train_sampling_strategy",
        "sequential",
        "--shuffle_dataset",
        "false",
        "--lr_scheduler_type",
        "constant",
        "--activation_checkpointing",
        "true",
        *SHARDED[task][1],
    ]
    env = dict(os.environ, PJRT_DEVICE="CPU", CPU_NUM_DEVICES=str(devices))
    if devices == 1:  # the same rows per step on one device
        cmd = [sys.executable, "-m", "secml_recipes.train.sft", *args, "--per_device_train_batch_size", "4"]
    else:  # the TPU launch line: accelerate's FSDP config, run by secml_recipes.train.sharding as SPMD FSDPv2
        accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
        cmd = [
            accelerate,
            "launch",
            "--config_file",
            "accelerate_configs/tpu_fsdp.yaml",
            "--mixed_precision",
            "no",
            "-m",
            "secml_recipes.train.sft",
            *args,
            "--per_device_train_batch_size",
            "1",
        ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    if devices > 1:
        assert f"XLA SPMD FSDPv2, {devices} CPU device(s)" in proc.stdout + proc.stderr
    return [h["loss"] for h in json.loads((out / "loss_history.json").read_text()) if "loss" in h]


@pytest.mark.skipif(not HAS_XLA, reason="torch_xla is not importable (separate TPU environment, see docs/tpu.md)")
@pytest.mark.parametrize("task", ["specialist", "generalist"])
def test_spmd_fsdp_over_four_devices_matches_one_device(tiny_models, short_corpus, tmp_path, task):
    import torch
    from safetensors.torch import load_file

    model = tiny_models[SHARDED[task][0]]
    one = _xla_sft(task, model, short_corpus, tmp_path / "one", 1)
    four = _xla_sft(task, model, short_corpus, tmp_path / "four", 4)
    assert len(one) == len(four) == 2 and four == pytest.approx(one, rel=1e-4)
    weights = "model.safetensors" if task == "specialist" else "adapter_model.safetensors"
    a, b = load_file(tmp_path / "one" / weights), load_file(tmp_path / "four" / weights)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-3, atol=1e-5, msg=name)
