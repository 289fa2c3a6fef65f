# perceptual — reproducibility study of Johnson et al. (ECCV 2016)
#   make setup        create .venv and install (idempotent; fast when done)
#   make test         setup, then the offline test suite
#   make reproduce    train what is missing, evaluate, execute every notebook, build the book
#                     (PROFILE=paper when a CUDA GPU is present, else demo; PROFILE=… overrides)
#                     SMOKE=1: the paper profile's path in minutes (CI); GPUS=0,1,2,3: train the
#                     independent networks one per GPU; SLURM=1: as Slurm jobs (submitit);
#                     REPRODUCE_ARGS="--slurm-partition gpu --slurm-time 720": more options
#   make chapter NAME=objective   run one chapter's notebook (and what it needs)
#   make book         build the rendered book from executed notebooks
#   make publish      reproduce (PROFILE=demo by default here) and leave a static site in book/_build/html
#   make browser-test open every page of the built book in headless Chromium (apt-get install chromium)
#   make data DATASETS="set5 set14"     download datasets (verified, resumable)
#   make clean        remove generated results, executed notebooks and the built book
# DATA_ROOT=path points every consumer at a local mirror (e.g. ../shared/data; read-only: `make data`
# refuses to write into it).

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PROFILE ?=
SMOKE ?=
GPUS ?=
SLURM ?=
REPRODUCE_ARGS ?=
DATA_ROOT ?=
DATASETS ?= set5 set14 bsd100 styles content coco-val-sample

ifneq ($(strip $(DATA_ROOT)),)
export PERCEPTUAL_DATA_ROOT := $(abspath $(DATA_ROOT))
endif

.PHONY: setup test reproduce chapter book publish browser-test compare data data-status clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

reproduce: setup
	$(BIN)/perceptual reproduce $(if $(PROFILE),--profile $(PROFILE),) $(if $(SMOKE),--smoke,) \
	    $(if $(GPUS),--gpus $(GPUS),) $(if $(SLURM),--slurm,) $(REPRODUCE_ARGS)

chapter: setup
	@test -n "$(NAME)" || (echo "usage: make chapter NAME=<notebook name, e.g. objective>"; exit 2)
	$(BIN)/perceptual reproduce --only $(NAME) --no-book $(if $(PROFILE),--profile $(PROFILE),)

book: setup
	$(BIN)/perceptual book

# A static site for GitHub Pages or any web server (also opens from file://): book/_build/html,
# with .nojekyll. Loads nothing from the internet; MathJax comes from `apt-get install libjs-mathjax`.
publish: setup
	$(BIN)/perceptual reproduce --profile $(or $(PROFILE),demo)
	@test -f book/_build/html/.nojekyll && echo "publish: book/_build/html"

# how a fresh run (make reproduce PROFILE=cpu DATA_ROOT=…) differs from results/published/cpu
compare: setup
	$(BIN)/perceptual compare --profile $(or $(PROFILE),cpu)

browser-test: setup
	PERCEPTUAL_BOOK_HTML=book/_build/html $(BIN)/python -m pytest -q tests/test_book_browser.py

data: setup
	$(BIN)/perceptual data fetch $(DATASETS)

data-status: setup
	$(BIN)/perceptual data status

clean:
	rm -rf results/*/ results/*.csv results/*.json book/_build book/*.ipynb
