# The Go sample for Databricks Apps that expose an API. `make help` lists the targets.

GO        ?= go
BIN       := bin
BUILD     := build
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Databricks Apps refuses any file over this many bytes.
MAX_FILE_BYTES := 10485760
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Databricks Apps run on linux/amd64. Tests override these to run the packaged app on the machine that builds it.
PACKAGE_GOOS   ?= linux
PACKAGE_GOARCH ?= amd64

.DEFAULT_GOAL := help
.PHONY: help build run test lint package package-app package-caller clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the app for this machine into bin/
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/app ./app

run: ## Run the app on 127.0.0.1:8000 (no proxy in front: only /api/health answers without X-Forwarded-* headers)
	$(GO) run ./app

test: ## Vet, check formatting and run every test with the race detector
	$(GO) vet ./...
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) test -race -timeout 8m ./...

lint: ## go vet, gofmt and staticcheck
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) run $(STATICCHECK) ./...

package: package-app package-caller ## Build the deployable folders build/app/ and build/caller/ (app.yaml + gzipped linux/amd64 binary)

package-app: ## Build only build/app/
	$(call package_folder,app,./app,app.yaml)

package-caller: ## Build only build/caller/
	$(call package_folder,caller,./caller,caller/app.yaml)

# package_folder(name, go package, app.yaml): build/<name>/ with app.yaml and <name>.gz, every file within the limit.
define package_folder
	rm -rf $(BUILD)/$(1) && mkdir -p $(BUILD)/$(1)
	CGO_ENABLED=0 GOOS=$(PACKAGE_GOOS) GOARCH=$(PACKAGE_GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BUILD)/$(1).bin $(2)
	gzip -9 -n -c $(BUILD)/$(1).bin > $(BUILD)/$(1)/$(1).gz
	rm -f $(BUILD)/$(1).bin
	cp $(3) $(BUILD)/$(1)/app.yaml
	@for f in $(BUILD)/$(1)/*; do \
	  size=$$(wc -c < "$$f"); \
	  if [ "$$size" -gt $(MAX_FILE_BYTES) ]; then echo "$$f is $$size bytes: over the $(MAX_FILE_BYTES)-byte limit"; exit 1; fi; \
	  echo "  $$f  $$size bytes"; \
	done
endef

clean: ## Remove bin/ and build/
	rm -rf $(BIN) $(BUILD)
