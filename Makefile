# extedge — see README.md. `make demo` runs the stack, `make test` the tests.
GO        ?= go
BIN       := bin
# Stamped into extctl and registryd (internal/buildinfo), so `version` names
# the commit even where the Go tool does not embed VCS information.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILDINFO := github.com/extedge/extedge/internal/buildinfo
LDFLAGS   := -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Commit=$(COMMIT)

export PATH := $(shell go env GOPATH)/bin:$(PATH)

.PHONY: build test lint deps demo clean

build: $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/extctl ./extctl
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/registryd ./registryd
	$(GO) build -o $(BIN)/runnerd ./runnerd
	CGO_ENABLED=0 $(GO) build -tags nobadger,nomysql,nopgx -o $(BIN)/caddy ./cmd/caddy

$(BIN):
	mkdir -p $(BIN)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

deps:
	./deploy/dev/install-deps.sh

test: deps lint
	$(GO) test -race -count=1 -timeout 30m ./...

demo:
	./deploy/dev/install-deps.sh demo
	$(MAKE) build
	$(GO) run ./deploy/demo

clean:
	rm -rf $(BIN)
