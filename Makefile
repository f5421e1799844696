# skiff — `sudo make run` starts the platform, `sudo make test` runs every test tier.
# Multi-line shell lives in scripts/.

# sudo resets PATH; Go lives in /usr/local/go on the machines we target.
export PATH := /usr/local/go/bin:$(PATH)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/skiffhq/skiff.Version=$(VERSION)

.PHONY: build run install test check deps bench-push clean

# The CNB lifecycle is built from its pinned module (tools/lifecycle) and
# embedded in skiff; skiff's own buildpacks are one static binary that
# builder:create lays out; skiff-init, static too, is the first process of
# every app instance.
build:
	@echo "-----> Building skiff into bin/ (the first build compiles the CNB lifecycle, SQLite and skiff from source: a few minutes; later ones seconds)"
	scripts/build-lifecycle.sh
	CGO_ENABLED=0 go build -trimpath -o bin/skiff-buildpack ./buildpacks/cmd/skiff-buildpack
	CGO_ENABLED=0 go build -trimpath -o bin/skiff-init ./cmd/skiff-init
	CGO_ENABLED=0 go build -trimpath -o bin/skiff-hook ./cmd/skiff-hook
	go build -ldflags "$(LDFLAGS)" -o bin/skiff ./cmd/skiff

deps:
	scripts/install-deps.sh

# scripts/run.sh reports how long each step of a start took.
run: export SKIFF_MAKE_START := $(shell date +%s)
run: deps build
	scripts/run.sh

# A system service instead of the foreground: systemd starts skiff at boot.
install: deps build
	scripts/install.sh

test: deps build
	scripts/test.sh

check:
	scripts/check.sh

bench-push: build
	bench/push/run.sh

clean:
	rm -rf bin
