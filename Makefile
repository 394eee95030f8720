# The README's two commands are `make demo` and `make test`; everything they need is set up here.
SHELL := /bin/bash
# Debian's own Python when there is one: every user can run it, and rootless podman runs the
# runtime as the user (a Python under /root, like pyenv's, is out of their reach).
PYTHON ?= $(shell test -x /usr/bin/python3 && /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := $(CURDIR)/.venv
SCRUN := $(VENV)/bin/scrun
NODES ?= 3
PYTEST_ARGS ?=
DEVCLUSTER := python3 tools/devcluster.py
# The Slurm lanes to set up and test: all of them (the host's own first), or one by name,
# e.g. `make test LANE=slurm-24.11`.
LANE ?= all
LANES = $(if $(filter all,$(LANE)),$(shell $(DEVCLUSTER) lanes),$(LANE))

# What every lane runs (tests/conftest.py: a test's tier is its folder; unit runs once, on the host).
LANE_TIERS := integration or e2e or security

.PHONY: all venv install packages cluster cluster-down demo test unit lint bench bench-ab conformance soak bench-scale clean deb wheel man

all: test

$(VENV)/.installed: pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# /usr/local/bin/scrun runs this checkout's scrun (tools/cluster/launcher.py says why not pip's).
install: venv
	python3 tools/cluster/launcher.py $(VENV)/bin/python3 /usr/local/bin/scrun src

packages:
	$(DEVCLUSTER) packages

# Host packages first (they include Debian's python3-venv, which the venv is built from), then
# scrun, then the lanes (a namespace lane's wheels are fetched with the venv's pip).
cluster: packages
	$(MAKE) --no-print-directory install
	$(DEVCLUSTER) up $(addprefix --lane ,$(LANES)) --nodes $(NODES) --scrun /usr/local/bin/scrun --pip $(VENV)/bin/pip

cluster-down:
	$(DEVCLUSTER) down

# The main job, on the host's own lane (or `make demo LANE=slurm-24.11`).
demo: cluster
	@$(DEVCLUSTER) exec --lane $(firstword $(LANES)) -- bash tools/demo.sh

unit: venv
	$(VENV)/bin/pytest -m unit $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests tools bench

# Unit tests once, then integration and e2e in every lane, side by side (each lane is a cluster
# of its own; one after another, three lanes would not fit CI's time), each with its own summary;
# a lane that fails does not stop the others, but fails the run. The last lines name every step
# that failed: CI keeps only the tail of the output.
test: cluster lint
	@failed=""; \
	CI=$${CI:-true} $(VENV)/bin/pytest -m unit $(PYTEST_ARGS) || failed="$$failed unit"; \
	rm -f $(addprefix .cache/junit-,$(addsuffix .xml,$(LANES) alone)); \
	echo "=== $(LANE_TIERS) on $(LANES), side by side ==="; \
	CI=$${CI:-true} $(DEVCLUSTER) test-lanes $(addprefix --lane ,$(LANES)) -- -m "($(LANE_TIERS)) and not alone" $(PYTEST_ARGS) \
	  || failed="$$failed lanes"; \
	echo "=== tests that stop and start another lane, on $(firstword $(LANES)) alone ==="; \
	CI=$${CI:-true} $(DEVCLUSTER) test --lane $(firstword $(LANES)) -- -m "alone" --junitxml=.cache/junit-alone.xml $(PYTEST_ARGS) \
	  || failed="$$failed alone"; \
	$(MAKE) --no-print-directory conformance-check || failed="$$failed conformance"; \
	if [ -n "$$failed" ]; then \
	  for lane in $(LANES) alone; do python3 tools/junit_failures.py .cache/junit-$$lane.xml $$lane; done; \
	  echo "=== make test FAILED:$$failed (each step's own summary is above) ==="; exit 1; fi; \
	echo "=== make test passed: unit, $(LANE_TIERS) and conformance on $(LANES) ==="

# The OCI runtime-tools suite against crun and scrun in every lane (tools/conformance.py): a table
# per program and the totals, results in bench/results/conformance-<lane>.json; fails on a
# difference that tests/conformance/expected-failures.txt does not list (or lists but is gone).
conformance: cluster conformance-check

conformance-check:
	@failed=""; for lane in $(LANES); do \
	  echo "=== conformance on $$lane ==="; \
	  $(DEVCLUSTER) python --lane $$lane -- tools/conformance.py --check tests/conformance/expected-failures.txt \
	    --json bench/results/conformance-$$lane.json || failed="$$failed $$lane"; \
	done; if [ -n "$$failed" ]; then echo "=== conformance FAILED on:$$failed ==="; exit 1; fi

# Each lane measures itself (with upstream's C scrun beside it where its Debian ships it), then
# one table side by side.
# The image cache's benchmark wants the ~870 MB image too (built once, loaded into every engine).
bench: export SCRUN_BIG_IMAGE = 1
bench: cluster
	@for lane in $(LANES); do echo "=== bench on $$lane ==="; $(DEVCLUSTER) python --lane $$lane -- bench/run.py || exit 1; \
	  $(DEVCLUSTER) python --lane $$lane -- bench/image_cache.py || exit 1; \
	  $(DEVCLUSTER) python --lane $$lane -- bench/startup.py || exit 1; done
	$(VENV)/bin/python bench/run.py --combine
	$(VENV)/bin/python bench/run.py --readme

# The cycle of another revision against the work tree, sampled in turns in each lane (bench/ab.py).
AB_BASE ?= HEAD~1
bench-ab: cluster
	rm -rf .cache/ab && mkdir -p .cache/ab && git archive $(AB_BASE) src | tar -x -C .cache/ab
	@for lane in $(LANES); do echo "=== A/B on $$lane: $(AB_BASE) (base) vs the work tree (head) ==="; \
	  $(DEVCLUSTER) python --lane $$lane -- bench/ab.py $(CURDIR)/.cache/ab/src || exit 1; done

# Many real podman runs and CLI cycles per lane, a leak check after every batch (bench/soak.py);
# not in `make test` (which runs a CI-sized one). SOAK_SEQUENTIAL / SOAK_CONCURRENT change the sizes.
soak: cluster
	@for lane in $(LANES); do echo "=== soak on $$lane ==="; $(DEVCLUSTER) python --lane $$lane -- bench/soak.py || exit 1; done

# N detached containers at once per lane (1 to 300; SCALE_COUNTS to change), one user then two:
# time to running, login-node PSS and CPU per container, RPCs, removal, leftovers (bench/scale.py).
bench-scale: cluster
	@for lane in $(LANES); do echo "=== scale on $$lane ==="; $(DEVCLUSTER) python --lane $$lane -- bench/scale.py || exit 1; \
	  $(DEVCLUSTER) python --lane $$lane -- bench/scale.py --anchors server || exit 1; done
	$(VENV)/bin/python bench/scale.py --readme

# Packages for a site (docs/admin-guide.md): dist/scrun_<version>_all.deb and dist/scrun-<version>-py3-none-any.whl.
deb:
	python3 tools/deb.py dist

wheel: venv
	$(VENV)/bin/pip wheel --no-deps --no-build-isolation --no-index -q -w dist .

# The man pages, written again from the code (tests/unit/test_manpages.py says when they are stale).
man: venv
	$(VENV)/bin/python tools/manpage.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
