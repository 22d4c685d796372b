# Every target creates or reuses .venv by itself, so a fresh machine needs only `make run` / `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build; on a machine with an NVIDIA GPU use e.g. `make TORCH="torch==2.13.0 --index-url <CUDA wheel index>"`.
TORCH ?= torch==2.13.0

.PHONY: run lint test bench fuzz models evaluate dist dist-check venv clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned, so the resolver never swaps in a multi-GB CUDA build for monai's sake.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: venv
	$(VENV)/bin/hounsfield --demo

# Lint and type-check first: ruff over the repository (under a second), mypy over the Qt-free packages viewer/core
# and inference (about 35 s on 2 idle cores from nothing, 1.5 s once .mypy_cache holds the libraries' types).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: venv lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# Every module of bench/__main__.py's BENCHES, each beside a reference measured in the same run: load, codecs, scan,
# view (slice changes), infer, compare (registration of a LIDC-sized pair, target <= 10 s on 2 cores), pacs (query,
# retrieve and send against a real Orthanc on loopback, beside dicomweb-client), batch (`hounsfield batch` on a local
# Ray runtime with 1 and 2 workers beside a plain loop, LIDC-sized phantoms; target <= 10 % overhead per series).
# One of them alone: `$(PY) -m bench bench_compare`.
bench: venv
	QT_QPA_PLATFORM=offscreen $(PY) -m bench

# Hostile input: a seeded mutation campaign over ../shared/data (2,500 mutated files across every transfer syntax
# plus the targeted cases of issue 10), each in a forked child with an address-space cap and a time limit; then
# 500 mutated SEGs opened over their series, and 500 mutated RT Structure Sets and SRs read over a volume. Prints
# the tables of outcomes; fails on any traceback, crash, hang or memory blow-up. About 4-5 min on 2 cores.
# CI runs a short seeded slice of each: tests/test_fuzz_slice.py.
FUZZ_SEED ?= 10
FUZZ_CASES ?= 2500
FUZZ_OBJECT_CASES ?= 500
fuzz: venv
	$(PY) -W ignore -m bench.fuzz --seed $(FUZZ_SEED) --cases $(FUZZ_CASES)
	$(PY) -W ignore -m bench.fuzz --seg --seed $(FUZZ_SEED) --cases $(FUZZ_OBJECT_CASES)
	$(PY) -W ignore -m bench.fuzz --reports --seed $(FUZZ_SEED) --cases $(FUZZ_OBJECT_CASES)

# Retrain the built-in models (seeded, ~2 h on 2 CPU cores): the shared network in two stages (the segmentation
# and the nodule detector's first stage), then the detector's second stage, the candidate classifier, calibrated on
# held-out phantoms. GPU=cuda adds the third stage the shipped weights had (5,500 steps of 8 patches: 5 min on an
# H200, some 6 h on 2 CPU cores) before the classifier.
SEG_BUNDLE := resources/models/chest_ct_lung_nodule_segmentation
GPU ?=
models: venv
	$(PY) -m inference.training.train_segmentation
	$(PY) -m inference.training.train_segmentation --init $(SEG_BUNDLE)/models/model.pt --steps 900 --lr 5e-4 \
		--nodule-fraction 0.8 --seed 1
	$(if $(GPU),$(PY) -m inference.training.train_segmentation --init $(SEG_BUNDLE)/models/model.pt --steps 5500 \
		--batch 8 --lr 5e-4 --nodule-fraction 0.7 --seed 3 --workers 16 --device $(GPU))
	$(PY) -m inference.training.train_nodule_classifier

# Evaluate both built-in models on the 60 evaluation phantoms (never trained or calibrated on) and on LIDC-IDRI-0001,
# and write the figures into their model cards (configs/metadata.json, hounsfield.metrics).
EVAL_MODELS := --model hounsfield-chest-ct-segmentation --model hounsfield-chest-ct-nodule-detection
evaluate: venv
	mkdir -p bench/out
	$(VENV)/bin/hounsfield evaluate $(EVAL_MODELS) --explain phantom:5000-5059 --card phantoms \
		--json bench/out/evaluation-phantoms.json
	$(VENV)/bin/hounsfield evaluate $(EVAL_MODELS) --explain ../shared/data/lidc-idri-0001 --card lidc_idri_0001 \
		--json bench/out/evaluation-lidc.json

# The desktop app: dist/hounsfield/ (one folder) and dist/hounsfield-<version>-linux-x86_64.tar.gz, from the CPU torch
# of the venv, offline. ~3 min on 2 cores; prints what each part of the bundle costs. See docs/install.md.
dist: venv
	$(PY) -c "import PyInstaller" 2>/dev/null || $(PY) -m pip install --quiet pyinstaller
	$(PY) packaging/build.py

# The release check: runs the frozen binary (never the venv) over every transfer syntax in ../shared/data, both
# built-in models, a screenshot and the GUI's --smoke-test, then times first window / first image against the venv.
dist-check:
	test -x dist/hounsfield/hounsfield || $(MAKE) dist
	$(PY) packaging/dist_check.py

clean:
	rm -rf $(VENV) build dist bench/out
