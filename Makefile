# seqtasks — `make help` lists the targets.
# The two commands a new machine needs:  make train-recipe   and   make test   (each installs first).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
RECIPE ?= music-bach
ARGS ?=
export SEQTASKS_CACHE_DIR ?= $(CURDIR)/runs/cache
# word vectors the NER recipes start from: skip-gram on CoNLL-2003 training tokens and IMDB reviews
NER_VECTORS := runs/vectors/conll-imdb-100d.txt
NER_VECTORS_EPOCHS ?= 1

.DEFAULT_GOAL := help
.PHONY: help install train-recipe vectors test test-fast lint format bench bench-overhead bench-options bench-inference bench-stream bench-scaling bench-vectors clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv: torch ($(TORCH_SPEC)) first, then seqtasks with [dev]

train-recipe: install $(if $(filter ner-conll2003%,$(RECIPE)),$(NER_VECTORS)) ## train recipes/$(RECIPE).yaml (RECIPE=name, ARGS="--trainer.max_epochs 1 ...")
	$(BIN)/seqtasks fit --config recipes/$(RECIPE).yaml $(ARGS)

$(NER_VECTORS): | $(VENV)/.installed
	$(BIN)/seqtasks word-vectors --text eriktks/conll2003:tokens:train --text stanfordnlp/imdb:text:train,test \
		--epochs $(NER_VECTORS_EPOCHS) --out $@

vectors: $(NER_VECTORS) ## word vectors for the NER recipes (SEQTASKS_DATA_DIR, else the Hub; ~10 min)

# the forward and backward character LMs of recipes/ner-conll2003-lm.yaml (contextual string embeddings):
# each trained by its recipe (35 min each on a 2-core CPU, the two side by side with OMP_NUM_THREADS=1 and
# make -j2 lms; LM_ARGS="--trainer.max_steps 300 ..." for a smoke run),
# its best checkpoint (by validation NLL) copied to runs/lm/<recipe>.ckpt
NER_LMS := runs/lm/lm-news-char.ckpt runs/lm/lm-news-char-backward.ckpt
LM_ARGS ?=
.PHONY: lms
train-recipe: $(if $(filter ner-conll2003-lm,$(RECIPE)),$(NER_LMS))
# the word-level LM the sentiment-*-lm recipes fine-tune from (ULMFiT), made the same way
train-recipe: $(if $(filter sentiment-imdb-lm sentiment-stars-lm,$(RECIPE)),runs/lm/lm-imdb-word.ckpt)

runs/lm/%.ckpt: | $(VENV)/.installed
	$(BIN)/seqtasks fit --config recipes/$*.yaml --trainer.logger.init_args.save_dir runs/lm/$*-run $(LM_ARGS)
	best=$$(find runs/lm/$*-run -name 'best-*.ckpt' -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-); \
		test -n "$$best" || { echo "no best-*.ckpt under runs/lm/$*-run (did the run validate?)"; exit 1; }; \
		cp "$$best" $@

lms: $(NER_LMS) ## the two character LMs of ner-conll2003-lm (contextual string embeddings; ~1 h, when missing)

test: install ## run the test suite (real-data tests run when SEQTASKS_DATA_DIR is set)
	$(BIN)/python -m pytest

test-fast: install ## tests without the real-data ones
	$(BIN)/python -m pytest -m "not realdata"

lint: install ## ruff lint and format check
	$(BIN)/ruff check seqtasks tests benchmarks
	$(BIN)/ruff format --check seqtasks tests benchmarks

format: install ## ruff format and autofix
	$(BIN)/ruff format seqtasks tests benchmarks
	$(BIN)/ruff check --fix seqtasks tests benchmarks

bench: install $(NER_VECTORS) ## one table for the four tasks into benchmarks/RESULTS.md (idle machine; 15–50 min on 2 cores; ARGS="--quick")
	$(BIN)/python benchmarks/bench.py --results benchmarks/RESULTS.md $(ARGS)

bench-overhead: install ## what the pipeline adds to a step: recipe, no task work, no loader, each vs the plain loop (~4 min; ARGS="--tasks ner")
	$(BIN)/python benchmarks/overhead.py $(ARGS)

bench-options: install $(NER_VECTORS) ## what each speed option (fused/sparse optimizer, bf16, compile) buys a training step
	$(BIN)/python benchmarks/speed_options.py $(ARGS)

bench-inference: install ## inference: files, server latency, cold start, ONNX (CLASSIFIER= TAGGER= TRANSLATOR= COMPOSER= checkpoints)
	$(BIN)/python benchmarks/inference.py $(if $(CLASSIFIER),--classifier $(CLASSIFIER)) \
		$(if $(TAGGER),--tagger $(TAGGER)) $(if $(TRANSLATOR),--translator $(TRANSLATOR)) \
		$(if $(MT_SET),--translation-set $(MT_SET)) $(if $(COMPOSER),--composer $(COMPOSER)) $(ARGS)

bench-stream: install ## a 2M-pair streamed corpus through translation-iitb; 1 vs 2 processes (~40 min; ARGS="--quick")
	$(BIN)/python benchmarks/stream_scale.py $(ARGS)

bench-scaling: install ## scaling curves: tokens/s and memory vs length, batch, hidden size per cell; epoch vs corpus size (~7 min)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/scaling.py --threads 1 $(ARGS)

bench-vectors: install ## word vectors: seqtasks' skip-gram vs gensim Word2Vec / FastText, time and quality (~15 min)
	$(BIN)/python benchmarks/word_vectors.py $(ARGS)

clean: ## remove the virtual environment and caches (runs/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache
