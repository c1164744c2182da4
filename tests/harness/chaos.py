"""End-to-end fault injection on the tiny smoke models: each fault, what must happen, what happened.

Usage:
    python -m tests.harness.chaos [--workdir DIR] [--only NAME ...]      (`make chaos`)

Every fault runs the real commands (`python -m secml_recipes.train.sft`, `... data validate`, `... push`) in child
processes on the tiny Llama (`tests/harness/tiny.py`) and a small generated corpus, and checks the outcome the
documentation promises (docs/reliability.md): a SIGKILL or a full disk while a checkpoint is written resumes from
the newest complete one, a NaN stops the run naming the step and saves nothing non-finite, two runs never share an
output folder, hostile rows and archives are quarantined or refused with a reason. Faults inside a run are injected
by `python -m tests.harness.chaos child FAULT STEP -- SFT_ARGS`, which patches one library function (the write of
the optimizer state, or the loss) and then runs `secml_recipes.train.sft` unchanged. The table ends with totals: faults
injected, runs resumed, rows rejected with reasons, and bytes of user input lost (hashed before and after).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny" / "specialist.yaml"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true"}


# --- the child: one library function patched, then the real entry point ----------------------------------------


def _child(fault: str, step: int, sft_args: list[str]) -> int:
    """Run secml_recipes.train.sft with `fault` injected at optimizer step `step`."""
    import torch
    import transformers

    from secml_recipes.train import sft

    if fault in ("kill-in-checkpoint", "enospc-in-checkpoint"):
        original = transformers.Trainer._save_optimizer_and_scheduler

        def save(self, output_dir):
            if self.state.global_step != step:
                return original(self, output_dir)
            with open(os.path.join(output_dir, "optimizer.pt"), "wb") as fh:  # the first bytes of the real write
                fh.write(b"PK\x03\x04" + bytes(4096))
                fh.flush()
                if fault == "kill-in-checkpoint":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise OSError(errno.ENOSPC, "No space left on device", fh.name)

        transformers.Trainer._save_optimizer_and_scheduler = save
    elif fault == "nan-loss":
        from secml_recipes.train.trainers import _CompletionOnlySFTTrainer

        original_loss = _CompletionOnlySFTTrainer.compute_loss

        def compute_loss(self, *args, **kwargs):
            loss = original_loss(self, *args, **kwargs)
            return loss * torch.tensor(float("nan")) if self.state.global_step == step - 1 else loss

        _CompletionOnlySFTTrainer.compute_loss = compute_loss
    return sft.main(sft_args)


# --- the harness --------------------------------------------------------------------------------------------


@dataclass
class Result:
    fault: str
    expected: str
    observed: str
    holds: bool
    resumed: int = 0
    rejected: int = 0


@dataclass
class Run:
    rc: int
    out: str
    seconds: float

    def has(self, pattern: str) -> bool:
        return re.search(pattern, self.out) is not None

    def error_line(self) -> str:
        lines = [line for line in self.out.splitlines() if line.startswith("error: ")]
        return lines[-1][7:] if lines else ""


def _run(cmd: list[str], timeout: int = 900) -> Run:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout, cwd=ROOT)
    return Run(proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start)


class Chaos:
    def __init__(self, workdir: Path):
        self.work = workdir
        self.work.mkdir(parents=True, exist_ok=True)
        self.results: list[Result] = []

    # --- fixtures ---

    def prepare(self) -> None:
        from secml_recipes.corpus.tarball import build_corpus

        from .tiny import build_tiny_models

        models = self.work / "tiny"
        if not (models / "llama" / "config.json").exists():
            build_tiny_models(models, vocab_size=1024, seed=0, pretrain_steps=0)
        self.model = models / "llama"
        self.corpus = self.work / "corpus" / "massive_datasets.tar.gz"
        if not self.corpus.exists():
            build_corpus(self.corpus, n_specialist=24, n_generalist=24, seed=3, max_prompt_chars=2500)
        self.inputs = {p: _sha(p) for p in (self.corpus,)}

    def sft_args(self, out: Path, *extra: str) -> list[str]:
        return [
            str(RECIPE),
            "--model_name_or_path",
            str(self.model),
            "--dataset_path",
            str(self.corpus),
            "--output_dir",
            str(out),
            "--max_train_samples",
            "6",
            "--per_device_train_batch_size",
            "1",
            "--gradient_accumulation_steps",
            "1",
            "--max_steps",
            "6",
            "--save_steps",
            "2",
            "--logging_steps",
            "1",
            "--loss_plot",
            "false",
            *extra,
        ]

    def sft(self, out: Path, *extra: str) -> Run:
        return _run([sys.executable, "-m", "secml_recipes.train.sft", *self.sft_args(out, *extra)])

    def child(self, fault: str, step: int, out: Path, *extra: str) -> Run:
        return _run(
            [sys.executable, "-m", "tests.harness.chaos", "child", fault, str(step), "--", *self.sft_args(out, *extra)]
        )

    def record(self, result: Result) -> None:
        self.results.append(result)
        mark = "holds" if result.holds else "FAILS"
        print(f"[chaos] {result.fault}: {mark} ({result.observed})", flush=True)

    # --- the faults ---

    def crash_in_checkpoint(self, fault: str) -> None:
        out = self.work / fault
        first = self.child(fault, 4, out)
        died = first.rc == -signal.SIGKILL if fault == "kill-in-checkpoint" else first.rc == 1
        one_line = fault == "kill-in-checkpoint" or first.error_line().startswith("the disk is full")
        again = self.sft(out)
        state = _json(out / "trainer_state.json")
        resumed = again.has(
            r"checkpoint-4 is incomplete \(.*\), moved to incomplete-checkpoint-4; resuming from "
            r"checkpoint-2"
        )
        took_over = fault != "kill-in-checkpoint" or again.has("took over the lock of a run that is no longer running")
        finished = again.rc == 0 and state.get("global_step") == 6
        what = "SIGKILL" if fault == "kill-in-checkpoint" else "OSError(ENOSPC)"
        observed = (
            f"{what} at checkpoint-4 (rc {first.rc}{', one-line error' if what != 'SIGKILL' else ''}); "
            "rerun rc "
            f"{again.rc}, {'resumed from checkpoint-2' if resumed else 'did NOT resume'}, step "
            f"{state.get('global_step')}/6" + (", stale lock taken over" if took_over and what == "SIGKILL" else "")
        )
        self.record(
            Result(
                fault,
                "rerun resumes from the newest complete checkpoint, finishes",
                observed,
                died and one_line and resumed and took_over and finished,
                resumed=int(resumed),
            )
        )

    def nan_learning_rate(self) -> None:
        out = self.work / "nan-lr"
        run = self.sft(out, "--learning_rate", "nan")
        ok = run.rc == 2 and "'learning_rate' must be a finite number > 0" in run.out and not out.exists()
        self.record(
            Result(
                "--learning_rate nan",
                "one-line refusal before loading, nothing written",
                f"rc {run.rc}: {run.error_line().split(': ', 1)[-1][:70]}",
                ok,
            )
        )

    def nan_loss(self) -> None:
        out = self.work / "nan-loss"
        run = self.child("nan-loss", 3, out)
        checkpoints = sorted(p.name for p in out.glob("checkpoint-*")) if out.exists() else []
        ok = (
            run.rc == 1
            and "training stopped at step 3: the gradient norm is nan" in run.out
            and checkpoints == ["checkpoint-2"]
            and not (out / "model.safetensors").exists()
        )
        self.record(
            Result(
                "NaN loss at step 3",
                "stops naming step 3, exit 1, no non-finite weights saved",
                f"rc {run.rc}, checkpoints {checkpoints}, final model saved: {(out / 'model.safetensors').exists()}",
                ok,
            )
        )

    def diverging_learning_rate(self) -> None:
        from secml_recipes.train.guards import nonfinite_tensors

        out = self.work / "lr-1e3"
        run = self.sft(out, "--learning_rate", "1e3", "--save_steps", "100")
        warned = run.has(r"loss .* its early median .*the run is diverging")
        stopped = run.rc == 1 and run.has("training stopped at step")
        saved_finite = not (out / "model.safetensors").exists() or not nonfinite_tensors(out)
        ok = (warned or stopped) and saved_finite and run.rc in (0, 1)
        self.record(
            Result(
                "--learning_rate 1e3",
                "loss-explosion warning or a non-finite stop; nothing NaN saved",
                f"rc {run.rc}, warned {warned}, stopped {stopped}, saved weights finite {saved_finite}",
                ok,
            )
        )

    def concurrent_runs(self) -> None:
        out = self.work / "concurrent"
        cmd = [sys.executable, "-m", "secml_recipes.train.sft", *self.sft_args(out, "--max_steps", "2")]
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=900)[0] for p in procs]
        rcs = sorted(p.returncode for p in procs)
        refused = [o for p, o in zip(procs, outs) if p.returncode == 2]
        ok = rcs == [0, 2] and bool(refused) and "is in use by another run (pid" in refused[0]
        self.record(
            Result(
                "two runs, one output_dir",
                "one trains, the other refuses naming the holder",
                f"exit codes {rcs}" + (", refusal names pid and start" if ok else ""),
                ok,
            )
        )

    def hub_unreachable(self) -> None:
        out = self.work / "hub"
        ENV.setdefault("HF_TOKEN", "hf_chaosPLANTEDtoken")
        run = self.sft(out, "--max_steps", "1", "--push_to_hub", "true", "--hub_model_id", "me/x")
        ok = run.rc == 1 and run.error_line().startswith("the network or the Hugging Face Hub is unreachable")
        ok = ok and "Traceback" not in run.out and "hf_chaosPLANTED" not in run.out
        self.record(
            Result(
                "Hub unreachable, push_to_hub",
                "one-line error, exit 1, no token printed",
                f"rc {run.rc}: {run.error_line()[:70]}",
                ok,
            )
        )

    def hostile_rows(self) -> None:
        from secml_recipes.corpus.tarball import corpus_root

        folder = self.work / "hostile"
        shard = folder / "specialist" / "train-00000.jsonl"
        shard.parent.mkdir(parents=True, exist_ok=True)
        good = (corpus_root(self.corpus) / "specialist" / "train-00000.jsonl").read_bytes().splitlines()[:3]
        row = json.loads(good[0])
        hostile = [
            json.dumps(dict(row, completion=["x"])).encode(),
            b"[" * 10_000 + b"]" * 10_000,
            json.dumps(dict(row, prompt=[{"role": "user", "content": '{"meta": NaN}'}])).encode(),
            good[1].replace(b'"id"', b'"\xc3\x28id"', 1),
            b'{"id": NaN}',
            good[2][: len(good[2]) // 2],
        ]
        gen = folder / "generalist" / "train-00000.jsonl"
        gen.parent.mkdir(parents=True, exist_ok=True)
        grow = json.loads((corpus_root(self.corpus) / "generalist" / "train-00000.jsonl").read_bytes().splitlines()[0])
        gen.write_bytes(json.dumps(dict(grow, tools=["x"])).encode() + b"\n")
        shard.write_bytes(b"\n".join([good[0], *hostile]) + b"\n")
        run = _run(
            [
                sys.executable,
                "-m",
                "secml_recipes.corpus",
                "validate",
                str(folder),
                "--rejects-dir",
                str(self.work / "hostile-rejects"),
            ]
        )
        rejects = []
        for path in sorted((self.work / "hostile-rejects").glob("*.rejects.jsonl")):
            rejects += [json.loads(line) for line in path.read_text().splitlines()]
        reasons = [r["reason"] for r in rejects]
        ok = run.rc == 1 and len(rejects) == len(hostile) + 1 and all(reasons) and "Traceback" not in run.out
        self.record(
            Result(
                "hostile rows (shape, depth 10k, NaN, bad UTF-8, tools)",
                "each quarantined with a reason",
                f"rc {run.rc}, {len(rejects)}/{len(hostile) + 1} rejected with reasons",
                ok,
                rejected=len(rejects),
            )
        )

    def hostile_archives(self) -> None:
        from secml_recipes.corpus.tarball import CorpusError, extract_corpus

        bomb = self.work / "bomb.tar.gz"
        with tarfile.open(bomb, mode="w:gz", compresslevel=1) as tar:  # streamed: 1 GiB never sits in memory
            info = tarfile.TarInfo("massive_datasets/specialist/train-00000.jsonl")
            info.size = 1024**3
            tar.addfile(info, io.BufferedReader(_Zeros(info.size), 1 << 20))
        cache = self.work / "cache"
        refused = []
        try:
            extract_corpus(bomb, cache)
        except CorpusError as err:
            refused.append("bomb" if "compression bomb" in str(err) else str(err))
        # An edited cached row: re-extracted from the tarball, the edit never loads.
        root = extract_corpus(self.corpus, cache)
        shard = root / "specialist" / "train-00000.jsonl"
        original = shard.read_bytes()
        shard.write_bytes(original.replace(b'"host_id"', b'"host_idX"', 1))
        again = extract_corpus(self.corpus, cache)
        restored = (again / "specialist" / "train-00000.jsonl").read_bytes() == original
        ok = refused == ["bomb"] and restored
        self.record(
            Result(
                "1 GiB gzip bomb; edited extraction cache",
                "bomb refused from its header; cache re-verified",
                f"bomb refused: {refused == ['bomb']}, edited cache re-extracted: {restored}",
                ok,
            )
        )

    def nan_model_downstream(self) -> None:
        import torch
        from safetensors.torch import save_file

        models = self.work / "nan-models"
        spec = models / "specialist_model"
        spec.mkdir(parents=True, exist_ok=True)
        save_file({"w": torch.tensor([float("nan")])}, str(spec / "model.safetensors"))
        (spec / "config.json").write_text("{}")
        push = _run(
            [
                sys.executable,
                "-m",
                "secml_recipes.deploy.push",
                "--namespace",
                "me",
                "--models-dir",
                str(models),
                "--dry-run",
            ]
        )
        evaluate = _run(
            [
                sys.executable,
                "-m",
                "secml_recipes.evaluation.evaluate",
                str(ROOT / "recipes/tiny/eval-specialist.yaml"),
                "--model",
                str(spec),
                "--dataset_path",
                str(self.corpus),
            ]
        )
        ok = push.rc == 1 and "non-finite" in push.out and evaluate.rc == 2 and "non-finite" in evaluate.out
        self.record(
            Result(
                "NaN model to evaluate / push",
                "both refuse before loading or uploading",
                f"evaluate rc {evaluate.rc}, push --dry-run rc {push.rc}",
                ok,
            )
        )

    FAULTS = (
        "kill-in-checkpoint",
        "enospc-in-checkpoint",
        "nan_learning_rate",
        "nan_loss",
        "diverging_learning_rate",
        "concurrent_runs",
        "hub_unreachable",
        "hostile_rows",
        "hostile_archives",
        "nan_model_downstream",
    )

    def run(self, only: list[str] | None = None) -> int:
        started = time.perf_counter()
        self.prepare()
        for name in self.FAULTS:
            if only and name not in only:
                continue
            if name.endswith("-in-checkpoint"):
                self.crash_in_checkpoint(name)
            else:
                getattr(self, name)()
        lost = sum(os.path.getsize(p) for p, digest in self.inputs.items() if not p.exists() or _sha(p) != digest)
        print(self.table(lost, time.perf_counter() - started))
        return 0 if all(r.holds for r in self.results) and lost == 0 else 1

    def table(self, lost: int, seconds: float) -> str:
        rows = [("fault", "expected", "observed", "holds")] + [
            (r.fault, r.expected, r.observed, "yes" if r.holds else "NO") for r in self.results
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [f"| {a:<{widths[0]}} | {b:<{widths[1]}} | {c:<{widths[2]}} | {d} |" for a, b, c, d in rows]
        lines.insert(1, f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|{'-' * (widths[2] + 2)}|-------|")
        totals = (
            f"faults injected: {len(self.results)}, holding: {sum(r.holds for r in self.results)}; runs resumed: "
            f"{sum(r.resumed for r in self.results)}; rows rejected with reasons: "
            f"{sum(r.rejected for r in self.results)}; bytes of input lost: {lost}; {seconds:.0f} s"
        )
        return "\n".join(lines + ["", totals])


class _Zeros(io.RawIOBase):
    """`size` zero bytes, read in chunks (a 1 GiB member without 1 GiB of memory)."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["child"]:
        fault, step = argv[1], int(argv[2])
        return _child(fault, step, argv[argv.index("--") + 1 :])
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", help="where runs are written (default: a fresh temporary folder)")
    parser.add_argument("--only", nargs="*", choices=Chaos.FAULTS, help="run only these faults")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="secml-chaos-"))
    print(f"[chaos] working in {workdir}", flush=True)
    return Chaos(workdir).run(args.only)


if __name__ == "__main__":
    sys.exit(main())
