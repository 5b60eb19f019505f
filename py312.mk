# Python 3.12, included by the Makefile: Axolotl 0.19's train image and vLLM's eval image run the
# steps under Python 3.12, so `make test` runs the steps' entry points and pure-function tests under
# it too, in .venv312 (installed as .venv is: constraints.txt, extras eval,train,dev; the few pins
# Python 3.12 needs otherwise are in constraints-py312.txt).
# Which python3.12: PYTHON312=/path/to/python3.12 if given, else the first that starts and is 3.12
# of pyenv's ($(pyenv root)/versions/3.12.*) and python3.12 on PATH (pyenv's shim there fails unless
# pyenv selects 3.12, hence the start check). Without one, test-py312 says so in one line and passes.
VENV312 ?= .venv312
PY312 := $(VENV312)/bin/python
STAMP312 := $(VENV312)/.installed
ifeq ($(origin PYTHON312),undefined)
PYTHON312 := $(shell for candidate in "$$(pyenv root 2>/dev/null)"/versions/3.12.*/bin/python3.12 \
	"$$(command -v python3.12)"; do "$$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' \
	>/dev/null 2>&1 && { echo "$$candidate"; break; }; done)
endif
# What runs there (under 2 minutes on 2 cores once .venv312 exists; creating it downloads about 4 GB):
# every step's --help, imports and strict compile, and the tests of the steps' functions and of what
# they use (Axolotl's validation of the shipped configs included). Not the runner's end-to-end tests
# (test_verdict: the workflow code runs in the light image's 3.11) nor, for time, the CPU training
# ones (marker axolotl: the smoke e2e alone takes 6 minutes; run them with PY312_MARKERS=axolotl
# PY312_TESTS="tests/test_train.py tests/test_merge_lora.py tests/test_smoke_e2e.py"). Not the 2-node
# smoke: without a GPU driver, PyPI's CUDA torch makes Axolotl's multi-process P2P probe fail
# (torch.cuda.can_device_access_peer raises RuntimeError where the CPU build raises the AssertionError
# Axolotl catches); on a GPU node it is fine.
PY312_TESTS ?= $(addprefix tests/test_,$(addsuffix .py,step_entry_points step_common convert_dataset \
	estimate_memory prefetch_model train_inputs train_support train_nodes merge_inputs axolotl_configs \
	plan_eval eval_mmlu_pro eval_engine_costs eval_assets vllm_settings mmlu_pro_data mmlu_pro_extract \
	mmlu_pro_prompt mmlu_pro_conformance rescore stats uncertainty history_trend aggregate score_manifest \
	upload upload_card upload_hub upload_support containers))
PY312_MARKERS ?= not axolotl

.PHONY: test-py312 test-py312-logged clean-py312

# What `make test` runs beside the 3.11 suite: test-py312 into a log, so the suite's progress stays readable.
PY312_LOG := build/test-py312.log
test-py312-logged:
	@mkdir -p $(dir $(PY312_LOG))
	@$(MAKE) --no-print-directory test-py312 > $(PY312_LOG) 2>&1

ifeq ($(PYTHON312),)
test-py312:
	@echo "test-py312: skipped, no Python 3.12 found (pyenv's versions/3.12.*, python3.12 on PATH; or set PYTHON312=)"
else
test-py312: $(STAMP312)
	$(PY312) -m pytest -q -m "$(PY312_MARKERS)" $(PY312_TESTS)

# constraints-py312.txt's pins replace constraints.txt's for the packages it names.
$(STAMP312): pyproject.toml constraints.txt constraints-py312.txt
	test -x $(PY312) || $(PYTHON312) -m venv $(VENV312)
	grep -v -i -E "^($$(sed -n -E 's/^([A-Za-z0-9._-]+)==.*/\1/p' constraints-py312.txt | paste -sd'|' -))==" \
		constraints.txt | cat - constraints-py312.txt > $(VENV312)/constraints.txt
	$(PY312) -m pip install --quiet --upgrade pip
	$(PY312) -m pip install --quiet -c $(VENV312)/constraints.txt -e ".[eval,train,dev]"
	touch $(STAMP312)
endif

clean: clean-py312
clean-py312:
	rm -rf $(VENV312)
