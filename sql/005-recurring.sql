-- Migration 5: recurring definitions. A definition is a cron expression
-- read on the wall clock of a zone and the template of the messages it
-- makes; the dispatcher's promotion step makes each occurrence as an
-- ordinary message (messages.recurring set), in one transaction with
-- advancing the definition. The unique index on (recurring, due) makes an
-- occurrence exist at most once, however many dispatchers race or die.

CREATE TABLE recurring (
	key          INTEGER PRIMARY KEY,
	id           TEXT NOT NULL UNIQUE,          -- the public id
	name         TEXT UNIQUE,                   -- optional; NULL once deleted
	cron         TEXT NOT NULL,                 -- as the user wrote it
	tz           TEXT NOT NULL,                 -- IANA zone the fields are read in
	-- The template: the message fields of schedule.
	urls         TEXT NOT NULL,                 -- the pool, one URL per line; "" for a queue
	queue        TEXT,                          -- a queue name, or NULL (pushed to urls)
	topic        TEXT,                          -- a topic name: each occurrence is a publish
	method       TEXT NOT NULL DEFAULT 'POST',
	headers      TEXT,                          -- "Name: value" lines, as messages.headers
	payload      BLOB NOT NULL,
	content_type TEXT NOT NULL,
	callback     TEXT,
	max_attempts INTEGER NOT NULL,              -- 0: the queue's
	timeout      INTEGER NOT NULL,
	priority     INTEGER NOT NULL DEFAULT 0,
	ttl          INTEGER,                       -- ms after each occurrence; NULL: never
	-- Where it stands.
	paused       INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL,
	next         INTEGER,                       -- the next occurrence not yet made
	make_at      INTEGER,                       -- when a dispatcher is to make it;
	                                            -- NULL while paused or once deleted
	last         INTEGER,                       -- the latest occurrence made
	deleted      INTEGER                        -- when it was deleted; NULL while it exists
);

-- What a dispatcher's promotion step reads: the definitions whose next
-- occurrence is to be made, earliest first; paused ones are not in it.
CREATE INDEX recurring_to_make ON recurring (make_at) WHERE make_at IS NOT NULL;
CREATE INDEX recurring_by_created ON recurring (created, key) WHERE deleted IS NULL;

ALTER TABLE messages ADD COLUMN recurring INTEGER;                 -- recurring.key, or NULL

-- An occurrence is made once: a second insert of it does nothing. The
-- occurrence of a definition to a topic is a publish, made once the same
-- way; its copies (one per subscription) share its time.
CREATE UNIQUE INDEX messages_by_occurrence ON messages (recurring, due)
	WHERE recurring IS NOT NULL AND publish IS NULL;
-- A definition's messages, copies of its publishes included, newest first.
CREATE INDEX messages_by_recurring ON messages (recurring, due) WHERE recurring IS NOT NULL;
ALTER TABLE publishes ADD COLUMN recurring INTEGER;                -- recurring.key, or NULL
CREATE UNIQUE INDEX publishes_by_occurrence ON publishes (recurring, due)
	WHERE recurring IS NOT NULL;
