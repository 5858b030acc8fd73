// Package backitest helps test the workers a service builds with package
// backi: it runs a worker for a number of iterations or until its Status
// meets a condition, makes it leader when the test says, and records what
// its loops do.
//
// [RunN] runs a worker until n iterations have ended, [RunUntil] until a
// condition on its Status holds; then each cancels the worker, waits for its
// Run to return and returns what Run returned. The worker goes no further
// than the iteration or change of state that ends the wait, so a test can
// assert exact counts. Should Run return first, or the wait outlast its
// bound ([DefaultWithin], or [Within]), the test fails with a message that
// names the worker, what was awaited and the worker's last Status. Inside a
// testing/synctest bubble, the worker's backoff, idle and scheduled waits
// take no real time.
//
// This test checks that an outbox worker retries a failed send: two failures,
// then a success, with the default backoff's waits (500 ms, then 500 ms to
// 1 s) passing at once on the bubble's clock:
//
//	func TestOutboxRetries(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			sends := 0
//			w := backi.Loop("outbox", func(ctx context.Context) error {
//				if sends++; sends <= 2 {
//					return errors.New("broker unavailable")
//				}
//				return nil
//			})
//			backitest.RunN(t, w, 3)
//			if s := w.Status(); s.Iterations != 3 || s.Failures != 2 {
//				t.Errorf("%d iterations, %d failures; want 3 and 2", s.Iterations, s.Failures)
//			}
//		})
//	}
//
// An [Elector] is a backi.Elector for backi.WithLeader that the test
// controls: Grant lets the worker lead under a new [Term], whose token
// backi.TermFrom finds; Revoke ends the term, so the worker cancels the
// iteration in flight (its context's cause is backi.ErrLeadershipLost) and
// campaigns again. A [Recorder] is a backi.Observer that keeps the end of
// every iteration and every change of state, and waits until what it kept
// meets a condition: with it a test that runs a worker itself can act
// between steps, as revoking the leadership once an iteration has ended.
//
// The helpers report failures through a [TB], which *testing.T is. Everything
// here is safe for concurrent use and works inside a synctest bubble; make
// the workers, Electors and Recorders inside the bubble that uses them. The
// package uses only the standard library.
package backitest
