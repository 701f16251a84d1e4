# Chorus — common tasks. `make test` is what CI runs (see .ci/run).
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/chorusdns/chorus/agent.Version=$(VERSION) -X main.commit=$(shell git rev-parse --short HEAD 2>/dev/null)
IMAGE     ?= chorus:latest

.PHONY: build test test-short fuzz bench bench-dns bench-cluster bench-scale bench-writes docker lint chaos chaos-wan

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/chorus ./cmd/chorus

test:
	$(GO) test -race ./...

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...

# Each fuzz target runs for FUZZTIME (short in CI).
FUZZTIME ?= 15s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# bench-dns needs dnsperf (apt-get install -y dnsperf) and taskset (util-linux).
# It draws test/bench/dnsbench/throughput.png (qps against the bare server).
bench-dns:
	$(GO) run ./test/bench/dnsbench -png test/bench/dnsbench/throughput.png

bench-cluster:
	$(GO) run ./test/bench/clusterbench

# Real agent processes, one per loopback address (root: own network
# namespace, nftables counters): Chorus at 50, 150 and 300 agents and bare
# Serf at 150 and 300 (about 25 minutes). Writes report.md and PNG plots
# to SCALEOUT; SCALEFLAGS passes more flags (e.g. -n 50,150 -kinds chorus).
SCALEOUT ?= test/bench/scale/results
bench-scale:
	$(GO) run ./test/bench/scale -out $(SCALEOUT) $(SCALEFLAGS)

# Registrations/s and agent CPU per registration (every answer durable) at
# 1, 8 and 32 clients with 300 and 10,000 local instances, against a real
# agent whose data dir is on the working directory's disk; CONSUL names a
# consul binary to run the same load against a Consul server-mode agent.
bench-writes:
	$(GO) build -o bin/chorus-bench ./cmd/chorus
	$(GO) run ./test/bench/writes -chorus bin/chorus-bench $(if $(CONSUL),-consul $(CONSUL)) $(WRITESFLAGS)

docker: build
	docker build -t $(IMAGE) .

# Fault tests: crash, hang, restarts, partitions, loss and delay, a failing
# check, on 5 agents in network namespaces (root; about 4 minutes). Writes
# report.md and one PNG timeline per scenario to CHAOSOUT; CI runs the
# short set with test/cluster/ci.sh.
CHAOSOUT ?= test/cluster/results
chaos:
	$(GO) run ./test/cluster/cmd/chaos -out $(CHAOSOUT)

# Two datacenters (2 × 3 agents, 30 ms between the sites): failover, speakers, partitions.
chaos-wan:
	$(GO) run ./test/cluster/cmd/wan2dc -out $(CHAOSOUT)/wan2dc.md
