#!/usr/bin/env bash
# Short fault tests for CI (.ci/run calls this): crash + restart, a 2|3
# partition and heal, 20% loss with 50 ms delay, on 5 agents in network
# namespaces. About 2 minutes; killed after 10. Then the two-datacenter
# set (test/cluster/cmd/wan2dc -short, about 1 minute; killed after 5). Needs root, ip and
# iptables; when the machine cannot run them it prints "SKIP: …" and
# exits 0. Exit 1 means an assertion failed: read the table, then the
# report and agent logs it points to.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH

echo "== fault tests (short set: crash, partition-2-3, loss-delay)"
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: fault tests need root (network namespaces, iptables)"
	exit 0
fi
# The tools the harness drives; install them as .ci/run installs gcc.
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables-restore >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
		echo "could not install ${missing[*]}"
fi

work=$(mktemp -d /tmp/chorus-chaos-ci.XXXXXX)
# Build first so that timeout signals the harness itself, which then
# removes its namespaces and processes.
CGO_ENABLED=0 go build -o "$work/chaos" ./test/cluster/cmd/chaos
status=0
timeout --kill-after=60s 600s "$work/chaos" -short -quiet -out "$work/results" -work "$work" || status=$?
if [ "$status" = 124 ]; then
	echo "FAIL: fault tests did not finish within 10 minutes"
fi

echo "== two-datacenter fault tests (2 × 3 agents, 30 ms between the sites)"
CGO_ENABLED=0 go build -o "$work/wan2dc" ./test/cluster/cmd/wan2dc
wstatus=0
timeout --kill-after=60s 300s "$work/wan2dc" -short -work "$work/wan2dc-run" || wstatus=$?
if [ "$wstatus" = 124 ]; then
	echo "FAIL: two-datacenter fault tests did not finish within 5 minutes"
fi
if [ "$status" = 0 ]; then
	status=$wstatus
fi
exit "$status"
