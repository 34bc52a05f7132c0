-- Migration 2: store v2. A message is written twice: once when it is made
-- (messages, and its payload in a table of its own, never rewritten) and
-- once when it ends (its outcome columns). While it is alive,
-- what changes (when it is next due, its lease, its rounds) lives in the
-- narrow table `live`, keyed by the message's integer key. "Delivering" is
-- a lease token held, not a second write of the message row. States are
-- integers (0 pending, 1 delivering, 2 delivered, 3 failed, 4 cancelled;
-- 0 in messages.state means alive: see live). Counts per state are kept by
-- the store, one delta per state and transaction, not by triggers.

CREATE TABLE messages_v2 (
	key             INTEGER PRIMARY KEY,        -- the integer key every other table uses
	id              TEXT NOT NULL UNIQUE,       -- the public id
	state           INTEGER NOT NULL DEFAULT 0, -- 0 while alive, else how it ended
	due             INTEGER NOT NULL,           -- when the user asked for delivery
	created         INTEGER NOT NULL,
	urls            TEXT NOT NULL,              -- the pool, one URL per line, as given
	payload_bytes   INTEGER NOT NULL,
	content_type    TEXT NOT NULL,
	callback        TEXT,
	max_attempts    INTEGER NOT NULL,
	timeout         INTEGER NOT NULL,           -- seconds per HTTP attempt
	idempotency_key TEXT,
	fingerprint     BLOB,                       -- of the request, for a reused key
	report_of       TEXT,                       -- a callback report: the message it reports on
	-- Written once, when the message ends:
	ended           INTEGER,
	attempts        INTEGER NOT NULL DEFAULT 0, -- rounds started
	gone            INTEGER NOT NULL DEFAULT 0, -- bit i: URL i of the pool answered 410 or was refused
	delivered_to    TEXT,
	delivered_at    INTEGER,
	report          TEXT                        -- the id of its callback report
);

-- The mutable part of a live message. due is when it is next claimable:
-- the next round's time, or the end of the lease while one is held.
-- buffered = 1 puts the row in the near-term buffer (due within
-- buffer_horizon), which is all a dispatch pass reads.
CREATE TABLE live (
	key         INTEGER PRIMARY KEY,            -- messages_v2.key
	due         INTEGER NOT NULL,
	next_round  INTEGER NOT NULL,               -- when the current or next round fell due
	buffered    INTEGER NOT NULL DEFAULT 0,
	token       INTEGER NOT NULL DEFAULT 0,     -- the lease token; 0: not leased
	attempts    INTEGER NOT NULL DEFAULT 0,     -- rounds started (counted at the claim)
	gone        INTEGER NOT NULL DEFAULT 0,
	lease_ms    INTEGER NOT NULL                -- how long a lease on it lasts
);

CREATE TABLE payloads (
	key     INTEGER PRIMARY KEY,                -- messages_v2.key
	payload BLOB NOT NULL
);

CREATE TABLE counts (
	state INTEGER PRIMARY KEY,
	n     INTEGER NOT NULL
);

-- v1 messages keep their ids, in creation order.
INSERT INTO messages_v2 (id, state, due, created, urls, payload_bytes, content_type, callback,
                         max_attempts, timeout, idempotency_key, report_of, ended, attempts,
                         delivered_to, delivered_at)
SELECT id,
       CASE state WHEN 'delivered' THEN 2 WHEN 'failed' THEN 3 WHEN 'cancelled' THEN 4 ELSE 0 END,
       due, created, urls, length(CAST(payload AS BLOB)), content_type, callback, max_attempts,
       timeout, idempotency_key, report_of,
       CASE WHEN state IN ('delivered', 'failed', 'cancelled')
            THEN coalesce(delivered_at, next_attempt, due) END,
       attempts, delivered_to, delivered_at
FROM messages ORDER BY created, id;

INSERT INTO payloads (key, payload)
SELECT n.key, CAST(o.payload AS BLOB) FROM messages o JOIN messages_v2 n ON n.id = o.id;

-- A v1 lease is dropped: its message is due again when that lease would
-- have ended, so a v1 dispatcher still finishing cannot race a v2 one.
INSERT INTO live (key, due, next_round, buffered, attempts, lease_ms)
SELECT n.key,
       max(coalesce(o.next_attempt, o.due), coalesce(b.lease_until, 0)),
       coalesce(o.next_attempt, o.due),
       b.message_id IS NOT NULL,
       o.attempts,
       1000 * o.timeout * (1 + length(o.urls) - length(replace(o.urls, char(10), '')))
FROM messages o JOIN messages_v2 n ON n.id = o.id
LEFT JOIN buffer b ON b.message_id = o.id
WHERE o.state IN ('pending', 'delivering');

CREATE TABLE history (
	key    INTEGER NOT NULL,                    -- messages.key
	seq    INTEGER NOT NULL,
	at     INTEGER NOT NULL,
	url    TEXT NOT NULL,
	status INTEGER,                             -- NULL when no HTTP answer came
	error  TEXT,
	ms     INTEGER NOT NULL,
	PRIMARY KEY (key, seq)
) WITHOUT ROWID;

INSERT INTO history (key, seq, at, url, status, error, ms)
SELECT n.key, a.seq, a.at, a.url, a.status, a.error, a.ms
FROM attempts a JOIN messages_v2 n ON n.id = a.message_id;

-- A report's link back: the message whose outcome a report carries.
UPDATE messages_v2 SET report = (
	SELECT r.id FROM messages_v2 r WHERE r.report_of = messages_v2.id ORDER BY r.key LIMIT 1)
WHERE key IN (SELECT o.key FROM messages_v2 r JOIN messages_v2 o ON o.id = r.report_of);

DROP TRIGGER messages_count_insert;
DROP TRIGGER messages_count_update;
DROP TRIGGER messages_count_delete;
DROP TABLE state_counts;
DROP TABLE attempts;
DROP TABLE buffer;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;

-- The list: by state in due order, ties by id; and across all states.
CREATE INDEX messages_by_state_due ON messages (state, due, id);
CREATE INDEX messages_by_due ON messages (due, id);
CREATE UNIQUE INDEX messages_by_idempotency_key ON messages (idempotency_key)
	WHERE idempotency_key IS NOT NULL;
-- The buffer, and what promotion reads: far-future messages cost a
-- dispatch pass nothing until they come within the horizon.
CREATE INDEX live_buffered ON live (due) WHERE buffered = 1;
CREATE INDEX live_to_promote ON live (due) WHERE buffered = 0;

INSERT INTO counts (state, n) VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0);
UPDATE counts SET n = (SELECT count(*) FROM live) WHERE state = 0;
UPDATE counts SET n = (SELECT count(*) FROM messages WHERE messages.state = counts.state)
WHERE state > 1;
