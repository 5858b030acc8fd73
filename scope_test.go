package backi_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

// TestCleanupsRunInReverseWhateverTheOutcome runs one turn per outcome and
// checks that the scope was released in reverse order, with a live bounded
// context, after it.
func TestCleanupsRunInReverseWhateverTheOutcome(t *testing.T) {
	for _, tc := range []struct {
		name        string
		run         func(ctx context.Context) error
		cancelFirst bool
		failures    uint64
	}{
		{"success", func(context.Context) error { return nil }, false, 0},
		{"error", func(context.Context) error { return errFail }, false, 1},
		{"no work", func(context.Context) error { return backi.ErrNoWork }, false, 0},
		{"panic", func(context.Context) error { panic("boom") }, false, 1},
		{"cancellation", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				var order []string
				var itDone bool
				turns := 0
				w := backi.Continuous("scoped", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
					turns++
					if turns == 2 {
						return nil, backi.Stop(nil)
					}
					for _, name := range []string{"conn", "tx", "file"} {
						s.Defer(func(ctx context.Context) error {
							if !itDone {
								t.Errorf("cleanup %s ran before the iteration ended", name)
							}
							if ctx.Err() != nil {
								t.Errorf("cleanup %s got a context already done: %v", name, ctx.Err())
							}
							if dl, ok := ctx.Deadline(); !ok || time.Until(dl) != 7*time.Second {
								t.Errorf("cleanup %s: deadline %v, want 7s from now", name, dl)
							}
							order = append(order, name)
							return nil
						})
					}
					return backi.IterationFunc(func(ctx context.Context) error {
						defer func() { itDone = true }()
						if tc.cancelFirst {
							cancel()
						}
						return tc.run(ctx)
					}), nil
				}, backi.WithLogger(quiet), backi.WithCleanupTimeout(7*time.Second), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
				if err := w.Run(ctx); err != nil {
					t.Fatal(err)
				}
				if want := []string{"file", "tx", "conn"}; !slices.Equal(order, want) {
					t.Fatalf("cleanup order %v, want %v", order, want)
				}
				if st := w.Status(); st.Failures != tc.failures {
					t.Fatalf("failures %d, want %d", st.Failures, tc.failures)
				}
			})
		})
	}
}

func TestBuildFailureStillReleasesTheScope(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(s *backi.Scope) (backi.Iteration, error)
		want  string
	}{
		{"error", func(*backi.Scope) (backi.Iteration, error) { return nil, errFail }, "fail"},
		{"panic", func(*backi.Scope) (backi.Iteration, error) { panic("in build") }, "backi: panic: in build"},
		{"nil iteration", func(*backi.Scope) (backi.Iteration, error) { return nil, nil }, "nil Iteration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				released := 0
				var failure error
				turns := 0
				w := backi.Continuous("build", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
					turns++
					if turns == 2 {
						return nil, backi.Stop(nil)
					}
					s.Defer(func(context.Context) error { released++; return nil })
					return tc.build(s)
				}, backi.WithLogger(quiet), backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
					failure = f.Err
					return 0, nil
				}))
				if err := w.Run(t.Context()); err != nil {
					t.Fatal(err)
				}
				if released != 1 || failure == nil || !strings.Contains(failure.Error(), tc.want) {
					t.Fatalf("released %d, failure %v; want 1 and %q", released, failure, tc.want)
				}
			})
		})
	}
}

func TestCleanupErrorsAndPanicsAreFailuresAndTheRestStillRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errCommit := errors.New("commit failed")
		var ran []int
		var failure error
		turns := 0
		w := backi.Continuous("cleanups", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			turns++
			if turns == 2 {
				return nil, backi.Stop(nil)
			}
			s.Defer(func(context.Context) error { ran = append(ran, 1); return nil })
			s.Defer(func(context.Context) error { ran = append(ran, 2); panic("close") })
			s.Defer(func(context.Context) error { ran = append(ran, 3); return errCommit })
			return backi.IterationFunc(func(context.Context) error { return nil }), nil
		}, backi.WithLogger(quiet), backi.WithOnFailure(func(ctx context.Context, f backi.Failure) (time.Duration, error) {
			failure = f.Err
			return 0, nil
		}))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		var pe *backi.PanicError
		if !slices.Equal(ran, []int{3, 2, 1}) || !errors.Is(failure, errCommit) || !errors.As(failure, &pe) {
			t.Fatalf("ran %v, failure %v; want all three cleanups and both errors", ran, failure)
		}
		if st := w.Status(); st.Failures != 1 || st.Successes != 0 {
			t.Fatalf("status %+v: a failed cleanup must fail the turn", st)
		}
	})
}

func TestStopWithFailedCleanupReturnsBoth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errClose := errors.New("close")
		w := backi.Continuous("stop", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			s.Defer(func(context.Context) error { return errClose })
			return nil, backi.Stop(errFail)
		}, backi.WithLogger(quiet))
		err := w.Run(t.Context())
		if !errors.Is(err, errFail) || !errors.Is(err, errClose) {
			t.Fatalf("Run = %v, want the stop error and the cleanup error", err)
		}
	})
}

func TestDeferFromTheIterationAndFromACleanup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var order []string
		turns := 0
		w := backi.Continuous("nested", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			turns++
			if turns == 2 {
				return nil, backi.Stop(nil)
			}
			s.Defer(func(context.Context) error {
				order = append(order, "build")
				s.Defer(func(context.Context) error { order = append(order, "from cleanup"); return nil })
				return nil
			})
			s.Defer(nil) // ignored
			return backi.IterationFunc(func(ctx context.Context) error {
				s.Defer(func(context.Context) error { order = append(order, "iteration"); return nil })
				return nil
			}), nil
		}, backi.WithLogger(quiet))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if want := []string{"iteration", "build", "from cleanup"}; !slices.Equal(order, want) {
			t.Fatalf("order %v, want %v", order, want)
		}
	})
}

func TestEachTurnBuildsAFreshIteration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type counter struct{ n int }
		var seen []*counter
		w := backi.Continuous("fresh", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			c := &counter{}
			seen = append(seen, c)
			return backi.IterationFunc(func(ctx context.Context) error {
				c.n++
				if len(seen) == 3 {
					return backi.Stop(nil)
				}
				return nil
			}), nil
		}, backi.WithLogger(quiet))
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		for i, c := range seen {
			if c.n != 1 {
				t.Fatalf("iteration %d ran %d times, want once: %s", i, c.n, fmt.Sprint(seen))
			}
		}
	})
}

func TestCleanupContextExpiresAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		ctx := context.WithValue(t.Context(), key{}, "carried")
		var waited, derivedWaited time.Duration
		var errAfter, causeAfter error
		var value any
		w := backi.Continuous("slow cleanup", func(ctx context.Context, s *backi.Scope) (backi.Iteration, error) {
			s.Defer(func(ctx context.Context) error {
				value = ctx.Value(key{})
				if ctx.Err() != nil {
					t.Error("Err before the deadline")
				}
				start := time.Now()
				derived, cancel := context.WithTimeout(ctx, time.Hour)
				defer cancel()
				<-derived.Done()
				derivedWaited = time.Since(start)
				<-ctx.Done()
				waited = time.Since(start)
				errAfter, causeAfter = ctx.Err(), context.Cause(ctx)
				return nil
			})
			s.Defer(func(ctx context.Context) error {
				time.Sleep(2*time.Second + 50*time.Millisecond) // ignores its context, within the grace
				if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					t.Errorf("Err after the deadline = %v", ctx.Err())
				}
				return nil
			})
			return nil, backi.Stop(nil)
		}, backi.WithLogger(quiet), backi.WithCleanupTimeout(2*time.Second))
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		if waited != 2*time.Second || derivedWaited != 2*time.Second {
			t.Fatalf("waited %v (derived %v), want the 2s cleanup timeout", waited, derivedWaited)
		}
		if errAfter != context.DeadlineExceeded || causeAfter != context.DeadlineExceeded || value != "carried" {
			t.Fatalf("Err %v, Cause %v, value %v", errAfter, causeAfter, value)
		}
	})
}
