# The README's two commands. Each bootstraps the system packages first, so it
# works on a fresh machine with only Swift installed.
SWIFT ?= swift
# Tests run optimized (numeric code in debug builds is 10-50x slower); -enable-testing keeps @testable imports.
TEST_FLAGS = -c release -Xswiftc -enable-testing

.PHONY: run test test-asan bootstrap build

bootstrap:
	bash scripts/bootstrap.sh

build: bootstrap
	$(SWIFT) build -c release

# The main job: a small ResNet on Fashion-MNIST, 4 in-process workers, PowerSGD rank 2, one
# epoch, ending with a summary (accuracy, bytes vs SGD, projected time at 16 workers).
run: build
	OPENBLAS_NUM_THREADS=1 .build/release/powersgd train --model resnet8 --dataset fashion-mnist --workers 4 \
		--reducer powersgd:rank=2 --epochs 1 --batch-size 32 --learning-rate 0.05

test: bootstrap
	$(SWIFT) build $(TEST_FLAGS)
	$(SWIFT) test $(TEST_FLAGS)

# The decoder fuzz tests (10,000 mutated/truncated messages per decoder) under the address
# sanitizer, in a separate debug build directory. Not part of `make test`: a clean ASan build of
# the package took ~9 minutes on the 2-core CI machine (docs/compressors.md). Leak detection is off
# because XCTest's runner itself leaks a few objects at exit; out-of-bounds accesses still abort.
test-asan: bootstrap
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan \
		--filter "RobustnessTests|InputPolicyTests"
