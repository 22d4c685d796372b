# Every target creates or reuses .venv by itself, so a fresh machine needs only `make run` / `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build; on a machine with an NVIDIA GPU use e.g. `make TORCH="torch==2.13.0 --index-url <CUDA wheel index>"`.
TORCH ?= torch==2.13.0

.PHONY: run test bench dist venv clean

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

test: venv
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: venv
	QT_QPA_PLATFORM=offscreen $(PY) -m bench

dist: venv
	$(PY) -m pip install --quiet pyinstaller
	$(PY) -m PyInstaller --noconfirm packaging/hounsfield.spec

clean:
	rm -rf $(VENV) build dist bench/out
