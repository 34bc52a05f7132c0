-- PostgreSQL migration 8: the whole schema at version 8, in one file.
-- The SQLite schema grew by migrations 1..8 (sql/NNN-*.sql); a PostgreSQL
-- database is new with this engine, so its first migration makes directly
-- what those eight made together, and carries the number of the last of
-- them. The migration runner (lib/store_pg.c) treats versions 1..7 as
-- contained in this file: an empty database goes from 0 to 8 in one
-- transaction, and later changes get sql/pg/009-... beside sql/009-...
-- schema_version holds the version, as PRAGMA user_version does on SQLite.
-- Times are bigint milliseconds since the Unix epoch, UTC. States are
-- integers: 0 alive (pending or delivering: see live.token), 2 delivered,
-- 3 failed, 4 cancelled, 5 expired.

CREATE TABLE schema_version (version integer NOT NULL);
INSERT INTO schema_version (version) VALUES (0);

-- The immutable message: written when made and once more when it ends.
CREATE TABLE messages (
	key             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id              text NOT NULL UNIQUE,       -- the public id
	state           integer NOT NULL DEFAULT 0, -- 0 while alive, else how it ended
	due             bigint NOT NULL,            -- when the user asked for delivery
	created         bigint NOT NULL,
	urls            text NOT NULL,              -- the pool, one URL per line, as given
	payload_bytes   bigint NOT NULL,
	content_type    text NOT NULL,
	callback        text,
	max_attempts    integer NOT NULL,
	timeout         integer NOT NULL,           -- seconds per HTTP attempt
	idempotency_key text,
	fingerprint     bytea,                      -- of the request, for a reused key
	report_of       text,                       -- a callback report: the message it reports on
	-- Written once, when the message ends:
	ended           bigint,
	attempts        integer NOT NULL DEFAULT 0, -- rounds started
	gone            bigint NOT NULL DEFAULT 0,  -- bit i: URL i answered 410 or was refused
	delivered_to    text,
	delivered_at    bigint,
	report          text,                       -- the id of its callback report
	queue           bigint,                     -- queues.key, or NULL: pushed
	priority        integer NOT NULL DEFAULT 0,
	expires         bigint,                     -- NULL: never
	publish         bigint,                     -- publishes.key, or NULL
	subscription    text,                       -- its name, for a copy
	recurring       bigint,                     -- recurring.key, or NULL
	method          text NOT NULL DEFAULT 'POST',
	headers         text                        -- "Name: value" lines, NULL for none
);

CREATE INDEX messages_by_state_due ON messages (state, due, id);
CREATE INDEX messages_by_due ON messages (due, id);
CREATE UNIQUE INDEX messages_by_idempotency_key ON messages (idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_by_queue_state ON messages (queue, state, due, id) WHERE queue IS NOT NULL;
CREATE INDEX messages_by_queue ON messages (queue, due, id) WHERE queue IS NOT NULL;
CREATE INDEX messages_by_publish ON messages (publish) WHERE publish IS NOT NULL;
CREATE UNIQUE INDEX messages_by_occurrence ON messages (recurring, due)
	WHERE recurring IS NOT NULL AND publish IS NULL;
CREATE INDEX messages_by_recurring ON messages (recurring, due) WHERE recurring IS NOT NULL;
CREATE INDEX messages_by_ended ON messages (ended) WHERE state <> 0;

-- The mutable part of a live message (see sql/002-store-v2.sql).
CREATE TABLE live (
	key         bigint PRIMARY KEY,             -- messages.key
	due         bigint NOT NULL,
	next_round  bigint NOT NULL,
	buffered    integer NOT NULL DEFAULT 0,
	token       bigint NOT NULL DEFAULT 0,      -- the lease token; 0: not leased
	attempts    integer NOT NULL DEFAULT 0,
	gone        bigint NOT NULL DEFAULT 0,
	lease_ms    bigint NOT NULL,
	queue       bigint NOT NULL DEFAULT 0,      -- 0: pushed by a dispatcher
	priority    integer NOT NULL DEFAULT 0,
	expires     bigint,
	receipt     bytea,                          -- of the receive holding it
	spent       integer NOT NULL DEFAULT 0      -- held by its last allowed receive
);

CREATE INDEX live_buffered ON live (priority, due) WHERE buffered = 1;
CREATE INDEX live_to_promote ON live (due) WHERE buffered = 0 AND queue = 0;
CREATE INDEX live_receivable ON live (queue, priority, due) WHERE queue <> 0;
CREATE INDEX live_expiring ON live (expires) WHERE expires IS NOT NULL;
CREATE INDEX live_spent ON live (due) WHERE spent = 1;

CREATE TABLE payloads (
	key     bigint PRIMARY KEY,                 -- messages.key
	payload bytea NOT NULL
);

CREATE TABLE history (
	key    bigint NOT NULL,                     -- messages.key
	seq    integer NOT NULL,
	at     bigint NOT NULL,
	url    text NOT NULL,
	status integer,                             -- NULL when no HTTP answer came
	error  text,
	ms     bigint NOT NULL,
	PRIMARY KEY (key, seq)
);

-- Counts per state, kept by the store: one delta per state and transaction.
-- Each count is split over shards (a writer adds to the shard of its
-- connection, pg_backend_pid() % 16) and read as their sum: a single row
-- per state would be locked by every writing transaction until its commit
-- is on disk, so commits could not share a WAL flush (measured: 8 writers
-- made no more messages per second than 1). A missing shard row is 0.
CREATE TABLE counts (
	state integer NOT NULL,
	shard integer NOT NULL DEFAULT 0,
	n     bigint NOT NULL,
	PRIMARY KEY (state, shard)
);
INSERT INTO counts (state, n) VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0);

CREATE TABLE queues (
	key          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name         text NOT NULL UNIQUE,
	visibility   integer NOT NULL,              -- seconds a receive leases for
	max_attempts integer NOT NULL,
	max_depth    bigint NOT NULL DEFAULT 0,     -- pending + delivering at most; 0: no limit
	paused       integer NOT NULL DEFAULT 0,
	created      bigint NOT NULL
);

CREATE TABLE queue_counts (
	queue bigint NOT NULL,
	state integer NOT NULL,
	n     bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (queue, state)
);

CREATE TABLE topics (
	key     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name    text NOT NULL UNIQUE,
	created bigint NOT NULL
);

CREATE TABLE subscriptions (
	key          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	topic        bigint NOT NULL REFERENCES topics (key),
	name         text NOT NULL,
	urls         text NOT NULL,                 -- the pool, one per line; '' for a queue
	queue        text,                          -- the queue's name, or NULL: pushed to urls
	callback     text,
	max_attempts integer NOT NULL,              -- 0 for a queue: the queue's
	timeout      integer NOT NULL,
	method       text NOT NULL DEFAULT 'POST',
	headers      text,
	created      bigint NOT NULL,
	UNIQUE (topic, name)
);

CREATE TABLE publishes (
	key             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	topic           bigint NOT NULL REFERENCES topics (key),
	due             bigint NOT NULL,
	created         bigint NOT NULL,
	idempotency_key text,
	fingerprint     bytea,
	recurring       bigint                      -- recurring.key, or NULL
);
CREATE UNIQUE INDEX publishes_by_idempotency_key ON publishes (idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX publishes_by_occurrence ON publishes (recurring, due)
	WHERE recurring IS NOT NULL;

CREATE TABLE recurring (
	key          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id           text NOT NULL UNIQUE,
	name         text UNIQUE,                   -- optional; NULL once deleted
	cron         text NOT NULL,
	tz           text NOT NULL,
	urls         text NOT NULL,
	queue        text,
	topic        text,
	method       text NOT NULL DEFAULT 'POST',
	headers      text,
	payload      bytea NOT NULL,
	content_type text NOT NULL,
	callback     text,
	max_attempts integer NOT NULL,
	timeout      integer NOT NULL,
	priority     integer NOT NULL DEFAULT 0,
	ttl          bigint,
	paused       integer NOT NULL DEFAULT 0,
	created      bigint NOT NULL,
	next         bigint,
	make_at      bigint,
	last         bigint,
	deleted      bigint
);
CREATE INDEX recurring_to_make ON recurring (make_at) WHERE make_at IS NOT NULL;
CREATE INDEX recurring_by_created ON recurring (created, key) WHERE deleted IS NULL;

-- Counters for GET /api/metrics (numbered as sql/007-metrics.sql says),
-- in shards as counts are. A counter without a row is 0; the first delta
-- makes its row.
CREATE TABLE totals (
	counter integer NOT NULL,
	shard   integer NOT NULL DEFAULT 0,
	n       bigint NOT NULL,
	PRIMARY KEY (counter, shard)
);
