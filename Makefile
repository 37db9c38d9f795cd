# edm_ros developer entry points. Every target installs what it needs into its venv first.
SHELL := /bin/bash
PYTHON ?= python3
# One ROS 2 distro per venv: kilted (.venv, everything) or jazzy (.venv-jazzy, what the ROS tests
# need: `make test-ros DISTRO=jazzy`).
DISTRO ?= kilted
VENV ?= $(if $(filter kilted,$(DISTRO)),.venv,.venv-$(DISTRO))
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.edm_ros_installed
REQUIREMENTS := requirements/core.txt requirements/ros-$(DISTRO).txt \
                requirements/$(if $(filter kilted,$(DISTRO)),dev.txt,test.txt)
# ros2 launch/run/topic/param, launch_testing, message_filters, tf2_msgs; installed when present
ROS2_TOOLS ?= ../shared/ros2_tools
ROS2_TOOLS_INSTALL := $(wildcard $(ROS2_TOOLS)/install.sh)
COLCON_WS ?= build/colcon
PYTEST_ARGS ?=

.PHONY: venv messages demo test test-ros colcon bench bench-gpu bench-node eval lint clean

venv: $(STAMP)

$(STAMP): $(REQUIREMENTS) requirements/test.txt setup.py CMakeLists.txt package.xml msg/*.msg \
          scripts/matcher_node scripts/build_messages.sh config/*.yaml launch/*.py $(ROS2_TOOLS_INSTALL)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip "setuptools<80" wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check $(addprefix -r ,$(REQUIREMENTS))
	$(if $(ROS2_TOOLS_INSTALL),VIRTUAL_ENV=$(abspath $(VENV)) bash $(ROS2_TOOLS_INSTALL))
	VIRTUAL_ENV=$(abspath $(VENV)) bash scripts/build_messages.sh
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
	    --config-settings editable_mode=compat -e .
	touch $(STAMP)

# Rebuild only the ROS messages (after editing msg/).
messages: $(STAMP)
	VIRTUAL_ENV=$(abspath $(VENV)) bash scripts/build_messages.sh

# Default: the package's weights; WEIGHTS=path/to/edm_outdoor.ckpt, or WEIGHTS=random (meaningless).
demo: $(STAMP)
	$(BIN)/python -m edm_ros.cli.demo --out demo_output $(if $(WEIGHTS),--weights $(WEIGHTS))

# ROS_PYTHON_CHECK_FIELDS=1: Jazzy/Kilted messages check field types as Humble's always do.
test: $(STAMP)
	ROS_PYTHON_CHECK_FIELDS=1 $(BIN)/python -m pytest -q -rs $(PYTEST_ARGS) test

# The tests that need ROS 2 (node, launch, conversions, sync): what a second distro's venv runs.
test-ros: $(STAMP)
	ROS_PYTHON_CHECK_FIELDS=1 $(BIN)/python -m pytest -q -rs $(PYTEST_ARGS) test/ros

# colcon build + colcon test in a workspace ($(COLCON_WS)), with colcon from PyPI in the venv.
colcon: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements/colcon.txt \
	    -c requirements/test.txt
	VIRTUAL_ENV=$(abspath $(VENV)) bash scripts/colcon_check.sh $(COLCON_WS)

# Ours against the official code (../shared/reference, its venv made on first use), one run.
bench: $(STAMP)
	$(BIN)/python -m edm_ros.cli.bench --out bench_output $(if $(WEIGHTS),--weights $(WEIGHTS))

# On a CUDA machine: torch eager / CUDA graph, ONNX Runtime CUDA / TensorRT EPs, TensorRT fp32.
bench-gpu: $(STAMP)
	$(BIN)/python -m edm_ros.cli.bench_gpu --out bench_output $(if $(WEIGHTS),--weights $(WEIGHTS))

# End-to-end node latency, 2000-frame soak, stereo batching (separate processes, loopback DDS).
bench-node: $(STAMP)
	$(BIN)/python -m edm_ros.cli.bench_node --out bench_output $(if $(WEIGHTS),--weights $(WEIGHTS))

# Evaluation report on ../shared/data (or DATA=...): EDM (the package's weights, or WEIGHTS=...),
# SIFT and ORB on the pairs, and stereo visual odometry on EuRoC; ODOMETRY_FRAMES=200 adds the
# rendered drive and turn in place (EDM on them takes about half an hour on a 2-core CPU).
ODOMETRY_FRAMES ?= 0
eval: $(STAMP)
	$(BIN)/edm-eval $(or $(DATA),../shared/data) --odometry --odometry-frames $(ODOMETRY_FRAMES) \
	    --out eval_report $(if $(WEIGHTS),--weights $(WEIGHTS))

lint: $(STAMP)
	$(BIN)/ruff check edm_ros test && $(BIN)/ruff format --check edm_ros test

clean:
	rm -rf $(VENV) .official-venv build_messages demo_output $(COLCON_WS)
