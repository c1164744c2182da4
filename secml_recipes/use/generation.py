"""One generation interface for every model form: a full model, a base model plus LoRA adapter, or a
GGUF file read through transformers' loader. Batched, greedy, with the KV cache.

The evaluation only calls `Generator.generate(prompts)` on rendered chat text, so a quantized artifact
(see the deploy chain) plugs in by providing the same method.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from secml_recipes.deploy.gguf import gguf_chat_template, gguf_context_length
from secml_recipes.families import FamilyError, resolve_family
from secml_recipes.model_folders import model_and_adapter, trained_tokenizer_folder
from secml_recipes.tasks.constraints import Constraint, stops_when_looping
from secml_recipes.use.constrained import GrammarLogitsProcessor, llama_grammar
from secml_recipes.use.gguf_cache import as_gguf
from secml_recipes.use.loops import LoopCloser, LoopStop, is_looping


class Generator(Protocol):
    name: str
    family: object  # families.ChatFamily of the model, None when it cannot be told

    def generate(
        self, prompts: list[str], max_new_tokens: int, constraint: Constraint | list[Constraint | None] | None = None
    ) -> list[str]: ...

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str: ...


@dataclass
class TransformersGenerator:
    """A causal LM through transformers (and PEFT for adapters)."""

    batched = True  # prompts given together decode as one batch

    model_path: str
    adapter_path: str | None = None
    gguf_file: str | None = None
    dtype: str = "float32"
    batch_size: int = 4
    name: str = ""
    stop_loops: bool = False  # free answers only: end one that entered a repetition cycle (`is_looping`)
    stats: dict = field(default_factory=lambda: {"generated_tokens": 0, "seconds": 0.0, "prompts": 0})

    def __post_init__(self):
        # lazy: the torch stack loads only when a model is touched
        from transformers import AutoModelForCausalLM, AutoTokenizer

        for given in (self.model_path, self.adapter_path):
            if (
                given
                and not Path(given).exists()
                and (given.startswith((".", "/", "models/", "eval/")) or given.count("/") != 1)
            ):
                raise FileNotFoundError(
                    f"model not found: {given} (train it first, e.g. `make smoke`, or give a hub id)"
                )
        path, adapter = model_and_adapter(self.model_path, self.adapter_path)
        kwargs = {"dtype": getattr(torch, self.dtype)}
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        tok_source = trained_tokenizer_folder(path, adapter)
        self.tokenizer = AutoTokenizer.from_pretrained(
            tok_source, **({"gguf_file": self.gguf_file} if self.gguf_file and tok_source == path else {})
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        self.family = _family_or_none(self.tokenizer, model.config.model_type)
        if adapter:
            # lazy: the torch stack loads only when a model is touched
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter)
        self.model = model.eval()
        self.name = self.name or (f"{path} + {adapter}" if adapter else str(path))
        self.resolved_base, self.resolved_adapter = str(path), adapter

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)

    @torch.no_grad()
    def generate(
        self, prompts: list[str], max_new_tokens: int, constraint: Constraint | list[Constraint | None] | None = None
    ) -> list[str]:
        """Greedy outputs of `prompts`; under `constraint` (one for all prompts, or one per prompt, None = free) only
        text its grammar allows (use/constrained.py)."""
        outputs: list[str] = []
        eos = stop_token_ids(self.tokenizer, self.family)
        constraints = per_prompt(constraint, len(prompts))
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            t0 = time.perf_counter()
            rows = constraints[start : start + self.batch_size]
            processors = [GrammarLogitsProcessor(self.tokenizer, rows, eos)] if any(rows) else None
            loops = (
                LoopStop(enc["input_ids"].shape[1], [stops_when_looping(r) for r in rows]) if self.stop_loops else None
            )
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                use_cache=True,
                eos_token_id=eos,
                pad_token_id=self.tokenizer.pad_token_id,
                logits_processor=processors,
                stopping_criteria=[loops] if loops else None,
            )
            self.stats["loops_stopped"] = self.stats.get("loops_stopped", 0) + (loops.stopped if loops else 0)
            self.stats["seconds"] += time.perf_counter() - t0
            new = out[:, enc["input_ids"].shape[1] :]
            for row in new:
                ids = row.tolist()
                n = next((i for i, t in enumerate(ids) if t in eos or t == self.tokenizer.pad_token_id), len(ids))
                self.stats["generated_tokens"] += n
                outputs.append(decode_output(self.tokenizer, ids[:n], self.family))
            self.stats["prompts"] += len(chunk)
        return outputs


# llama-cpp-python silences a model's loading by pointing the process's stdout and stderr (file descriptors 1 and 2)
# at /dev/null and back: two loads at once (generators made in threads) can leave them pointing there for good, and
# every later line of the run vanishes. One load at a time.
_LLAMA_LOADING = threading.Lock()


@dataclass
class LlamaCppGenerator:
    """A GGUF file run by llama.cpp itself (llama-cpp-python): the only faithful runtime for Mixtral GGUFs.
    Prompts are rendered and tokenized with the source model's tokenizer (same chat template) and fed to
    llama.cpp as token ids, so both runtimes see identical inputs."""

    batched = False  # one sequence at a time; the KV cache of the prefix a prompt shares with the one before is reused

    gguf_file: str
    tokenizer_path: str | None = None  # None: the tokenizer and chat template the GGUF itself carries
    n_ctx: int = 16384
    name: str = ""
    stop_loops: bool = False  # free answers only: end one that entered a repetition cycle (`is_looping`)
    n_threads: int | None = None  # None: every core (several generators decoding at once share them out)
    stats: dict = field(default_factory=lambda: {"generated_tokens": 0, "seconds": 0.0, "prompts": 0})

    def __post_init__(self):
        # lazy: optional, built by `make llama-cpp`
        from llama_cpp import Llama
        from transformers import AutoTokenizer

        if not Path(self.gguf_file).is_file():
            raise FileNotFoundError(f"GGUF file not found: {self.gguf_file} (make quantize writes models/<name>-gguf/)")
        self.tokenizer = (
            AutoTokenizer.from_pretrained(self.tokenizer_path)
            if self.tokenizer_path
            else gguf_tokenizer(self.gguf_file)
        )

        # No longer than the model was trained for (llama.cpp warns of a longer one; memory grows with it).
        n_ctx = min(self.n_ctx, gguf_context_length(self.gguf_file) or self.n_ctx)
        with _LLAMA_LOADING:
            self.llm = Llama(
                model_path=self.gguf_file,
                n_ctx=n_ctx,
                verbose=False,
                seed=0,
                n_threads=self.n_threads or os.cpu_count(),
            )
        self.family = _family_or_none(self.tokenizer, self.llm.metadata.get("general.architecture"))
        self.name = self.name or self.gguf_file
        self.resolved_base, self.resolved_adapter = self.gguf_file, None

    def render(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)

    def set_threads(self, n_threads: int) -> None:
        """Decode on `n_threads` cores from the next token on (generators decoding at once share the cores out, and
        one that is done hands its share to the others)."""
        self.n_threads = n_threads
        self.llm._ctx.set_n_threads(n_threads, n_threads)

    def generate(
        self, prompts: list[str], max_new_tokens: int, constraint: Constraint | list[Constraint | None] | None = None
    ) -> list[str]:
        """Greedy decoding in llama.cpp (under `constraint`'s grammar where given); the new token ids are decoded by
        the same tokenizer as the transformers runtime, so outputs of the two runtimes compare token for token."""
        outputs = []
        for prompt, rule in zip(prompts, per_prompt(constraint, len(prompts))):
            t0 = time.perf_counter()
            text, _, n_new, looped = llama_cpp_generate(
                self.llm,
                self.tokenizer,
                self.family,
                prompt,
                max_new_tokens,
                native=self.tokenizer_path is None,
                grammar=llama_grammar(rule, self.llm) if rule is not None else None,
                stop_loops=self.stop_loops and stops_when_looping(rule),
                close_loops=rule is not None and rule.closes_loops,
            )
            self.stats["loops_stopped"] = self.stats.get("loops_stopped", 0) + looped
            self.stats["seconds"] += time.perf_counter() - t0
            self.stats["generated_tokens"] += n_new
            self.stats["prompts"] += 1
            outputs.append(text)
        return outputs


def llama_cpp_generate(
    llm,
    tokenizer,
    family,
    prompt: str,
    max_new_tokens: int,
    native: bool = False,
    grammar=None,
    stop_loops=False,
    close_loops=True,
) -> tuple[str, int, int, bool]:
    """(text, prompt tokens, new tokens, stopped in a loop): greedy decoding of a rendered prompt in llama.cpp (the
    evaluation's runtime and the HTTP server's). The prompt is tokenized and the answer decoded by the source model's
    tokenizer, or with `native` by llama.cpp's own (a GGUF without its source folder: transformers' rebuild of a
    GGUF tokenizer need not split text as the original did). `grammar`: a `LlamaGrammar` the output must follow.
    `stop_loops`: end an answer that has entered a repetition cycle (`is_looping`), as the token limit would. Under
    a grammar of JSON (`close_loops`) a string or list the answer loops in is closed early (`loops.LoopCloser`)."""
    if native:
        stops = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in (family.stops() if family else [])]
        stop = {llm.token_eos(), *(ids[0] for ids in stops if len(ids) == 1)}
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
    else:
        stop = {llm.token_eos(), *stop_token_ids(tokenizer, family)}
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new: list[int] = []
    looped = False
    # lazy: optional, built by `make llama-cpp`
    from llama_cpp import LogitsProcessorList

    closer = LogitsProcessorList([LoopCloser(llm, len(ids))]) if grammar is not None and close_loops else None
    if max_new_tokens > 0:
        for token in llm.generate(
            ids, top_k=1, top_p=1.0, temp=0.0, reset=True, grammar=grammar, logits_processor=closer
        ):
            if token in stop:
                break
            new.append(token)
            looped = stop_loops and len(new) % 8 == 0 and is_looping(new)
            if len(new) >= max_new_tokens or looped:
                break
    if native:
        text = llm.detokenize(new, special=True).decode("utf-8", "replace")
    else:
        text = decode_output(tokenizer, new, family)
    return text, len(ids), len(new), looped


def per_prompt(constraint: Constraint | list[Constraint | None] | None, n: int) -> list[Constraint | None]:
    """One constraint (or None) per prompt from what `generate` was given."""
    if isinstance(constraint, list):
        if len(constraint) != n:
            raise ValueError(f"{len(constraint)} constraints for {n} prompts")
        return constraint
    return [constraint] * n


def _family_or_none(tokenizer, model_type):
    try:
        return resolve_family(tokenizer, model_type)
    except FamilyError:
        return None


def stop_token_ids(tokenizer, family) -> list[int]:
    """The tokenizer's eos and every stop token of the model's family that its vocabulary has."""
    vocab = tokenizer.get_vocab()
    names = [tokenizer.eos_token, *(family.stops() if family else [])]
    return sorted({vocab[t] for t in names if t in vocab and vocab[t] != tokenizer.unk_token_id})


def decode_output(tokenizer, ids: list[int], family) -> str:
    """Generated ids as text without special tokens, except those that belong to the family's tool-call
    format (e.g. Llama's <|python_tag|>), which the tool-call parser needs. The kept tokens are found by id, not in
    `all_special_tokens`, which leaves out tokens added as special to the vocabulary (transformers 5)."""
    unknown = getattr(tokenizer, "unk_token_id", None)
    keep = {}
    for token in family.keep_tokens if family else ():
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != unknown:
            keep[token_id] = token
    if not keep:
        return tokenizer.decode(ids, skip_special_tokens=True)
    pieces, run = [], []
    for i in ids:
        if i in keep:
            pieces += [tokenizer.decode(run, skip_special_tokens=True), keep[i]]
            run = []
        else:
            run.append(i)
    pieces.append(tokenizer.decode(run, skip_special_tokens=True))
    return "".join(pieces)


def load_generator(
    model_path: str,
    adapter_path: str | None = None,
    gguf_file: str | None = None,
    dtype: str = "float32",
    batch_size: int = 4,
    name: str = "",
    backend: str = "transformers",
    tokenizer_path: str | None = None,
    n_threads: int | None = None,
):
    """The generator for a model form: transformers (full, adapter, Llama GGUF) or llama.cpp (any GGUF; `n_threads`
    of the cores, default all)."""
    if backend == "llama_cpp":
        gguf = str(Path(model_path) / gguf_file) if gguf_file else model_path
        return LlamaCppGenerator(gguf, tokenizer_path or str(Path(gguf).parent), name=name, n_threads=n_threads)
    return TransformersGenerator(model_path, adapter_path, gguf_file, dtype, batch_size, name)


def gguf_tokenizer(gguf_file: str | Path):
    """The tokenizer a GGUF carries (transformers' GGUF reader) with the chat template written into it, so a
    GGUF renders prompts exactly as training did without its source folder."""
    # lazy: the torch stack loads only when a model is touched
    from transformers import AutoTokenizer

    path = Path(gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tokenizer.chat_template = gguf_chat_template(path) or tokenizer.chat_template
    return tokenizer


def llama_cpp_built() -> bool:
    """Whether llama-cpp-python is installed (`make llama-cpp`)."""
    return importlib.util.find_spec("llama_cpp") is not None


def resolved_backend(path: str | Path, backend: str) -> str:
    """The runtime `open_model` gives `path` under `backend`: "auto" is llama.cpp for a .gguf file when it is built,
    transformers otherwise."""
    if backend != "auto":
        return backend
    return "llama_cpp" if Path(path).is_file() and llama_cpp_built() else "transformers"


def open_model(
    path: str,
    tokenizer: str | None = None,
    backend: str = "auto",
    dtype: str = "float32",
    batch_size: int = 1,
    name: str = "",
    n_threads: int | None = None,
):
    """The generator for a model a user points at: a trained folder (full model or LoRA adapter, whose base
    comes from its adapter config) or a .gguf file (llama.cpp when `make llama-cpp` built it, else
    transformers' GGUF reader; `tokenizer` names the source folder, else the GGUF's own is used; llama.cpp decodes on
    `n_threads` cores, default all). A folder with
    `backend="llama_cpp"` runs in llama.cpp through a cached f16 conversion (use/gguf_cache.py).
    FileNotFoundError with what to do when `path` is not there."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"model not found: {path} (a trained model folder, an adapter folder or a .gguf file; "
            "`make smoke` writes models/specialist_model and models/generalist_model_lora)"
        )
    if p.is_dir() and not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
        raise FileNotFoundError(
            f"{path}: no config.json or adapter_config.json in it; point --model at the folder "
            "training wrote (or a .gguf file)"
        )
    if p.is_file() and p.suffix != ".gguf":
        raise FileNotFoundError(f"{path}: a model is a folder or a .gguf file")
    if p.is_dir() and backend == "llama_cpp":  # a folder run by llama.cpp: through its cached f16 conversion
        gguf, source = as_gguf(p)
        return LlamaCppGenerator(gguf, tokenizer or source, name=name or p.name, n_threads=n_threads)
    if p.is_file():
        backend = resolved_backend(p, backend)
        if backend == "llama_cpp":
            return LlamaCppGenerator(str(p), tokenizer, name=name or p.name, n_threads=n_threads)
        gen = TransformersGenerator(
            str(p.parent), gguf_file=p.name, dtype=dtype, batch_size=batch_size, name=name or p.name
        )
        # lazy: the torch stack loads only when a model is touched
        from transformers import AutoTokenizer

        if tokenizer:
            gen.tokenizer = AutoTokenizer.from_pretrained(tokenizer)
            gen.tokenizer.padding_side = "left"
            gen.tokenizer.pad_token = gen.tokenizer.pad_token or gen.tokenizer.eos_token
        else:
            print(
                f"[secml] {p.name}: transformers rebuilds the tokenizer from the GGUF, which may split text "
                "differently from the original; pass --tokenizer SOURCE_FOLDER (or build llama.cpp: make llama-cpp) "
                "for exact tokens",
                file=sys.stderr,
            )
            gen.tokenizer.chat_template = gguf_tokenizer(p).chat_template
        return gen
    return TransformersGenerator(str(p), dtype=dtype, batch_size=batch_size, name=name or p.name)
