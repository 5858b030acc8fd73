#!/usr/bin/env bash
# Runs every peer comparison six times, and the job queue comparisons three
# times, and writes bench/results.txt and the benchstat summary
# bench/summary.txt, from which RESULTS.md is written. About 20 minutes on a
# 2-core machine.
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s)
go test -run '^$' -bench 'W1|W3|W4|W5' -count 6 -timeout 30m . | tee results.txt
# W2 runs each case in a process of its own, with stacks sized by need (see
# BenchmarkW2).
go test -c -o w2.test .
export GODEBUG=adaptivestackstart=0
trap 'rm -f w2.test' EXIT
cases="bare/in-work bare/between backi/in-work backi/between
	wait.UntilWithContext/in-work wait.UntilWithContext/between suture/in-work"
for _ in 1 2 3 4 5 6; do
	for c in $cases; do
		runner=${c%/*} parked=${c#*/}
		./w2.test -test.run '^$' -test.bench "^BenchmarkW2\$/^runner=${runner//./\\.}\$/^parked=$parked\$" \
			-test.benchtime 3x | grep '^Benchmark' | tee -a results.txt
	done
done
# W2Paired stops bare goroutines and backi in turns, in one process.
./w2.test -test.run '^$' -test.bench 'W2Paired' -test.benchtime 30x -test.count 6 | grep '^Benchmark' | tee -a results.txt
# The job queues, pgqueue beside River, on PostgreSQL: BACKI_PG_URL or the
# local server; without one they are skipped (see queue_test.go). Three runs
# only: River's default client takes 100 s to work off each run's jobs.
env -u GODEBUG go test -run '^$' -bench 'Queue' -count 3 -timeout 60m . | tee -a results.txt
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da results.txt | tee summary.txt
{
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
	echo "go: $(go version)"
	echo "date: $(date -u +%Y-%m-%d)"
	echo "took: $(($(date +%s) - start)) s"
	echo "W2 and W2Paired ran with GODEBUG=$GODEBUG"
	go list -m k8s.io/apimachinery github.com/thejerf/suture/v4 github.com/go-co-op/gocron/v2 \
		github.com/riverqueue/river github.com/jackc/pgx/v5
} | tee -a summary.txt
