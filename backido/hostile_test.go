package backido_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
	"github.com/backi-go/backi/backido"
	"github.com/samber/do/v2"
)

// slowJob is an iteration whose Shutdown takes all the time its context
// gives it.
type slowJob struct{ tx *tx }

func (j *slowJob) Run(context.Context) error { return nil }

func (j *slowJob) Shutdown(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestASlowShutdownDoesNotSkipTheServicesItUses gives the iteration a
// Shutdown that waits for its context to end: the tx it uses is still shut
// down after it, although the cleanup timeout is spent (do skips the
// Shutdown of a service whose context has ended).
func TestASlowShutdownDoesNotSkipTheServicesItUses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wd := newWorld(t)
		scoped := func(i do.Injector) {
			wd.scoped(i)
			do.Provide(i, func(i do.Injector) (*slowJob, error) {
				return &slowJob{tx: do.MustInvoke[*tx](i)}, nil
			})
		}
		obs := &results{}
		w, err := backido.Continuous[*slowJob]("slow job", wd.root, scoped, backi.WithLogger(quiet),
			backi.WithObserver(obs), backi.WithCleanupTimeout(2*time.Second), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		obs.end = cancel // one turn
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		res := obs.all()
		if len(res) != 1 || !errors.Is(res[0].Err, context.DeadlineExceeded) || !strings.Contains(res[0].Err.Error(), "slowJob") {
			t.Fatalf("results %+v; want one failure: the job's Shutdown at its deadline", res)
		}
		if got := wd.journal(); !slices.Contains(got, "close tx 1") {
			t.Fatalf("journal %q: the tx was never shut down", got)
		}
		holders(t, wd.root, 1)
	})
}

// panicsWithItself is an error whose Error method panics with the error
// itself, which fmt does not contain.
type panicsWithItself struct{}

func (e *panicsWithItself) Error() string { panic(e) }

// nilDeref is an error type whose Error method needs a non-nil receiver.
type nilDeref struct{ msg string }

func (e *nilDeref) Error() string { return e.msg }

// TestStrangeShutdownErrorsFailTheTurn makes the tx's Shutdown return an
// error whose Error method panics, and a typed nil: the turn fails with an
// error that matches it, and the process goes on.
func TestStrangeShutdownErrorsFailTheTurn(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"Error panics with itself", &panicsWithItself{}},
		{"typed nil", (*nilDeref)(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wd := newWorld(t)
				wd.run = stopAt(2)
				wd.txShutdown = func(n int, _ context.Context) error {
					if n == 1 {
						return tc.err
					}
					return nil
				}
				obs := &results{}
				w := mustContinuous(t, "strange error", wd, backi.WithObserver(obs), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
				if err := w.Run(t.Context()); err != nil {
					t.Fatal(err)
				}
				res := obs.all()
				if len(res) != 2 || res[0].Result != backi.ResultFailure || !errors.Is(res[0].Err, tc.err) {
					t.Fatalf("results %v; want a failure matching the Shutdown's error, then Stop", obs.kinds())
				}
				holders(t, wd.root, 1)
			})
		})
	}
}

// TestTwoWorkersOfOneNameShareARoot runs two workers of the same name on one
// root at once: neither fails.
func TestTwoWorkersOfOneNameShareARoot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wd := newWorld(t)
		var ws []*backi.Worker
		for range 2 {
			ws = append(ws, mustContinuous(t, "twin", wd, backi.WithConcurrency(2), backi.WithBackoff(backi.ConstantBackoff(time.Second))))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
		defer cancel()
		wd.run = func(_ int, ctx context.Context) error {
			<-ctx.Done() // every loop holds its holder until the end
			return nil
		}
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Go(func() {
				if err := w.Run(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, w := range ws {
			if st := w.Status(); st.Failures != 0 {
				t.Errorf("%d failures, the last: %v", st.Failures, st.LastError)
			}
		}
		holders(t, wd.root, 4)
	})
}

// TestStoppingMidTurn cancels Run's context while an iteration runs: Run
// returns nil, and the turn's services are shut down first.
func TestStoppingMidTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wd := newWorld(t)
		ctx, cancel := context.WithCancel(t.Context())
		wd.run = func(_ int, ctx context.Context) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		obs := &results{}
		w := mustContinuous(t, "stopped", wd, backi.WithObserver(obs))
		if err := w.Run(ctx); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if k := obs.kinds(); len(k) != 1 || w.Status().Failures != 0 {
			t.Fatalf("results %v, %d failures; want one turn, not a failure", k, w.Status().Failures)
		}
		want := []string{"pool built", "begin tx 1", "run 1", "job 1 shut down", "close tx 1"}
		if got := wd.journal(); !slices.Equal(got, want) {
			t.Fatalf("journal %q, want %q", got, want)
		}
		holders(t, wd.root, 1)
	})
}

// TestGoexitInAProviderEndsTheWorker calls runtime.Goexit from the
// iteration's provider, after the tx is built: the worker ends with
// ErrGoexit, and the tx is shut down first.
func TestGoexitInAProviderEndsTheWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wd := newWorld(t)
		scoped := func(i do.Injector) {
			wd.scoped(i)
			do.Override(i, func(i do.Injector) (*job, error) {
				do.MustInvoke[*tx](i)
				runtime.Goexit()
				return nil, nil
			})
		}
		// Two loops, so that the Goexit ends a goroutine of the worker's, not the test's.
		w, err := backido.Continuous[*job]("goexit provider", wd.root, scoped, backi.WithLogger(quiet), backi.WithConcurrency(2))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Run(t.Context()); !errors.Is(err, backi.ErrGoexit) {
			t.Fatalf("Run: %v, want ErrGoexit", err)
		}
		if got := wd.journal(); !slices.Contains(got, "close tx 1") {
			t.Fatalf("journal %q: the tx was not shut down", got)
		}
		holders(t, wd.root, 2)
	})
}

// reregisters is a service whose Shutdown registers a new one of its kind in
// its scope, every time.
type reregisters struct {
	i do.Injector
	n int
}

func (r *reregisters) Shutdown() {
	do.ProvideNamedValue(r.i, fmt.Sprint("again ", r.n+1), &reregisters{i: r.i, n: r.n + 1})
}

// TestAShutdownThatRegistersAgainEnds registers a service whose Shutdown
// registers another one, without end: the turn fails, saying so, and the
// worker goes on.
func TestAShutdownThatRegistersAgainEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wd := newWorld(t)
		wd.run = stopAt(2)
		scoped := func(i do.Injector) {
			wd.scoped(i)
			if i.Name() == "again#1" {
				do.ProvideNamedValue(i, "again 0", &reregisters{i: i})
			}
		}
		obs := &results{}
		w, err := backido.Continuous[*job]("again", wd.root, scoped, backi.WithLogger(quiet),
			backi.WithObserver(obs), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		res := obs.all()
		if len(res) != 2 || res[0].Result != backi.ResultFailure || !strings.Contains(res[0].Err.Error(), "registered while it shut down were left") {
			t.Fatalf("results %+v; want a failure that names the services left, then Stop", res)
		}
	})
}

// querier is what do.As makes of a tx in the turn's scope.
type querier interface {
	Shutdown(context.Context) error
}

// lingers is a turn's service whose Shutdown takes a second, then notes it.
type lingers struct {
	w    *world
	name string
	tx   *tx
}

func (l *lingers) Run(context.Context) error { return nil }

func (l *lingers) Shutdown() {
	time.Sleep(time.Second)
	l.w.note("%s shut down", l.name)
}

// TestAnAliasDoesNotShutItsTargetDownEarly registers the tx under an alias
// as well (do.As), which shuts the tx down when it is itself shut down: the
// services that use the tx, directly or through the alias, are still shut
// down before it.
func TestAnAliasDoesNotShutItsTargetDownEarly(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scoped func(wd *world) func(do.Injector)
		first  []string // shut down before the tx
	}{
		{"alias unused", func(wd *world) func(do.Injector) {
			return func(i do.Injector) {
				wd.scoped(i)
				do.MustAs[*tx, querier](i)
				do.Provide(i, func(i do.Injector) (*lingers, error) {
					return &lingers{w: wd, name: "job", tx: do.MustInvoke[*tx](i)}, nil
				})
			}
		}, []string{"job shut down"}},
		{"alias used beside the tx", func(wd *world) func(do.Injector) {
			return func(i do.Injector) {
				wd.scoped(i)
				do.MustAs[*tx, querier](i)
				do.ProvideNamed(i, "repo", func(i do.Injector) (*lingers, error) {
					return &lingers{w: wd, name: "repo", tx: do.MustInvoke[*tx](i)}, nil
				})
				do.Provide(i, func(i do.Injector) (*lingers, error) {
					do.MustInvoke[querier](i)
					return &lingers{w: wd, name: "job", tx: do.MustInvokeNamed[*lingers](i, "repo").tx}, nil
				})
			}
		}, []string{"job shut down", "repo shut down"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wd := newWorld(t)
				obs := &results{}
				w, err := backido.Continuous[*lingers]("alias", wd.root, tc.scoped(wd), backi.WithLogger(quiet), backi.WithObserver(obs))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				obs.end = cancel // one turn
				if err := w.Run(ctx); err != nil {
					t.Fatal(err)
				}
				got := wd.journal()
				closed := slices.Index(got, "close tx 1")
				for _, e := range tc.first {
					if i := slices.Index(got, e); i < 0 || closed < i {
						t.Errorf("journal %q: %q is not before the tx's shutdown", got, e)
					}
				}
				if n := strings.Count(strings.Join(got, "\n"), "close tx"); n != 1 {
					t.Errorf("the tx was shut down %d times", n)
				}
				if st := w.Status(); st.Failures != 0 {
					t.Errorf("%d failures, the last %v", st.Failures, st.LastError)
				}
				holders(t, wd.root, 1)
			})
		})
	}
}

// TestTheWaysToRegisterT registers T as a transient service, as a value,
// and not at all in the turn's scope but in root: each turn runs, and the
// turn's tx is shut down after it; do shuts a transient T down never, a
// value after each turn, and one of root only with root.
func TestTheWaysToRegisterT(t *testing.T) {
	for _, tc := range []struct {
		name    string
		scoped  func(wd *world) func(do.Injector)
		jobDown int // job shut down lines after three turns
	}{
		{"transient", func(wd *world) func(do.Injector) {
			return func(i do.Injector) {
				wd.scoped(i)
				do.OverrideTransient(i, func(i do.Injector) (*job, error) { return &job{w: wd, tx: do.MustInvoke[*tx](i)}, nil })
			}
		}, 0},
		{"value", func(wd *world) func(do.Injector) {
			return func(i do.Injector) {
				wd.scoped(i)
				do.OverrideValue(i, &job{w: wd, tx: do.MustInvoke[*tx](i)}) // built at registration
			}
		}, 3},
		{"in root", func(wd *world) func(do.Injector) {
			do.Provide(wd.root, func(i do.Injector) (*job, error) { return &job{w: wd, tx: &tx{w: wd}}, nil })
			return func(i do.Injector) {}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wd := newWorld(t)
				scoped := tc.scoped(wd)
				obs := &results{}
				w, err := backido.Continuous[*job]("kinds", wd.root, scoped, backi.WithLogger(quiet), backi.WithObserver(obs))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				obs.end = func() {
					if len(obs.list) == 3 {
						cancel()
					}
				}
				if err := w.Run(ctx); err != nil {
					t.Fatal(err)
				}
				journal := strings.Join(wd.journal(), "\n")
				if st := w.Status(); st.Iterations != 3 || st.Failures != 0 {
					t.Fatalf("%d iterations, %d failures (the last %v); want 3 successes", st.Iterations, st.Failures, st.LastError)
				}
				if begun, closed := strings.Count(journal, "begin tx"), strings.Count(journal, "close tx"); begun != closed {
					t.Errorf("%d tx begun, %d shut down:\n%s", begun, closed, journal)
				}
				if n := strings.Count(journal, "shut down") - strings.Count(journal, "pool shut down"); n != tc.jobDown {
					t.Errorf("the job was shut down %d times, want %d:\n%s", n, tc.jobDown, journal)
				}
				holders(t, wd.root, 1)
			})
		})
	}
}

// TestRootShutDown shuts root down before Run, and during the first turn:
// the turns that follow fail, as root has lost the pool, and the worker
// waits between them and stops when asked.
func TestRootShutDown(t *testing.T) {
	for _, during := range []bool{false, true} {
		t.Run(fmt.Sprint("during a turn: ", during), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wd := newWorld(t)
				if !during {
					wd.root.Shutdown()
				}
				wd.run = func(n int, _ context.Context) error {
					if n == 1 {
						wd.root.Shutdown()
					}
					return nil
				}
				w := mustContinuous(t, "orphan", wd, backi.WithBackoff(backi.ConstantBackoff(time.Second)))
				ctx, cancel := context.WithTimeout(t.Context(), 3500*time.Millisecond)
				defer cancel()
				if err := w.Run(ctx); err != nil {
					t.Fatal(err)
				}
				st := w.Status()
				if st.Failures < 3 || !errors.Is(st.LastError, do.ErrServiceNotFound) || !strings.Contains(st.LastError.Error(), "pool") {
					t.Fatalf("%d failures, the last %v; want one a second, for the missing pool", st.Failures, st.LastError)
				}
			})
		})
	}
}
