// Package pgleader elects a leader among the replicas of a service on
// PostgreSQL, for backi workers that must run on one replica at a time
// (backi.WithLeader). It lives in its own module, with pgx v5.
//
// # Protocol
//
// Each Elector campaigns for one name on a dedicated connection: its own
// (New), or one shared by the electors of several names (NewSession, then
// Session.Elector). A goroutine of the session's own is the only user of the
// connection. Every RetryPeriod while an elector campaigns, and every
// CheckPeriod while one leads, each counted from the start of the last, it
// makes one exchange with the server, a single round trip bounded by
// CheckTimeout, that tries the lock of every name that campaigns and proves
// that the connection, and so every lock taken on it, is still there.
// A session that releases a lock says so on the channel
// backi_leader_released, and the sessions that campaign try at once.
//
// Each name has a row in the table backi_leader_terms (created, and migrated,
// on first use) with a unique id; its lock is the session advisory lock
// pg_try_advisory_lock(table, id), in the two-key form, where table is the
// table's oid (pg_locks shows it as classid, and id as objid): a key space
// apart from the one-key locks of other code, and from the tables of other
// schemas. Having the lock, the session writes the row's next term, drawn
// from the sequence backi_leader_tokens, and that is the term's fencing
// token: it grows with every term, whichever replica holds it, even across a
// row deleted and made again. Every exchange of a leader also checks that
// its rows still carry its terms: a row deleted, or written by someone else,
// ends the term. A new row, which may replace a deleted one, is treated like
// a term that ended uncleanly: its first leader waits.
//
// # The lease
//
// A leader trusts its terms until L = CheckPeriod + CheckTimeout after the
// start of its latest successful exchange, measured on its own monotonic
// clock. At that instant the terms' Done channels close, whether or not an
// exchange is under way, and backi starts no iteration past it (the term's
// Lease method) even if the process was paused and nothing else has run yet.
// A failed exchange ends every term on the session at once, and closes the
// connection, which makes the server release the locks.
//
// A clean end (Resign, as backi does when a worker stops) marks the row
// released and unlocks: the next replica leads within one RetryPeriod. After
// an unclean end (a crash, a killed process, a broken connection, a lease
// that ran out) the next leader, once it has the lock, waits
//
//	W = (L + Notice) · 1.01
//
// before it leads, or longer if the last leader's own W, which it records in
// its row, is longer (replicas may be configured apart; a deleted row loses
// that record, and its new row is waited out with the new leader's own W). The old leader's
// last successful exchange began before
// the server released its lock, so its lease ended at most L after that, and
// its iteration had Notice (WithNotice) to stop. The 1% covers clocks that
// run at rates up to 0.5% apart; the clocks need not agree on the time. So no
// two replicas run iterations under overlapping terms, as long as a deposed
// leader's iteration stops within Notice of its context's cancellation.
//
// # What bounds a failover
//
// With the defaults (RetryPeriod 150 ms, CheckPeriod 150 ms, CheckTimeout
// 150 ms, Notice 150 ms; so L = 300 ms and W ≈ 455 ms):
//
//   - after a clean stop, another replica leads within two round trips: the
//     release is notified;
//   - after the leader's process is killed, its server session ends at once
//     (the kernel closes the socket), and another replica leads within
//     RetryPeriod + W plus a round trip, at most about 620 ms, 530 ms on
//     average;
//   - after the server ends the leader's session (pg_terminate_backend, a
//     restart), the leader's next check fails and its terms end; another
//     replica leads as after a kill;
//   - under a network partition the leader's terms end within L. The server
//     keeps its session, and the lock, until it notices the client is gone:
//     the session asks it to after about 5 s of silence (TCP keepalives after
//     2 s idle, every 1 s, 3 probes; tcp_user_timeout 5 s), so another replica
//     leads within about 5 s + RetryPeriod + W;
//   - while the database cannot be reached, Campaign keeps trying, about
//     every CheckPeriod with jitter, each attempt bounded by the connect
//     timeout (5 s unless the connection string sets one), and the first
//     campaign after the database answers again wins within one retry;
//   - a server that takes longer than CheckTimeout to answer ends the terms
//     and lets no replica lead: raise WithCheckTimeout above the round trip
//     (the session logs the trouble, naming the option).
//
// Session advisory locks belong to a server session: they do not work
// through a pooler in transaction mode (PgBouncer's pool_mode=transaction),
// which hands the session to others between transactions. Connect directly,
// or through a session-mode pool.
package pgleader
