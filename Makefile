# Two entry points: `make demo` and `make test`. Both work on a bare machine with Python 3.11 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
DEMO_DIR ?= demo-output
# The PP-OCRv4 ONNX models (inside the wheel); its own dependencies are not wanted (see pyproject).
OCR_MODELS := rapidocr-onnxruntime==1.4.4

.PHONY: demo test lint typecheck pytest bench bench-pixels clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[ocr,codecs,progress,crosswalk,dask,cloud]"
	$(BIN)/python -m pip install --quiet --no-deps $(OCR_MODELS)
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,ocr,codecs,progress,crosswalk,dask,cloud]"
	$(BIN)/python -m pip install --quiet --no-deps $(OCR_MODELS)
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(BIN)/python scripts/demo.py $(DEMO_DIR)

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

pytest: $(STAMP_DEV)
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP_DEV)
	$(BIN)/python benchmarks/bench_attributes.py

bench-pixels: $(STAMP_DEV)
	$(BIN)/python benchmarks/bench_pixels.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
