VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-slow bench figures docs readme-numbers clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sgd-dmft compare examples/demo.toml --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow --durations=15

bench: $(STAMP)
	$(PY) benchmarks/run.py

# one script per claim of the paper: out/figures/<name>/ (PNG + netCDF data + summary.json) only;
# `make figures PUBLISH=1` also replaces the tracked PNGs in docs/figures/
figures: $(STAMP)
	for f in examples/fig_*.py; do echo "== $$f"; $(PY) $$f $(if $(PUBLISH),--publish) || exit 1; done

# reference site (README, docs/*.md, API pages from the docstrings) -> site/; any warning fails
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# the README's numbers about runs vs the latest outputs (out/demo, out/figures, benchmarks/results.json)
readme-numbers: $(STAMP)
	$(PY) benchmarks/readme_numbers.py --check

clean:
	rm -rf out site .pytest_cache
