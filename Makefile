# The README's two commands. Each bootstraps the system packages first, so it
# works on a fresh machine with only Swift installed.
SWIFT ?= swift
# Tests run optimized (numeric code in debug builds is 10-50x slower); -enable-testing keeps @testable imports.
TEST_FLAGS = -c release -Xswiftc -enable-testing

.PHONY: run test bootstrap build

bootstrap:
	bash scripts/bootstrap.sh

build: bootstrap
	$(SWIFT) build -c release

run: build
	OPENBLAS_NUM_THREADS=1 .build/release/powersgd bench linalg

test: bootstrap
	$(SWIFT) build $(TEST_FLAGS)
	$(SWIFT) test $(TEST_FLAGS)
