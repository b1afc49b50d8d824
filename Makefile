# Two commands set everything up on a fresh machine:
#   make serve   - .venv with the serving extra only, then the BentoML service on port 3000
#   make test    - .venv with everything, then the whole test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000
NER_MODEL_DIR ?= models/default
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export NER_MODEL_DIR

.PHONY: serve test install-serve install-dev default-model

# make default-model                 - the shipped from-scratch model: recipe chosen by CV, int8 ONNX in models/default
# make default-model BASE=ID_OR_DIR  - fine-tune that base model (CAMeLBERT, a local dir...) into models/$(NAME)
BASE ?=
NAME ?= $(if $(BASE),$(notdir $(patsubst %/,%,$(BASE))),default)
DATA ?= annotations/seeds.jsonl

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Stamp files re-run an install only when pyproject.toml changes.
$(VENV)/.serve-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[serve]'
	touch $@

# Debian's Chromium drives the /ui test in a real headless browser.
$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-core; }
	touch $@ $(VENV)/.serve-installed

install-serve: $(VENV)/.serve-installed
install-dev: $(VENV)/.dev-installed

serve: install-serve
	@test -f "$(NER_MODEL_DIR)/model.onnx" || { \
	  echo "No model in $(NER_MODEL_DIR)/ (model.onnx missing)."; \
	  echo "Build the default one with 'make default-model', or point NER_MODEL_DIR at an exported model directory."; \
	  exit 1; }
	$(VENV)/bin/bentoml serve serving.service:NERService --port $(PORT)

test: install-dev
	$(PY) -m pytest

default-model: install-dev
ifeq ($(BASE),)
	$(PY) -m training.build_default --data $(DATA) --output models/default --trained-output runs/default-hf
else
	$(PY) -m training.train --data $(DATA) --base-model $(BASE) --output runs/$(NAME)-hf --cv --overwrite
	$(PY) -m training.export --model runs/$(NAME)-hf --output models/$(NAME) --force
endif
