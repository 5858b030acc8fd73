// Package pgleader elects a leader among the replicas of a service on
// PostgreSQL, for backi workers that must run on one replica at a time
// (backi.WithLeader). It lives in its own module, with pgx v5.
//
// # Protocol
//
// Each Elector campaigns for one name on a dedicated connection: its own (New),
// or one shared by the electors of several names (NewSession, then
// Session.Elector); a failed check then ends every term held on it. To lead, it
// takes the session advisory lock pg_try_advisory_lock(hashtextextended(name,
// 0)), retrying every RetryPeriod while another replica holds it. Having it,
// it increments the name's row in the table backi_leader_terms (created, and
// migrated, on first use) and the new value is the term's fencing token: it
// grows with every term, whichever replica holds it. The leader then checks
// its connection every CheckPeriod with a query bounded by CheckTimeout; the
// moment a check fails or times out, the term's Done channel is closed (backi
// cancels the iteration in flight) and the connection is closed, which makes
// the server release the lock.
//
// A clean end (Resign, as backi does when a worker stops) marks the row
// released, unlocks and closes: the next replica takes over within one
// RetryPeriod. After an unclean end (a crash, a killed process, a broken
// connection) the row is not marked released, and the next leader waits out
// the old leader's check window, CheckPeriod + CheckTimeout, before it
// returns its term: by then a partitioned old leader has given up. So no two
// replicas run iterations under overlapping terms.
//
// # What bounds a failover
//
// With the defaults (RetryPeriod 50 ms, CheckPeriod 250 ms, CheckTimeout
// 250 ms): after a clean stop another replica leads within about 50 ms; after
// the leader's process is killed, the server drops its session at once (the
// kernel closes the socket) and another replica leads within RetryPeriod +
// CheckPeriod + CheckTimeout, about 550 ms.
//
// Under a network partition the old leader's checks fail and it gives up
// within CheckPeriod + CheckTimeout. The server keeps the old session, and the
// lock, until it notices the connection is gone: TCP keepalives
// (tcp_keepalives_idle, _interval, _count on the server) or tcp_user_timeout
// bound that, and no replica can lead meanwhile. Set them low where failover
// time matters.
//
// Session advisory locks belong to a server session: they do not work
// through a pooler in transaction mode (PgBouncer's pool_mode=transaction),
// which hands the session to others between transactions. Connect directly,
// or through a session-mode pool.
package pgleader
