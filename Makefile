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
.PHONY: help build run test lint package clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

package: ## Build the deployable folder build/app/: app.yaml and the compressed linux/amd64 binary
	rm -rf $(BUILD)/app && mkdir -p $(BUILD)/app
	CGO_ENABLED=0 GOOS=$(PACKAGE_GOOS) GOARCH=$(PACKAGE_GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BUILD)/app.bin ./app
	gzip -9 -n -c $(BUILD)/app.bin > $(BUILD)/app/app.gz
	cp app.yaml $(BUILD)/app/app.yaml
	rm -f $(BUILD)/app.bin
	@for f in $(BUILD)/app/*; do \
	  size=$$(wc -c < "$$f"); \
	  if [ "$$size" -gt $(MAX_FILE_BYTES) ]; then echo "$$f is $$size bytes: over the $(MAX_FILE_BYTES)-byte limit"; exit 1; fi; \
	  echo "  $$f  $$size bytes"; \
	done

clean: ## Remove bin/ and build/
	rm -rf $(BIN) $(BUILD)
