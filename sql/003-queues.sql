-- Migration 3: queues, priority and expiry. A queue message is a message
-- like any other: its destination is a queue (messages.queue) instead of
-- a URL pool, and a worker's receive takes the lease a dispatcher's claim
-- would. Its receipt is the lease token and 64 more random bits
-- (live.receipt), so a late worker cannot ack what another one holds.

CREATE TABLE queues (
	key          INTEGER PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	visibility   INTEGER NOT NULL,              -- seconds a receive leases for
	max_attempts INTEGER NOT NULL,              -- receives of a message that gives none
	max_depth    INTEGER NOT NULL DEFAULT 0,    -- pending + delivering at most; 0: no limit
	paused       INTEGER NOT NULL DEFAULT 0,
	created      INTEGER NOT NULL
);

-- Messages per queue and state (0: alive, pending or delivering), kept by
-- the store as it moves them, as counts is for all messages.
CREATE TABLE queue_counts (
	queue INTEGER NOT NULL,
	state INTEGER NOT NULL,
	n     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (queue, state)
) WITHOUT ROWID;

ALTER TABLE messages ADD COLUMN queue INTEGER;                     -- queues.key, or NULL: pushed
ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN expires INTEGER;                   -- NULL: never

ALTER TABLE live ADD COLUMN queue INTEGER NOT NULL DEFAULT 0;      -- 0: pushed by a dispatcher
ALTER TABLE live ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE live ADD COLUMN expires INTEGER;
ALTER TABLE live ADD COLUMN receipt BLOB;                          -- of the receive holding it
ALTER TABLE live ADD COLUMN spent INTEGER NOT NULL DEFAULT 0;      -- held by its last allowed receive

-- A dispatcher claims lower priority values first: the buffer in
-- (priority, due) order, each priority level one index range.
DROP INDEX live_buffered;
CREATE INDEX live_buffered ON live (priority, due) WHERE buffered = 1;
-- Queue messages are never promoted: receives read their queue directly.
DROP INDEX live_to_promote;
CREATE INDEX live_to_promote ON live (due) WHERE buffered = 0 AND queue = 0;
-- What a receive reads: a queue's messages by priority, due time, key.
CREATE INDEX live_receivable ON live (queue, priority, due) WHERE queue <> 0;
-- What ends by itself: a ttl that runs out, a last receive that runs out.
CREATE INDEX live_expiring ON live (expires) WHERE expires IS NOT NULL;
CREATE INDEX live_spent ON live (due) WHERE spent = 1;
-- One queue's messages, for the list: by state, and across states.
CREATE INDEX messages_by_queue_state ON messages (queue, state, due, id) WHERE queue IS NOT NULL;
CREATE INDEX messages_by_queue ON messages (queue, due, id) WHERE queue IS NOT NULL;

INSERT INTO counts (state, n) VALUES (5, 0);
