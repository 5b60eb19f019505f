# tunebench: `make demo` runs the whole pipeline locally on a CPU; `make test` runs every test.
PYTHON_VERSION ?= 3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export AXOLOTL_DO_NOT_TRACK ?= 1
export WANDB_MODE ?= disabled
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-py311 demo demo-trend lint-configs render constraints crds clean

install: $(STAMP)

# Re-install only when what pins the environment changes.
$(STAMP): pyproject.toml constraints.txt
	@command -v python$(PYTHON_VERSION) >/dev/null || { echo "python$(PYTHON_VERSION) is required (see README)"; exit 1; }
	test -x $(PY) || python$(PYTHON_VERSION) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[eval,train,dev]"
	touch $(STAMP)

# `make test`: .venv, then two jobs side by side: the static checks and the Python 3.11 suite, and test-py312
# (its install mostly waits on downloads). test-py312 writes to a log, printed after the suite's output.
test: install
	@rm -f $(PY312_LOG); $(MAKE) --no-print-directory -j2 test-py311 test-py312-logged; status=$$?; \
		cat $(PY312_LOG) 2>/dev/null; exit $$status

# pytest-xdist: TEST_WORKERS processes (0: none, all in pytest's own), each given whole test files (a module's
# fixtures are built once) in collection order (conftest.py puts the minute-long Axolotl files first).
TEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-py311: install static-check
	$(PY) -m pytest -q $(PYTEST_PARALLEL)

# ruff's small rule set over all the Python, mypy over workflows/ and steps/ (pyproject.toml has both
# configurations; mypy's cache keeps a rerun to seconds).
static-check: install
	$(VENV)/bin/ruff check workflows steps tests benchmarks
	$(VENV)/bin/mypy

# The tiny model and data are built locally (no downloads); a second `make demo` resumes
# from .demo and reuses every finished task (`rm -rf .demo` starts over).
demo: install
	$(PY) -m steps.tiny_assets --out build/demo-assets
	$(VENV)/bin/tunebench run configs/pipelines/smoke.yaml --workdir .demo

# Another run of the demo on its volumes (history included), as a second run on one cluster:
# --new-run starts a new workflow in .demo instead of resuming; it prints trend.png's path.
demo-trend: demo
	$(VENV)/bin/tunebench run configs/pipelines/smoke.yaml --workdir .demo --new-run
	$(VENV)/bin/tunebench history .demo/volumes/workspace/history/mmlu-pro --subject math

render: install
	$(VENV)/bin/tunebench render configs/pipelines/gemma2-2b-acereason-math.yaml --kind all

# Regenerate the CRD schemas `tunebench lint` ships (workflows/crds/) from the CRDs in ../shared.
CRDS ?= ../shared/data/crds
crds: install
	$(PY) -m workflows.crd $(CRDS)

# Regenerate the pins from the current venv (after a deliberate upgrade).
constraints:
	{ echo "# Pinned versions of everything \`make install\` puts in .venv (Python 3.11, CPU)."; \
	  echo "# Regenerate with: make constraints"; \
	  $(PIP) freeze --exclude-editable | grep -v '^tunebench' | sed 's/+cpu$$//'; } > constraints.txt

clean:
	rm -rf $(VENV) .demo .demo-2 build *.egg-info

include py312.mk
