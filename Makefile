# Set-up and run targets. `make demo` and `make test` are the README's two commands for a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= out

.PHONY: demo train-demo lint test test-slow bench bench-model bench-train bench-reference eval-quality clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, from the exact pair that installs here (see shared environment notes)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[train,ray,reference,eval,dev]'
	touch $@

# Main job on the bundled samples: raw photos -> shards (quality-checked, validated, contact sheet, VITON-HD
# folders) and their HTML report, then the official VITON-HD sample converted and validated.
demo: $(VENV)/.installed
	$(VENV)/bin/vitonprep build data/samples $(OUT)/shards --workers 2 --export-vitonhd $(OUT)/vitonhd --overwrite
	$(VENV)/bin/vitonprep inspect $(OUT)/shards --html $(OUT)/report
	$(VENV)/bin/vitonprep convert vitonhd data/vitonhd-official $(OUT)/official --overwrite
	$(VENV)/bin/vitonprep validate $(OUT)/official
	$(VENV)/bin/vitonprep inspect $(OUT)/official --out $(OUT)/official_sheet.png

# CPU smoke training on the shards `make demo` wrote: tiny StableVITON, 50 steps, checkpoint + sample grids in
# out/train-tiny (random weights: the grids show noise turning into structure, not try-on results)
train-demo: demo
	$(VENV)/bin/vitontrain fit --config tiny --resume none

# ruff over the whole tree (rules in pyproject.toml), and a type check of the contracts other code is written against:
# the public API and the back-end protocols and registry
TYPED := vitonprep/api.py vitonprep/backends/protocols.py vitonprep/backends/registry.py
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m mypy $(TYPED)

test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]  # exit 5: no slow test selected

bench: $(VENV)/.installed
	$(PY) bench/bench_convert_validate.py
	$(PY) bench/bench_build.py
	$(PY) bench/bench_backends_mediapipe.py
	$(PY) bench/bench_derive.py
	$(PY) bench/bench_parsing.py

# full-size StableVITON: one training step + checkpoint save + strict reload, peak RSS per phase: minutes, ~12 GiB
bench-model: $(VENV)/.installed
	$(PY) bench/bench_model.py --save

# data pipeline (shard stream vs an official-style folder loader) and tiny training steps (data wait vs compute)
bench-train: $(VENV)/.installed
	$(PY) bench/bench_data.py
	$(PY) bench/bench_train_step.py

# the quality checks against the graded evaluation set (data/eval): extracts the public example photos from clones
# of CatVTON, OOTDiffusion and IDM-VTON at the recorded commits (skips without them), builds, reports tuned and
# held-out figures side by side
eval-quality: $(VENV)/.installed
	$(PY) bench/eval_set.py
	$(PY) bench/quality_eval.py --part tuned,held_out,held_out_v2

# reference back-ends (DensePose, SCHP, OpenPose ports, random weights, full size) beside the originals' times
bench-reference: $(VENV)/.installed
	$(PY) bench/bench_reference_backends.py

clean:
	rm -rf $(OUT)
