# Streamfold developer commands. `make test` is what CI runs (see .ci/run).

REDIS_IMAGE_TAG ?= streamfold/redis:7.0.15

# The Ryuk reaper image cannot be pulled without a registry; Main stops our containers.
export TESTCONTAINERS_RYUK_DISABLED ?= true

# Use the locally built Redis image for container-backed tests when none is named.
ifeq ($(origin REDIS_IMAGE),undefined)
  ifneq ($(shell docker image inspect $(REDIS_IMAGE_TAG) >/dev/null 2>&1 && echo yes),)
    export REDIS_IMAGE := $(REDIS_IMAGE_TAG)
  endif
endif

.PHONY: test check demo redis-image bench bench-quick fuzz test-matrix

test:
	go vet ./...
	cd bench && go vet ./...
	go test -race -count=1 -timeout 20m ./...

# The lifecycle checker at length (make test runs a bounded check): rapid
# sequences of appends, deletes, snapshots, retention, Forget and read models
# against a reference model, on a standalone server and a cluster. The seed is
# printed at start and with a failure; replay with -rapid.seed=N (see
# lifecycle_test's package doc). CHECKS and STEPS scale it.
CHECKS ?= 500
STEPS ?= 100
check:
	go test -race -count=1 -timeout 60m -run TestLifecycle ./lifecycle_test/ -rapid.checks=$(CHECKS) -rapid.steps=$(STEPS) -v

demo:
	go run ./examples/bank -metrics 127.0.0.1:0
	go run ./examples/usercache
	go run ./examples/orders

redis-image:
	.ci/redis-image.sh $(REDIS_IMAGE_TAG)

# The server version matrix (.ci/matrix.sh): the cross-version test set against
# every release in ../shared/redis-src (built once into ~/.cache/redis-builds)
# and the local redis-server, standalone, cluster and dedicated servers all of
# the version under test; prints the table. MATRIX_VERSIONS="redis-6.2.16 local"
# picks versions; MATRIX_README=1 writes the table into README.md.
MATRIX_VERSIONS ?=
test-matrix:
	.ci/matrix.sh $(MATRIX_VERSIONS)

# Benchmarks against raw Redis and peers (own module under bench/); each writes
# bench-results.json at the repository root and prints a table.
bench:
	cd bench && go run . -out ../bench-results.json

bench-quick:
	cd bench && go run . -quick -out ../bench-results.json

# Fuzz every parser and codec for FUZZTIME each (default 20s).
FUZZTIME ?= 20s
fuzz:
	for f in $$(go test -list 'Fuzz.*' ./eventstore/ | grep ^Fuzz); do \
		go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./eventstore/ || exit 1; \
	done
