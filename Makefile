# Cartoon lookalike on the edge: the user's front door.
# First use of any target creates .venv from the pinned dependencies in pyproject.toml.
#   make demo          train -> convert -> benchmark -> lookalike card for a sample face
#   make test          the test suite (workstation venv, then the device-only venv)
#   make detector      fetch the YuNet face detector once (small faces); else the device uses Haar
#   make traits FACES=dir   rebuild the face-trait head from labelled faces, then the model and its match
# Variables pass through: make train DATA=path/to/classes WEIGHTS=path/to/weights.h5

PYTHON ?= python3
VENV ?= .venv
EDGE_VENV ?= .venv-edge
BIN := $(VENV)/bin
MODELS ?= models
REPORTS ?= reports

# Pretrained backbone: WEIGHTS=path, else $LOOKALIKE_WEIGHTS, else the copy in this workplace's
# ../shared/weights when present, else Keras downloads ImageNet weights (needs internet).
SHARED_WEIGHTS := $(wildcard ../shared/weights/mobilenet_v2_1.0_224_no_top.weights.h5)
WEIGHTS ?= $(or $(LOOKALIKE_WEIGHTS),$(SHARED_WEIGHTS))
DATA ?=
VAL ?=
EPOCHS ?=
SIZE ?=
# Latency yardstick for the benchmark: Google's int8 MobileNetV2, when this workplace's copy exists.
SHARED_REFERENCE := $(wildcard ../shared/anchors/tf2_mobilenet_v2_1.0_224_ptq.tflite)
REFERENCE ?= $(SHARED_REFERENCE)
COMPARE ?=
# Faces labelled in CelebA's format (the face-trait head, the match's trait weights, the trait checks):
# FACES=path, else this workplace's ../shared/datasets/celeba-dev when present, else none.
SHARED_FACES := $(patsubst %/list_attr_celeba.txt,%,$(wildcard ../shared/datasets/celeba-dev/list_attr_celeba.txt))
FACES ?= $(SHARED_FACES)
# The YuNet detector frames faces for the trait head besides Haar: TRAITS_DETECTOR=path, else DETECTOR,
# else this workplace's ../shared/models copy when present, else the one 'make detector' cached (haar: Haar alone).
SHARED_DETECTOR := $(firstword $(wildcard ../shared/models/face_detection_yunet_*.onnx))
TRAITS_DETECTOR ?= $(or $(DETECTOR),$(SHARED_DETECTOR))
SOURCE ?= 0
DETECTOR ?=
FACE ?=
CARD ?= $(REPORTS)/lookalike_card.png
ARGS ?=

train_args = --models $(MODELS) $(if $(DATA),--data $(DATA)) $(if $(VAL),--val $(VAL)) \
	$(if $(WEIGHTS),--weights $(WEIGHTS)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
	$(if $(SIZE),--size $(SIZE))

.PHONY: setup train convert benchmark camera serve card detector demo test test-fast test-edge clean traits tune-match

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,edge,dev]'
	touch $@

$(EDGE_VENV)/.installed: edge/requirements.txt
	$(PYTHON) -m venv $(EDGE_VENV)
	$(EDGE_VENV)/bin/pip install --quiet --upgrade pip
	$(EDGE_VENV)/bin/pip install --quiet -r edge/requirements.txt pytest==9.2.0
	touch $@

train: setup
	$(BIN)/python -m train $(train_args) $(ARGS)

convert: setup
	$(BIN)/python -m convert --models $(MODELS) $(if $(FACES),--faces $(FACES)) $(ARGS)

benchmark: setup
	$(BIN)/python -m benchmarks --models $(MODELS) --out $(REPORTS) $(if $(REFERENCE),--reference $(REFERENCE)) \
		$(if $(COMPARE),--compare $(COMPARE)) $(if $(DETECTOR),--detector $(DETECTOR)) \
		$(if $(FACES),--labelled-faces $(FACES)) $(ARGS)

# Rebuild the face-trait head from labelled faces (data/face-traits/trait_head.npz), then the model
# with it, then tune the match's trait weights on the faces' validation split (data/face-traits/match.json).
traits: setup
	@test -n "$(FACES)" || { echo "error: make traits needs FACES=path/to/labelled/faces (CelebA's format)" >&2; exit 2; }
	$(BIN)/python -m train.traits --faces $(FACES) $(if $(WEIGHTS),--weights $(WEIGHTS)) \
		$(if $(TRAITS_DETECTOR),--detector $(TRAITS_DETECTOR))
	$(BIN)/python -m train $(train_args)
	$(BIN)/python -m convert --models $(MODELS) --faces $(FACES)
	$(BIN)/python -m train.match --faces $(FACES) --models $(MODELS)

# Only the last step: tune the trait weights for the model in $(MODELS).
tune-match: setup
	@test -n "$(FACES)" || { echo "error: make tune-match needs FACES=path/to/labelled/faces (CelebA's format)" >&2; exit 2; }
	$(BIN)/python -m train.match --faces $(FACES) --models $(MODELS)

camera: setup
	$(BIN)/python -m edge --models $(MODELS) --source $(SOURCE) $(if $(DETECTOR),--detector $(DETECTOR)) $(ARGS)

# The live view in a browser (http://127.0.0.1:8000/); ARGS="--host 0.0.0.0 --token SECRET" to share it.
serve: setup
	$(BIN)/python -m edge --serve --models $(MODELS) --source $(SOURCE) $(if $(DETECTOR),--detector $(DETECTOR)) $(ARGS)

card: setup
	$(BIN)/python -m edge --models $(MODELS) $(if $(FACE),$(FACE),--astronaut) --card $(CARD) --no-window \
		$(if $(DETECTOR),--detector $(DETECTOR)) $(ARGS)

# The YuNet face detector (small and turned faces), once, on a connected machine: downloaded from the
# OpenCV model zoo and checked against its sha256, into ~/.cache/cartoon-lookalike (or $LOOKALIKE_CACHE).
# YUNET=path/to/face_detection_yunet_*.onnx installs a file you already have instead.
YUNET ?=
detector: setup
	$(BIN)/python -m edge detector $(if $(YUNET),--install $(YUNET),--fetch)

demo: train convert benchmark card
	@echo "Report: $(REPORTS)/benchmark.md   Lookalike card: $(CARD)"

# The device tests (tests/edge) run once, in the device-only venv: that is where they prove something.
test: setup $(EDGE_VENV)/.installed
	$(BIN)/python -m pytest --ignore=tests/edge
	$(EDGE_VENV)/bin/python -m pytest tests/edge -p no:cacheprovider

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

test-edge: $(EDGE_VENV)/.installed
	$(EDGE_VENV)/bin/python -m pytest tests/edge -p no:cacheprovider

clean:
	rm -rf $(MODELS)/*.keras $(MODELS)/*.tflite $(MODELS)/*.json $(MODELS)/*.npz $(MODELS)/*.png \
		$(MODELS)/*.txt $(MODELS)/characters $(filter-out $(REPORTS)/README.md,$(wildcard $(REPORTS)/*))
