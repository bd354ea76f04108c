# The Go sample for Databricks Apps that expose an API. `make help` lists the targets.

GO        ?= go
BIN       := bin
BUILD     := build
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Databricks Apps refuses any file over this many bytes; packaged binaries are cut into parts of PART_BYTES (9 MiB).
MAX_FILE_BYTES := 10485760
PART_BYTES     := 9437184
# staticcheck is installed into bin/ at a pinned version, not used as a go.mod tool: as a tool, v0.8.2 raises go.mod to
# go 1.26. Installed rather than run with go run pkg@version, which looks the module up on the network every time.
STATICCHECK_VERSION := v0.8.2
STATICCHECK         := $(BIN)/staticcheck-$(STATICCHECK_VERSION)
# The one gofmt check (test and lint): the files git tracks, or every .go file outside a git checkout.
GOFMT_CHECK = unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
# Databricks Apps run on linux/amd64. Tests override these to run the packaged app on the machine that builds it.
PACKAGE_GOOS   ?= linux
PACKAGE_GOARCH ?= amd64

# Deployment to a real workspace: a Databricks CLI profile and the two apps' names.
PROFILE    ?= DEFAULT
API_APP    ?= go-api-app
CALLER_APP ?= go-caller-app
DATABRICKS ?= databricks
DBX         = $(DATABRICKS) --profile $(PROFILE)

.DEFAULT_GOAL := help
.PHONY: help deps build new-app run demo test test-examples browser-test stress bench fuzz lint package package-app package-caller deploy deploy-check bundle-validate e2e-workspace clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Download what every later target needs (Go modules, staticcheck, actionlint) and build it all: then no step needs the network
	$(GO) mod download
	$(MAKE) --no-print-directory $(STATICCHECK)
	$(GO) tool actionlint -version >/dev/null
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory package PACKAGE_GOOS=$$($(GO) env GOOS) PACKAGE_GOARCH=$$($(GO) env GOARCH) >/dev/null
	@# The race detector's build of every package and test, which make test and the workshop would otherwise compile
	@# on the day: the build cache keeps it.
	$(GO) test -race -count=1 -run '^$$' ./... >/dev/null
	@echo "» what else the workshop uses:"
	@for tool in jq curl; do \
	  if command -v $$tool >/dev/null 2>&1; then echo "  ok       $$tool"; else echo "  MISSING  $$tool (Debian: sudo apt-get install $$tool)"; fi; \
	done
	@if $(GO) env CGO_ENABLED | grep -q 1 && command -v "$$($(GO) env CC)" >/dev/null 2>&1; then echo "  ok       C compiler for cgo ($$($(GO) env CC))"; \
	  else echo "  MISSING  a C compiler for cgo (Debian: sudo apt-get install gcc)"; fi
	@python=""; for py in $(EXAMPLE_PYTHONS); do \
	  if command -v $$py >/dev/null 2>&1 && $$py -c 'import fastapi, uvicorn, requests, pytest' 2>/dev/null; then python=$$py; break; fi; done; \
	if [ -n "$$python" ]; then echo "  ok       FastAPI, for examples/fastapi ($$python)"; \
	else echo "  optional FastAPI, for examples/fastapi (Debian: sudo apt-get install python3-fastapi python3-uvicorn python3-requests python3-pytest)"; fi
	@if command -v $(NODE) >/dev/null 2>&1; then echo "  ok       Node $$($(NODE) --version), for examples/node"; else echo "  optional Node 18 or later, for examples/node"; fi
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; then \
	  echo "  ok       Chromium, for make browser-test"; else echo "  optional Chromium, for make browser-test (Debian: sudo apt-get install chromium)"; fi

$(STATICCHECK):
	@mkdir -p $(BUILD)/staticcheck $(BIN)
	GOBIN=$(CURDIR)/$(BUILD)/staticcheck $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(BUILD)/staticcheck/staticcheck $@

build: ## Build the three programs for this machine into bin/: app, callapp (the caller), emulator
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/app ./app
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/callapp ./caller
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/emulator ./emulator
	@echo 'bin/ holds app, callapp and emulator: export PATH="$$PWD/bin:$$PATH" to run them by name'

# make new-app NAME=my-app DIR=../my-app [MODULE=example.com/my-app]: see go run ./internal/newapp --help.
NAME   ?=
DIR    ?=
MODULE ?=

new-app: build ## Start your own app: a new module from app/ in DIR, named NAME (MODULE= its path), that make dev runs under the emulator
	@[ -n "$(NAME)" ] && [ -n "$(DIR)" ] || { echo "usage: make new-app NAME=my-app DIR=../my-app [MODULE=example.com/my-app]"; exit 2; }
	$(GO) run ./internal/newapp --name '$(NAME)' $(if $(MODULE),--module '$(MODULE)') --emulator '$(CURDIR)/$(BIN)/emulator' '$(DIR)'

run: ## Run the app on 127.0.0.1:8000 (no proxy in front: only /api/health answers without X-Forwarded-* headers)
	$(GO) run ./app

demo: ## Every auth path end to end against the emulator, in one table (needs only Go)
	$(GO) run ./internal/demo

test: ## Vet, check formatting, run every test with the race detector and each benchmark once
	$(GO) vet ./...
	@$(GOFMT_CHECK)
	GORACE=atexit_sleep_ms=0 $(GO) test -race -parallel 4 -timeout 8m ./...
	@# Each benchmark once (a few seconds; -bench keeps go test from caching, so it is a command of its own), so one
	@# that no longer works fails here rather than in make bench. Only the packages that have benchmarks: ./... would
	@# link a second test binary of every package, ~50 s of CPU, to run nothing.
	@echo "$(GO) test -run '^\$$' -bench . -benchtime 1x $(BENCH_PACKAGES)"
	@out=$$($(GO) test -run '^$$' -bench . -benchtime 1x $(BENCH_PACKAGES) 2>&1) || { printf '%s\n' "$$out"; exit 1; }
	@$(MAKE) --no-print-directory test-examples

# The packages with a benchmark (a func Benchmark… in a _test.go file), as ./dir/.
BENCH_PACKAGES = $(addprefix ./,$(sort $(dir $(shell grep -rl --include='*_test.go' '^func Benchmark' app caller emulator internal examples 2>/dev/null))))

# Interpreters tried in turn for examples/fastapi: the first that imports its four packages runs it. python3 may be a
# pyenv or virtualenv shim without them, where Debian's packages (python3-fastapi, …) install them for /usr/bin/python3.
EXAMPLE_PYTHONS ?= python3 /usr/bin/python3
NODE            ?= node
EXAMPLE_ENV      = EMULATOR=$(CURDIR)/$(BIN)/emulator CALLER=$(CURDIR)/$(BIN)/callapp PYTHONDONTWRITEBYTECODE=1

test-examples: build ## The sample apps in examples/ under the emulator, each with its own tests (skipped without their runtime)
	$(EXAMPLE_ENV) $(GO) test -count=1 -tags examples ./examples/go/
	@python=""; for py in $(EXAMPLE_PYTHONS); do \
	  if command -v $$py >/dev/null 2>&1 && $$py -c 'import fastapi, uvicorn, requests, pytest' 2>/dev/null; then python=$$py; break; fi; \
	done; \
	if [ -n "$$python" ]; then \
	  echo "» examples/fastapi: pytest with $$(command -v $$python)"; \
	  $(EXAMPLE_ENV) $$python -m pytest -q examples/fastapi || exit 1; \
	else \
	  echo "SKIPPED examples/fastapi: none of $(EXAMPLE_PYTHONS) imports fastapi, uvicorn, requests and pytest" \
	    "(apt-get install python3-fastapi python3-uvicorn python3-requests python3-pytest)"; \
	fi; \
	if command -v $(NODE) >/dev/null 2>&1 && $(NODE) -e 'process.exit(parseInt(process.versions.node) >= 18 ? 0 : 1)'; then \
	  echo "» examples/node: node --test with Node $$($(NODE) --version)"; \
	  $(EXAMPLE_ENV) $(NODE) --test examples/node/server.test.js || exit 1; \
	else \
	  echo "SKIPPED examples/node: no Node 18 or later ($(NODE): $$($(NODE) --version 2>/dev/null || echo not found); apt-get install nodejs)"; \
	fi

browser-test: ## Drive headless Chromium through the browser sign-in to the app; saves build/browser.png (installs Debian's chromium as root when missing)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "» installing Debian's chromium"; apt-get update && apt-get install -y chromium; \
	  else echo "Chromium is not installed. Install it (Debian: sudo apt-get install -y chromium) and run make browser-test again."; exit 1; fi; }
	@mkdir -p $(BUILD)
	BROWSER_TEST=1 BROWSER_SCREENSHOT=$(CURDIR)/$(BUILD)/browser.png $(GO) test -count=1 -v -run '^TestChromium$$' ./internal/e2e/

# Every fuzz target, as package:Target. `go test -fuzz` runs one target per package per run, hence the list.
FUZZTIME     ?= 30s
FUZZ_TARGETS := ./app/identity:FuzzFromHeaders ./app/identity:FuzzParseUser ./app/identity:FuzzDecodeClaims \
	./caller:FuzzAPIURL ./caller:FuzzParseAppURL ./caller:FuzzServePath \
	./emulator/workspace:FuzzTokenRequest ./emulator/workspace:FuzzAuthorize ./emulator/workspace:FuzzSignInTarget \
	./emulator/workspace:FuzzSCIMFilter

fuzz: ## Run each fuzz target for FUZZTIME (default 30s); crashers land in the package's testdata/fuzz/
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  echo "» $${t##*:} ($${t%%:*}, $(FUZZTIME))"; \
	  $(GO) test -run='^$$' -fuzz="^$${t##*:}$$" -fuzztime=$(FUZZTIME) $${t%%:*} || failed="$$failed $${t##*:}"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that failed:$$failed"; exit 1; fi

stress: ## Load and fault tests at full size, without the race detector (20,000 requests through the proxy)
	STRESS_REQUESTS=20000 $(GO) test -count=1 -timeout 10m -v -run '^TestStress' ./...

# make bench BENCH_FLAGS='--rounds 9 --duration 3s': see go run ./internal/bench --help. Installing FastAPI and uvicorn
# (Debian: python3-fastapi python3-uvicorn) adds the FastAPI peer row.
BENCH_FLAGS ?=

bench: ## Benchmarks (-benchmem) of the hot paths, then the load figures of docs/performance.md (~3 min; installs Debian's wrk as root when missing)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "» installing Debian's wrk"; apt-get update && apt-get install -y wrk; \
	  else echo "wrk is not installed. Install it (Debian: sudo apt-get install -y wrk) and run make bench again."; exit 1; fi; }
	$(GO) test -run '^$$' -bench . -benchmem $(BENCH_PACKAGES)
	$(GO) run ./internal/bench $(BENCH_FLAGS)

lint: $(STATICCHECK) ## go vet, gofmt, staticcheck and actionlint (the CI workflow, .github/workflows/)
	$(GO) vet ./...
	@$(GOFMT_CHECK)
	$(GO) tool actionlint
	$(STATICCHECK) ./...

package: package-app package-caller ## Build the deployable folders build/app/ and build/caller/ (app.yaml + the linux/amd64 binary in parts)

package-app: ## Build only build/app/
	$(call package_folder,app,./app,app.yaml)

package-caller: ## Build only build/caller/
	$(call package_folder,caller,./caller,caller/app.yaml)

# package_folder(name, go package, app.yaml): build/<name>/ with app.yaml and the binary cut into <name>.part-aa,
# <name>.part-ab, … each within the limit. app.yaml's command joins them with cat: measured, that starts the app
# about 7 times faster than unpacking a gzip'd binary (make bench).
define package_folder
	rm -rf $(BUILD)/$(1) && mkdir -p $(BUILD)/$(1)
	CGO_ENABLED=0 GOOS=$(PACKAGE_GOOS) GOARCH=$(PACKAGE_GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BUILD)/$(1).bin $(2)
	split -b $(PART_BYTES) -a 2 $(BUILD)/$(1).bin $(BUILD)/$(1)/$(1).part-
	rm -f $(BUILD)/$(1).bin
	cp $(3) $(BUILD)/$(1)/app.yaml
	@for f in $(BUILD)/$(1)/*; do \
	  size=$$(wc -c < "$$f"); \
	  if [ "$$size" -gt $(MAX_FILE_BYTES) ]; then echo "$$f is $$size bytes: over the $(MAX_FILE_BYTES)-byte limit"; exit 1; fi; \
	  echo "  $$f  $$size bytes"; \
	done
endef

# The bundle's variables: the apps' names. The bundle (databricks.yml) is the one description of the deployment.
# The API app's data resources have no default: WAREHOUSE_ID (databricks warehouses list) and REPORTS_VOLUME
# (catalog.schema.volume); the bundle names the one that is missing.
WAREHOUSE_ID   ?=
REPORTS_VOLUME ?=
BUNDLE_VARS = --var api_app_name=$(API_APP) --var caller_app_name=$(CALLER_APP) \
	$(if $(WAREHOUSE_ID),--var warehouse_id=$(WAREHOUSE_ID)) $(if $(REPORTS_VOLUME),--var reports_volume=$(REPORTS_VOLUME))

deploy: deploy-check package build ## Deploy and start both apps with the bundle, databricks.yml (PROFILE=, WAREHOUSE_ID=, REPORTS_VOLUME=, API_APP=, CALLER_APP=)
	$(DBX) bundle deploy $(BUNDLE_VARS)
	$(DBX) bundle run api_app $(BUNDLE_VARS)
	$(DBX) bundle run caller_app $(BUNDLE_VARS)
	@echo; echo "Try the three paths:"; \
	echo "  $(BIN)/callapp --mode local --profile $(PROFILE) --app $(API_APP) whoami"; \
	echo "  DATABRICKS_HOST=... DATABRICKS_CLIENT_ID=... DATABRICKS_CLIENT_SECRET=... $(BIN)/callapp --mode external --app $(API_APP) whoami"; \
	echo "  $(BIN)/callapp --mode local --profile $(PROFILE) --app $(CALLER_APP) call '/api/call?path=/api/whoami'"

deploy-check: ## Check the databricks CLI is installed and PROFILE is logged in
	@command -v $(DATABRICKS) >/dev/null 2>&1 || { \
	  echo "The databricks CLI is not installed: https://docs.databricks.com/dev-tools/cli/install.html"; exit 1; }
	@$(DBX) current-user me >/dev/null 2>&1 || { \
	  echo "Profile $(PROFILE) is not logged in. Run:"; \
	  echo "  databricks auth login --host https://<workspace-url> --profile $(PROFILE)"; exit 1; }

bundle-validate: deploy-check package ## Validate databricks.yml against the workspace (needs the CLI and PROFILE)
	$(DBX) bundle validate $(BUNDLE_VARS)

e2e-workspace: ## The demo's rows against apps deployed with make deploy (opt-in: needs E2E_* variables, see docs/deploy.md)
	$(GO) test -count=1 -v -run '^TestRealWorkspace$$' ./internal/demo/

clean: ## Remove bin/ and build/
	rm -rf $(BIN) $(BUILD)
