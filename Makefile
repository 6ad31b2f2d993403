# iox build and test entry points. `make test` builds everything it needs.
GO          ?= go
CARGO       ?= cargo
PYTHON      ?= python3
ICEORYX2    := 0.10.0
ICEORYX2_OLD := 0.9.3
NATIVE_DIR  := internal/native
LIB         := $(NATIVE_DIR)/target/release/libiox_native.so
VENV        := .venv
PYOK        := $(VENV)/.iceoryx2-$(ICEORYX2)
VENV_OLD    := .venv-old
PYOK_OLD    := $(VENV_OLD)/.iceoryx2-$(ICEORYX2_OLD)
OLDPY       := IOX_PYTHON_OLD=$(CURDIR)/$(VENV_OLD)/bin/python
FUZZ_TARGETS := FuzzServiceName FuzzNodeName FuzzChanOptions FuzzFixedDecode FuzzInboxHeaders FuzzServiceOptions FuzzBlackboardOptions

.PHONY: all native embed pyenv pyenv-old test test-native test-nocgo test-race test-noembed vet demo bench fuzz torture clean

all: native

native: $(LIB)

$(LIB): $(NATIVE_DIR)/Cargo.toml $(NATIVE_DIR)/Cargo.lock $(wildcard $(NATIVE_DIR)/src/*.rs)
	cd $(NATIVE_DIR) && $(CARGO) build --release --locked
	@touch $@

# The library that Go programs carry (package internal/embedded): stripped,
# gzip-compressed and described by a generated manifest. Run it after changing
# the native sources; `make test` fails while the embedded copy is stale.
STRIP       ?= strip
EMBED_DIR   := internal/embedded
STRIPPED    := $(NATIVE_DIR)/target/release/libiox_native.stripped.so

embed: native
	$(STRIP) --strip-all -o $(STRIPPED) $(LIB)
	CGO_ENABLED=0 $(GO) run -tags iox_noembed ./$(EMBED_DIR)/gen -lib $(STRIPPED) -native $(NATIVE_DIR) -out $(EMBED_DIR)

# Python peer for the cross-language tests: the iceoryx2 package of the same version.
pyenv: $(PYOK)

$(PYOK):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check iceoryx2==$(ICEORYX2)
	@touch $@

# An older iceoryx2 release as a peer that must be refused (version tests).
pyenv-old: $(PYOK_OLD)

$(PYOK_OLD):
	$(PYTHON) -m venv $(VENV_OLD)
	$(VENV_OLD)/bin/pip install --quiet --disable-pip-version-check iceoryx2==$(ICEORYX2_OLD)
	@touch $@

vet:
	CGO_ENABLED=0 $(GO) vet ./...

test-nocgo: native pyenv pyenv-old
	$(OLDPY) CGO_ENABLED=0 $(GO) test -count=1 ./...

# -race needs cgo; the package itself still has no import "C".
test-race: native pyenv pyenv-old
	$(OLDPY) CGO_ENABLED=1 $(GO) test -race -count=1 ./...

# Unit tests of the native library (memory estimates, panic hook).
test-native:
	cd $(NATIVE_DIR) && $(CARGO) test --release --locked --lib

# Built without the embedded library (tag iox_noembed): the loader says why it has none.
test-noembed: native
	CGO_ENABLED=0 $(GO) vet -tags iox_noembed ./...
	CGO_ENABLED=0 $(GO) test -tags iox_noembed -count=1 ./loader ./internal/embedded

test: vet test-native test-nocgo test-race test-noembed
	@CGO_ENABLED=0 $(GO) build ./... && echo "make test: all passed"

demo: native
	CGO_ENABLED=0 $(GO) run ./cmd/iox-demo

# One pass over the benchmarks (1 s each; BenchmarkIdleCPU watches one 2 s idle
# window per case): raw results in bench.out (benchstat format), then tables of
# ratios against the baselines of the same run and of idle CPU. The native floor
# program is built here because $(LIB) does not depend on src/bin.
bench: native
	cd $(NATIVE_DIR) && $(CARGO) build --release --locked --bin iox_floor
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench '^Benchmark(RoundTrip|RoundTripLoaded|Throughput|IdleCPU|Call|RPC)$$' \
	  -benchmem -benchtime=1s -count=1 . | tee bench.out
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench '^Benchmark(OpenPair|CrashDetect)$$' -benchtime=200x -count=1 . | tee -a bench.out
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench '^BenchmarkIdlePairs$$' -benchtime=1x -count=1 . | tee -a bench.out
	CGO_ENABLED=0 $(GO) run ./cmd/benchtable bench.out

# Full counts of the crash, exit and soak tests (make test runs short versions).
torture: native pyenv pyenv-old
	$(OLDPY) IOX_TORTURE=1 CGO_ENABLED=0 $(GO) test -count=1 -timeout 30m -v \
	  -run 'TestCrashTorture|TestSoak|TestExitDuringTeardown|TestExitWithoutClose' .

fuzz: native
	for f in $(FUZZ_TARGETS); do \
	  CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 60s . || exit 1; done

clean:
	rm -rf $(NATIVE_DIR)/target $(VENV) $(VENV_OLD) bench.out
