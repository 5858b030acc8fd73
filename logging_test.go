package backi_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/backi-go/backi"
)

func TestFailureStormIsCollapsedButNothingIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second+5*time.Millisecond)
		defer cancel()
		w := backi.Loop("storm", func(ctx context.Context) error {
			time.Sleep(10 * time.Millisecond)
			return errFail
		}, backi.WithLogger(log), backi.WithOnFailure(func(context.Context, backi.Failure) (time.Duration, error) {
			return 0, nil // retry after the 1 ms floor: 90 failures a second
		}))
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
		failures := w.Status().Failures
		logged := rec.find("iteration failed")
		summaries := rec.find("iteration failed repeatedly")
		if failures < 270 || len(logged) > 4 || len(summaries) > 4 {
			t.Fatalf("%d failures gave %d records and %d summaries; want about 270 in at most 4 and 4", failures, len(logged), len(summaries))
		}
		total := uint64(len(logged))
		for _, s := range summaries {
			total += uint64(s.Attrs["repeated"].Int64())
			if s.Attrs["err"].String() != "fail" || s.Attrs["in"].Duration() > time.Second+20*time.Millisecond {
				t.Fatalf("summary %+v", s.Attrs)
			}
		}
		if total != failures {
			t.Fatalf("records account for %d failures, Status for %d", total, failures)
		}
	})
}

func TestDifferentErrorsAreNotCollapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		errA, errB := errors.New("a"), errors.New("b")
		gaps(t, 7, func(i int) error {
			if i%2 == 0 {
				return errA
			}
			return errB
		}, backi.WithLogger(log), backi.WithBackoff(backi.ConstantBackoff(time.Millisecond)))
		if n := len(rec.find("iteration failed")); n != 6 {
			t.Fatalf("%d records for 6 alternating failures", n)
		}
	})
}

func TestIterationsAreLoggedAtDebug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		gaps(t, 3, func(int) error { time.Sleep(time.Second); return nil }, backi.WithLogger(log))
		started, finished := rec.find("iteration started"), rec.find("iteration finished")
		if len(started) != 3 || len(finished) != 3 {
			t.Fatalf("%d start and %d finish records, want 3 and 3", len(started), len(finished))
		}
		for i := range 2 {
			if started[i].Level != slog.LevelDebug || started[i].Attrs["iteration"].Uint64() != uint64(i+1) ||
				finished[i].Attrs["iteration"].Uint64() != uint64(i+1) || finished[i].Attrs["duration"].Duration() != time.Second ||
				finished[i].Attrs["worker"].String() != "timed" {
				t.Fatalf("records %+v / %+v", started[i], finished[i])
			}
		}
	})
}

func TestFailureRecordCarriesTheIterationAndItsDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, rec := newRecorder()
		gaps(t, 3, func(i int) error {
			if i == 2 {
				time.Sleep(3 * time.Second)
				return errFail
			}
			return nil
		}, backi.WithLogger(log))
		fails := rec.find("iteration failed")
		if len(fails) != 1 || fails[0].Attrs["iteration"].Uint64() != 2 || fails[0].Attrs["duration"].Duration() != 3*time.Second {
			t.Fatalf("failure records %+v", fails)
		}
	})
}

func TestStuckIterationIsReportedOnceAndClears(t *testing.T) {
	for _, viaHost := range []bool{false, true} {
		name := "worker option"
		if viaHost {
			name = "host default"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log, rec := newRecorder()
				ctx, cancel := context.WithCancel(t.Context())
				var opts []backi.Option
				hostOpts := []backi.HostOption{backi.WithSignals(), backi.WithLogger(log)}
				if viaHost {
					hostOpts = append(hostOpts, backi.WithStuckAfter(time.Minute))
				} else {
					opts = append(opts, backi.WithStuckAfter(time.Minute))
				}
				n := 0
				w := backi.Loop("slow", func(ctx context.Context) error {
					if n++; n == 1 {
						time.Sleep(5 * time.Minute)
						return nil
					}
					<-ctx.Done()
					return nil
				}, opts...)
				h := backi.NewHost(hostOpts...)
				h.Add(w)
				done := make(chan error)
				go func() { done <- h.Run(ctx) }()

				time.Sleep(50 * time.Second)
				if st := w.Status().State; st != backi.StateRunning {
					t.Fatalf("at 50s: %v, want running", st)
				}
				time.Sleep(20 * time.Second)
				if st := w.Status().State; st != backi.StateStuck {
					t.Fatalf("at 70s: %v, want stuck", st)
				}
				warns := rec.find("iteration stuck")
				if len(warns) != 1 || warns[0].Level != slog.LevelWarn || warns[0].Attrs["running"].Duration() < time.Minute ||
					warns[0].Attrs["running"].Duration() > 66*time.Second || warns[0].Attrs["iteration"].Uint64() != 1 {
					t.Fatalf("stuck records %+v", warns)
				}
				time.Sleep(4 * time.Minute) // the first iteration returns; the second waits
				if st := w.Status().State; st != backi.StateRunning {
					t.Fatalf("after it returned: %v, want running again", st)
				}
				time.Sleep(30 * time.Second)
				if n := len(rec.find("iteration stuck")); n != 1 {
					t.Fatalf("%d stuck records before the second iteration is a minute old, want 1", n)
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
