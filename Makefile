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

# -race needs cgo; the package itself still has no import "C". The root
# package takes about 8 minutes under the race detector on a loaded 2-core
# machine, close to go test's default limit of 10 per package.
test-race: native pyenv pyenv-old
	$(OLDPY) CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

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

# One pass over the benchmarks (1 s each; the message sizes that only the
# throughput plot uses, 0.5 s; BenchmarkIdleCPU watches one 2 s idle window per
# case): raw results in bench.out (benchstat format), then the tables of ratios
# against the baselines of the same run, and the plot of throughput against
# message size, $(BENCHPLOT). The native floor program is built here because
# $(LIB) does not depend on src/bin. BENCHFLAGS adds go test flags (build tags).
BENCHFLAGS  ?=
BENCHPLOT   := doc/throughput.svg
BENCHTABLE_SIZES := 64B|4KiB|1MiB
BENCHSWEEP_SIZES := 256B|1KiB|16KiB|64KiB|256KiB|4MiB
BENCHGO     := CGO_ENABLED=0 $(GO) test $(BENCHFLAGS) -run '^$$' -count=1

bench: native
	cd $(NATIVE_DIR) && $(CARGO) build --release --locked --bin iox_floor
	$(BENCHGO) -bench '^Benchmark(RoundTrip|RoundTripLoaded|Fanout|IdleCPU|Call|RPC)$$' -benchmem -benchtime=1s . | tee bench.out
	$(BENCHGO) -bench '^BenchmarkThroughput$$/./^($(BENCHTABLE_SIZES))$$' -benchmem -benchtime=1s . | tee -a bench.out
	$(BENCHGO) -bench '^BenchmarkThroughput$$/./^($(BENCHSWEEP_SIZES))$$' -benchmem -benchtime=0.5s . | tee -a bench.out
	$(BENCHGO) -bench '^Benchmark(OpenPair|CrashDetect)$$' -benchtime=200x . | tee -a bench.out
	$(BENCHGO) -bench '^BenchmarkIdlePairs$$' -benchtime=1x . | tee -a bench.out
	mkdir -p $(dir $(BENCHPLOT))
	CGO_ENABLED=0 $(GO) run ./cmd/benchtable -plot $(BENCHPLOT) bench.out

# Full counts of the crash, exit, soak and call-ending tests (make test runs short versions).
torture: native pyenv pyenv-old
	$(OLDPY) IOX_TORTURE=1 CGO_ENABLED=0 $(GO) test -count=1 -timeout 30m -v \
	  -run 'TestCrashTorture|TestSoak|TestExitDuringTeardown|TestExitWithoutClose|TestRPCWaitersLeavingTorture|TestRPCLeadLeavingHandsOver|TestRPCStreamErrSetBeforeInCloses|TestEndOutBeforeCloseIsDelivered|TestEndBothClosingAtOnce|TestNotifyOnlyAParkedReceiverNeverStalls' .

fuzz: native
	for f in $(FUZZ_TARGETS); do \
	  CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 60s . || exit 1; done

clean:
	rm -rf $(NATIVE_DIR)/target $(VENV) $(VENV_OLD) bench.out
