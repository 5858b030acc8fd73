#!/usr/bin/env bash
# Each variant in its own process: the runtime sizes new goroutines' stacks
# from what it has seen, so one variant run before the other skews it.
set -eu
cd "$(dirname "$0")"
go test -c -o /tmp/stop.test . >/dev/null
for i in 1 2 3 4 5 6; do
	for v in bare backi; do
		/tmp/stop.test -test.run '^$' -test.bench "Stop/$v/" -test.benchtime 10x -test.count 1
	done
done
