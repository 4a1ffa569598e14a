# The two commands a fresh machine needs (see README.md):
#   make demo   -> sets up .venv and runs `modelport port` on the shipped MNIST model
#   make test   -> sets up .venv and runs lint, type checks and the whole test suite
VENV  ?= .venv
STAMP := $(VENV)/.modelport-installed
BIN   := $(VENV)/bin

.PHONY: setup corpus demo test lint typecheck pytest clean

setup: $(STAMP) corpus

# The corpus test subset (9 real models, see benchmarks/corpus/README.md): restored if its cache was deleted;
# under a second when every file is there (sha256-checked).
corpus: $(STAMP)
	$(BIN)/python benchmarks/corpus/provision.py --subset tests >/dev/null

$(STAMP): pyproject.toml scripts/setup_env.sh
	bash scripts/setup_env.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/modelport port -o out/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy src

pytest: $(STAMP) corpus
	$(BIN)/python -m pytest --durations=25

test: lint typecheck pytest

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
