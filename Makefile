# iox build and test entry points. `make test` builds everything it needs.
GO          ?= go
CARGO       ?= cargo
PYTHON      ?= python3
ICEORYX2    := 0.10.0
NATIVE_DIR  := internal/native
LIB         := $(NATIVE_DIR)/target/release/libiox_native.so
VENV        := .venv
PYOK        := $(VENV)/.iceoryx2-$(ICEORYX2)

.PHONY: all native pyenv test test-nocgo test-race vet demo bench fuzz clean

all: native

native: $(LIB)

$(LIB): $(NATIVE_DIR)/Cargo.toml $(NATIVE_DIR)/Cargo.lock $(wildcard $(NATIVE_DIR)/src/*.rs)
	cd $(NATIVE_DIR) && $(CARGO) build --release --locked
	@touch $@

# Python peer for the cross-language tests: the iceoryx2 package of the same version.
pyenv: $(PYOK)

$(PYOK):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check iceoryx2==$(ICEORYX2)
	@touch $@

vet:
	CGO_ENABLED=0 $(GO) vet ./...

test-nocgo: native pyenv
	CGO_ENABLED=0 $(GO) test -count=1 ./...

# -race needs cgo; the package itself still has no import "C".
test-race: native pyenv
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

test: vet test-nocgo test-race
	@CGO_ENABLED=0 $(GO) build ./... && echo "make test: all passed"

demo: native
	CGO_ENABLED=0 $(GO) run ./cmd/iox-demo

# One pass over the benchmarks (1 s each; BenchmarkIdleCPU watches one 2 s idle
# window per case): raw results in bench.out (benchstat format), then tables of
# ratios against the baselines of the same run and of idle CPU. The native floor
# program is built here because $(LIB) does not depend on src/bin.
bench: native
	cd $(NATIVE_DIR) && $(CARGO) build --release --locked --bin iox_floor
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench . -benchmem -benchtime=1s -count=1 . | tee bench.out
	CGO_ENABLED=0 $(GO) run ./cmd/benchtable bench.out

fuzz: native
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz FuzzServiceName -fuzztime 60s .

clean:
	rm -rf $(NATIVE_DIR)/target $(VENV) bench.out
