# Two commands set everything up on a fresh clone:
#   make train   - create .venv, install jaxcnn, train LeNet-5 on the embedded MNIST
#   make test    - create .venv, install jaxcnn[dev], run the test suite (all but the slow tests)
# Versions come from constraints.txt (the set this repo was tested with).
# Also:
#   make test-slow   - the tests marked slow (real trainings, kill -9 inside a save, the soak
#                      test, big-model NNX equality, the accelerator check's CPU run)
#   make test-oldest - a second venv (.venv-oldest) with the oldest jax/jaxlib/flax/optax/
#                      orbax-checkpoint that pyproject.toml allows; runs OLDEST_TESTS there
#   make notebooks   - execute every colab/*.ipynb top to bottom in quick mode (nbclient)
#   make wheel       - dist/jaxcnn-*.whl, to upload next to a Colab notebook

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Per-test-file time is dominated by XLA compiles; keep the suite on all cores.
PYTEST_ARGS ?=

# The oldest versions pyproject.toml's lower bounds claim; `make test-oldest` tests them.
OLDEST_PINS := jax==0.10.0 jaxlib==0.10.0 flax==0.12.0 optax==0.2.5 orbax-checkpoint==0.12.0
OLDEST_VENV := .venv-oldest
# What the oldest set must pass (a few minutes): the functional ops, the Flax modules,
# the models, the train steps (jit, pmap, sharded), optimizers and Orbax checkpoints.
OLDEST_TESTS ?= tests/functional/test_conv.py tests/functional/test_batch_norm.py \
	tests/functional/test_pool.py tests/nn tests/models/test_small_models.py \
	tests/train/test_state_steps.py tests/train/test_parallel.py tests/train/test_optim.py \
	tests/train/test_checkpoint.py

.PHONY: train test test-slow test-oldest install install-dev bench smoke clean notebooks wheel

$(VENV)/.base: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# setuptools >= 77 (pyproject's build backend) also builds jaxcnn without build isolation,
	# as tests/test_packaging.py does to read jaxcnn's install plan offline.
	$(PIP) install -q --upgrade "pip>=24" "setuptools>=77"
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

# `make test` takes about 12 minutes on this project's 2-core machine; CI runs both.
test: $(VENV)/.dev
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(VENV)/.dev
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# constraints.txt with the five pins replaced by the oldest ones; everything else as tested.
$(OLDEST_VENV)/.done: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install -q --upgrade "pip>=24" "setuptools>=77"
	grep -vE '^(jax|jaxlib|flax|optax|orbax-checkpoint)==' constraints.txt > $(OLDEST_VENV)/constraints.txt
	for pin in $(OLDEST_PINS); do echo $$pin >> $(OLDEST_VENV)/constraints.txt; done
	$(OLDEST_VENV)/bin/pip install -q -c $(OLDEST_VENV)/constraints.txt -e '.[dev]'
	touch $@

test-oldest: $(OLDEST_VENV)/.done
	$(OLDEST_VENV)/bin/python -c "import jax, jaxlib, flax, optax, orbax.checkpoint as o; print('oldest set: jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax-checkpoint', o.__version__)"
	$(OLDEST_VENV)/bin/python -m pytest $(OLDEST_TESTS) $(PYTEST_ARGS)

# Executes each notebook in a fresh kernel of the venv's python (JAXCNN_NOTEBOOK_QUICK=1,
# headless matplotlib); fails on the first cell that raises. NOTEBOOKS_ARGS=--write keeps the outputs.
NOTEBOOKS_ARGS ?=
notebooks: $(VENV)/.dev
	$(PY) colab/execute_notebooks.py $(NOTEBOOKS_ARGS)

wheel: $(VENV)/.base
	$(PIP) wheel -q --no-deps --no-build-isolation -w dist .
	@ls dist/jaxcnn-*.whl

bench: $(VENV)/.dev
	$(PY) -m jaxcnn bench

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache dist
