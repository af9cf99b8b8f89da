# sensord — the front door. `make run` and `make test` are the two commands;
# see README.md.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
LISTEN  ?= 127.0.0.1:8080

# Debian packages the tests use: a real browser for the dashboard, systemd's
# tools for `systemd-analyze verify`, Python's websockets for a second,
# independent wss:// client, prlimit for the descriptor-limit test,
# Mosquitto for the MQTT bridge, chattr for the read-only-disk tests.
TEST_DEBS := chromium systemd python3-websockets util-linux mosquitto mosquitto-clients e2fsprogs

.PHONY: all build build-arm64 build-armv6 run test test-stress test-deps vet fuzz bench clean

all: build

build:
	$(GOBUILD) -o build/sensord ./cmd/sensord

# The image's binary: static, 64-bit Pis (3, 4, 400, Zero 2 W, 5).
build-arm64:
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o build/sensord-linux-arm64 ./cmd/sensord

# 32-bit Pis (Zero, 1) on Raspberry Pi OS; not in our image, but it builds.
build-armv6:
	GOOS=linux GOARCH=arm GOARM=6 $(GOBUILD) -o build/sensord-linux-armv6 ./cmd/sensord

# The daemon logs "listening ... dashboard=<url>" once the port is bound,
# and a bind that fails says why; LISTEN=0.0.0.0:8080 serves other machines.
run: build
	build/sensord -sensor sim -listen $(LISTEN) -history-dir build/history

# Installs only what is missing, so a second run does not touch apt.
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@# Node-RED (from npm, by the interop test) needs node and npm; a Node.js
	@# from elsewhere (NodeSource) carries its own npm, Debian's is a package.
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

# staticcheck finds what vet does not, such as an error assigned to a
# shadowed variable and never checked; pinned, as the module proxy may
# refuse @latest.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.6.1

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

test: test-deps vet build build-arm64 build-armv6
	$(GO) test -race -count=1 -timeout 20m ./...

# The whole suite with a CPU hog on every core, STRESS_RUNS times in a row,
# as a busy laptop or CI runner would run it: every test must hold. Each
# hog is a shell spin loop that timeout ends by itself; deadlines in the
# tests stretch by SENSORD_TEST_SCALE (internal/testutil). Prints each
# run's time and the load average after it.
STRESS_RUNS  ?= 5
STRESS_SCALE ?= 4
test-stress: test-deps vet
	@for run in $$(seq $(STRESS_RUNS)); do \
		hogs=""; trap 'kill $$hogs 2>/dev/null' EXIT INT TERM; \
		for c in $$(seq $$(nproc)); do timeout 40m sh -c 'while :; do :; done' & hogs="$$hogs $$!"; done; \
		start=$$(date +%s); \
		SENSORD_TEST_SCALE=$(STRESS_SCALE) $(GO) test -race -count=1 -timeout 40m ./...; rc=$$?; \
		kill $$hogs 2>/dev/null; wait $$hogs 2>/dev/null; \
		echo "test-stress: run $$run of $(STRESS_RUNS): exit $$rc in $$(( $$(date +%s) - start )) s, load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
		[ $$rc -eq 0 ] || exit $$rc; \
	done

# Short coverage-guided runs of every fuzz target; new finds land in the
# package's testdata/fuzz as regression inputs.
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# bench.sh compares with Node-RED, which npm installs into build/node-red.
bench:
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 30m ./...
	@if [ -x broadcast/internal/benchserver/bench.sh ]; then broadcast/internal/benchserver/bench.sh; fi

clean:
	rm -rf build

-include image/image.mk
-include image/kerneltest/kerneltest.mk
