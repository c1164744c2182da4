"""Data parallelism: two CPU processes (gloo) with 2 examples each take the same optimizer step as one
process with all 4: the loss is normalised by the trained tokens of every rank, not per rank."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from helpers import ROOT

SCRIPT = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    sys.path.insert(0, str(Path(sys.argv[3]) / "tests"))
    from transformers import TrainerCallback
    from helpers import make_trainer
    from secml_recipes.scan.fixtures import real_reports
    from secml_recipes.tasks.split import specialist_examples
    examples = specialist_examples(next(real_reports()), "fx", 2500)[:4]
    rows = [{k: r[k] for k in ("prompt", "completion")} for r in examples]
    bs = int(sys.argv[4])
    class Capture(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            if state.is_world_process_zero and not hasattr(self, "done"):
                self.done = True
                torch.save({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None},
                           sys.argv[2])
    trainer = make_trainer("specialist", sys.argv[1], rows, Path(sys.argv[2]).parent, "--train_sampling_strategy",
                           "sequential", "--shuffle_dataset", "false", "--per_device_train_batch_size", str(bs),
                           "--gradient_accumulation_steps", "1", "--max_steps", "1", "--max_grad_norm", "0",
                           "--max_length", "16384")
    assert trainer.args.world_size == int(sys.argv[5]), trainer.args.world_size
    trainer.add_callback(Capture())
    trainer.train()
""")


def _run(cmd, env):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
def test_two_cpu_ranks_match_one_process(tiny_models, tmp_path):
    script = tmp_path / "ddp_step.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    single, ddp = tmp_path / "single" / "g.pt", tmp_path / "ddp" / "g.pt"
    single.parent.mkdir()
    ddp.parent.mkdir()
    _run([sys.executable, str(script), str(tiny_models["llama"]), str(single), str(ROOT), "4", "1"], env)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            str(script),
            str(tiny_models["llama"]),
            str(ddp),
            str(ROOT),
            "2",
            "2",
        ],
        env,
    )
    a, b = torch.load(single), torch.load(ddp)
    assert a and a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=name)
