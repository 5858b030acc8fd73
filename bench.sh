#!/usr/bin/env bash
# Runs the root package's benchmarks (workers whose waits have grown) six
# times and summarises them with benchstat. The peer comparisons, stopping
# parked loops among them, are in bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-bench.txt}
go test -run '^$' -bench 'WaitingCPU' -count 6 . > "$out"
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$out"
