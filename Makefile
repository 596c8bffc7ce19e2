# raystack: two commands for a fresh machine, `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.raystack-installed
# The CPU wheel of torch lies on disk on this kind of machine; an unpinned torch would
# pull several GB of CUDA libraries, so it goes in first where no GPU is present.
TORCH_CPU ?= torch==2.13.0
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
PYTEST_ARGS ?=

.PHONY: install test demo lint bench test-gpu-extras clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@start=$$(date +%s); \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	if [ -z "$(HAS_CUDA)" ]; then $(PY) -m pip install -q $(TORCH_CPU); fi; \
	$(PY) -m pip install -q -e '.[test,dev]'; \
	echo "install: $$(( $$(date +%s) - start )) s, venv $$(du -sh $(VENV) | cut -f1)"
	@touch $(STAMP)

test: install browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Debian's chromium opens the HTML report in the tests (headless); best effort, so a
# machine without apt or root still runs the rest of the suite (that one test then skips).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1) \
	  || echo "note: chromium could not be installed; the report's browser test will be skipped"; }

demo: install
	$(PY) jobs/demo.py --out demo-out

lint: install
	$(VENV)/bin/ruff check raystack jobs bench tests

# A second venv (.venv-gpu-extras, ~7 GB) with torch 2.14.1 + torchvision + ptlflow runs
# the ptlflow adapter for real on CPU; the main suite never needs it.
test-gpu-extras:
	bash infra/gpu-extras/run.sh

clean:
	rm -rf $(VENV) .venv-gpu-extras demo-out .pytest_cache
