"""SpecialistTrainer and GeneralistTrainer: TRL's SFTTrainer with completion-only masks made explicit.

What they change, and why:
- The collator (`CompletionOnlyCollator`) turns each example's trained-token mask into labels: -100
  everywhere except (specialist) the enriched-report completion and its end token, (generalist) every
  assistant turn, tool calls included, and its end token. Padding is never trained. On XLA it pads to a
  few fixed bucket lengths so that the step compiles a bounded number of times.
- The loss is TRL's shifted causal-LM cross-entropy (fp32 log-softmax over the LM head, chunked), summed
  over trained tokens and divided by the trained-token count of the whole accumulated, all-device batch
  (`num_items_in_batch`). `compute_loss` here computes it the same way but keeps metrics as tensors, so
  no `.item()` lands inside the step: metrics are read only when the trainer logs.
- Trained-token counts are logged beside loss and learning rate.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Any

import torch
from transformers.data.data_collator import DataCollatorMixin
from trl import SFTTrainer
from trl.trainer.utils import pad

from .buckets import default_buckets, padding_efficiency, plan_buckets, round_up, token_lengths

IGNORE_INDEX = -100
logger = logging.getLogger(__name__)


def is_xla_device(device: torch.device | str | None = None) -> bool:
    """Whether training runs on an XLA device (TPU, or PJRT_DEVICE=CPU in tests)."""
    if device is not None:
        return torch.device(device).type == "xla"
    try:
        import torch_xla  # noqa: F401
    except ImportError:
        return False
    import os

    return bool(os.environ.get("PJRT_DEVICE") or os.environ.get("XRT_TPU_CONFIG"))


@dataclass
class CompletionOnlyCollator(DataCollatorMixin):
    """Pads `input_ids` and builds `labels` from each example's trained-token mask.

    An example carries `input_ids` and either `labels` (TRL's preparation, where untrained positions
    are already -100) or `trained_mask` (1 = train on this token). Output labels are -100 on untrained
    positions and on padding. With `bucket_lengths`, every batch is padded to the smallest bucket that
    fits (XLA); otherwise to the longest example (rounded up to `pad_to_multiple_of`).
    """

    pad_token_id: int
    bucket_lengths: list[int] | None = None
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids = [torch.as_tensor(e["input_ids"], dtype=torch.long) for e in examples]
        labels = []
        for e, ids in zip(examples, input_ids):
            if "trained_mask" in e:
                mask = torch.as_tensor(e["trained_mask"], dtype=torch.bool)
                labels.append(torch.where(mask, ids, torch.full_like(ids, IGNORE_INDEX)))
            else:
                labels.append(torch.as_tensor(e["labels"], dtype=torch.long))
        longest = max(len(ids) for ids in input_ids)
        target = longest
        if self.bucket_lengths:
            i = bisect.bisect_left(self.bucket_lengths, longest)
            if i == len(self.bucket_lengths):
                raise ValueError(
                    f"an example of {longest} tokens is longer than the largest XLA bucket {self.bucket_lengths[-1]}; "
                    "raise max_length or xla_bucket_lengths in the recipe"
                )
            target = self.bucket_lengths[i]
        elif self.pad_to_multiple_of:
            target = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        attention = [torch.ones_like(ids) for ids in input_ids]
        batch = {
            "input_ids": self._pad_to(input_ids, self.pad_token_id, target),
            "attention_mask": self._pad_to(attention, 0, target),
            "labels": self._pad_to(labels, IGNORE_INDEX, target),
        }
        return batch

    @staticmethod
    def _pad_to(seqs: list[torch.Tensor], value: int, length: int) -> torch.Tensor:
        out = pad(seqs, padding_value=value, padding_side="right")
        if out.size(1) < length:
            out = torch.nn.functional.pad(out, (0, length - out.size(1)), value=value)
        return out


_TORCHAO_OPTIMIZERS = ("adamw_torch_4bit", "adamw_torch_8bit")


def _choose_backend_defaults(args, speed, on_xla: bool) -> None:
    """Speed choices that differ per backend and leave the loss unchanged (README 'Speed')."""
    from .speed import has_package, resolve_liger

    optim = str(getattr(args.optim, "value", args.optim))
    if not on_xla:
        if optim in _TORCHAO_OPTIMIZERS and not has_package("torchao"):
            raise ValueError(f"optim: {optim} needs the torchao package: pip install -e '.[gpu]' (or choose "
                             "optim: adamw_torch_fused / adamw_bnb_8bit)")
        args.use_liger_kernel = args.use_liger_kernel or resolve_liger(speed.liger_kernels, on_xla)
        return
    if args.padding_free or args.packing:
        # Padding-free batches and packing change shapes every step: each shape is a new XLA graph.
        logger.warning("XLA: padding_free/packing turned off; batches are padded to fixed bucket lengths instead")
        args.padding_free, args.packing = False, False
    if "fused" in optim or optim in _TORCHAO_OPTIMIZERS:
        # torch's fused AdamW (transformers 5's default) has no XLA kernel, and torchao's low-bit AdamW compiles
        # with inductor; XLA fuses the plain AdamW update itself.
        from transformers.training_args import OptimizerNames

        if optim in _TORCHAO_OPTIMIZERS:
            logger.warning("XLA: optim %s has no XLA path; using adamw_torch", optim)
        args.optim = OptimizerNames.ADAMW_TORCH
    if args.use_liger_kernel:
        logger.warning("XLA: Liger kernels are Triton (GPU) kernels; turned off")
        args.use_liger_kernel = False


def _truncate(dataset, max_length: int, name: str):
    """Cut prepared rows to `max_length` and drop rows left with no trained token, as TRL does when it
    truncates (the caller counts what was dropped, for both paths)."""
    dataset = dataset.map(lambda ex: {"input_ids": ex["input_ids"][:max_length], "labels": ex["labels"][:max_length]},
                          desc=f"Truncating {name} dataset")
    return dataset.filter(lambda ex: any(label != IGNORE_INDEX for label in ex["labels"]),
                          desc=f"Dropping fully masked {name} rows")


class _CompletionOnlySFTTrainer(SFTTrainer):
    """Shared by both trainers: our collator, lean loss metrics, trained-token logging."""

    def __init__(self, *args, bucket_lengths: list[int] | None = None, bucket_count: int = 4, speed=None, **kwargs):
        from .speed import SelectiveCheckpointing, SpeedArguments, XlaCheckpointing, longest_micro_batch_tokens

        speed = speed or SpeedArguments()
        sft_args = kwargs.get("args")
        processing_class = kwargs.get("processing_class")
        on_xla = is_xla_device()
        truncate_to = None
        if sft_args is not None:
            _choose_backend_defaults(sft_args, speed, on_xla)
            if sft_args.padding_free and not sft_args.packing and sft_args.max_length is not None:
                # TRL does not truncate in padding-free mode; we do it after its preparation, as it would.
                truncate_to, sft_args.max_length = sft_args.max_length, None
        padding_free = sft_args is not None and (sft_args.padding_free or (
            sft_args.packing and sft_args.packing_strategy in {"bfd", "bfd_split"}))
        # Padding-free batches use TRL's own flattening collator (sequences kept apart by position_ids:
        # varlen flash attention on GPUs, a block-diagonal mask with sdpa); the labels are the same masked
        # labels either way, built from the same masks during dataset preparation.
        if kwargs.get("data_collator") is None and processing_class is not None and not padding_free:
            tok = getattr(processing_class, "tokenizer", processing_class)
            pad_token = (sft_args.pad_token if sft_args is not None else None) or tok.pad_token or tok.eos_token
            tok.pad_token = pad_token
            buckets = bucket_lengths if bucket_lengths else (
                default_buckets(sft_args.max_length) if on_xla and sft_args and sft_args.max_length else None)
            kwargs["data_collator"] = CompletionOnlyCollator(
                pad_token_id=tok.convert_tokens_to_ids(pad_token),
                bucket_lengths=buckets,
                pad_to_multiple_of=sft_args.pad_to_multiple_of if sft_args else None,
            )
        super().__init__(*args, **kwargs)
        if truncate_to is not None:
            self.args.max_length = truncate_to
            self.train_dataset = _truncate(self.train_dataset, truncate_to, "train")
            if isinstance(self.eval_dataset, dict):
                self.eval_dataset = {k: _truncate(v, truncate_to, k) for k, v in self.eval_dataset.items()}
            elif self.eval_dataset is not None:
                self.eval_dataset = _truncate(self.eval_dataset, truncate_to, "eval")
        if on_xla:
            from .xla_experts import use_static_experts

            use_static_experts(self.model)  # MoE experts in static shapes (xla_experts.py)
            if self.args.gradient_checkpointing:
                self.add_callback(XlaCheckpointing())
        if self.args.gradient_checkpointing and speed.checkpointed_layers != "all" and not on_xla:
            lengths = token_lengths(self.train_dataset) if self.train_dataset is not None else []
            tokens = longest_micro_batch_tokens(lengths, self.args.per_device_train_batch_size, self.padding_free)
            self.add_callback(SelectiveCheckpointing(speed, tokens))
        if isinstance(self.data_collator, CompletionOnlyCollator) and on_xla and not bucket_lengths:
            self._plan_xla_buckets(bucket_count)
        self._trained_tokens = torch.zeros((), dtype=torch.long)
        self._lean_metrics: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}

    def _plan_xla_buckets(self, count: int) -> None:
        """Bucket lengths from the prepared rows' token lengths (README 'TPU'), replacing max_length fractions."""
        datasets = [self.train_dataset] + (list(self.eval_dataset.values()) if isinstance(self.eval_dataset, dict)
                                           else [self.eval_dataset] if self.eval_dataset is not None else [])
        train = token_lengths(self.train_dataset)
        if not train:
            return
        longest = max(max(token_lengths(ds), default=0) for ds in datasets)
        batch = self.args.per_device_train_batch_size
        buckets = plan_buckets(train, batch, count, multiple=128)
        if buckets[-1] < longest:  # an evaluation row longer than every training row
            buckets.append(round_up(longest, 128))
        before = self.data_collator.bucket_lengths
        self.data_collator.bucket_lengths = buckets
        logger.info("XLA buckets planned from %d rows: %s (padding efficiency %.1f%%; max_length fractions %s: "
                    "%.1f%%)", len(train), buckets, 100 * padding_efficiency(train, batch, buckets), before,
                    100 * padding_efficiency(train, batch, before) if before and before[-1] >= max(train) else 0.0)

    def _wrap_model(self, model, training=True, dataloader=None):
        wrapped = super()._wrap_model(model, training, dataloader)
        if wrapped is not model and getattr(self, "is_fsdp_xla_v2_enabled", False):
            from .sharding import finish_xla_fsdp_v2

            finish_xla_fsdp_v2(self, wrapped)  # XLA SPMD FSDPv2: closes two gaps of transformers 5.24 (sharding.py)
        return wrapped

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Shifted CE over trained tokens / trained tokens of the whole accumulated batch (see module doc)."""
        if return_outputs or self.compute_loss_func is not None or self.label_smoother is not None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False
        if self.aux_loss_enabled:
            inputs["output_router_logits"] = True
        outputs = model(**inputs, fused_lm_head=True)
        trained = outputs.label_mask.sum()
        denominator = trained if num_items_in_batch is None else num_items_in_batch
        loss = -outputs.log_probs.sum() / torch.as_tensor(denominator, device=outputs.log_probs.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        if self.aux_loss_enabled and outputs.aux_loss is not None:
            steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss / steps
        # Kept as tensors: read (and synchronized) only in `log`, never inside the step.
        self._lean_metrics[mode].append(torch.stack([trained.detach().float(), outputs.is_top1.sum().detach().float()]))
        if mode == "train":
            self._trained_tokens = self._trained_tokens.to(trained.device) + trained.detach()
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        collected = self._lean_metrics[mode]
        if collected:
            totals = self.accelerator.gather_for_metrics(torch.stack(collected).sum(0)[None]).sum(0)
            trained, correct = totals.tolist()
            prefix = "eval_" if mode == "eval" else ""
            logs[f"{prefix}mean_token_accuracy"] = correct / trained if trained else 0.0
            logs[f"{prefix}trained_tokens"] = trained
            collected.clear()
        if mode == "train":
            logs["total_trained_tokens"] = int(self.accelerator.gather_for_metrics(self._trained_tokens[None]).sum())
        super().log(logs, start_time)


class SpecialistTrainer(_CompletionOnlySFTTrainer):
    """Raw sys-scan report -> enriched report. Trains only the completion (the enriched JSON) and the
    end-of-turn token, through TRL's conversational prompt/completion path and the model's own
    Llama-3.1 chat template, so training renders exactly what inference renders."""

    _tag_names = ["trl", "sft", "secml-recipes", "specialist"]


class GeneralistTrainer(_CompletionOnlySFTTrainer):
    """Agentic tool use. Trains every assistant turn (reasoning and tool calls) and its end token via the
    `{% generation %}` blocks of the shipped Mixtral tool template; system, user and tool-result
    tokens are never trained. Adds the MoE router load-balancing loss when the recipe sets
    `router_aux_loss_coef`."""

    _tag_names = ["trl", "sft", "secml-recipes", "generalist"]
