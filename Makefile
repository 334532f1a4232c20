# Set-up and run targets. `make demo` and `make test` are the README's two commands for a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= out

.PHONY: demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, from the exact pair that installs here (see shared environment notes)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $@

# Main job on the bundled samples: official VITON-HD sample -> shards -> validate -> contact sheet -> VITON-HD folders
demo: $(VENV)/.installed
	$(VENV)/bin/vitonprep convert vitonhd data/vitonhd-official $(OUT)/shards --overwrite
	$(VENV)/bin/vitonprep validate $(OUT)/shards
	$(VENV)/bin/vitonprep inspect $(OUT)/shards --out $(OUT)/contact_sheet.png
	$(VENV)/bin/vitonprep export $(OUT)/shards $(OUT)/vitonhd

test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

bench: $(VENV)/.installed
	$(PY) bench/bench_convert_validate.py

clean:
	rm -rf $(OUT)
