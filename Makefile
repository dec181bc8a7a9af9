# One-command set-up: every target that needs Python calls `setup` first, so
# `make demo` and `make test` work on a fresh clone by themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The ROS-side packages, lowest first: contract <- controller <- ops.
ROS_PKGS := ros2_ws/src/swarm_contract ros2_ws/src/swarm_controller ros2_ws/src/swarm_ops

.PHONY: setup demo test test-fast bench lint format colcon clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(foreach p,$(ROS_PKGS),$(p)/setup.py)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[train,ros,dev,mpe,ray]'
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps $(foreach p,$(ROS_PKGS),-e $(p))
	@touch $(STAMP)
	@echo "set-up done: $(VENV)"

demo: setup
	$(BIN)/swarm demo

# TEST_WORKERS=2 runs two test files at a time: most ROS tests wait on DDS and
# timers rather than on a core, so the suite takes about 7 minutes on 2 cores
# instead of 11. One by one is the default: with two workers, 1 run in 3 lost a
# node's shutdown or a respawn's first command to the other worker's load.
TEST_WORKERS ?= 0

test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not ros"

bench: setup
	$(BIN)/swarm bench sim
	$(BIN)/swarm bench train
	$(BIN)/swarm bench policy models/default
	$(BIN)/swarm bench node
	$(BIN)/swarm bench deploy

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The three ROS-side packages as a colcon workspace (ros2_ws/install), for
# `ros2 launch` on a machine with a ROS 2 distro sourced.
colcon: setup
	cd ros2_ws && PATH="$(abspath $(BIN)):$$PATH" colcon build --base-paths src

clean:
	rm -rf $(VENV) ros2_ws/build ros2_ws/install ros2_ws/log ros2_ws/src/*/build
