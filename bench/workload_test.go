// Package bench compares backi with its peers on the same workloads, in one
// run on one machine. It is a module of its own so that the peers never enter
// backi's go.mod. Run everything with ./run.sh; RESULTS.md has the figures.
package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errDone = errors.New("done")

// unit is the workload of W1: an empty unit of work that tells its runner to
// stop after n calls. Every runner calls the same function value.
func unit(n int) func(context.Context) error {
	i := 0
	return func(context.Context) error {
		if i++; i >= n {
			return errDone
		}
		return nil
	}
}

func recovered(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return fn(ctx)
}
