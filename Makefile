# secml-recipes: every command a user types. `make smoke` and `make test` work on a fresh clone,
# offline, on CPU.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ACCELERATE := $(VENV)/bin/accelerate
ACCEL_CONFIG ?= accelerate_configs/cpu.yaml
# Empty: `make train-*` launches what the memory planner picks for this machine; set it to force a config.
GPU_CONFIG ?=
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# Paths and tool versions have one source each: secml_recipes/layout.py and secml_recipes/versions.py (stdlib only,
# so these work before the virtual environment exists).
LAYOUT = $(PYTHON) -m secml_recipes.layout
VERSIONS = $(PYTHON) -m secml_recipes.versions
CORPUS = $(shell $(LAYOUT) corpus full)
# Non-empty where a CUDA GPU is visible: the smoke builds the GPTQ environment only there (GPTQ is a GPU format).
CUDA_GPU := $(shell nvidia-smi -L 2>/dev/null | head -n 1)

.PHONY: chaos install agent base-models smoke smoke-train smoke-deploy smoke-tiny learning-curve all test test-fast lint data tiny-models train-specialist train-generalist eval llama-cpp gptq-env quantize push test-xla bench bench-gpu bench-data clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# sys-scan-agent (the scanner project's own consumer) checks our enriched format with its models, HTML report
# and report diff. Its click<8.2 pin conflicts with huggingface_hub 2.4's click>=8.4.2 while the modules we use
# never import click, so the 190 KB wheel goes in without its dependencies; pydantic and PyNaCl (its CLI module's
# signing import, which `python -m secml_recipes.use.analyze` loads) are the `agent` extra.
$(VENV)/.agent-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet 'pydantic>=2.7,<3' 'PyNaCl>=1.5,<2'
	$(PY) -m pip install --quiet --no-deps sys-scan-agent==$(shell $(VERSIONS) sys_scan_agent)
	touch $@

agent: $(VENV)/.agent-installed

# Tiny Llama + tiny Mixtral with a tokenizer trained here: the stand-ins for the real hub models.
tiny-models: install
	$(PY) -m tests.harness.tiny --out $(shell $(LAYOUT) tiny_models)

# SmolLM2-135M-Instruct (Apache-2.0) from its registry wheel, as a normal HF folder (once; cached in .cache/).
base-models: install
	$(PY) -m secml_recipes.train.base_models smollm2

data: $(VENV)/.installed
	$(PY) -m secml_recipes.corpus build --out $(CORPUS) --specialist 5000 --generalist 5000 --seed 1234

# The main job on a real small model: SmolLM2-135M-Instruct learns both tasks on CPU, is evaluated against itself
# untrained on held-out hosts (table + plot in eval/smoke/summary.*), then deployed (GGUF, verified; GPTQ too where
# nvidia-smi sees a CUDA GPU), through the pipeline (finished stages are skipped on a rerun). The first run also
# prepares the base model and builds llama.cpp (and on a GPU the GPTQ environment), cached in .cache/.
smoke: install base-models llama-cpp $(if $(CUDA_GPU),gptq-env,)
	$(PY) -m secml_recipes.pipeline --profile smoke

# Only data, training and evaluation of SmolLM2 (evaluation generates through llama.cpp; no GPTQ environment).
smoke-train: install base-models llama-cpp
	$(PY) -m secml_recipes.pipeline --profile smoke --data-only --specialist-only --generalist-only --eval-only

# The smoke specialist trained longer (60 steps, a checkpoint every 12: about an hour on 2 cores with its
# evaluation), each checkpoint scored on the held-out parts like the final model: task metrics vs steps in
# docs/learning-curve/curve.{md,png} (evaluation/learning_curve.py).
CURVE_RUN = models/specialist-curve
learning-curve: install base-models llama-cpp
	$(PY) -m secml_recipes.pipeline --profile smoke --data-only
	$(ACCELERATE) launch --config_file $(ACCEL_CONFIG) -m secml_recipes.sft recipes/smoke/specialist.yaml \
		--output_dir $(CURVE_RUN) --max_steps 60 --save_steps 12
	$(PY) -m secml_recipes.evaluation.learning_curve recipes/smoke/eval-specialist.yaml --run $(CURVE_RUN) \
		--out docs/learning-curve --max_samples 8

# The same chain on the tiny random stand-ins: every stage and code path in minutes, numbers meaningless.
smoke-tiny: install llama-cpp gptq-env
	$(PY) -m secml_recipes.pipeline --profile tiny

# The full chain with the production recipes (GPU); push runs when HF_TOKEN and HF_NAMESPACE are set.
all: install llama-cpp gptq-env
	$(PY) -m secml_recipes.pipeline --profile full $(if $(HF_NAMESPACE),--namespace $(HF_NAMESPACE),)

test: install agent
	$(PY) -m pytest -q tests

# The tests without the slow end-to-end ones (subprocesses, benchmarks, multi-step training, real models).
test-fast: install agent
	$(PY) -m pytest -q -m "not slow" tests

# Fault injection end to end on the tiny models (SIGKILL and a full disk while checkpointing, NaN, concurrent runs,
# hostile rows and archives, an unreachable Hub): prints fault / expected / observed / holds and the totals.
chaos: install
	$(PY) -m tests.harness.chaos

# Lint and format check of the whole repository (ruff, pinned in the test extra; configuration in pyproject.toml).
LINT_PATHS ?= .
lint: install
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

# The first shipped accelerate config under which the recipe fits this machine's GPUs (or TPU chips), as the memory
# planner picks it (secml plan RECIPE --launch; docs/scale.md); it refuses, naming what would fit,
# when nothing does. GPU_CONFIG=accelerate_configs/X.yaml launches that config instead (sft still checks it).
define launch_fitting
	@if [ -n "$(GPU_CONFIG)" ]; then \
		$(ACCELERATE) launch --config_file $(GPU_CONFIG) -m secml_recipes.sft $(1); \
	else \
		cmd="$$($(PY) -m secml_recipes.train.plan $(1) --launch)" && echo "$$cmd" && eval "$$cmd"; \
	fi
endef

train-specialist: install
	$(call launch_fitting,recipes/full/specialist.yaml)

train-generalist: install
	$(call launch_fitting,recipes/full/generalist.yaml)

# Evaluate the trained models (production recipes: the real base models are the untrained baselines).
eval: install
	$(PY) -m secml_recipes.evaluation.evaluate recipes/full/eval-specialist.yaml
	$(PY) -m secml_recipes.evaluation.evaluate recipes/full/eval-generalist.yaml

# --- deploy chain ---------------------------------------------------------------------------------
LLAMA_CPP_VERSION := $(shell $(VERSIONS) llama_cpp_python)
LLAMA_CPP_SRC := .cache/llama.cpp/llama_cpp_python-$(LLAMA_CPP_VERSION)

# llama.cpp's converter + gguf-py from the llama-cpp-python source distribution (package registry),
# and the package built from it (llama.cpp runtime + quantizer) in .venv. Nothing is committed.
$(LLAMA_CPP_SRC)/vendor/llama.cpp/convert_hf_to_gguf.py:
	mkdir -p .cache/llama.cpp
	$(PY) -m pip download --no-binary :all: --no-deps --quiet -d .cache/llama.cpp llama-cpp-python==$(LLAMA_CPP_VERSION)
	tar -xzf .cache/llama.cpp/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz -C .cache/llama.cpp
	touch $@

# The wheel is built once (~10 minutes on 2 cores) and reused when the virtual environment is made again.
.cache/llama.cpp/.installed: $(VENV)/.installed $(LLAMA_CPP_SRC)/vendor/llama.cpp/convert_hf_to_gguf.py
	ls .cache/llama.cpp/wheels/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF" \
		$(PY) -m pip wheel --no-deps -w .cache/llama.cpp/wheels .cache/llama.cpp/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
	$(PY) -m pip install --quiet --no-deps .cache/llama.cpp/wheels/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(PY) -m pip install --quiet -e '.[quantize,serve]'
	touch $@

llama-cpp: .cache/llama.cpp/.installed

# GPTQModel (versions.py) needs torch>=2.14.1 (a CUDA build from local disk, ~6 GB): its own environment.
.cache/gptq-venv/.installed:
	$(PYTHON) -m secml_recipes.disk_check .cache 8 "the GPTQ environment (~6 GB)"
	$(PYTHON) -m venv .cache/gptq-venv
	.cache/gptq-venv/bin/pip install --quiet --no-cache-dir $(shell $(VERSIONS) gptq-requirements)
	touch $@

gptq-env: .cache/gptq-venv/.installed

smoke-deploy: llama-cpp $(if $(CUDA_GPU),gptq-env,)
	$(PY) -m secml_recipes.deploy.quantize recipes/smoke/quantize.yaml

quantize: llama-cpp gptq-env
	$(PY) -m secml_recipes.deploy.quantize recipes/full/quantize.yaml

# HF_NAMESPACE=your-org make push   (token from HF_TOKEN)
push: install
	$(PY) -m secml_recipes.deploy.push --namespace $(HF_NAMESPACE)

# XLA on CPU (PJRT_DEVICE=CPU): torch_xla 2.9 needs torch 2.9, so its own environment (~8 GB). The sharded tests run
# SPMD FSDPv2 over CPU_NUM_DEVICES=4 PJRT CPU devices.
.cache/xla-venv/.installed:
	$(PYTHON) -m secml_recipes.disk_check .cache 10 "the XLA test environment (~8 GB)"
	$(PYTHON) -m venv .cache/xla-venv
	.cache/xla-venv/bin/pip install --quiet --no-cache-dir $(shell $(VERSIONS) xla-requirements) \
		pyyaml jsonschema matplotlib tqdm pytest
	.cache/xla-venv/bin/pip install --quiet --no-deps -e .
	touch $@

test-xla: .cache/xla-venv/.installed
	PJRT_DEVICE=CPU .cache/xla-venv/bin/python -m pytest -q tests/test_xla.py

bench-data: install
	$(PY) bench/data_throughput.py

# Plain TRL vs this repository's trainer on the same data (BENCH_ARGS="--shape llama-8b --mode lora" on a GPU).
BENCH_ARGS ?= --shape tiny --mode full --steps 8
bench: install
	$(PY) bench/train_throughput.py $(BENCH_ARGS)

# The whole speed table on one GPU: every real shape and mode, goals checked, bench/results/summary.{md,png}.
bench-gpu: install
	$(PY) -m pip install --quiet -e '.[gpu,qlora]'
	$(PY) bench/gpu_suite.py --out bench/results

clean:
	rm -rf models data eval
