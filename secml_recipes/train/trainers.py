"""SpecialistTrainer and GeneralistTrainer: TRL's SFTTrainer, run as `RunSettings` says, with lean metrics.

They extend TRL 1.16's `SFTTrainer` at its seams and leave the rest to it (dataset preparation, labels,
collation, the fused LM-head loss, PEFT, the router auxiliary loss):
- The loss flags are decided in the run settings (`run_settings.TASK_LOSS_FLAGS`, plus what depends on the chat
  template): the specialist trains only the completion (`completion_only_loss`), the generalist only assistant
  turns (`assistant_only_loss`); the trainer applies `run_settings.loss_flags`.
- max_length is the run settings' (`RunSettings.max_length`, `max_length_applies`): the trainer hides it from TRL
  while TRL builds and prepares rows (`max_length_hidden_from_trl`), then `_prepare_dataset` cuts prepared rows
  with it (`truncation.fit_to_max_length`, `keep_start` or `keep_end`).
- XLA: batches are padded to a few bucket lengths (`BucketCollator`, TRL's collator plus bucket padding), planned
  from the prepared rows' token lengths unless the recipe fixes them.
- `compute_loss` computes TRL's loss (`token_loss`, nll or dft, pinned to TRL's own `compute_loss` by
  tests/test_loss.py) but keeps metrics as tensors: no `.item()` inside the step (TRL reads four scalars per
  micro-batch, a device sync each and an XLA graph break). They are reduced across processes when the trainer
  logs. Options that need the full logits (label smoothing) go through TRL's `compute_loss` unchanged.
- `checkpointed_layers`: the callback that checkpoints only some decoder layers (speed.py).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from trl import SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from secml_recipes.atomic import atomic_path
from secml_recipes.train.buckets import default_buckets, padding_efficiency, plan_buckets, round_up, token_lengths
from secml_recipes.train.guards import NonFiniteGuard
from secml_recipes.train.run_settings import BUCKET_MULTIPLE, RunSettings
from secml_recipes.train.sharding import finish_xla_fsdp_v2
from secml_recipes.train.speed import SelectiveCheckpointing, XlaCheckpointing, longest_micro_batch_tokens
from secml_recipes.train.truncation import fit_to_max_length
from secml_recipes.train.xla_experts import use_static_experts

IGNORE_INDEX = -100
logger = logging.getLogger(__name__)


@dataclass
class BucketCollator(DataCollatorForLanguageModeling):
    """TRL's padded collator, then padded further to the smallest of `bucket_lengths` that fits the batch, so
    that an XLA step compiles once per bucket. Padding is never trained (labels -100, attention mask 0)."""

    bucket_lengths: list[int] | None = None

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        if not self.bucket_lengths:
            return batch
        longest = max(len(e["input_ids"]) for e in examples)
        i = bisect.bisect_left(self.bucket_lengths, longest)
        if i == len(self.bucket_lengths):
            raise ValueError(
                f"an example of {longest} tokens is longer than the largest XLA bucket {self.bucket_lengths[-1]}; "
                "raise max_length or xla_bucket_lengths in the recipe"
            )
        fill = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX, "attention_mask": 0, "position_ids": 0}
        for key, value in fill.items():
            if key in batch and batch[key].size(1) < self.bucket_lengths[i]:
                extra = self.bucket_lengths[i] - batch[key].size(1)
                batch[key] = torch.nn.functional.pad(batch[key], (0, extra), value=value)
        return batch


def token_loss(outputs, loss_type: str, num_items_in_batch=None) -> torch.Tensor:
    """TRL 1.16 SFTTrainer's loss from the fused LM head's outputs: per-token negative log-likelihood (`dft`:
    weighted by the detached token probability), summed, divided by the trained tokens of the whole accumulated
    batch (`num_items_in_batch`) or of this micro-batch. Pinned to TRL's `compute_loss` by tests/test_loss.py."""
    per_token = -outputs.log_probs  # zero on ignored positions
    if loss_type == "dft":
        per_token = per_token * outputs.log_probs.exp().detach()
    count = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
    return per_token.sum() / torch.as_tensor(count, device=per_token.device).clamp(min=1)


class TokenCounter(TrainerCallback, ExportableState):
    """The run's token totals (trained, seen), saved in every checkpoint's trainer_state.json (`stateful_callbacks`)
    and restored on resume, so `total_trained_tokens` continues instead of restarting at 0. The totals are summed
    across processes when a checkpoint is due (every process takes part); on resume the first process carries them."""

    def __init__(self, trainer):
        self.trainer, self.saved = trainer, [0, 0]

    def state(self) -> dict:
        return {"args": {}, "attributes": {"trained_tokens": self.saved[0], "seen_tokens": self.saved[1]}}

    def on_train_begin(self, args, state, control, **kwargs):
        name = type(self).__name__
        restored = (state.stateful_callbacks.get(name) or {}).get("attributes", {})
        state.stateful_callbacks.setdefault(name, {})  # a checkpoint written before the counter existed
        totals = [int(restored.get("trained_tokens", 0)), int(restored.get("seen_tokens", 0))]
        self.saved = totals
        if self.trainer.accelerator.process_index != 0:
            totals = [0, 0]
        self.trainer._token_totals = torch.tensor(totals, dtype=torch.long)

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            self.saved = self.trainer.accelerator.reduce(self.trainer._token_totals, "sum").tolist()


@contextlib.contextmanager
def max_length_hidden_from_trl(sft_args, run_settings: RunSettings):
    """TRL's SFTTrainer sees no max_length while it is built, when the run settings truncate after preparation.

    TRL 1.16 refuses `max_length` with padding-free rows (it would not enforce it), and otherwise truncates rows
    during `_prepare_dataset` (cutting the end-of-turn of completions it cuts). This project truncates after
    preparation instead (`truncation.fit_to_max_length`: rows whose trained part is cut are dropped and counted),
    so TRL must prepare whole rows. The recipe's value is back on `sft_args` once the trainer is built (buckets,
    saved training_args.bin)."""
    if run_settings.max_length_applies != "after_preparation":
        yield
        return
    saved, sft_args.max_length = sft_args.max_length, None
    try:
        yield
    finally:
        sft_args.max_length = saved


class _CompletionOnlySFTTrainer(SFTTrainer):
    """Shared by both trainers: settings applied, padding-free truncation, XLA buckets, lean metrics."""

    def __init__(self, *args, run_settings: RunSettings, **kwargs):
        sft_args = kwargs["args"]
        for key, value in run_settings.loss_flags.items():
            setattr(sft_args, key, value)
        self.run_settings = run_settings
        self.planned: dict[str, Any] = {}
        with max_length_hidden_from_trl(sft_args, run_settings):
            super().__init__(*args, **kwargs)
        self._add_selective_checkpointing()
        if run_settings.backend == "xla":
            self._apply_xla_model_settings()
        if run_settings.backend == "xla" and isinstance(self.data_collator, DataCollatorForLanguageModeling):
            self._use_bucket_collator()
        self.guard = NonFiniteGuard(
            self,
            run_settings.nonfinite_skip_steps,
            run_settings.loss_explosion_factor,
            per_step=run_settings.backend != "xla",
        )
        self.add_callback(self.guard)
        self._lean_metrics: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}
        self._lean_aux: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}
        self._token_totals = torch.zeros(2, dtype=torch.long)  # trained tokens, input tokens (train)
        self.add_callback(TokenCounter(self))  # the totals travel with checkpoints

    # --- dataset preparation -----------------------------------------------------------------------------------

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        """TRL's preparation (tokens and labels; untruncated while `max_length_hidden_from_trl`), then
        `truncation.fit_to_max_length` with the run settings' max_length: rows whose trained part it would cut are
        dropped (or kept truncated with keep_truncated_rows), counted per split in `planned["truncation"]`.
        Packing chunks rows itself and keeps TRL's path."""
        prepared = super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)
        settings = self.run_settings
        if settings.max_length_applies != "after_preparation" or packing:
            return prepared
        fitted, counts = fit_to_max_length(
            prepared, settings.max_length, settings.truncation_mode, settings.keep_truncated_rows, dataset_name
        )
        self.planned.setdefault("truncation", {})[dataset_name] = counts
        if len(fitted) == 0:
            raise ValueError(
                f"max_length: every one of the {counts['rows']} {dataset_name} rows has a trained part longer than "
                f"{settings.max_length} tokens; raise max_length"
            )
        return fitted

    def _prepared_datasets(self) -> list:
        evals = self.eval_dataset
        evals = list(evals.values()) if isinstance(evals, dict) else [evals] if evals is not None else []
        return [self.train_dataset] + evals

    # --- XLA buckets and selective checkpointing ---------------------------------------------------------------

    def _use_bucket_collator(self) -> None:
        settings = self.run_settings
        buckets = list(settings.bucket_lengths) if settings.bucket_lengths else self._plan_buckets()
        if buckets is None and settings.max_length:
            buckets = default_buckets(settings.max_length)
        self.data_collator = BucketCollator(
            pad_token_id=self.data_collator.pad_token_id,
            pad_to_multiple_of=self.data_collator.pad_to_multiple_of,
            bucket_lengths=buckets,
        )
        self.planned["xla_bucket_lengths"] = buckets

    def _plan_buckets(self) -> list[int] | None:
        """Bucket lengths from the prepared rows' token lengths (docs/tpu.md), covering every eval row too."""
        train = token_lengths(self.train_dataset)
        if not train:
            return None
        longest = max(max(token_lengths(ds), default=0) for ds in self._prepared_datasets())
        batch = self.args.per_device_train_batch_size
        buckets = plan_buckets(train, batch, self.run_settings.bucket_count, multiple=BUCKET_MULTIPLE)
        if buckets[-1] < longest:  # an evaluation row longer than every training row
            buckets.append(round_up(longest, BUCKET_MULTIPLE))
        max_length = self.run_settings.max_length
        fractions = default_buckets(max_length) if max_length else None
        fraction_efficiency = (
            padding_efficiency(train, batch, fractions) if fractions and fractions[-1] >= max(train) else 0.0
        )
        logger.info(
            "XLA buckets planned from %d rows: %s (padding efficiency %.1f%%; max_length fractions %s: %.1f%%)",
            len(train),
            buckets,
            100 * padding_efficiency(train, batch, buckets),
            fractions,
            100 * fraction_efficiency,
        )
        return buckets

    def _add_selective_checkpointing(self) -> None:
        settings = self.run_settings
        if not (settings.activation_checkpointing and settings.checkpointed_layers != "all"):
            return
        lengths = token_lengths(self.train_dataset) if self.train_dataset is not None else []
        tokens = longest_micro_batch_tokens(lengths, self.args.per_device_train_batch_size, self.padding_free)
        self.checkpointing = SelectiveCheckpointing(settings, tokens)
        self.add_callback(self.checkpointing)

    def _apply_xla_model_settings(self) -> None:
        """XLA: MoE experts in static shapes (xla_experts.py), checkpointed layers recomputed by torch_xla."""
        use_static_experts(self.model)
        if self.run_settings.activation_checkpointing:
            self.add_callback(XlaCheckpointing())

    def _wrap_model(self, model, training=True, dataloader=None):
        wrapped = super()._wrap_model(model, training, dataloader)
        if wrapped is not model and getattr(self, "is_fsdp_xla_v2_enabled", False):
            finish_xla_fsdp_v2(self, wrapped)  # XLA SPMD FSDPv2: closes two gaps of transformers 5.24 (sharding.py)
        return wrapped

    def save_state(self) -> None:
        """transformers' save_state, whole or absent (temp + rename): a crash never leaves half a trainer_state.json."""
        if self.is_world_process_zero():
            with atomic_path(f"{self.args.output_dir}/trainer_state.json") as tmp:
                self.state.save_to_json(str(tmp))

    def _get_grad_norm(self, model, grad_norm=None):
        """The Trainer's gradient norm of this step, also handed to the non-finite guard (guards.py)."""
        grad_norm = super()._get_grad_norm(model, grad_norm)
        self.guard.record_grad_norm(grad_norm)
        return grad_norm

    # --- loss and metrics ----------------------------------------------------------------------------------------

    def _needs_trl_loss(self, return_outputs: bool) -> bool:
        """Paths only TRL's compute_loss implements: logits for metrics, a custom loss function, label smoothing,
        and sequence parallelism (which reduces the model's own loss)."""
        parallelism = self.accelerator.parallelism_config
        return (
            return_outputs
            or self.compute_loss_func is not None
            or self.run_settings.loss_path == "trl"
            or (parallelism is not None and parallelism.sp_enabled)
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self._needs_trl_loss(return_outputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False
        if self.aux_loss_enabled:
            inputs["output_router_logits"] = True
        outputs = model(**inputs, fused_lm_head=True)
        loss = token_loss(outputs, self.args.loss_type, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        if self.aux_loss_enabled and outputs.aux_loss is not None:
            steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss / steps
            self._lean_aux[mode].append(outputs.aux_loss.detach().float())
        self._record_metrics(mode, inputs, outputs)
        return loss

    def _record_metrics(self, mode: str, inputs: dict, outputs) -> None:
        """Kept as tensors: read (and synchronised) only in `log`, never inside the step."""
        trained = outputs.label_mask.sum()
        if "attention_mask" in inputs:
            seen = inputs["attention_mask"].sum()
        else:
            seen = torch.tensor(inputs["position_ids"].size(1), device=trained.device)
        stats = [trained, outputs.is_top1.sum(), outputs.entropy.detach().sum(), seen]
        self._lean_metrics[mode].append(torch.stack([s.float() for s in stats]))
        if mode == "train":
            self._token_totals = self._token_totals.to(trained.device) + torch.stack([trained, seen]).long()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        logs.update(self._read_metrics(mode))
        super().log(logs, start_time)

    def _read_metrics(self, mode: str) -> dict[str, float]:
        """The metrics since the last log, summed over every process (a reduction, not a gather, so no row is
        dropped at the end of an epoch)."""
        prefix, out = ("eval_" if mode == "eval" else ""), {}
        collected, aux = self._lean_metrics[mode], self._lean_aux[mode]
        if collected:
            trained, correct, entropy, _ = self.accelerator.reduce(torch.stack(collected).sum(0), "sum").tolist()
            out[f"{prefix}mean_token_accuracy"] = correct / trained if trained else 0.0
            out[f"{prefix}entropy"] = entropy / trained if trained else 0.0
            out[f"{prefix}trained_tokens"] = trained
            collected.clear()
        if aux:
            out[f"{prefix}aux_loss"] = float(self.accelerator.reduce(torch.stack(aux).mean(), "mean"))
            aux.clear()
        if mode == "train":
            trained_total, seen_total = self.accelerator.reduce(self._token_totals, "sum").tolist()
            out["total_trained_tokens"], out["num_tokens"] = int(trained_total), int(seen_total) // self._tp_size
        return out


class SpecialistTrainer(_CompletionOnlySFTTrainer):
    """Raw sys-scan report -> enriched report. Trains only the completion (the enriched JSON) and the
    end-of-turn token, through TRL's conversational prompt/completion path and the model family's chat template
    (secml_recipes.families), so training renders exactly what inference renders."""

    _tag_names = ["trl", "sft", "secml-recipes", "specialist"]


class GeneralistTrainer(_CompletionOnlySFTTrainer):
    """Agentic tool use. Trains every assistant turn (reasoning and tool calls) and its end token via the
    `{% generation %}` blocks of the model family's chat template; system, user and tool-result tokens are never
    trained. Adds the MoE router load-balancing loss with the model config's `router_aux_loss_coef` (or the
    recipe's)."""

    _tag_names = ["trl", "sft", "secml-recipes", "generalist"]


TRAINER_CLASSES = {"specialist": SpecialistTrainer, "generalist": GeneralistTrainer}


def trainer_class(task: str) -> type[_CompletionOnlySFTTrainer]:
    """The trainer for a recipe's `task`."""
    return TRAINER_CLASSES[task]
