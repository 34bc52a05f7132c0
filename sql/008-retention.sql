-- Migration 8: what retry and retention read. The messages that ended, in
-- the order they ended: the dispatcher deletes those that ended longer ago
-- than `retention` (and `postdate purge` those older than it is told),
-- oldest first, a bounded batch at a time, each batch one index range.
CREATE INDEX messages_by_ended ON messages (ended) WHERE state <> 0;
