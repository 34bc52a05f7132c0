-- Migration 4: topics. A topic fans a message out to its subscriptions
-- when it is scheduled: one ordinary message per subscription, all made in
-- the publish's transaction. A subscription is a destination (a URL pool
-- or a queue) with its own delivery options; the copies it gets record the
-- publish they came from and the subscription's name.

CREATE TABLE topics (
	key     INTEGER PRIMARY KEY,
	name    TEXT NOT NULL UNIQUE,
	created INTEGER NOT NULL
);

CREATE TABLE subscriptions (
	key          INTEGER PRIMARY KEY,
	topic        INTEGER NOT NULL REFERENCES topics (key),
	name         TEXT NOT NULL,
	urls         TEXT NOT NULL,                 -- the pool, one per line; '' for a queue
	queue        TEXT,                          -- the queue's name, or NULL: pushed to urls
	callback     TEXT,
	max_attempts INTEGER NOT NULL,              -- 0 for a queue: the queue's
	timeout      INTEGER NOT NULL,
	method       TEXT NOT NULL DEFAULT 'POST',
	headers      TEXT,                          -- "Name: value" lines, as messages.headers
	created      INTEGER NOT NULL,
	UNIQUE (topic, name)
);

-- One publish: what its idempotency key answers with again.
CREATE TABLE publishes (
	key             INTEGER PRIMARY KEY,
	topic           INTEGER NOT NULL REFERENCES topics (key),
	due             INTEGER NOT NULL,
	created         INTEGER NOT NULL,
	idempotency_key TEXT,
	fingerprint     BLOB
);
CREATE UNIQUE INDEX publishes_by_idempotency_key ON publishes (idempotency_key)
	WHERE idempotency_key IS NOT NULL;

ALTER TABLE messages ADD COLUMN publish INTEGER;                   -- publishes.key, or NULL
ALTER TABLE messages ADD COLUMN subscription TEXT;                 -- its name, for a copy
CREATE INDEX messages_by_publish ON messages (publish) WHERE publish IS NOT NULL;
