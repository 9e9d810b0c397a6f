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

.PHONY: test demo redis-image

test:
	go vet ./...
	go test -race -count=1 -timeout 20m ./...

demo:
	go run ./examples/bank

redis-image:
	.ci/redis-image.sh $(REDIS_IMAGE_TAG)
