// Package pgqueue is a job queue in a PostgreSQL table, consumed by backi
// workers on every replica at once: the jobs divide themselves among them.
//
// A service enqueues jobs in the transaction of its business change (the
// outbox pattern: the job exists if and only if the change committed), and
// runs a Worker for each queue it consumes. The worker is a *backi.Worker, so
// the host, the failure hook, observers, the status page, metrics, pauses
// and leadership all apply unchanged:
//
//	pool, _ := pgxpool.New(ctx, url)
//	q, _ := pgqueue.New(pool)
//	q.Migrate(ctx) // creates the table backi_jobs, once
//
//	// in a handler, beside the business change:
//	pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		// ... the change ...
//		_, err := q.Enqueue(ctx, tx, pgqueue.NewJob{Queue: "emails", Payload: body})
//		return err
//	})
//
//	host.Add(q, pgqueue.Worker(q, "emails", send))
//
// # How jobs are taken
//
// A worker's loop claims up to a batch of due jobs (priority, then due time,
// then enqueue order) with one statement that skips the rows other workers
// hold (FOR UPDATE SKIP LOCKED), runs their handler one after the other, and
// records the batch's outcomes in the same round trip that claims the next
// batch: done jobs are deleted, failed ones are put back to run after the
// retry backoff of their attempt with their error kept, and jobs past their
// attempts are dead, kept in the table with their last error.
//
// It takes them in one of two ways:
//
//   - By lease (the default): a claimed job is the worker's until its lease
//     ends (WithLease), which the worker extends while the job runs. The jobs of a
//     process that died or hung are taken again once their lease has run
//     out. A handler that writes to the same database can make its effects
//     happen once by deleting the job in its own transaction (Job.Complete).
//   - Held by a transaction (WithTransactionHeld): a claimed job's row stays
//     locked in an open transaction while it runs; the handler writes in that
//     transaction (Job.Tx), and the job's deletion commits with its writes. A
//     crash rolls all of it back. It costs a connection in a transaction for
//     the whole batch, and a job that crashes its process is never counted
//     as failed.
//
// Delivery is at least once, in both ways: a job whose outcome was not
// recorded runs again. A job is never run by two workers at once while its
// lease holds. A bad payload or a panicking handler fails that job only.
//
// # Waking up
//
// Enqueues notify (NOTIFY backi_jobs) when they commit. Run the Queue as a
// backi.Service, and it listens on one connection for the whole process,
// waking the idle workers of the queue named; without it, or when
// notifications are lost (behind PgBouncer in transaction mode, say), idle
// workers poll (WithPoll). Jobs enqueued to run later are found by polling.
package pgqueue
