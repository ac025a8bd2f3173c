# Two commands set everything up on a fresh clone:
#   make train   - create .venv, install jaxcnn, train LeNet-5 on the embedded MNIST
#   make test    - create .venv, install jaxcnn[dev], run the test suite
# Versions come from constraints.txt (the set this repo was tested with).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Per-test-file time is dominated by XLA compiles; keep the suite on all cores.
PYTEST_ARGS ?=

.PHONY: train test install install-dev bench smoke clean notebooks

$(VENV)/.base: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q -c constraints.txt -e .
	# Compile the oneDNN convolution kernels now rather than in the first step (jaxcnn/native).
	$(PY) -m jaxcnn.native || echo "jaxcnn: oneDNN kernels not built; convolutions use XLA's"
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

train: $(VENV)/.base
	$(PY) -m jaxcnn train

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(PY) -m jaxcnn bench

clean:
	rm -rf $(VENV) .pytest_cache
