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
    print("test_xla: skipped, torch_xla is not importable in this environment (see README 'TPU')")

SCRIPT = textwrap.dedent('''
    import json, sys
    import torch_xla.core.xla_model as xm
    import torch_xla.debug.metrics as met
    from datasets import Dataset
    sys.path.insert(0, "tests")
    from helpers import make_trainer
    from secml_recipes.data.fixtures import real_reports
    from secml_recipes.data.split import specialist_examples
    rows = [{k: r[k] for k in ("prompt", "completion")} for r in specialist_examples(next(real_reports()), "x", 1500)][:8]
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
                           "--xla_bucket_lengths", "[1024, 2048, 4096]")
    trainer.add_callback(Cb())
    trainer.train()
    print(json.dumps(counts))
''')


@pytest.mark.skipif(not HAS_XLA, reason="torch_xla is not importable (separate TPU environment, see README 'TPU')")
def test_xla_steps_compile_a_bounded_number_of_graphs(tiny_models, tmp_path):
    env = dict(os.environ, PJRT_DEVICE="CPU")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_models["llama"]), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    # Three buckets: once the first steps have seen every shape, later steps add no compilation, and the
    # total stays a small multiple of the bucket count (seen: [3, 10, 12, 13, 13, 13, 13, 13]).
    assert counts[-1] == counts[len(counts) // 2], counts
    assert counts[-1] <= 6 * 3, counts
