# facetrack developer commands. `make demo` and `make test` work on a fresh machine: both run
# `setup` first (venv, project + dev tools, mosquitto, verified models and data).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Re-install the project only when pyproject.toml changed since the last install.
STAMP := $(VENV)/.facetrack-installed
ASSETS_DIR := $(or $(FACETRACK_ASSETS_DIR),models/assets)
# Offline mirror of the models and data: $FACETRACK_ASSET_MIRROR, else ../shared/assets if present.
ASSET_MIRROR := $(or $(FACETRACK_ASSET_MIRROR),$(wildcard ../shared/assets))
ASSET_GROUPS := --group runtime --group testdata

.PHONY: setup venv mosquitto ejabberd shellcheck chromium assets demo test test-timing test-faults lint bench clean-venv pi-check

setup: venv mosquitto ejabberd shellcheck chromium assets

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@

# Debian's mosquitto: the tests start their own brokers on free loopback ports.
mosquitto:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then \
	  :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing mosquitto and mosquitto-clients (apt-get)"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y mosquitto mosquitto-clients; \
	else \
	  echo "mosquitto is not installed. Run:  sudo apt-get update && sudo apt-get install -y mosquitto mosquitto-clients  then run make again." >&2; \
	  exit 1; \
	fi

# Debian's chromium and chromedriver: tests/test_review_page.py drives the review page in them.
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing chromium and chromium-driver (apt-get)"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; \
	else \
	  echo "chromium is not installed. Run:  sudo apt-get update && sudo apt-get install -y chromium chromium-driver  then run make again." >&2; \
	  exit 1; \
	fi

# Debian's ejabberd (mod_mqtt): tests/test_broker_cluster.py and `bench.fleet --broker cluster`
# start their own two-node cluster on free loopback ports. The packaged service is stopped and
# disabled: its default config listens for MQTT on 1883, the port of the demo's mosquitto.
ejabberd:
	@if ls /usr/lib/*/ejabberd-*/ebin/ejabberd.beam >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing ejabberd (apt-get)"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ejabberd; \
	  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now ejabberd >/dev/null 2>&1 || true; fi; \
	  if [ -x /etc/init.d/ejabberd ]; then /etc/init.d/ejabberd stop >/dev/null 2>&1 || true; fi; \
	else \
	  echo "ejabberd is not installed. Run:  sudo apt-get update && sudo apt-get install -y --no-install-recommends ejabberd && sudo systemctl disable --now ejabberd  then run make again." >&2; \
	  exit 1; \
	fi

# Debian's shellcheck: tests/test_deploy_install.py checks the deploy scripts with it.
shellcheck:
	@if command -v shellcheck >/dev/null 2>&1; then \
	  :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing shellcheck (apt-get)"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y shellcheck; \
	else \
	  echo "shellcheck is not installed. Run:  sudo apt-get update && sudo apt-get install -y shellcheck  then run make again." >&2; \
	  exit 1; \
	fi

assets: $(STAMP)
	$(VENV)/bin/facetrack-agent assets fetch $(ASSET_GROUPS) --dest $(ASSETS_DIR) $(if $(ASSET_MIRROR),--mirror $(ASSET_MIRROR))

demo: setup
	$(PY) -m agent.devtools.demo

# Lint first: main stays ruff- and mypy-clean, and pytest's summary stays the last line printed.
test: setup lint
	$(VENV)/bin/pytest -q

# Issue 24's seeded fault-injection run at full length (make test runs 20 cycles of it): kill -9,
# a full disk, .seq and WAL damage, a restored backup (3-6 min on a busy 2-core machine); then
# SIGTERM with a stalled live stream, STALL_RUNS times on the real agent (about 40 s a run).
FAULT_CYCLES ?= 200
FAULT_SEED ?= 20261207
STALL_RUNS ?= 20
test-faults: setup
	@echo "== $(FAULT_CYCLES) fault cycles, seed $(FAULT_SEED) (load average $$(cut -d' ' -f1-3 /proc/loadavg)) =="
	FACETRACK_FAULT_CYCLES=$(FAULT_CYCLES) FACETRACK_FAULT_SEED=$(FAULT_SEED) \
	  $(VENV)/bin/pytest -q -s -p no:cacheprovider tests/test_fault_injection.py
	@echo "== SIGTERM with a stalled stream, $(STALL_RUNS) runs (load average $$(cut -d' ' -f1-3 /proc/loadavg)) =="
	FACETRACK_STALL_RUNS=$(STALL_RUNS) $(VENV)/bin/pytest -q -s -p no:cacheprovider \
	  tests/test_robustness_stream.py -k stalled

# The tests that wait on a broker, a subprocess or a video, run three ways: pinned to one core,
# pinned to that core beside a CPU burner (a busy loop, killed afterwards), and unpinned. They must
# pass all three: they wait on events and pace their inputs, never on how fast a frame goes
# (docs/testing.md). TIMING_CORE picks the core; TIMING_TESTS narrows the set.
TIMING_CORE ?= 0
TIMING_TESTS ?= tests/test_agent_e2e.py tests/test_pipeline_live.py tests/test_pipeline_source.py \
	tests/test_hot_reload.py tests/test_broker_acl.py tests/test_mqtt_link.py \
	tests/test_homeassistant.py tests/test_outbox.py tests/test_signals.py tests/test_flush_at_eof.py \
	tests/test_state_lock.py tests/test_robustness_disk.py tests/test_event_timing_and_status.py \
	tests/test_mqtt_failover.py tests/test_broker_cluster.py tests/test_robustness_stream.py tests/test_enrolment_store.py
test-timing: setup
	@echo "== pinned to core $(TIMING_CORE) (load average $$(cut -d' ' -f1-3 /proc/loadavg)) =="
	taskset -c $(TIMING_CORE) $(VENV)/bin/pytest -q -p no:cacheprovider $(TIMING_TESTS)
	@echo "== pinned to core $(TIMING_CORE), beside a CPU burner on the same core (load average $$(cut -d' ' -f1-3 /proc/loadavg)) =="
	@taskset -c $(TIMING_CORE) $(PY) -c 'while True: pass' & burner=$$!; \
	  trap 'kill $$burner 2>/dev/null' EXIT; \
	  echo "burner pid $$burner on core $(TIMING_CORE)"; \
	  taskset -c $(TIMING_CORE) $(VENV)/bin/pytest -q -p no:cacheprovider $(TIMING_TESTS)
	@echo "== unpinned (load average $$(cut -d' ' -f1-3 /proc/loadavg)) =="
	$(VENV)/bin/pytest -q -p no:cacheprovider $(TIMING_TESTS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy agent trainer

# Each benchmark prints its machine, load average and command, then a table (--json: JSON alone on
# stdout); see docs/benchmarks.md.
bench: setup
	$(PY) -m bench.models
	$(PY) -m bench.mot $(ASSETS_DIR)/data/mot15/* --baseline sort
	$(PY) -m bench.pipeline
	$(PY) -m bench.pipeline_pareto --png out/pipeline_pareto.png
	$(PY) -m bench.reload
	$(PY) -m bench.publish
	$(PY) -m bench.fleet --devices 10,100,500
	$(PY) -m bench.outbox
	$(PY) -m bench.scene_cuts
	$(PY) -m bench.cluster
	$(PY) -m bench.enrolment

# The fleet install on the Pi's OS and architecture, under arm64 emulation (docs/pi-check.md).
# Slow (29 min on an idle 2-core machine, see docs/pi-check.md), needs root and downloads a Debian root: not part of `make test`.
pi-check: venv mosquitto
	FACETRACK_ASSET_MIRROR=$(ASSET_MIRROR) deploy/pi-check/pi-check.sh

clean-venv:
	rm -rf $(VENV)
