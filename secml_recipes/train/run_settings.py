"""What a training run will do, decided once, from the recipe, the machine and the model.

`resolve_run_settings(data_args, model_args, training_args, speed_args, env, model)` is a pure function: the
recipe's four dataclasses, an `Environment` (the backend, the CUDA capability, the optional packages installed, the
number of processes) and a `ModelChatFacts` (the model's vocabulary, model_type and own pad token, read from its
tokenizer and config before any weight loads) in, a frozen `RunSettings` out. Every choice that depends on the
backend or on the model's chat format is made here and nowhere else: the model family (secml_recipes.families),
its chat template, end-of-turn and padding tokens and tool-call format, the trainer's loss flags, attention,
padding-free batches and packing, truncation, optimizer, Liger kernels, activation checkpointing, XLA buckets,
precision and the loss. `detect_environment()` describes this machine and `describe_model(tokenizer, model_type)`
the model; tests describe CPU, GPU and TPU machines and models without having them. Without `model` (a benchmark
that builds its own model) the chat rows stay unresolved and the trainer keeps its own loss flags.

`secml_recipes.train.sft` calls it once, logs `RunSettings.table()` at the start of the run and saves
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

from secml_recipes.families import FAMILIES, FamilyError, choose_family, get_family
from secml_recipes.families.templates import read_template
from secml_recipes.model_config import ModelConfigFacts
from secml_recipes.train.machine import detect_machine
from secml_recipes.train.recipe import RecipeError

BACKENDS = ("cpu", "cuda", "xla")
# Optional packages that change what a run can do; detect_environment looks for each.
OPTIONAL_PACKAGES = ("flash_attn", "liger_kernel", "torchao", "bitsandbytes")
TORCHAO_OPTIMIZERS = ("adamw_torch_4bit", "adamw_torch_8bit")
SUPPORTED_LOSS_TYPES = ("nll", "dft")
# Each task's trainer (trainers.py) and the loss flags it trains with: the specialist only the completion, the
# generalist only assistant turns. `_trainer` adds what depends on the chat template; the trainer applies the result.
TRAINERS = {"specialist": "SpecialistTrainer", "generalist": "GeneralistTrainer"}
TASK_LOSS_FLAGS = {"specialist": {"completion_only_loss": True}, "generalist": {"assistant_only_loss": True}}
TRAINED_TOKENS = {
    "specialist": "the completion (enriched report) and its end-of-turn token",
    "generalist": "every assistant turn (reasoning and tool calls) and its end token",
}
BUCKET_MULTIPLE = 128
# Where the run's max_length takes effect: nowhere (no max_length), when TRL packs rows into rows of max_length, or
# after TRL prepared whole rows (trainers.py hides it from TRL; truncation.fit_to_max_length cuts or drops rows).
MAX_LENGTH_STAGES = ("nowhere", "packing", "after_preparation")


class RunSettingsError(RecipeError):
    """A recipe value this run cannot honour on this machine; the message names the key and what would work."""


@dataclass(frozen=True)
class ModelChatFacts:
    """The model a run starts from, as far as the run's chat choices depend on it: its tokenizer and its config's
    model_type (no weights), by `describe_model`; tests describe models without having them. (The planner's
    `ModelMemoryFacts` and `model_config.ModelConfigFacts` answer other questions of the same model.)"""

    source: str = "the model"
    model_type: str | None = None
    vocab: frozenset[str] = frozenset()
    pad_token: str | None = None
    has_chat_template: bool = False


def describe_model(tokenizer, config: ModelConfigFacts | None, source: str = "the model") -> ModelChatFacts:
    """What `resolve_run_settings` needs to know of a model, from its tokenizer and config (None: no config.json,
    e.g. a tokenizer-only folder; the family is then told from the vocabulary alone)."""
    return ModelChatFacts(
        source=source,
        model_type=config.model_type if config is not None else None,
        vocab=frozenset(tokenizer.get_vocab()),
        pad_token=tokenizer.pad_token,
        has_chat_template=bool(tokenizer.chat_template),
    )


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
    """This machine (`machine.detect_machine`: XLA when torch_xla is importable, else CUDA, else CPU; MPS runs as
    CPU here), the optional packages installed and the launch's process count."""
    machine = detect_machine()
    accelerator = machine.backend if machine.backend in BACKENDS else "cpu"
    capability = machine.cuda_capability if accelerator == "cuda" else None
    packages = frozenset(name for name in OPTIONAL_PACKAGES if importlib.util.find_spec(name) is not None)
    return Environment(accelerator, capability, packages, int(os.environ.get("WORLD_SIZE", "1")))


@dataclass(frozen=True)
class RunSettings:
    """Everything a run does that is not simply a recipe value passed through. `why` gives, per setting, the
    reason when the value is not what the recipe literally said (or what `auto` stood for)."""

    task: str
    model_family: str | None  # None: the model was not described (ModelChatFacts) and the recipe names no family
    chat_template: str | None  # a shipped template's file name, the recipe's chat_template_path, or None: the model's
    generation_blocks: bool | None  # the template marks assistant text with {% generation %} (None: not read)
    eos_token: str | None  # the end-of-turn token: trained, the tokenizer's eos after training (None: its own)
    pad_token: str | None  # set on the tokenizer; padding is never trained (None: its own)
    tool_calls: str | None
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
    max_length: int | None  # the one max_length of the run: the trainer, the data checks and buckets read it here
    truncation_mode: str
    max_length_applies: str  # MAX_LENGTH_STAGES: where max_length takes effect
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
    keep_truncated_rows: bool = False  # rows whose trained part max_length cuts: kept, or dropped and counted
    nonfinite_skip_steps: int = 0
    loss_explosion_factor: float = 10.0
    why: dict[str, str] = field(default_factory=dict)

    @property
    def drops_cut_rows(self) -> bool:
        """Rows whose trained part max_length cuts are dropped (truncated after preparation, not kept)."""
        return self.max_length_applies == "after_preparation" and not self.keep_truncated_rows

    def rows(self) -> list[tuple[str, str, str]]:
        """(setting, value, why) for the start-of-run table."""
        w = self.why.get
        flags = ", ".join(f"{k}={v}" for k, v in self.loss_flags.items())
        return [
            ("backend", f"{self.backend}, {self.num_processes} process(es)", w("backend", "")),
            ("model_family", self._family_text(), w("model_family", "")),
            ("chat_template", self.chat_template or "the model's own", w("chat_template", "")),
            ("end_of_turn", self.eos_token or "-", w("eos_token", "")),
            ("padding_token", self.pad_token or "-", w("pad_token", "")),
            ("tool_calls", self.tool_calls or "-", w("tool_calls", "")),
            ("trainer", f"{self.trainer} ({flags})", w("trainer", "")),
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
            ("guards", self._guard_text(), w("guards", "")),
        ]

    def table(self) -> str:
        """The rows as one aligned text table (logged at the start of every run)."""
        rows = [("setting", "value", "why")] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]
        lines.insert(1, "-" * (widths[0] + widths[1] + 7))
        return "run settings (secml_recipes.train.run_settings)\n" + "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["bucket_lengths"] = list(self.bucket_lengths) if self.bucket_lengths else None
        data["table"] = [list(r) for r in self.rows()]
        return data

    def training_arguments(self, args):
        """A copy of the recipe's SFTConfig carrying these settings (the caller's object is left unchanged)."""
        from transformers.training_args import OptimizerNames  # lazy: transformers costs seconds to import

        resolved = copy.copy(args)
        resolved.padding_free = self.padding_free
        resolved.packing = self.packing
        resolved.max_length = self.max_length
        resolved.optim = OptimizerNames(self.optim)
        resolved.use_liger_kernel = self.use_liger_kernel
        resolved.model_init_kwargs = dict(self.model_init_kwargs)
        resolved.chat_template_path = None  # applied to the tokenizer by sft.apply_chat_settings, saved with it
        if self.eos_token:
            resolved.eos_token = self.eos_token  # TRL sets it on the tokenizer and the model's generation config
        return resolved

    def _family_text(self) -> str:
        return f"{self.model_family} ({FAMILIES[self.model_family].title})" if self.model_family else "-"

    def _truncation_text(self) -> str:
        if self.max_length is None:
            return "none"
        if self.packing:
            return f"packed into rows of {self.max_length} tokens"
        if self.keep_truncated_rows:
            return f"{self.truncation_mode} at {self.max_length} tokens; cut rows kept, rows left untrained dropped"
        return f"{self.truncation_mode} at {self.max_length} tokens; rows whose trained part is cut are dropped"

    def _guard_text(self) -> str:
        skip = f"skip up to {self.nonfinite_skip_steps} step(s), then stop" if self.nonfinite_skip_steps else "stop"
        explosion = f"warn at {self.loss_explosion_factor:g}x the early loss" if self.loss_explosion_factor else "off"
        return f"non-finite gradient: {skip}; loss explosion: {explosion}"

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


# --- the decisions, in order: each reads the recipe, the machine and what was decided before it, and returns ------
# --- the RunSettings fields it decides and why (empty when the recipe's value passes through) ---------------------


@dataclass(frozen=True)
class _Recipe:
    data: Any
    model: Any
    training: Any
    speed: Any
    env: Environment
    facts: ModelChatFacts | None


Decision = tuple[dict[str, Any], str]


def _backend(r: _Recipe, d: dict) -> Decision:
    accelerator, fields = r.env.accelerator, {"num_processes": r.env.num_processes}
    if accelerator not in BACKENDS:
        raise ValueError(f"unknown accelerator {accelerator!r}")
    if accelerator == "xla":
        # accelerate trains on XLA whenever torch_xla is importable, use_cpu or not (USE_TORCH_XLA=0 turns it off).
        note = " (use_cpu does not apply to XLA)" if r.training.use_cpu else ""
        return {**fields, "backend": "xla"}, f"torch_xla is importable{note}"
    if r.training.use_cpu and accelerator == "cuda":
        return {**fields, "backend": "cpu"}, "use_cpu: true (the machine has a CUDA GPU)"
    return {**fields, "backend": accelerator}, "detected"


def _model_family(r: _Recipe, d: dict) -> Decision:
    """The recipe's `model_family`, else the family the model's vocabulary and model_type say (families.py)."""
    named, facts = getattr(r.model, "model_family", None), r.facts
    if named:
        return {"model_family": get_family(named).name}, "model_family in the recipe"
    if facts is None:
        return {"model_family": None}, "the model was not read"
    try:
        family = choose_family(facts.vocab, facts.model_type, None, facts.source, facts.has_chat_template)
    except FamilyError as err:
        raise RunSettingsError(f"model_family: {err}") from None
    return {"model_family": family.name}, f"detected from the tokenizer's chat tokens and model_type {facts.model_type}"


def _chat_template(r: _Recipe, d: dict) -> Decision:
    """The family's training template, or the recipe's own; whether it marks assistant text for the loss."""
    from trl.chat_template_utils import has_generation_markers  # lazy: trl costs seconds; tests describe runs

    path, family = r.training.chat_template_path, FAMILIES.get(d["model_family"])
    if path:
        try:
            text = read_template(path)
        except FileNotFoundError as err:
            raise RunSettingsError(f"chat_template_path: {err}") from None
        return {"chat_template": path, "generation_blocks": has_generation_markers(text)}, "chat_template_path"
    if family is None:
        return {"chat_template": None, "generation_blocks": None}, ""
    fields = {"chat_template": family.template, "generation_blocks": has_generation_markers(family.chat_template())}
    return fields, f"the {family.name} family's training template, saved with the model"


def _end_of_turn(r: _Recipe, d: dict) -> Decision:
    given, family, facts = r.training.eos_token, FAMILIES.get(d["model_family"]), r.facts
    if given:
        if facts is not None and given not in facts.vocab:
            raise RunSettingsError(f"eos_token: {given!r} is not in the vocabulary of {facts.source}")
        return {"eos_token": given}, "eos_token in the recipe"
    if family is None:
        return {"eos_token": None}, ""
    if facts is not None:
        try:
            family.check_end_of_turn(facts.vocab, facts.source)
        except FamilyError as err:
            raise RunSettingsError(f"model_family: {err}") from None
    why = "the family's end-of-turn token: trained, the eos after training, every runtime stops on it"
    return {"eos_token": family.end_of_turn}, why


def _padding(r: _Recipe, d: dict) -> Decision:
    given, family, facts = getattr(r.model, "pad_token", None), FAMILIES.get(d["model_family"]), r.facts
    if given:
        if facts is not None and given not in facts.vocab:
            raise RunSettingsError(f"pad_token: {given!r} is not in the vocabulary of {facts.source}")
        return {"pad_token": given}, "pad_token in the recipe"
    if facts is None:
        return {"pad_token": None}, ""
    candidate = family.padding_token(facts.vocab) if family else None
    if candidate:
        return {"pad_token": candidate}, "the family's padding token (padding is never trained)"
    if facts.pad_token:
        return {"pad_token": facts.pad_token}, "the tokenizer's own (the family's candidates are not in its vocabulary)"
    why = "no padding token in the vocabulary: the end-of-turn token (padding is never trained)"
    return {"pad_token": d["eos_token"]}, why


def _tool_calls(r: _Recipe, d: dict) -> Decision:
    family = FAMILIES.get(d["model_family"])
    if family is None:
        return {"tool_calls": None}, ""
    why = "rows' calls and schemas as canonical JSON (families.canonical_row): every runtime renders them alike"
    return {"tool_calls": family.tool_format.describe()}, why


def _trainer(r: _Recipe, d: dict) -> Decision:
    """The task's trainer and its loss flags; the specialist also masks by the template's generation blocks."""
    task, blocks = r.data.task, d["generation_blocks"]
    flags, why = dict(TASK_LOSS_FLAGS[task]), f"task: {task}; trains {TRAINED_TOKENS[task]}"
    owned = TASK_LOSS_FLAGS[task].get("completion_only_loss")
    if owned is not None and r.training.completion_only_loss is not None and r.training.completion_only_loss != owned:
        raise RunSettingsError(
            f"completion_only_loss: the {task} trainer always trains with completion_only_loss={owned}; "
            "remove the key from the recipe"
        )
    if flags.get("assistant_only_loss") and blocks is False:
        raise RunSettingsError(
            f"chat_template_path: the {task} trains only assistant turns, which needs {{% generation %}} blocks in "
            "the template; remove the key to use the model family's template (docs/models.md)"
        )
    if "assistant_only_loss" not in flags and blocks:
        # Completion-only masks from the row split; the generation blocks also leave untrained what the template
        # writes after the end-of-turn token (ChatML's newline), which the model never has to generate.
        flags["assistant_only_loss"] = True
        why += "; the template's {% generation %} blocks also mask what follows the end-of-turn (assistant_only_loss)"
    return {"task": task, "trainer": TRAINERS[task], "loss_flags": flags}, why


def _loss(r: _Recipe, d: dict) -> Decision:
    training = r.training
    if training.loss_type not in SUPPORTED_LOSS_TYPES:
        raise RunSettingsError(
            f"loss_type: {training.loss_type!r} is not supported; use one of {list(SUPPORTED_LOSS_TYPES)}"
        )
    fields = {"loss_type": training.loss_type}
    normalisation = "/ trained tokens of the accumulated batch on every process"
    if training.label_smoothing_factor > 0:
        why = (
            f"label_smoothing_factor={training.label_smoothing_factor} needs full logits: TRL's own "
            f"compute_loss (an extra forward, metrics read every step); {normalisation}"
        )
        return {**fields, "loss_path": "trl"}, why
    return {
        **fields,
        "loss_path": "secml",
    }, f"TRL's fused LM-head loss {normalisation}; metrics stay tensors until logged"


def _precision(r: _Recipe, d: dict) -> Decision:
    training, capability = r.training, r.env.cuda_capability
    autocast = "bf16 autocast" if training.bf16 else "fp16 autocast" if training.fp16 else "no autocast"
    if d["backend"] == "cuda" and training.bf16 and capability and tuple(capability) < (8, 0):
        raise RunSettingsError(
            f"bf16: needs an Ampere or newer GPU (compute capability 8.0+), this one is "
            f"{capability[0]}.{capability[1]}; set bf16: false and fp16: true"
        )
    return {"precision": f"{r.model.dtype or 'auto'} weights, {autocast}"}, ""


def _batches(r: _Recipe, d: dict) -> Decision:
    """Padding-free rows and packing (off on XLA), and the rows one optimizer step sees."""
    training = r.training
    padding_free, packing, why = bool(training.padding_free), bool(training.packing), ""
    if d["backend"] == "xla" and (padding_free or packing):
        padding_free, packing = False, False
        why = "XLA: varying shapes would compile a graph each step; padded to fixed bucket lengths instead"
    per_device, steps, processes = (
        training.per_device_train_batch_size,
        training.gradient_accumulation_steps,
        d["num_processes"],
    )
    rows = "packed rows" if packing else "rows, one flat row each" if padding_free else "padded rows"
    batch = (
        f"{per_device} {rows} x {steps} accumulation x {processes} process(es) = "
        f"{per_device * steps * processes} per optimizer step"
    )
    return {
        "padding_free": padding_free,
        "packing": packing,
        "packing_strategy": training.packing_strategy,
        "batch": batch,
    }, why


def _attention(r: _Recipe, d: dict) -> Decision:
    """`auto` picks per backend; explicit values are kept if they can run. The model is loaded with it."""
    requested, backend, env = r.model.attn_implementation, d["backend"], r.env
    ampere = env.cuda_capability is not None and tuple(env.cuda_capability) >= (8, 0)
    if requested == "flash_attention_2" and not (backend == "cuda" and env.has("flash_attn")):
        raise RunSettingsError(
            "attn_implementation: flash_attention_2 needs a CUDA GPU and the flash-attn package "
            "(pip install flash-attn); use auto (torch's own varlen kernel) or sdpa"
        )
    attn, why = requested, ""
    if requested == "auto" and backend == "xla":
        attn, why = "sdpa", "auto on XLA: batches are padded to buckets"
    elif requested == "auto" and not d["padding_free"]:
        attn, why = "sdpa", "auto with padded batches"
    elif requested == "auto" and backend == "cuda" and ampere and env.has("flash_attn"):
        attn, why = "flash_attention_2", "auto: flash-attn is installed on an Ampere+ GPU"
    elif requested == "auto":
        kernel = (
            "torch's varlen flash kernel in bf16/fp16"
            if backend == "cuda" and ampere
            else "one SDPA call per sequence (no flash kernel here)"
        )
        attn, why = "varlen", f"auto with padding-free rows: {kernel}"
    kwargs = {
        "revision": r.model.model_revision,
        "dtype": r.model.dtype,
        "attn_implementation": attn,
        "trust_remote_code": r.training.trust_remote_code,
        **(r.training.model_init_kwargs or {}),
    }
    return {"attn_implementation": attn, "model_init_kwargs": kwargs}, why


def _optimizer(r: _Recipe, d: dict) -> Decision:
    name, env = _optim_name(r.training.optim), r.env
    if d["backend"] == "xla":
        if "bnb" in name or name.startswith("paged_"):
            raise RunSettingsError(f"optim: {name} needs bitsandbytes, which does not run on TPU; use adamw_torch")
        if name in TORCHAO_OPTIMIZERS or "fused" in name:
            # torch's fused AdamW has no XLA kernel and torchao's low-bit AdamW compiles with inductor; XLA fuses
            # the plain AdamW update itself.
            return {"optim": "adamw_torch"}, f"{name} has no XLA path"
        return {"optim": name}, ""
    if name in TORCHAO_OPTIMIZERS and not env.has("torchao"):
        raise RunSettingsError(
            f"optim: {name} needs the torchao package: pip install -e '.[gpu]' (or choose optim: "
            "adamw_torch_fused / adamw_bnb_8bit)"
        )
    if "bnb" in name and not env.has("bitsandbytes"):
        raise RunSettingsError(f"optim: {name} needs the bitsandbytes package: pip install -e '.[qlora]'")
    return {"optim": name}, ""


def _liger(r: _Recipe, d: dict) -> Decision:
    setting, backend = r.speed.liger_kernels, d["backend"]
    asked = bool(r.training.use_liger_kernel) or setting == "true"
    if backend == "xla":
        return {"use_liger_kernel": False}, "Liger kernels are Triton (GPU) kernels" if asked else ""
    if asked and not r.env.has("liger_kernel"):
        key = "liger_kernels" if setting == "true" else "use_liger_kernel"
        raise RunSettingsError(f"{key}: true needs the liger-kernel package: pip install -e '.[gpu]'")
    if asked or setting != "auto":
        return {"use_liger_kernel": asked}, ""
    if backend == "cuda" and r.env.has("liger_kernel"):
        return {"use_liger_kernel": True}, "auto: CUDA with liger-kernel installed"
    return {"use_liger_kernel": False}, "auto: needs CUDA and the liger-kernel package"


def _checkpointing(r: _Recipe, d: dict) -> Decision:
    enabled, layers, backend = bool(r.training.activation_checkpointing), r.speed.checkpointed_layers, d["backend"]
    fields = {
        "activation_checkpointing": enabled,
        "activation_memory_gib": r.speed.activation_memory_gib,
        "memory_limit_gib": r.speed.memory_limit_gib,
    }
    if not enabled or layers == "all":
        return {**fields, "checkpointed_layers": "all"}, ""
    if backend == "xla":
        return {**fields, "checkpointed_layers": "all"}, f"checkpointed_layers={layers} is not planned on XLA"
    if layers == "auto" and backend == "cpu" and r.speed.activation_memory_gib is None:
        why = "auto on CPU has no free-memory reading (give activation_memory_gib to plan)"
        return {**fields, "checkpointed_layers": "all"}, why
    return {**fields, "checkpointed_layers": layers}, ""


def effective_max_length(training_args) -> int | None:
    """The run's max_length from the recipe's SFTConfig (None: rows are never cut). The truncation row decides with
    it; the memory planner, which runs before the run settings can be resolved, plans with the same value."""
    return training_args.max_length


def _truncation(r: _Recipe, d: dict) -> Decision:
    """The run's max_length and where it applies: TRL packs with it, or the trainer cuts prepared rows with it."""
    mode, max_length = r.training.truncation_mode, effective_max_length(r.training)
    if mode not in ("keep_start", "keep_end"):
        raise RunSettingsError(f"truncation_mode: {mode!r} is not supported; use keep_start or keep_end")
    keep = bool(getattr(r.data, "keep_truncated_rows", False))
    fields = {"max_length": max_length, "truncation_mode": mode, "keep_truncated_rows": keep}
    if max_length is None:
        return {**fields, "max_length_applies": "nowhere"}, ""
    if d["packing"]:
        return {**fields, "max_length_applies": "packing"}, "TRL packs rows into rows of max_length tokens"
    why = (
        "after TRL prepares whole rows (hidden from TRL, which refuses it with padding-free rows): rows whose "
        "trained part it cuts are counted and dropped or kept (truncation.fit_to_max_length)"
    )
    return {**fields, "max_length_applies": "after_preparation"}, why


def _buckets(r: _Recipe, d: dict) -> Decision:
    given, count = r.data.xla_bucket_lengths, r.data.xla_bucket_count
    if d["backend"] != "xla":
        return {"bucket_lengths": None, "bucket_count": None}, "only on XLA" if given else ""
    if given:
        lengths = tuple(sorted(set(given)))
        if lengths[0] <= 0:
            raise RunSettingsError(f"xla_bucket_lengths: every length must be positive, got {list(given)}")
        return {"bucket_lengths": lengths, "bucket_count": None}, "xla_bucket_lengths (sorted)"
    if count < 1:
        raise RunSettingsError(f"xla_bucket_count: must be at least 1, got {count}")
    return {"bucket_lengths": None, "bucket_count": count}, "every distinct batch shape compiles once"


def _evaluation(r: _Recipe, d: dict) -> Decision:
    strategy = _optim_name(r.training.eval_strategy)
    if r.data.eval_split and strategy != "no":
        return {"evaluate": True}, f"split {r.data.eval_split!r}, eval_strategy {strategy}"
    return {"evaluate": False}, "no eval_split, or eval_strategy: no"


def _guards(r: _Recipe, d: dict) -> Decision:
    skip, factor = getattr(r.data, "nonfinite_skip_steps", 0), getattr(r.data, "loss_explosion_factor", 10.0)
    fields = {"nonfinite_skip_steps": skip, "loss_explosion_factor": factor}
    if d["backend"] == "xla":
        return fields, "on XLA the gradient norm is read at logging and saving steps only (no per-step sync)"
    return fields, "the gradient norm is read before every optimizer step; weights are checked before every save"


# (why key, decision): the order matters only where a decision reads an earlier one (backend first).
DECISIONS = (
    ("backend", _backend),
    ("model_family", _model_family),
    ("chat_template", _chat_template),
    ("eos_token", _end_of_turn),
    ("pad_token", _padding),
    ("tool_calls", _tool_calls),
    ("trainer", _trainer),
    ("loss", _loss),
    ("precision", _precision),
    ("padding_free", _batches),
    ("attn_implementation", _attention),
    ("optim", _optimizer),
    ("liger", _liger),
    ("checkpointing", _checkpointing),
    ("truncation", _truncation),
    ("buckets", _buckets),
    ("evaluate", _evaluation),
    ("guards", _guards),
)


def resolve_run_settings(
    data_args, model_args, training_args, speed_args, env: Environment, model: ModelChatFacts | None = None
) -> RunSettings:
    """The run's settings from the recipe (DataArguments, ModelArguments, SFTConfig, SpeedArguments), the machine
    and the model. Pure: reads its arguments (and a chat template file the recipe names), changes none of them."""
    recipe = _Recipe(data_args, model_args, training_args, speed_args, env, model)
    decided: dict[str, Any] = {}
    why: dict[str, str] = {}
    for name, decide in DECISIONS:
        fields, reason = decide(recipe, decided)
        decided.update(fields)
        if reason:
            why[name] = reason
    return RunSettings(**decided, why=why)
