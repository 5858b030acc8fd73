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

var errCommit = errors.New("commit failed")

// TestEachTurnHasItsOwnServices runs four turns, the second of which
// panics, and checks that each turn built its own tx and job once, shut them
// down once after the turn, the job first, while the pool was built once and
// is shut down only with root.
func TestEachTurnHasItsOwnServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wd := newWorld(t)
		wd.run = func(n int, ctx context.Context) error {
			switch n {
			case 2:
				panic("turn 2 panics")
			case 4:
				return backi.Stop(nil)
			}
			return nil
		}
		obs := &results{}
		w, err := backido.Continuous[*job]("each", wd.root, wd.scoped,
			backi.WithLogger(quiet), backi.WithObserver(obs), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := []string{"pool built"}
		for n := 1; n <= 4; n++ {
			want = append(want, fmt.Sprintf("begin tx %d", n), fmt.Sprintf("run %d", n),
				fmt.Sprintf("job %d shut down", n), fmt.Sprintf("close tx %d", n))
		}
		if got := wd.journal(); !slices.Equal(got, want) {
			t.Fatalf("journal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if b := wd.began; b[1] != 0 || b[2] < time.Second || b[2] > time.Second+50*time.Millisecond || b[3] != b[2] {
			t.Fatalf("turns began at %v; want the third 1s after the second (the backoff, up to 50ms late), the fourth at once", b)
		}
		wantKinds := []backi.Result{backi.ResultSuccess, backi.ResultFailure, backi.ResultSuccess, backi.ResultStopped}
		if got := obs.kinds(); !slices.Equal(got, wantKinds) {
			t.Fatalf("results %v, want %v", got, wantKinds)
		}
		st := w.Status()
		var pe *backi.PanicError
		if st.Failures != 1 || !errors.As(st.LastError, &pe) || pe.Value != "turn 2 panics" {
			t.Fatalf("failures %d, last error %v; want 1 and the panic", st.Failures, st.LastError)
		}
		holders(t, wd.root, 1)
		wd.root.Shutdown()
		if got := wd.journal(); got[len(got)-1] != "pool shut down" || len(got) != len(want)+1 {
			t.Fatalf("after root's shutdown the journal ends %q, want one more line, the pool's shutdown", got[len(got)-1])
		}
	})
}

// TestShutdownFailuresFailTheTurn makes the tx's Shutdown return an error,
// panic or call runtime.Goexit on the first turn, whose iteration succeeds:
// the turn is a failure that names the worker, the service and the scope,
// the job was still shut down first, and the worker goes on.
func TestShutdownFailuresFailTheTurn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shutdown func() error
		check    func(error) bool
	}{
		{"error", func() error { return errCommit }, func(err error) bool { return errors.Is(err, errCommit) }},
		{"panic", func() error { panic(errCommit) }, func(err error) bool {
			var pe *backi.PanicError
			return errors.As(err, &pe) && errors.Is(err, errCommit) && strings.Contains(string(pe.Stack), "Shutdown")
		}},
		{"Goexit", func() error { runtime.Goexit(); return nil }, func(err error) bool { return errors.Is(err, backi.ErrGoexit) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wd := newWorld(t)
				wd.run = func(n int, _ context.Context) error {
					if n == 2 {
						return backi.Stop(nil)
					}
					return nil
				}
				wd.txShutdown = func(n int, _ context.Context) error {
					if n == 1 {
						return tc.shutdown()
					}
					return nil
				}
				obs := &results{}
				w, err := backido.Continuous[*job]("failing shutdown", wd.root, wd.scoped,
					backi.WithLogger(quiet), backi.WithObserver(obs), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Run(t.Context()); err != nil {
					t.Fatal(err)
				}
				res := obs.all()
				if len(res) != 2 || res[0].Result != backi.ResultFailure || res[1].Result != backi.ResultStopped {
					t.Fatalf("results %v, want a failure then Stop", obs.kinds())
				}
				err = res[0].Err
				prefix := `backido: worker "failing shutdown": shutting down *github.com/backi-go/backi/backido_test.tx in scope failing shutdown#1: `
				if !strings.HasPrefix(err.Error(), prefix) || !tc.check(err) {
					t.Fatalf("failure %q; want it to start with %q and to match", err, prefix)
				}
				if st := w.Status(); st.Failures != 1 || st.LastError != err {
					t.Fatalf("status: failures %d, last error %v", st.Failures, st.LastError)
				}
				journal := wd.journal()
				if i, j := slices.Index(journal, "job 1 shut down"), slices.Index(journal, "close tx 1"); i < 0 || j < i {
					t.Fatalf("journal %q: the job was not shut down before the tx", journal)
				}
				holders(t, wd.root, 1)
			})
		})
	}
}

// TestShutdownIsBoundedByTheCleanupTimeout makes the tx's Shutdown wait for
// its context, then ignore it: the turn fails at the cleanup timeout, or
// once backi abandons the cleanup, and the next turn runs.
func TestShutdownIsBoundedByTheCleanupTimeout(t *testing.T) {
	t.Run("honours its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			wd := newWorld(t)
			wd.run = stopAt(2)
			wd.txShutdown = func(n int, ctx context.Context) error {
				if n == 1 {
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}
			obs := &results{}
			w := mustContinuous(t, "slow shutdown", wd, backi.WithObserver(obs), backi.WithCleanupTimeout(2*time.Second))
			if err := w.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			res := obs.all()
			if len(res) != 2 || !errors.Is(res[0].Err, context.DeadlineExceeded) || res[0].Duration != 2*time.Second {
				t.Fatalf("results %+v; want a failure matching DeadlineExceeded after 2s", res)
			}
			holders(t, wd.root, 1)
		})
	})
	t.Run("ignores its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			defer free() // so that the bubble ends, should the test fail before
			wd := newWorld(t)
			wd.run = stopAt(2)
			wd.txShutdown = func(n int, ctx context.Context) error {
				if n == 1 {
					<-release
				}
				return nil
			}
			obs := &results{}
			w := mustContinuous(t, "stuck shutdown", wd, backi.WithObserver(obs), backi.WithCleanupTimeout(2*time.Second))
			if err := w.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			res := obs.all()
			if len(res) != 2 || res[0].Result != backi.ResultFailure || !strings.Contains(res[0].Err.Error(), "abandoned") {
				t.Fatalf("results %+v; want a failure, abandoned, then Stop", res)
			}
			if n := len(wd.root.Children()); n != 2 {
				t.Fatalf("root has %d child scopes, want 2: the abandoned turn's and the next turn's", n)
			}
			free()
			synctest.Wait()
			holders(t, wd.root, 2)
			if got := wd.journal(); !slices.Contains(got, "close tx 1") || !slices.Contains(got, "close tx 2") {
				t.Fatalf("journal %q", got)
			}
		})
	})
}

// TestMissingServiceFailsEveryTurnWithBackoff registers a job whose
// provider needs a service nobody registered: every turn fails, naming the
// worker and the type, once per backoff wait.
func TestMissingServiceFailsEveryTurnWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type missing struct{}
		root := do.New()
		closed := 0
		scoped := do.Package(
			do.Lazy(func(do.Injector) (*tx, error) { return &tx{w: &world{}}, nil }),
			do.Lazy(func(i do.Injector) (*job, error) {
				x, err := do.Invoke[*tx](i) // built, so shut down
				if err != nil {
					return nil, err
				}
				x.w.txShutdown = func(int, context.Context) error { closed++; return nil }
				if _, err := do.Invoke[*missing](i); err != nil {
					return nil, err
				}
				return &job{}, nil
			}),
		)
		w, err := backido.Continuous[*job]("missing", root, scoped,
			backi.WithLogger(quiet), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		st := w.Status()
		if st.Failures < 9 || st.Failures > 10 || st.Iterations != st.Failures {
			t.Fatalf("%d failures of %d iterations in 10s with a 1s backoff; want 9 or 10, all failures", st.Failures, st.Iterations)
		}
		if closed != int(st.Failures) {
			t.Fatalf("%d tx shut down, want one per turn: %d", closed, st.Failures)
		}
		err = st.LastError
		if !strings.HasPrefix(err.Error(), `backido: worker "missing": resolving *github.com/backi-go/backi/backido_test.job in scope missing#`) ||
			!strings.Contains(err.Error(), "missing") || !errors.Is(err, do.ErrServiceNotFound) {
			t.Fatalf("last error %q", err)
		}
		holders(t, root, 1)
	})
}

// TestResolutionFailuresFailTheTurn fails the first turn in each way a
// resolution can, and checks the failure, that whatever was built was shut
// down, and that the second turn runs.
func TestResolutionFailuresFailTheTurn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scoped func(wd *world) func(do.Injector)
		want   string // in the failure
		check  func(error) bool
	}{
		{"provider error", func(wd *world) func(do.Injector) {
			return failFirst(wd, func(*tx) (*job, error) { return nil, errCommit })
		}, `resolving *github.com/backi-go/backi/backido_test.job in scope resolution#1: commit failed`, func(err error) bool { return errors.Is(err, errCommit) }},
		{"provider panic", func(wd *world) func(do.Injector) {
			return failFirst(wd, func(*tx) (*job, error) { panic("in the provider") })
		}, `resolving *github.com/backi-go/backi/backido_test.job in scope resolution#1: DI: in the provider`, nil},
		{"provider panics with an error", func(wd *world) func(do.Injector) {
			return failFirst(wd, func(*tx) (*job, error) { panic(errCommit) })
		}, `resolving *github.com/backi-go/backi/backido_test.job in scope resolution#1: commit failed`, func(err error) bool {
			var pe *backi.PanicError
			return errors.Is(err, errCommit) && !errors.As(err, &pe) // do recovers it, without its stack
		}},
		{"nil iteration", func(wd *world) func(do.Injector) {
			return failFirst(wd, func(*tx) (*job, error) { return nil, nil })
		}, `resolving *github.com/backi-go/backi/backido_test.job in scope resolution#1: its provider returned nil`, nil},
		{"registration panic", func(wd *world) func(do.Injector) {
			return func(i do.Injector) {
				wd.scoped(i)
				if i.Name() == "resolution#1" {
					panic("in the registration")
				}
			}
		}, `registering the services of scope resolution#1: backi: panic: in the registration`, func(err error) bool {
			var pe *backi.PanicError
			return errors.As(err, &pe) && pe.Value == "in the registration"
		}},
		{"not registered", func(wd *world) func(do.Injector) {
			return func(i do.Injector) {
				if i.Name() != "resolution#1" {
					wd.scoped(i)
				}
			}
		}, `resolving *github.com/backi-go/backi/backido_test.job in scope resolution#1: DI: could not find service`, func(err error) bool { return errors.Is(err, do.ErrServiceNotFound) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wd := newWorld(t)
				wd.run = stopAt(2)
				obs := &results{}
				w, err := backido.Continuous[*job]("resolution", wd.root, tc.scoped(wd),
					backi.WithLogger(quiet), backi.WithObserver(obs), backi.WithBackoff(backi.ConstantBackoff(time.Second)))
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Run(t.Context()); err != nil {
					t.Fatal(err)
				}
				res := obs.all() // the first turn fails; the tx of the next one that runs stops the worker
				if len(res) < 2 || res[0].Result != backi.ResultFailure || res[len(res)-1].Result != backi.ResultStopped || w.Status().Failures != 1 {
					t.Fatalf("results %v, want a failure, then no other, and Stop", obs.kinds())
				}
				err = res[0].Err
				if !strings.HasPrefix(err.Error(), `backido: worker "resolution": `+tc.want) || (tc.check != nil && !tc.check(err)) {
					t.Fatalf("failure %q, want %q", err, tc.want)
				}
				built := strings.Count(strings.Join(wd.journal(), "\n"), "begin tx")
				closed := strings.Count(strings.Join(wd.journal(), "\n"), "close tx")
				if built != closed {
					t.Fatalf("%d tx built, %d shut down: %q", built, closed, wd.journal())
				}
				holders(t, wd.root, 1)
			})
		})
	}
}

// failFirst registers the world's tx, and a job built by provide on the
// first turn and as usual after.
func failFirst(wd *world, provide func(*tx) (*job, error)) func(do.Injector) {
	return func(i do.Injector) {
		wd.scoped(i)
		if i.Name() != "resolution#1" {
			return
		}
		do.Override(i, func(i do.Injector) (*job, error) {
			x, err := do.Invoke[*tx](i)
			if err != nil {
				return nil, err
			}
			return provide(x)
		})
	}
}

// TestScopesDoNotAccumulate runs many turns, on one loop and on four, and
// checks at the end of each that root keeps one scope per loop at most, the
// turns' scopes forgotten, with unique names, and that the pool's
// dependents in do's graph do not pile up.
func TestScopesDoNotAccumulate(t *testing.T) {
	const turns = 300
	for _, loops := range []int{1, 4} {
		t.Run(fmt.Sprint(loops, " loops"), func(t *testing.T) {
			wd := newWorld(t)
			wd.run = stopAt(turns)
			obs := &results{}
			var bad []string // what an iteration's end found; obs.end is called one at a time
			obs.end = func() {
				if n := len(wd.root.Children()); n > loops {
					bad = append(bad, fmt.Sprintf("root has %d child scopes", n))
				}
				for _, h := range wd.root.Children() {
					if n := len(h.Children()); n > 1 {
						bad = append(bad, fmt.Sprintf("%s holds %d scopes", h.Name(), n))
					}
				}
				if e, _ := do.ExplainService[*pool](wd.root); len(e.Dependents) > loops {
					bad = append(bad, fmt.Sprintf("the pool has %d dependents", len(e.Dependents)))
				}
			}
			w := mustContinuous(t, "many", wd, backi.WithObserver(obs), backi.WithConcurrency(loops))
			if err := w.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			if len(bad) > 0 {
				t.Fatalf("%d times, first: %s", len(bad), bad[0])
			}
			holders(t, wd.root, loops)
			if e, _ := do.ExplainService[*pool](wd.root); len(e.Dependents) != 0 {
				t.Fatalf("the pool still has dependents: %v", e.Dependents)
			}
			names := slices.Clone(wd.scopes)
			if len(names) < turns {
				t.Fatalf("%d turns resolved, want at least %d", len(names), turns)
			}
			slices.Sort(names)
			if len(slices.Compact(names)) != len(wd.scopes) {
				t.Fatal("two turns had scopes of the same name")
			}
			if loops == 1 && (wd.scopes[0] != "many#1" || wd.scopes[turns-1] != fmt.Sprint("many#", turns)) {
				t.Fatalf("scopes named %s … %s", wd.scopes[0], wd.scopes[turns-1])
			}
		})
	}
}

// TestTheTurnsContext checks that a provider of the turn's scope gets the
// turn's context, and that one that waits on it ends with the turn's
// timeout.
func TestTheTurnsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		ctx := context.WithValue(t.Context(), key{}, "carried")
		wd := newWorld(t)
		var seen []any
		wd.run = func(n int, ctx context.Context) error {
			if n == 2 {
				return backi.Stop(nil)
			}
			return nil
		}
		scoped := func(i do.Injector) {
			wd.scoped(i)
			do.ProvideNamed(i, "waits", func(i do.Injector) (struct{}, error) {
				ctx := do.MustInvoke[context.Context](i)
				seen = append(seen, ctx.Value(key{}))
				<-ctx.Done()
				return struct{}{}, ctx.Err()
			})
			if i.Name() == "context#1" {
				do.Override(i, func(i do.Injector) (*job, error) {
					if _, err := do.InvokeNamed[struct{}](i, "waits"); err != nil {
						return nil, err
					}
					return &job{}, nil
				})
			}
		}
		obs := &results{}
		w, err := backido.Continuous[*job]("context", wd.root, scoped,
			backi.WithLogger(quiet), backi.WithObserver(obs), backi.WithTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		res := obs.all() // the first turn built no tx: the third stops the worker
		if len(res) != 3 || !errors.Is(res[0].Err, context.DeadlineExceeded) || res[0].Duration != time.Second {
			t.Fatalf("results %+v; want a failure at the 1s timeout", res)
		}
		if len(seen) != 1 || seen[0] != "carried" {
			t.Fatalf("the provider saw %v in its context", seen)
		}
		holders(t, wd.root, 1)
	})
}

// TestInvalidArguments checks that Continuous names the argument it
// refuses.
func TestInvalidArguments(t *testing.T) {
	root := do.New()
	noop := func(do.Injector) {}
	for _, tc := range []struct {
		name   string
		root   do.Injector
		scoped func(do.Injector)
		want   string
	}{
		{"", root, noop, "backido: worker name is empty"},
		{"w", nil, noop, `backido: worker "w": the root injector is nil`},
		{"w", (*do.RootScope)(nil), noop, `backido: worker "w": the root injector is nil`},
		{"w", root, nil, `backido: worker "w": the scoped registration function is nil (use do.Package() for none)`},
	} {
		w, err := backido.Continuous[*job](tc.name, tc.root, tc.scoped)
		if w != nil || err == nil || err.Error() != tc.want {
			t.Errorf("Continuous(%q, %v, %p): %v, %v; want no worker and %q", tc.name, tc.root, tc.scoped, w, err, tc.want)
		}
	}
}

func stopAt(turn int) func(int, context.Context) error {
	return func(n int, _ context.Context) error {
		if n == turn {
			return backi.Stop(nil)
		}
		return nil
	}
}

func mustContinuous(t *testing.T, name string, wd *world, opts ...backi.Option) *backi.Worker {
	t.Helper()
	w, err := backido.Continuous[*job](name, wd.root, wd.scoped, append([]backi.Option{backi.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestGoexitInTheRegistrationEndsTheWorker calls runtime.Goexit from the
// registration of the first turn: as for a build function, the worker ends
// with ErrGoexit, and the turn's scope is shut down and forgotten first.
func TestGoexitInTheRegistrationEndsTheWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wd := newWorld(t)
		scoped := func(i do.Injector) {
			wd.scoped(i)
			do.ProvideNamedValue(i, "eager tx", &tx{w: wd, n: 0}) // shut down with the scope
			runtime.Goexit()
		}
		w, err := backido.Continuous[*job]("goexit", wd.root, scoped, backi.WithLogger(quiet), backi.WithConcurrency(2))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // should the worker not end
		defer cancel()
		if err := w.Run(ctx); !errors.Is(err, backi.ErrGoexit) {
			t.Fatalf("Run: %v, want ErrGoexit", err)
		}
		if got := wd.journal(); len(got) == 0 || !slices.Contains(got, "close tx 0") {
			t.Fatalf("journal %q: the eager tx was not shut down", got)
		}
		holders(t, wd.root, 2)
	})
}
