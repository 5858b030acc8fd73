#!/usr/bin/env bash
# Runs the root package's benchmarks (stopping and waiting workers) six times
# and summarises them with benchstat. The cost of one iteration beside the
# peers is in bench/run.sh. The stop benchmarks run each variant in a process of its own:
# the runtime sizes new goroutines' stacks from what it has seen before, so a
# variant run after another in the same process is skewed by it.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-bench.txt}
test=$(mktemp)
trap 'rm -f "$test"' EXIT
go test -c -o "$test" .
"$test" -test.run '^$' -test.bench 'WaitingCPU' -test.count 6 > "$out"
for _ in 1 2 3 4 5 6; do
	for v in bare backi; do
		"$test" -test.run '^$' -test.bench "Stop/$v/" -test.benchtime 10x -test.count 1 | grep '^Benchmark' >> "$out"
	done
done
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$out"
