"""What a training run will do, decided once, from the recipe and the machine.

`resolve_run_settings(data_args, model_args, training_args, speed_args, env)` is a pure function: the recipe's
four dataclasses and an `Environment` (the backend, the CUDA capability, the optional packages installed, the
number of processes) in, a frozen `RunSettings` out. Every choice that depends on the backend is made here and
nowhere else: attention, padding-free batches and packing, truncation, optimizer, Liger kernels, activation
checkpointing, XLA buckets, precision and the loss. `detect_environment()` describes this machine; tests
describe CPU, GPU and TPU machines without having them.

`secml_recipes.sft` calls it once, logs `RunSettings.table()` at the start of the run and saves
`RunSettings.to_dict()` beside the model (`run_settings.json`, also inside `secml_recipe.json`). The trainers
read the settings; they do not decide anything of their own. A recipe value this project cannot honour fails
here, before any model is loaded, with one line naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

from .recipe import RecipeError

BACKENDS = ("cpu", "cuda", "xla")
# Optional packages that change what a run can do; detect_environment looks for each.
OPTIONAL_PACKAGES = ("flash_attn", "liger_kernel", "torchao", "bitsandbytes")
TORCHAO_OPTIMIZERS = ("adamw_torch_4bit", "adamw_torch_8bit")
SUPPORTED_LOSS_TYPES = ("nll", "dft")
# What each task's trainer trains on (the trainer class owns its loss flags: trainers.py).
TRAINERS = {"specialist": "SpecialistTrainer", "generalist": "GeneralistTrainer"}
TRAINED_TOKENS = {
    "specialist": "the completion (enriched report) and its end-of-turn token",
    "generalist": "every assistant turn (reasoning and tool calls) and its end token",
}
BUCKET_MULTIPLE = 128


class RunSettingsError(RecipeError):
    """A recipe value this run cannot honour on this machine; the message names the key and what would work."""


@dataclass(frozen=True)
class Environment:
    """The machine a run starts on, as far as the run's choices depend on it."""

    accelerator: str = "cpu"  # cpu, cuda or xla: what the machine offers
    cuda_capability: tuple[int, int] | None = None
    packages: frozenset[str] = frozenset()
    num_processes: int = 1

    def has(self, package: str) -> bool:
        return package in self.packages


def detect_environment() -> Environment:
    """This machine: XLA when torch_xla is importable (transformers then trains on it), else CUDA, else CPU."""
    import torch
    from transformers.utils import is_torch_xla_available

    capability = None
    if is_torch_xla_available():
        accelerator = "xla"
    elif torch.cuda.is_available():
        accelerator, capability = "cuda", tuple(torch.cuda.get_device_capability())
    else:
        accelerator = "cpu"
    packages = frozenset(name for name in OPTIONAL_PACKAGES if importlib.util.find_spec(name) is not None)
    return Environment(accelerator, capability, packages, int(os.environ.get("WORLD_SIZE", "1")))


@dataclass(frozen=True)
class RunSettings:
    """Everything a run does that is not simply a recipe value passed through. `why` gives, per setting, the
    reason when the value is not what the recipe literally said (or what `auto` stood for)."""

    task: str
    trainer: str
    loss_flags: dict[str, bool]
    loss_type: str
    loss_path: str  # "secml": TRL's token loss, metrics kept as tensors; "trl": TRL's own compute_loss
    backend: str
    num_processes: int
    batch: str
    precision: str
    attn_implementation: str | None
    padding_free: bool
    packing: bool
    packing_strategy: str
    max_length: int | None
    truncation_mode: str
    truncate_padding_free: bool  # TRL refuses max_length with padding-free rows: the trainer passes it itself
    optim: str
    use_liger_kernel: bool
    activation_checkpointing: bool
    checkpointed_layers: str  # all, auto or a number (only read with activation_checkpointing)
    activation_memory_gib: float | None
    memory_limit_gib: float | None
    bucket_lengths: tuple[int, ...] | None  # fixed XLA buckets
    bucket_count: int | None  # XLA buckets planned from the data's token lengths
    evaluate: bool
    model_init_kwargs: dict[str, Any]
    why: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, str]]:
        """(setting, value, why) for the start-of-run table."""
        w = self.why.get
        flags = ", ".join(f"{k}={v}" for k, v in self.loss_flags.items())
        return [
            ("backend", f"{self.backend}, {self.num_processes} process(es)", w("backend", "")),
            ("trainer", f"{self.trainer} ({flags})", f"task: {self.task}; trains {TRAINED_TOKENS[self.task]}"),
            ("loss", f"{self.loss_type}, {self.loss_path} path", w("loss", "")),
            ("batch", self.batch, w("batch", "")),
            ("precision", self.precision, w("precision", "")),
            ("attention", str(self.attn_implementation), w("attn_implementation", "")),
            ("padding_free", _on_off(self.padding_free), w("padding_free", "")),
            ("packing", f"{self.packing_strategy}" if self.packing else "off", w("packing", "")),
            ("truncation", self._truncation_text(), w("truncation", "")),
            ("optimizer", self.optim, w("optim", "")),
            ("liger_kernels", _on_off(self.use_liger_kernel), w("liger", "")),
            ("checkpointing", self._checkpointing_text(), w("checkpointing", "")),
            ("xla_buckets", self._bucket_text(), w("buckets", "")),
            ("evaluation", _on_off(self.evaluate), w("evaluate", "")),
        ]

    def table(self) -> str:
        """The rows as one aligned text table (logged at the start of every run)."""
        rows = [("setting", "value", "why")] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]
        lines.insert(1, "-" * max(len(line) for line in lines))
        return "run settings (secml_recipes.run_settings)\n" + "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["bucket_lengths"] = list(self.bucket_lengths) if self.bucket_lengths else None
        data["table"] = [list(r) for r in self.rows()]
        return data

    def training_arguments(self, args):
        """A copy of the recipe's SFTConfig carrying these settings (the caller's object is left unchanged)."""
        from transformers.training_args import OptimizerNames

        resolved = copy.copy(args)
        resolved.padding_free = self.padding_free
        resolved.packing = self.packing
        resolved.optim = OptimizerNames(self.optim)
        resolved.use_liger_kernel = self.use_liger_kernel
        resolved.model_init_kwargs = dict(self.model_init_kwargs)
        resolved.chat_template_path = None  # applied to the tokenizer by sft.load_tokenizer, saved with it
        return resolved

    def _truncation_text(self) -> str:
        if self.max_length is None:
            return "none"
        if self.packing:
            return f"packed into rows of {self.max_length} tokens"
        return f"{self.truncation_mode} at {self.max_length} tokens; rows left without a trained token are dropped"

    def _checkpointing_text(self) -> str:
        if not self.activation_checkpointing:
            return "off"
        if self.checkpointed_layers == "all":
            return "every decoder layer"
        if self.checkpointed_layers == "auto":
            budget = (
                f"activation_memory_gib={self.activation_memory_gib}"
                if self.activation_memory_gib
                else f"memory_limit_gib={self.memory_limit_gib}"
                if self.memory_limit_gib
                else "free memory"
            )
            return f"auto: layers planned at train start within {budget}"
        return f"the first {self.checkpointed_layers} decoder layers"

    def _bucket_text(self) -> str:
        if self.bucket_lengths:
            return f"fixed {list(self.bucket_lengths)}"
        if self.bucket_count:
            return f"{self.bucket_count} lengths planned from the data (multiples of {BUCKET_MULTIPLE})"
        return "-"


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _optim_name(optim) -> str:
    return str(getattr(optim, "value", optim))


# --- one small decision per function: (value, why) -------------------------------------------------------------


def _backend(training_args, env: Environment) -> tuple[str, str]:
    if env.accelerator not in BACKENDS:
        raise ValueError(f"unknown accelerator {env.accelerator!r}")
    if training_args.use_cpu and env.accelerator != "cpu":
        return "cpu", f"use_cpu: true (the machine has {env.accelerator})"
    return env.accelerator, "use_cpu: true" if training_args.use_cpu else "detected"


def _batches(training_args, backend: str) -> tuple[bool, bool, str]:
    """Padding-free rows and packing, or why they are off."""
    padding_free, packing = bool(training_args.padding_free), bool(training_args.packing)
    if backend == "xla" and (padding_free or packing):
        return (
            False,
            False,
            (
                "XLA: padding-free rows and packing change the shape every step (a new graph each "
                "time); batches are padded to fixed bucket lengths instead"
            ),
        )
    return padding_free, packing, ""


def _attention(requested: str | None, padding_free: bool, backend: str, env: Environment) -> tuple[str | None, str]:
    """The attention implementation: `auto` picks per backend; explicit values are kept if they can run."""
    ampere = env.cuda_capability is not None and tuple(env.cuda_capability) >= (8, 0)
    if requested == "flash_attention_2" and not (backend == "cuda" and env.has("flash_attn")):
        raise RunSettingsError(
            "attn_implementation: flash_attention_2 needs a CUDA GPU and the flash-attn package "
            "(pip install flash-attn); use auto (torch's own varlen kernel) or sdpa"
        )
    if requested != "auto":
        return requested, ""
    if backend == "xla":
        return "sdpa", "auto on XLA: batches are padded to buckets"
    if not (padding_free):
        return "sdpa", "auto with padded batches"
    if backend == "cuda" and ampere and env.has("flash_attn"):
        return "flash_attention_2", "auto: flash-attn is installed on an Ampere+ GPU"
    kernel = (
        "torch's varlen flash kernel in bf16/fp16"
        if backend == "cuda" and ampere
        else "one SDPA call per sequence (no flash kernel here)"
    )
    return "varlen", f"auto with padding-free rows: {kernel}"


def _optimizer(optim, backend: str, env: Environment) -> tuple[str, str]:
    name = _optim_name(optim)
    if backend == "xla":
        if "bnb" in name or name.startswith("paged_"):
            raise RunSettingsError(f"optim: {name} needs bitsandbytes, which does not run on TPU; use adamw_torch")
        if name in TORCHAO_OPTIMIZERS or "fused" in name:
            # torch's fused AdamW has no XLA kernel and torchao's low-bit AdamW compiles with inductor; XLA fuses
            # the plain AdamW update itself.
            return "adamw_torch", f"{name} has no XLA path"
        return name, ""
    if name in TORCHAO_OPTIMIZERS and not env.has("torchao"):
        raise RunSettingsError(
            f"optim: {name} needs the torchao package: pip install -e '.[gpu]' (or choose optim: "
            "adamw_torch_fused / adamw_bnb_8bit)"
        )
    if "bnb" in name and not env.has("bitsandbytes"):
        raise RunSettingsError(f"optim: {name} needs the bitsandbytes package: pip install -e '.[qlora]'")
    return name, ""


def _liger(training_args, speed_args, backend: str, env: Environment) -> tuple[bool, str]:
    setting = speed_args.liger_kernels
    asked = bool(training_args.use_liger_kernel) or setting == "true"
    if backend == "xla":
        return False, "Liger kernels are Triton (GPU) kernels" if asked else ""
    if asked and not env.has("liger_kernel"):
        key = "liger_kernels" if setting == "true" else "use_liger_kernel"
        raise RunSettingsError(f"{key}: true needs the liger-kernel package: pip install -e '.[gpu]'")
    if asked:
        return True, ""
    if setting == "auto":
        if backend == "cuda" and env.has("liger_kernel"):
            return True, "auto: CUDA with liger-kernel installed"
        return False, "auto: needs CUDA and the liger-kernel package"
    return False, ""


def _checkpointing(training_args, speed_args, backend: str) -> tuple[bool, str, str]:
    enabled = bool(training_args.activation_checkpointing)
    layers = speed_args.checkpointed_layers
    if not enabled or layers == "all":
        return enabled, "all", ""
    if backend == "xla":
        return enabled, "all", f"checkpointed_layers={layers}: not planned on XLA; every layer is checkpointed"
    if layers == "auto" and backend == "cpu" and speed_args.activation_memory_gib is None:
        return (
            enabled,
            "all",
            (
                "checkpointed_layers=auto on CPU has no free-memory reading: every layer is "
                "checkpointed (give activation_memory_gib to plan)"
            ),
        )
    return enabled, layers, ""


def _truncation(training_args, padding_free: bool, packing: bool) -> tuple[bool, str]:
    mode = training_args.truncation_mode
    if mode not in ("keep_start", "keep_end"):
        raise RunSettingsError(f"truncation_mode: {mode!r} is not supported; use keep_start or keep_end")
    if training_args.max_length is None or packing:
        return False, ""
    if padding_free:
        return True, "TRL's own truncation, applied by the trainer (TRL skips it for padding-free rows)"
    return False, "TRL's own truncation during dataset preparation"


def _buckets(data_args, backend: str) -> tuple[tuple[int, ...] | None, int | None, str]:
    if backend != "xla":
        return None, None, "only on XLA" if data_args.xla_bucket_lengths else ""
    if data_args.xla_bucket_lengths:
        lengths = tuple(sorted(set(data_args.xla_bucket_lengths)))
        if any(n <= 0 for n in lengths):
            raise RunSettingsError(f"xla_bucket_lengths: every length must be positive, got {list(lengths)}")
        return lengths, None, "xla_bucket_lengths (sorted)"
    if data_args.xla_bucket_count < 1:
        raise RunSettingsError(f"xla_bucket_count: must be at least 1, got {data_args.xla_bucket_count}")
    return None, data_args.xla_bucket_count, "every distinct batch shape compiles once"


def _loss(data_args, training_args, trainer_flags: dict[str, bool]) -> tuple[str, str]:
    if training_args.loss_type not in SUPPORTED_LOSS_TYPES:
        raise RunSettingsError(
            f"loss_type: {training_args.loss_type!r} is not supported; use one of {list(SUPPORTED_LOSS_TYPES)}"
        )
    for key, value in trainer_flags.items():
        given = getattr(training_args, key)
        if given is not None and bool(given) != value and key == "completion_only_loss":
            raise RunSettingsError(
                f"{key}: the {data_args.task} trainer always trains with {key}={value}; remove the key from the recipe"
            )
    normalisation = "summed over trained tokens / trained tokens of the whole accumulated batch, all processes"
    if training_args.label_smoothing_factor > 0:
        return "trl", (
            f"label_smoothing_factor={training_args.label_smoothing_factor} needs full logits: TRL's own "
            f"compute_loss (an extra forward, metrics read every step); {normalisation}"
        )
    return "secml", f"TRL's fused LM-head loss, metrics kept as tensors until logging; {normalisation}"


def _precision(model_args, training_args, backend: str, env: Environment) -> tuple[str, str]:
    autocast = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "none"
    if backend == "cuda" and training_args.bf16 and env.cuda_capability and tuple(env.cuda_capability) < (8, 0):
        raise RunSettingsError(
            f"bf16: needs an Ampere or newer GPU (compute capability 8.0+), this one is "
            f"{env.cuda_capability[0]}.{env.cuda_capability[1]}; set bf16: false and fp16: true"
        )
    return f"{model_args.dtype or 'auto'} weights, {autocast} autocast", ""


def _batch(training_args, num_processes: int, padding_free: bool, packing: bool) -> str:
    per_device, steps = training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps
    rows = "packed rows" if packing else "rows, one flat row each" if padding_free else "padded rows"
    return (
        f"{per_device} {rows} x {steps} accumulation x {num_processes} process(es) = "
        f"{per_device * steps * num_processes} per optimizer step"
    )


def resolve_run_settings(data_args, model_args, training_args, speed_args, env: Environment) -> RunSettings:
    """The run's settings from the recipe (DataArguments, ModelConfig, SFTConfig, SpeedArguments) and the
    machine. Pure: reads its arguments, changes none of them."""
    from .trainers import trainer_class

    trainer = trainer_class(data_args.task)
    backend, backend_why = _backend(training_args, env)
    padding_free, packing, batch_why = _batches(training_args, backend)
    attn, attn_why = _attention(model_args.attn_implementation, padding_free, backend, env)
    optim, optim_why = _optimizer(training_args.optim, backend, env)
    liger, liger_why = _liger(training_args, speed_args, backend, env)
    checkpointing, layers, checkpointing_why = _checkpointing(training_args, speed_args, backend)
    truncate_padding_free, truncation_why = _truncation(training_args, padding_free, packing)
    bucket_lengths, bucket_count, bucket_why = _buckets(data_args, backend)
    loss_path, loss_why = _loss(data_args, training_args, trainer.loss_flags)
    precision, precision_why = _precision(model_args, training_args, backend, env)
    evaluate = (
        bool(data_args.eval_split)
        and str(getattr(training_args.eval_strategy, "value", training_args.eval_strategy)) != "no"
    )
    model_init_kwargs = {
        "revision": model_args.model_revision,
        "dtype": model_args.dtype,
        "attn_implementation": attn,
        "trust_remote_code": training_args.trust_remote_code,
        **(training_args.model_init_kwargs or {}),
    }
    why = {
        "backend": backend_why,
        "padding_free": batch_why,
        "packing": batch_why,
        "attn_implementation": attn_why,
        "optim": optim_why,
        "liger": liger_why,
        "checkpointing": checkpointing_why,
        "truncation": truncation_why,
        "buckets": bucket_why,
        "loss": loss_why,
        "precision": precision_why,
        "evaluate": f"split {data_args.eval_split!r}, eval_strategy {_optim_name(training_args.eval_strategy)}"
        if evaluate
        else "no eval_split or eval_strategy: no",
    }
    return RunSettings(
        task=data_args.task,
        trainer=trainer.__name__,
        loss_flags=dict(trainer.loss_flags),
        loss_type=training_args.loss_type,
        loss_path=loss_path,
        backend=backend,
        num_processes=env.num_processes,
        batch=_batch(training_args, env.num_processes, padding_free, packing),
        precision=precision,
        attn_implementation=attn,
        padding_free=padding_free,
        packing=packing,
        packing_strategy=training_args.packing_strategy,
        max_length=training_args.max_length,
        truncation_mode=training_args.truncation_mode,
        truncate_padding_free=truncate_padding_free,
        optim=optim,
        use_liger_kernel=liger,
        activation_checkpointing=checkpointing,
        checkpointed_layers=layers,
        activation_memory_gib=speed_args.activation_memory_gib,
        memory_limit_gib=speed_args.memory_limit_gib,
        bucket_lengths=bucket_lengths,
        bucket_count=bucket_count,
        evaluate=evaluate,
        model_init_kwargs=model_init_kwargs,
        why={k: v for k, v in why.items() if v},
    )
