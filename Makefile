# mobilenet-serverless: `make demo` runs the whole stack on localhost, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Hosting platforms export PORT to the app they run (Heroku, Render, Cloud Run), and `make demo` took it for its own.
# Only PORT= on make's command line (or make -e) moves the demo off 8000.
ifeq ($(origin PORT),environment)
PORT := 8000
endif
PORT ?= 8000
# tcsh exports HOST, this machine's name, to every program it runs, and `make demo` took it for the address to bind
# (then refused it as not loopback). Only HOST= on make's command line (or make -e) says where the demo listens.
ifeq ($(origin HOST),environment)
HOST := 127.0.0.1
endif
HOST ?= 127.0.0.1
RUNTIME ?= inprocess
# Loopback only unless asked: `make demo HOST=0.0.0.0 ALLOW_REMOTE=1` exposes the demo beyond this machine.
ALLOW_REMOTE ?=
# The stage's throttling (apiThrottleRateLimit/BurstLimit) applies to /predict, as in the cloud; STAGE_THROTTLE=0
# lifts it, e.g. to drive the demo with a load generator.
STAGE_THROTTLE ?= 1
# python -m local's --log-level when set (info shows the API's access log). Not LOG_LEVEL: a shell's LOG_LEVEL is
# the Lambda function's level (Powertools reads it), and a developer's exported one must not move the server's too.
SERVER_LOG_LEVEL ?=
# A yes/no variable (ALLOW_REMOTE, INT8, STAGE_THROTTLE, and CI from the environment) is on when set to anything but
# empty, 0, false, no or off, in any case: ALLOW_REMOTE=False must not expose the demo, nor INT8=0 ship the int8
# graph, nor CI=false fail a developer's run. tests/ci.py reads CI by the same rule.
on = $(filter-out 0 FALSE NO OFF,$(call upper,$(strip $(1))))
# A variable's value as one shell word, whatever it holds: a quote typed into PORT= or HOST= ended the quoting early,
# and bash's "unexpected EOF while looking for matching `''" came instead of what python -m local says of the value.
quote = '$(subst ','\'',$(strip $(1)))'
# HOST as python -m local names it in its URLs: an IPv6 literal in brackets (http://[::1]:8000, not http://::1:8000),
# and every interface (0.0.0.0, ::) as the loopback address of that family, where the stack reaches itself. An IPv6
# address of nothing but zeros, colons and dots is ::, however spelt (::0, 0:0:0:0:0:0:0:0, ::0.0.0.0). localhost, in
# any case, is the IPv4 address the stack binds for it (a name is bound over IPv4) and prints, 127.0.0.1.
url_host = $(if $(filter 0.0.0.0 LOCALHOST LOCALHOST.,$(call upper,$(1))),127.0.0.1,$(if $(findstring :,$(1)),$(if $(subst 0,,$(subst :,,$(subst .,,$(1)))),[$(1)],[::1]),$(1)))
# PORT=0 has python -m local take a free port, which it prints as it starts: http://127.0.0.1:0 is no address to open.
url_port = $(if $(filter 0,$(1)),<a free port>,$(1))
# Weights: torchvision's own download unless a local state_dict is named. The shared offline copy is used
# when it exists and nothing else was asked, so a machine without internet still builds the real model.
SHARED_WEIGHTS := ../shared/weights/mobilenet_v2_imagenet.pth
MODEL_WEIGHTS ?= $(if $(wildcard $(SHARED_WEIGHTS)),$(abspath $(SHARED_WEIGHTS)),)
export MODEL_WEIGHTS

# make's variables are case-sensitive: `make demo port=8001` was silently ignored and the demo started on 8000,
# `make test pytest_args=-x` ran everything. A command-line variable that is one of ours in another case is refused.
SETTINGS := PORT HOST RUNTIME ALLOW_REMOTE STAGE_THROTTLE SERVER_LOG_LEVEL MODEL_WEIGHTS INT8 PYTEST_ARGS PYTHON
upper = $(subst a,A,$(subst b,B,$(subst c,C,$(subst d,D,$(subst e,E,$(subst f,F,$(subst g,G,$(subst h,H,$(subst \
  i,I,$(subst j,J,$(subst k,K,$(subst l,L,$(subst m,M,$(subst n,N,$(subst o,O,$(subst p,P,$(subst q,Q,$(subst \
  r,R,$(subst s,S,$(subst t,T,$(subst u,U,$(subst v,V,$(subst w,W,$(subst x,X,$(subst y,Y,$(subst z,Z,$(1)))))))))))))))))))))))))))
$(foreach v,$(.VARIABLES),$(if $(and $(filter command line,$(origin $(v))),$(filter-out $(v),$(call upper,$(v))),$(filter \
  $(call upper,$(v)),$(SETTINGS))),$(error $(v)= is ignored, as make's variables are case-sensitive: use \
  $(call upper,$(v))=)))

# The arguments make demo gives python -m local, and its check below the very same ones.
DEMO_ARGS = --host $(call quote,$(HOST)) --port $(call quote,$(PORT)) --runtime $(call quote,$(RUNTIME)) \
  $(if $(call on,$(ALLOW_REMOTE)),--allow-remote) $(if $(call on,$(STAGE_THROTTLE)),,--no-stage-throttle) \
  $(if $(strip $(SERVER_LOG_LEVEL)),--log-level $(call quote,$(SERVER_LOG_LEVEL)))
# make demo refuses a blank HOST, PORT or RUNTIME (python -m local can do nothing with it), naming the first one blank,
# before the venv and the model are built: it refused after minutes of building them.
# make help says the same where it named a URL without its host or port (http://127.0.0.1:), or a demo that refuses.
DEMO_BLANK := $(firstword $(foreach v,HOST PORT RUNTIME,$(if $(strip $($(v))),,$(v))))
give_HOST := the address to listen on (default 127.0.0.1)
give_PORT := the port to listen on (default 8000, 0 for a free one)
give_RUNTIME := inprocess or torchserve (default inprocess)

# Any other value python -m local refuses before it starts anything (PORT=abc or 70000, RUNTIME=java, HOST=a..b, a
# HOST not loopback without ALLOW_REMOTE) was refused only after those minutes too. python -m local's own checks
# (local/arguments.py) run first, on $(PYTHON) as the venv may not be built yet, and give its very refusal: standard
# library only, so -S (site, .pth files and all, took 10 ms of its 46 here). Only for demo and help, as any other
# make would wait for it. A check that cannot run (no such Python, one too old to import the module, a Makefile
# copied without local/) exits other than 2 and refuses nothing: python -m local still refuses what it must.
ifneq ($(DEMO_BLANK),)
DEMO_REFUSAL := error: $(DEMO_BLANK)= is empty: give $(give_$(DEMO_BLANK))
else ifneq ($(filter demo help,$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
DEMO_REFUSAL := $(shell refusal=$$($(PYTHON) -S -m local.arguments $(DEMO_ARGS) 2>&1); [ $$? != 2 ] || printf '%s' "$$refusal")
endif

MODEL := model/dist/model.tar.gz
# onnxruntime for the SageMaker container (Python 3.12, x86_64): vendored into the artifact, never installed
# at start. Keep in step with requirements.txt.
ORT_VERSION := 1.31.1
ORT_STAMP := model/dist/wheels/.onnxruntime-$(ORT_VERSION)
ORT_WHEEL := onnxruntime-$(ORT_VERSION)-cp312-cp312-manylinux*_x86_64.whl

.PHONY: help venv model test test-fast lint bench demo loadtest chromium clean

help:
	@printf 'make demo      %s\n' $(call quote,$(if $(DEMO_REFUSAL),$(DEMO_REFUSAL),the whole stack on http://$(call url_host,$(strip $(HOST))):$(call url_port,$(strip $(PORT))) (PORT=, RUNTIME=inprocess|torchserve, HOST= ALLOW_REMOTE=1, STAGE_THROTTLE=0, SERVER_LOG_LEVEL=info)))
	@echo "make test      ruff, then every test (builds venv and model, installs chromium when missing)"
	@echo "make test-fast unit tests only: no browser, no TorchServe, no local stack, no other Python"
	@echo "make model     build $(MODEL) (MODEL_WEIGHTS=file.pth for a local state_dict, INT8=1 for int8)"
	@echo "make venv      create venv/ and install requirements*.txt"
	@echo "make chromium  install Debian chromium for the browser tests (root or sudo)"
	@echo "make lint      ruff check + ruff format --check"
	@echo "make bench     benchmarks (prints the README table, writes bench/results/latest.md)"
	@echo "make loadtest  load and fault harness against the local stack"
	@echo "make clean     remove the built model (not the downloaded wheel) and test artifacts"

# One make at a time installs the venv: `make demo` and `make test` started together after a pull that changed
# requirements*.txt ran two pips into venv/ at once, and one stopped at a pip error ("No such file or directory:
# venv/bin/...", an ImportError from the pip the other was replacing). The second waits on a lock on the checkout,
# taken with fcntl (macOS has no flock(1)) and held by the make it runs, which then finds venv/ up to date.
define ONE_VENV_INSTALL_AT_A_TIME
import fcntl, os, signal, sys, time
# Ctrl-C while waiting stops it as it stops make, without two Python tracebacks above make's "Interrupt"; a SIGINT
# ignored (a make in a script's background, under nohup) stays ignored, by the make it runs too. The waiter dies of
# the SIGINT a moment late: GNU make 4.3 reaps its child from its own SIGINT handler, and a child already dead when
# that handler ran had been reaped by make's main loop, so the handler's wait() failed and make printed "wait: No
# child processes.  Stop." twice instead of "Interrupt" (3 Ctrl-Cs in 100 here, more on a busy machine).
def die_of_it_after_make_waits(sig, frame):
    time.sleep(0.2)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, die_of_it_after_make_waits)
fd = os.open(".", os.O_RDONLY)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("waiting for another make venv in this checkout to finish ...", flush=True)
    fcntl.flock(fd, fcntl.LOCK_EX)
except OSError:
    pass
os.set_inheritable(fd, True)
os.execvp(sys.argv[1], sys.argv[1:])
endef
export ONE_VENV_INSTALL_AT_A_TIME

# The venv is made unless it has pip: Debian's venv without python3-venv leaves venv/bin/python and no pip, and a
# venv made again over it (once python3-venv is installed) gets its pip; an existing venv with pip is reused.
$(VENV)/.installed: requirements.txt requirements-dev.txt
ifndef VENV_LOCK_HELD
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: this project needs Python 3.11 or newer, and $(PYTHON) is not (make PYTHON=python3.11 ...)" >&2; exit 1; }
	@$(PYTHON) -c "$$ONE_VENV_INSTALL_AT_A_TIME" $(MAKE) --no-print-directory VENV_LOCK_HELD=1 $@
else
	test -x $(PIP) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: $(VENV)/ runs a Python older than 3.11 (made by another python3?): rm -rf $(VENV) and make venv again" >&2; exit 1; }
	$(PIP) install --disable-pip-version-check -q --upgrade pip wheel
	$(PIP) install --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@
endif

venv: $(VENV)/.installed

# The stamp stands for the wheel beside it: with the wheel gone (deleted by hand; `rm model/dist/wheels/*.whl` leaves
# the hidden stamp), it is fetched again, rather than every later artifact built without it.
$(ORT_STAMP): $(if $(wildcard $(dir $(ORT_STAMP))$(ORT_WHEEL)),,FORCE) | $(VENV)/.installed
	mkdir -p $(dir $@)
	# Only the pinned version stays: a wheel left from another ORT_VERSION would be vendored instead. The pinned
	# wheel itself is kept and not fetched again (offline, it could not be), even without its stamp, if it reads
	# whole: one cut short (an interrupted download or copy) would fail every build, and pip would take it for
	# the download, so it goes.
	find $(dir $@) -maxdepth 1 \( \( -name 'onnxruntime-*.whl' ! -name '$(ORT_WHEEL)' \) -o -name '.onnxruntime-*' \) -delete
	if $(PY) -c 'import sys, zipfile; sys.exit(any(zipfile.ZipFile(w).testzip() for w in sys.argv[1:]))' \
	  $(dir $@)$(ORT_WHEEL) 2>/dev/null; then touch $@; else \
	  rm -f $(dir $@)$(ORT_WHEEL); \
	  $(PIP) download --disable-pip-version-check -q --no-deps --only-binary=:all: --python-version 3.12 \
	    --platform manylinux_2_28_x86_64 -d $(dir $@) onnxruntime==$(ORT_VERSION) \
	    && touch $@ \
	    || echo "warning: could not download the onnxruntime wheel; the container will serve TorchScript" >&2; fi

# Always asks the builder: it compares a fingerprint of every input and rebuilds only when one changed.
# WEIGHTS= is not ours: ignored, the build took the default weights while the file named seemed accepted.
model: $(VENV)/.installed $(ORT_STAMP)
	@[ "$(origin WEIGHTS)" != "command line" ] || { \
	  echo "error: WEIGHTS= is not a setting of this Makefile: name a local state_dict with MODEL_WEIGHTS=FILE" >&2; exit 2; }
	$(PY) -m model.package $(if $(call on,$(INT8)),--int8)

$(MODEL):
	$(MAKE) model

# Not a target to run: a prerequisite that makes a rule run every time (the stamp's, above, when its wheel is gone).
.PHONY: FORCE
FORCE:

chromium:
	@test -x /usr/bin/chromium || { \
	  if ! command -v apt-get >/dev/null; then \
	    echo "warning: chromium is missing and there is no apt-get to install it: the browser tests will be skipped" >&2; \
	    if [ -n $(call quote,$(call on,$(CI))) ]; then exit 1; fi; exit 0; \
	  elif [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "warning: chromium is missing and neither root nor sudo can install it: the browser tests will be skipped" >&2; \
	    if [ -n $(call quote,$(call on,$(CI))) ]; then exit 1; fi; exit 0; fi; \
	  echo "installing Debian chromium for the browser tests"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || { \
	    echo "warning: apt-get could not install chromium (no network, or no such package: Ubuntu's is a snap):" \
	      "the browser tests will be skipped" >&2; \
	    if [ -n $(call quote,$(call on,$(CI))) ]; then exit 1; fi; }; }

test: venv model chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

# Unit tests only: no browser, no TorchServe, no local stack, no venvs of other Pythons (they pip-install).
test-fast: venv model
	$(PY) -m pytest -m "not browser and not container and not integration and not other_python" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv model
	$(PY) -m bench

demo: $(if $(DEMO_REFUSAL),,venv model)
	@$(if $(DEMO_REFUSAL),printf '%s\n' $(call quote,$(DEMO_REFUSAL)) >&2; exit 2)
	$(PY) -m local $(DEMO_ARGS)

loadtest: venv model
	$(PY) -m bench.loadtest

# Keeps model/dist/wheels (the downloaded onnxruntime wheel): an offline `make model` after `make clean` still
# vendors it. `rm -rf model/dist` removes that too. rm's errors are not hidden: a model it could not remove (left
# root-owned by `sudo make test`) stayed, and clean said nothing and succeeded. Each item is removed whatever became
# of the one before (the first that failed left the rest too), and clean fails naming what stayed. A model/dist that
# links elsewhere (a shared build folder) is not this checkout's to empty: it is left, and clean says so.
clean:
	@failed=; \
	if [ -L model/dist ]; then \
	  echo "model/dist links to $$(readlink model/dist): left as it is, not emptied (rm model/dist removes the link only)"; \
	elif [ -d model/dist ]; then \
	  find model/dist -mindepth 1 -maxdepth 1 ! -name wheels -exec rm -rf {} + || { \
	    left=$$(find model/dist -mindepth 1 -maxdepth 1 ! -name wheels 2>/dev/null | tr '\n' ' '); \
	    failed="$${left:-model/dist }"; }; \
	fi; \
	for item in test-artifacts .pytest_cache; do rm -rf "$$item" || failed="$$failed$$item "; done; \
	if [ -n "$$failed" ]; then echo "error: make clean could not remove $${failed% } (rm said why above)" >&2; exit 1; fi
