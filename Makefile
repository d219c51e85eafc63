# The single way to build, check, test and run the product.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
# Each recipe runs in one shell, so the dev stack's trap sees its jobs.
.ONESHELL:

BIN := $(CURDIR)/bin
GO_BINARIES := $(BIN)/worker $(BIN)/starter $(BIN)/devicemock

# Pinned tools, built from the Go module proxy into bin/. Later temporal
# CLI tags cannot be `go install`ed (their go.mod has a replace directive).
TEMPORAL_CLI := github.com/temporalio/cli/cmd/temporal@v1.5.1
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
WORKFLOWCHECK := go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0

# Local stack (make dev / make demo).
DEV_DIR := $(CURDIR)/.dev
TEMPORAL_PORT ?= 7233
UI_PORT ?= 8233
DEVICEMOCK_ADDR ?= 127.0.0.1:9000
DEVICES ?= 200
DEVICE_VERSION ?= 1.0.0
DEMO_VERSION ?= 2.0.0

# Dev server flags: WAL SQLite is ~3x faster than the default on a file;
# eager activities save a round trip per activity.
DEV_SERVER_FLAGS := --ip 127.0.0.1 --port $(TEMPORAL_PORT) --ui-port $(UI_PORT) \
	--db-filename $(DEV_DIR)/temporal.db \
	--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
	--dynamic-config-value system.enableActivityEagerExecution=true \
	--search-attribute RolloutID=Keyword --search-attribute FirmwareVersion=Keyword \
	--search-attribute DeviceID=Keyword --search-attribute RolloutStatus=Keyword \
	--log-level warn

.PHONY: build tools lint test unit fuzz-short fuzz e2e dev demo demo-keys clean histories bench bench-push

build: $(GO_BINARIES)

$(BIN)/%: FORCE
	go build -o $@ ./$*

FORCE:

$(BIN)/temporal:
	@echo "building the Temporal CLI (dev server + Web UI) into bin/; about 5 minutes the first time"
	GOBIN=$(BIN) go install $(TEMPORAL_CLI)

$(BIN)/staticcheck:
	GOBIN=$(BIN) go install $(STATICCHECK)

$(BIN)/workflowcheck:
	GOBIN=$(BIN) go install $(WORKFLOWCHECK)

tools: $(BIN)/temporal $(BIN)/staticcheck $(BIN)/workflowcheck

lint: $(BIN)/staticcheck $(BIN)/workflowcheck
	unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go vet -tags e2e ./...
	$(BIN)/staticcheck ./...
	$(BIN)/workflowcheck ./...

# make test: lint, unit and replay tests, a few seconds of each fuzz
# target, then the end-to-end suite against a real dev server with the
# binaries as subprocesses.
test: lint unit fuzz-short e2e

unit:
	go test -count=1 ./...

# make fuzz [FUZZTIME=60s]: each fuzz target for FUZZTIME; fuzz-short
# (part of make test) for 3s each. go test fuzzes one target of one
# package per run. New crashers land in the package's testdata/fuzz/:
# commit them, they then run with the unit tests.
FUZZTIME ?= 60s
define fuzz-each
	go test -run '^$$' -fuzz '^FuzzSpec$$' -fuzztime $(1) ./workflows/
	go test -run '^$$' -fuzz '^FuzzVersions$$' -fuzztime $(1) ./workflows/
	go test -run '^$$' -fuzz '^FuzzSelectorLocation$$' -fuzztime $(1) ./workflows/
	go test -run '^$$' -fuzz '^FuzzLoadInventory$$' -fuzztime $(1) ./activities/
	go test -run '^$$' -fuzz '^FuzzDeviceAnswers$$' -fuzztime $(1) ./activities/
	go test -run '^$$' -fuzz '^FuzzDeviceRequests$$' -fuzztime $(1) ./devicemock/fleet/
endef

fuzz-short:
	$(call fuzz-each,3s)

fuzz:
	$(call fuzz-each,$(FUZZTIME))

e2e: $(BIN)/temporal
	TEMPORAL_CLI_PATH=$(BIN)/temporal go test -count=1 -tags e2e -timeout 20m -v ./starter/ -run 'E2E'

# make dev: dev server (Web UI on $(UI_PORT)), devicemock with $(DEVICES)
# devices and a worker, in the foreground; Ctrl-C stops them all.
dev: build $(BIN)/temporal
	@mkdir -p $(DEV_DIR)
	trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT INT TERM
	$(BIN)/temporal server start-dev $(DEV_SERVER_FLAGS) > $(DEV_DIR)/temporal.log 2>&1 &
	$(BIN)/devicemock --listen $(DEVICEMOCK_ADDR) --devices $(DEVICES) --version $(DEVICE_VERSION) --reboot 500ms &
	until $(BIN)/temporal operator cluster health --address 127.0.0.1:$(TEMPORAL_PORT) >/dev/null 2>&1; do sleep 0.5; done
	$(BIN)/worker --address 127.0.0.1:$(TEMPORAL_PORT) 2> $(DEV_DIR)/worker.log &
	echo "dev stack up: Temporal 127.0.0.1:$(TEMPORAL_PORT), Web UI http://127.0.0.1:$(UI_PORT), devices http://$(DEVICEMOCK_ADDR)/_fleet/inventory"
	echo "logs in $(DEV_DIR); Ctrl-C stops everything"
	wait

# make demo: the dev stack plus one rollout to every device, watched to
# the end; everything stops afterwards.
demo: build $(BIN)/temporal
	@mkdir -p $(DEV_DIR)
	trap 'kill $$(jobs -p) 2>/dev/null; wait' EXIT INT TERM
	$(BIN)/temporal server start-dev $(DEV_SERVER_FLAGS) > $(DEV_DIR)/temporal.log 2>&1 &
	$(BIN)/devicemock --listen $(DEVICEMOCK_ADDR) --devices $(DEVICES) --version $(DEVICE_VERSION) --reboot 500ms --fail-5xx 0.1 > $(DEV_DIR)/devicemock.log &
	until $(BIN)/temporal operator cluster health --address 127.0.0.1:$(TEMPORAL_PORT) >/dev/null 2>&1; do sleep 0.5; done
	$(BIN)/worker --address 127.0.0.1:$(TEMPORAL_PORT) 2> $(DEV_DIR)/worker.log &
	head -c 4194304 /dev/urandom > $(DEV_DIR)/firmware-$(DEMO_VERSION).bin
	echo "Web UI: http://127.0.0.1:$(UI_PORT) (while the demo runs)"
	$(BIN)/starter --address 127.0.0.1:$(TEMPORAL_PORT) start --id demo-$$(date +%Y%m%d-%H%M%S) \
		--inventory http://$(DEVICEMOCK_ADDR)/_fleet/inventory \
		--firmware $(DEV_DIR)/firmware-$(DEMO_VERSION).bin --version $(DEMO_VERSION) --wait
	echo "devicemock $$(curl -s http://$(DEVICEMOCK_ADDR)/_fleet/stats | grep -o '"totals":{[^}]*}')"

# make demo-keys: a firmware signing key pair in .dev/keys (made once,
# kept) and a freshly signed demo image with its signature, for trying
# signed rollouts (README, "Signed firmware").
DEMO_KEY := $(DEV_DIR)/keys/firmware-signing.key
DEMO_SIGNED := $(DEV_DIR)/firmware-$(DEMO_VERSION)-signed
demo-keys: $(BIN)/starter
	@mkdir -p $(DEV_DIR)
	[ -f $(DEMO_KEY) ] || $(BIN)/starter keygen --out $(DEV_DIR)/keys
	head -c 4194304 /dev/urandom > $(DEMO_SIGNED).bin
	$(BIN)/starter sign --key $(DEMO_KEY) --version $(DEMO_VERSION) $(DEMO_SIGNED).bin > $(DEMO_SIGNED).sig
	echo "image $(DEMO_SIGNED).bin (version $(DEMO_VERSION)), signature $(DEMO_SIGNED).sig, public key $(DEV_DIR)/keys/firmware-signing.pub"

clean:
	rm -rf $(BIN)/worker $(BIN)/starter $(BIN)/devicemock $(DEV_DIR)

# make histories: record real workflow histories into testdata/histories
# for the replay test. Run it after a deliberate, versioned change.
histories: $(BIN)/temporal
	UPDATE_HISTORIES=1 TEMPORAL_CLI_PATH=$(BIN)/temporal go test -count=1 -tags e2e -v ./starter/ -run 'E2EHistoriesReplay'

# make bench [N=2000] [CONCURRENCY=200] [IMAGE=65536] [WORKERS=1]: one
# rollout over N devicemock devices on a fresh dev server, with a table of
# devices/s, time per device, history sizes and peak memory.
N ?= 2000
CONCURRENCY ?= 200
IMAGE ?= 65536
WORKERS ?= 1
bench: $(BIN)/temporal
	TEMPORAL_CLI_PATH=$(BIN)/temporal go test -v -count=1 -tags e2e -timeout 0 -run '^TestBenchRollout$$' ./starter/ \
		-args -bench.devices=$(N) -bench.concurrency=$(CONCURRENCY) -bench.image=$(IMAGE) -bench.workers=$(WORKERS)

# make bench-push: PushFirmware against curl --data-binary to the same
# devicemock endpoint (median of 5 alternating rounds of a 256 MiB image).
bench-push: $(BIN)/temporal
	TEMPORAL_CLI_PATH=$(BIN)/temporal go test -v -count=1 -tags e2e -timeout 0 -run '^TestBenchPushVsCurl$$' ./starter/
