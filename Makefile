# edm_ros developer entry points. Every target installs what it needs into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.edm_ros_installed
PYTEST_ARGS ?=

.PHONY: venv messages demo test bench bench-gpu bench-node eval lint clean

venv: $(STAMP)

$(STAMP): requirements/core.txt requirements/ros.txt requirements/dev.txt setup.py \
          CMakeLists.txt package.xml msg/*.msg scripts/matcher_node scripts/build_messages.sh \
          config/*.yaml launch/*.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip "setuptools<80" wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check \
	    -r requirements/core.txt -r requirements/ros.txt -r requirements/dev.txt
	VIRTUAL_ENV=$(abspath $(VENV)) bash scripts/build_messages.sh
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
	    --config-settings editable_mode=compat -e .
	touch $(STAMP)

# Rebuild only the ROS messages (after editing msg/).
messages: $(STAMP)
	VIRTUAL_ENV=$(abspath $(VENV)) bash scripts/build_messages.sh

# WEIGHTS=path/to/edm_outdoor.ckpt for real matches; without it the demo says it uses random weights.
demo: $(STAMP)
	$(BIN)/python -m edm_ros.cli.demo --out demo_output $(if $(WEIGHTS),--weights $(WEIGHTS))

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS) test

# Ours against the official code (../shared/reference, its venv made on first use), one run.
bench: $(STAMP)
	$(BIN)/python -m edm_ros.cli.bench --out bench_output $(if $(WEIGHTS),--weights $(WEIGHTS))

# On a CUDA machine: torch eager / CUDA graph, ONNX Runtime CUDA / TensorRT EPs, TensorRT fp32.
bench-gpu: $(STAMP)
	$(BIN)/python -m edm_ros.cli.bench_gpu --out bench_output $(if $(WEIGHTS),--weights $(WEIGHTS))

# End-to-end node latency, 2000-frame soak, stereo batching (separate processes, loopback DDS).
bench-node: $(STAMP)
	$(BIN)/python -m edm_ros.cli.bench_node --out bench_output $(if $(WEIGHTS),--weights $(WEIGHTS))

# Evaluation report on ../shared/data (or DATA=...): SIFT/ORB, and EDM with WEIGHTS=...
eval: $(STAMP)
	$(BIN)/edm-eval $(or $(DATA),../shared/data) --out eval_report $(if $(WEIGHTS),--weights $(WEIGHTS))

lint: $(STAMP)
	$(BIN)/ruff check edm_ros test && $(BIN)/ruff format --check edm_ros test

clean:
	rm -rf $(VENV) .official-venv build_messages demo_output
