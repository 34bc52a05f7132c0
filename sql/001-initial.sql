-- Migration 1: the v1 schema. Migrations run in order, each in one
-- transaction; PRAGMA user_version holds how many have run.
-- Times are integer milliseconds since the Unix epoch, UTC.

-- The source of truth: one row per message.
CREATE TABLE messages (
	id              TEXT PRIMARY KEY,
	state           TEXT NOT NULL DEFAULT 'pending'
	                CHECK (state IN ('pending', 'delivering', 'delivered', 'failed', 'cancelled')),
	due             INTEGER NOT NULL,           -- when the user asked for delivery
	created         INTEGER NOT NULL,
	next_attempt    INTEGER,                    -- when the next round falls due
	buffered        INTEGER NOT NULL DEFAULT 0, -- 1 while the message has a buffer row
	urls            TEXT NOT NULL,              -- the pool, one URL per line
	payload         BLOB NOT NULL,
	content_type    TEXT NOT NULL,
	callback        TEXT,
	max_attempts    INTEGER NOT NULL,
	timeout         INTEGER NOT NULL,           -- seconds per HTTP attempt
	attempts        INTEGER NOT NULL DEFAULT 0, -- rounds done
	delivered_to    TEXT,
	delivered_at    INTEGER,
	idempotency_key TEXT UNIQUE,
	report_of       TEXT                        -- a callback report: the message it reports on
);

-- The list: by state, in due order, ties by id; and across all states.
CREATE INDEX messages_by_state_due ON messages (state, due, id);
CREATE INDEX messages_by_due ON messages (due, id);

-- Promotion into the buffer reads only pending messages that have no buffer
-- row yet, from the earliest: far-future messages cost nothing until then.
CREATE INDEX messages_to_promote ON messages (next_attempt)
	WHERE state = 'pending' AND buffered = 0;

-- The near-term buffer: messages due within buffer_horizon. A dispatcher
-- claims rows by setting a lease; an expired lease can be claimed again.
CREATE TABLE buffer (
	message_id  TEXT PRIMARY KEY REFERENCES messages (id),
	due         INTEGER NOT NULL,
	lease_until INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX buffer_by_due ON buffer (due);

-- One row per HTTP attempt, for status and callback reports.
CREATE TABLE attempts (
	message_id TEXT NOT NULL REFERENCES messages (id),
	seq        INTEGER NOT NULL,
	at         INTEGER NOT NULL,
	url        TEXT NOT NULL,
	status     INTEGER,                         -- NULL when no HTTP answer came
	error      TEXT,
	ms         INTEGER NOT NULL,
	PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;

-- Counts per state, kept by triggers so that the 507 high-water check, the
-- list's counts and /api/health never count rows.
CREATE TABLE state_counts (
	state TEXT PRIMARY KEY,
	n     INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO state_counts (state, n) VALUES
	('pending', 0), ('delivering', 0), ('delivered', 0), ('failed', 0), ('cancelled', 0);

CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
BEGIN
	UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER messages_count_update AFTER UPDATE OF state ON messages
	WHEN OLD.state <> NEW.state
BEGIN
	UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
	UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
BEGIN
	UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
END;

