#!/usr/bin/env bash
# bench.sh: end-to-end comparison of broadcast.Server against the classic
# gorilla chat-example hub and Node-RED's own websocket-out node, with
# wsbench as the load (same machine, same run, alternating), bounded in
# time. Called by `make bench`; Node-RED comes from the npm registry into
# build/node-red the first time.
#
#   broadcast/internal/benchserver/bench.sh [results.jsonl]
#
# Environment: BENCH_DURATION (measurement window per run, default 10s;
# BENCH_SLOW_DURATION, default 30s, for runs below 1 msg/s),
# BENCH_QUICK=1 (only the 1000-client CPU run and the 5000-client spread run),
# BENCH_RUNS (clients:rate pairs, overriding both), BENCH_MODES (servers,
# default "hub nodered ours floor"; floor is the least work a server can do
# per delivery, see floor.go: what the machine allows).
# Output: one wsbench JSON line per run in results.jsonl (default
# build/bench-broadcast.jsonl) and a markdown table with ours/hub ratios.
# Each server is ended by its PID; every run has its own time limit.
set -euo pipefail

root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
out=${1:-build/bench-broadcast.jsonl}
dur=${BENCH_DURATION:-10s}
tmp=$(mktemp -d)
server_pid=""
cleanup() {
	if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$(dirname "$out")"
: >"$out"
go build -o "$tmp/wsbench" ./broadcast/internal/wsbench
go build -o "$tmp/benchserver" ./broadcast/internal/benchserver

modes=${BENCH_MODES:-hub nodered ours floor}
# node_red_version: the Node-RED line that runs on Debian 12's Node.js 18
# and on 20 (Node-RED 5 needs Node.js 22).
node_red_version=4.1.8
node_red=build/node-red/node_modules/node-red
if [[ " $modes " == *" nodered "* ]] && ! grep -qs "\"version\": \"$node_red_version\"" "$node_red/package.json"; then
	echo "bench: installing node-red@$node_red_version into build/node-red" >&2
	npm install --silent --no-audit --no-fund --prefix build/node-red "node-red@$node_red_version" >&2
fi

# start MODE RATE: starts one server in the background (server_pid) and
# sets server_addr to its host:port once it serves; empty if it does not.
start() {
	local mode=$1 rate=$2
	if [[ "$mode" == nodered ]]; then
		local port
		port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
		mkdir -p "$tmp/nodered"
		broadcast/internal/benchserver/nodered/flow.sh "$rate" >"$tmp/nodered/flows.json"
		: >"$tmp/server.out" # exists before the loop below reads it
		BENCH_PORT=$port BENCH_FLOW="$tmp/nodered/flows.json" BENCH_USERDIR="$tmp/nodered" \
			node "$node_red/red.js" --settings broadcast/internal/benchserver/nodered/settings.js >"$tmp/server.out" 2>&1 &
		server_pid=$!
		for _ in $(seq 600); do
			grep -q "Started flows" "$tmp/server.out" && { server_addr=127.0.0.1:$port; return; }
			kill -0 "$server_pid" 2>/dev/null || return
			sleep 0.1
		done
		return
	fi
	: >"$tmp/server.out" # exists before the loop below reads it
	"$tmp/benchserver" -mode "$mode" -listen 127.0.0.1:0 -rate "$rate" -max 150s >"$tmp/server.out" 2>&1 &
	server_pid=$!
	for _ in $(seq 300); do
		server_addr=$(awk '/^ready/ {print $3}' "$tmp/server.out")
		[[ -n "$server_addr" ]] && return
		sleep 0.1
	done
}

# run MODE CLIENTS RATE: one server, one wsbench run against it.
run() {
	local mode=$1 clients=$2 rate=$3
	server_addr=""
	start "$mode" "$rate"
	local addr=$server_addr
	# A reading every 2 s is a handful of messages in the usual window.
	local window=$dur
	if awk -v r="$rate" 'BEGIN { exit !(r < 1) }'; then window=${BENCH_SLOW_DURATION:-30s}; fi
	if [[ -z "$addr" ]]; then
		echo "bench: $mode server did not start: $(cat "$tmp/server.out")" >&2
		return 1
	fi
	echo "bench: $mode clients=$clients rate=$rate" >&2
	timeout 140s "$tmp/wsbench" -url "ws://$addr/ws/sensors" -clients "$clients" -rate "$rate" \
		-duration "$window" -warmup 2s -grace 2s -pid "$server_pid" -label "$mode" \
		-wait-quiet 20s -quiet-pct 25 -quiet -json-out "$out" >/dev/null || true
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

# First the appliance's own load: a reading every 2 s (0.5 msg/s) to 100,
# 1000 and 5000 clients, each run BENCH_SLOW_DURATION (default 30s) long.
# Then CPU per delivery and memory per connection: 100 and 1000 clients at
# 100 msg/s (the issue's target is at 1000), 5000 clients at 10 msg/s (50k
# deliveries/s; 100 msg/s would be 500k/s, beyond two shared cores).
# Spread at 5000 clients and 2 msg/s; that run also gives near-idle memory.
if [[ -n "${BENCH_RUNS:-}" ]]; then
	runs=$BENCH_RUNS
elif [[ "${BENCH_QUICK:-}" == 1 ]]; then
	runs="1000:100 5000:2"
else
	runs="100:0.5 1000:0.5 5000:0.5 100:100 1000:100 5000:10 5000:2"
fi
for r in $runs; do
	for mode in $modes; do
		run "$mode" "${r%%:*}" "${r##*:}"
	done
done
"$tmp/benchserver" -report "$out"
