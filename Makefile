# Two commands matter: `make demo` (the main job) and `make test` (the whole test suite).
# Both run `make setup` first, which creates or refreshes .venv/ and is quick when nothing
# changed (stamp files track pyproject.toml and the package sources).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
# The ROS wheels' bootstrapper re-executes Python with the right library path; rosidl also
# needs AMENT_PREFIX_PATH / CMAKE_PREFIX_PATH pointing at the venv when building messages.
BUILD_ENV := CMAKE_PREFIX_PATH=$(abspath $(VENV)) AMENT_PREFIX_PATH=$(abspath $(VENV))
PACKAGE_SOURCES := $(shell find lw_refinenet_ros msg launch config scripts cmake \
                     -type f -not -name '*.pyc' -not -path '*/__pycache__/*' 2>/dev/null) \
                   CMakeLists.txt package.xml pyproject.toml
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
DEMO_ARGS ?=

.PHONY: setup test demo lint bench bench-e2e fuzz clean lock

setup: $(VENV)/.package-stamp

$(VENV)/.venv-stamp:
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip -c requirements.lock
	touch $@

# requirements.lock pins every distribution (make lock refreshes it): a fresh clone installs
# exactly the versions the tests ran with, whatever was released since.
$(VENV)/.deps-stamp: pyproject.toml scripts/requirements.py requirements.lock $(VENV)/.venv-stamp
	$(PYTHON) scripts/requirements.py test > $(VENV)/requirements.txt
	$(VPY) -m pip install --quiet -r $(VENV)/requirements.txt -c requirements.lock
	touch $@

$(VENV)/.package-stamp: $(VENV)/.deps-stamp $(PACKAGE_SOURCES)
	$(BUILD_ENV) $(VPY) -m pip install --quiet --no-build-isolation --no-deps --force-reinstall .
	touch $@

# Two pytest-xdist workers, one test file per worker at a time (a file's module fixtures, such
# as a node started once for its tests, stay in one process): on 2 cores much of the suite
# waits on node processes, DDS discovery and subprocesses while the other core idles. Each
# worker has its own ROS domain and runtime cache (test/conftest.py). TEST_WORKERS=0: one
# process.
test: setup
	$(VPY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/lw-refinenet demo $(DEMO_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(VENV)/bin/lw-refinenet bench --arch mbv2 --size 640x480 --device cpu --json bench_engine.json

bench-e2e: setup
	PATH=$(abspath $(VENV))/bin:$$PATH benchmarks/run_all.sh

fuzz: setup
	$(VPY) benchmarks/fuzz_node.py --json fuzz_node.json

# Re-resolve pyproject.toml in a throw-away venv and rewrite requirements.lock (review the diff).
lock:
	$(PYTHON) scripts/lock.py

clean:
	rm -rf build $(VENV)
