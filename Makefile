# ros2_livevlm without a ROS installation: a virtual environment with pinned ROS 2 wheels
# and Python dependencies in .venv/, this package's interfaces built and installed into
# it, and env.sh to source (as colcon's install/setup.bash is). See README.md.
#
#   make          set up (.venv, interfaces, env.sh); incremental
#   make demo     the main job: the sample camera bag replayed into the node, timed questions,
#                 a report per memory policy (MODEL=tiny|reference|/path/to/llava-onevision)
#   make watch-demo  a watch firing on the sample tour; the memory kept across a node restart
#   make test     the test suite (what .ci/run runs)
#   make lint     only the ament linters
#   make test-py310  the engine tests under Python 3.10 with the Humble set (not in `make test`:
#                 the index's torch for 3.10 is a CUDA build, about 5 GB installed)
#   make clean    remove build outputs; `make distclean` also removes .venv

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip --disable-pip-version-check
# ROS wheels + this package's interfaces live under the venv prefix
ROS_ENV := PATH="$(VENV)/bin:$$PATH" AMENT_PREFIX_PATH="$(VENV)" CMAKE_PREFIX_PATH="$(VENV)"
INTERFACES := $(wildcard msg/*.msg srv/*.srv action/*.action)
PYTEST_ARGS ?=

.PHONY: all setup demo watch-demo test test-py310 lint clean distclean
all: setup

setup: env.sh $(VENV)/.interfaces.stamp

$(VENV)/.deps.stamp: scripts/requirements.txt scripts/requirements-ros.txt \
		scripts/requirements-dev.txt setup.py setup.cfg package.xml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r scripts/requirements-ros.txt -r scripts/requirements.txt \
		-r scripts/requirements-dev.txt
	$(PIP) install -q --no-deps --no-build-isolation \
		--config-settings editable_mode=compat -e .
	touch $@

$(VENV)/.interfaces.stamp: $(VENV)/.deps.stamp CMakeLists.txt $(INTERFACES) setup.cfg \
		ros2_livevlm/__init__.py scripts/console_script.in scripts/fix_wheel_cmake.py
	mkdir -p build
	$(VPY) scripts/fix_wheel_cmake.py $(VENV)
	$(ROS_ENV) cmake -S . -B build/venv -DCMAKE_INSTALL_PREFIX=$(VENV) \
		-DPython3_EXECUTABLE=$(VPY) -DLIVEVLM_INSTALL_PYTHON_SOURCES=OFF \
		-DBUILD_TESTING=OFF > build/venv-configure.log 2>&1 \
		|| { cat build/venv-configure.log; exit 1; }
	$(ROS_ENV) cmake --build build/venv -j 2 > build/venv-build.log 2>&1 \
		|| { tail -50 build/venv-build.log; exit 1; }
	$(ROS_ENV) cmake --install build/venv > /dev/null
	touch $@

env.sh: scripts/env.sh.in
	sed 's|@ROOT@|$(ROOT)|g' scripts/env.sh.in > $@

demo: setup
	. ./env.sh && python -m ros2_livevlm.eval.evaluate --live --budget-tokens 96 --out reports/demo \
		$(if $(MODEL),--model-path $(MODEL))

watch-demo: setup
	. ./env.sh && python -m ros2_livevlm.ros.watch_demo

test: setup
	. ./env.sh && python -m pytest $(PYTEST_ARGS)

# Python 3.10 (Humble, JetPack 6): requirements-distro.txt with constraints-humble.txt, the
# development pins of torch and pytest, the source tree on the path (no ROS needed)
PYTHON310 ?= python3.10
VENV310 := $(ROOT)/.venv310
test-py310:
	PYENV_VERSION=$${PYENV_VERSION:-3.10.13} $(PYTHON310) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install -q --disable-pip-version-check \
		-r <(grep -v '^torch' scripts/requirements-distro.txt) -c scripts/constraints-humble.txt \
		$$(grep -E '^torch==' scripts/requirements.txt) \
		$$(grep -E '^pytest(-timeout)?==' scripts/requirements-dev.txt)
	PYTHONPATH=$(ROOT) $(VENV310)/bin/python -m pytest tests/engine tests/reference $(PYTEST_ARGS)

lint: setup
	. ./env.sh && python -m pytest tests/test_lint.py

clean:
	rm -rf build install log env.sh $(VENV)/.interfaces.stamp

distclean: clean
	rm -rf $(VENV) $(VENV310)
