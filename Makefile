# The README's commands. Everything else is CMake; this file stays thin.
#   make run    install what is missing, build (Release), start the demo
#   make test   the same set-up, then ctest on the normal build and on an
#               ASan+UBSan build, then the valgrind pass over the core tests
#   make bench  build and run the benchmark suite (QUICK=1 for a short run)
#   make fuzz   build the libFuzzer targets with clang and run each briefly
JOBS    ?= $(shell nproc)
CTEST_J ?= 4
GEN     := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CMAKE_FLAGS ?=

.PHONY: all deps build build-asan run test test-normal test-asan test-valgrind bench fuzz install clean

all: build

deps:
	@bash scripts/install-deps.sh

build/CMakeCache.txt:
	cmake -S . -B build $(GEN) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps build/CMakeCache.txt
	cmake --build build -j $(JOBS)

build-asan: deps
	cmake -S . -B build-asan $(GEN) -DCMAKE_BUILD_TYPE=Debug -DLOOM_BUILD_BENCH=OFF \
	  -DLOOM_SANITIZE=address,undefined $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)

run: build
	@bash scripts/run-demo.sh build

test-normal: build
	cd build && ctest --output-on-failure -j $(CTEST_J)

test-asan: build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(CTEST_J)

test-valgrind: build
	@bash scripts/valgrind-tests.sh build

test: test-normal test-asan test-valgrind
	@echo "make test: all suites passed"

bench: build
	@bash scripts/install-deps.sh --bench
	@bash bench/run.sh $(if $(QUICK),--quick,)

fuzz: deps
	@bash fuzz/run.sh

install: build
	cmake --install build

clean:
	rm -rf build build-asan build-fuzz
