-- The tables of package pgqueue. Migrate runs this file under an advisory
-- lock, with the search_path set to the queue's schema; teams that run their
-- own migrations can run it the same way. Every statement is idempotent.

CREATE TABLE IF NOT EXISTS backi_jobs (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	queue         text NOT NULL,
	-- 0 pending (or running, held by a TransactionHeld worker's lock),
	-- 1 running (leased until lease_until), 2 dead, 3 done (kept by a
	-- KeepDone worker until a Cleaner deletes it; deleted otherwise)
	state         smallint NOT NULL DEFAULT 0,
	priority      smallint NOT NULL DEFAULT 0, -- higher runs first
	run_at        timestamptz NOT NULL DEFAULT now(),
	attempts      integer NOT NULL DEFAULT 0,
	max_attempts  integer NOT NULL DEFAULT 25,
	lease_until   timestamptz,
	payload       bytea NOT NULL,
	last_error    text,
	last_error_at timestamptz,
	unique_key    text,
	created_at    timestamptz NOT NULL DEFAULT now(),
	finished_at   timestamptz
);

-- What the workers claim: the due jobs of a queue, in their order.
CREATE INDEX IF NOT EXISTS backi_jobs_due ON backi_jobs (queue, priority DESC, run_at, id) WHERE state = 0;
-- What the rescue finds: leases that ran out.
CREATE INDEX IF NOT EXISTS backi_jobs_leased ON backi_jobs (lease_until) WHERE state = 1;
-- One pending or running job per unique key and queue.
CREATE UNIQUE INDEX IF NOT EXISTS backi_jobs_unique ON backi_jobs (queue, unique_key)
	WHERE unique_key IS NOT NULL AND state IN (0, 1);
-- The dead jobs listed, latest first.
CREATE INDEX IF NOT EXISTS backi_jobs_finished ON backi_jobs (queue, state, finished_at) WHERE state = 2;
-- What the cleaner deletes.
CREATE INDEX IF NOT EXISTS backi_jobs_finished_at ON backi_jobs (finished_at) WHERE state IN (2, 3);
