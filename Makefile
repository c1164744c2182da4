# secml-recipes: every command a user types. `make smoke` and `make test` work on a fresh clone,
# offline, on CPU.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ACCELERATE := $(VENV)/bin/accelerate
ACCEL_CONFIG ?= accelerate_configs/cpu.yaml
GPU_CONFIG ?= accelerate_configs/single_gpu.yaml
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install smoke test data smoke-data tiny-models train-specialist train-generalist eval bench-data clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Tiny Llama + tiny Mixtral with a tokenizer trained here: the stand-ins for the real hub models.
models/tiny/.built: $(VENV)/.installed
	$(PY) -m secml_recipes.tiny --out models/tiny
	touch $@

tiny-models: models/tiny/.built

# A small corpus for the smoke run (the full one is `make data`).
smoke-data: $(VENV)/.installed
	$(PY) -m secml_recipes.data build --out data/smoke/massive_datasets.tar.gz --specialist 48 --generalist 48 --seed 7 --max-prompt-chars 6000

data: $(VENV)/.installed
	$(PY) -m secml_recipes.data build --out data/massive_datasets.tar.gz --specialist 5000 --generalist 5000 --seed 1234

smoke: install tiny-models smoke-data
	rm -rf models/specialist_model models/generalist_model_lora
	$(ACCELERATE) launch --config_file $(ACCEL_CONFIG) -m secml_recipes.sft recipes/smoke/specialist.yaml
	$(ACCELERATE) launch --config_file $(ACCEL_CONFIG) -m secml_recipes.sft recipes/smoke/generalist.yaml
	$(PY) -m secml_recipes.smoke_check models/specialist_model models/generalist_model_lora
	$(PY) -m secml_recipes.evaluate recipes/eval/smoke/specialist.yaml
	$(PY) -m secml_recipes.evaluate recipes/eval/smoke/generalist.yaml

test: install
	$(PY) -m pytest -q tests

train-specialist: install
	$(ACCELERATE) launch --config_file $(GPU_CONFIG) -m secml_recipes.sft recipes/specialist.yaml

train-generalist: install
	$(ACCELERATE) launch --config_file $(GPU_CONFIG) -m secml_recipes.sft recipes/generalist.yaml

# Evaluate the trained models (production recipes: the real base models are the untrained baselines).
eval: install
	$(PY) -m secml_recipes.evaluate recipes/eval/specialist.yaml
	$(PY) -m secml_recipes.evaluate recipes/eval/generalist.yaml

bench-data: install
	$(PY) bench/data_throughput.py

clean:
	rm -rf models data eval
