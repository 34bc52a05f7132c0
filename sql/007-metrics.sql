-- Migration 7: counters for GET /api/metrics. A Prometheus counter must
-- only go up, and several FastCGI processes answer scrapes, so the totals
-- live in the database, not in a process: counted since the database was
-- made, by one delta per counter and transaction (as counts is kept), in the
-- transactions that make messages, record attempts and end messages.
-- Counters (what `counter` means):
--   0 messages made (scheduled, callback reports)
--   1 ended delivered, 2 failed, 3 cancelled, 4 expired
--   5 receives of queue messages (a queue message's attempts)
--   6 HTTP attempts with no answer (timeout, refused, ...), 7 answered with
--     a status outside 200-599, 8 2xx, 9 3xx, 10 4xx, 11 5xx
-- A counter without a row is 0; the first delta makes its row.
CREATE TABLE totals (
	counter INTEGER PRIMARY KEY,
	n       INTEGER NOT NULL
);

-- What an older database did before this migration counts too, from what
-- it still holds (a one-time read of every row, here only).
INSERT INTO totals (counter, n) SELECT 0, count(*) FROM messages;
INSERT INTO totals (counter, n) SELECT 1, count(*) FROM messages WHERE state = 2;
INSERT INTO totals (counter, n) SELECT 2, count(*) FROM messages WHERE state = 3;
INSERT INTO totals (counter, n) SELECT 3, count(*) FROM messages WHERE state = 4;
INSERT INTO totals (counter, n) SELECT 4, count(*) FROM messages WHERE state = 5;
INSERT INTO totals (counter, n)
SELECT 5, (SELECT coalesce(sum(attempts), 0) FROM messages WHERE queue IS NOT NULL AND state <> 0)
        + (SELECT coalesce(sum(attempts), 0) FROM live WHERE queue <> 0);
INSERT INTO totals (counter, n) SELECT 6, count(*) FROM history WHERE status IS NULL;
INSERT INTO totals (counter, n)
SELECT 7, count(*) FROM history WHERE status IS NOT NULL AND (status < 200 OR status > 599);
INSERT INTO totals (counter, n) SELECT 8, count(*) FROM history WHERE status BETWEEN 200 AND 299;
INSERT INTO totals (counter, n) SELECT 9, count(*) FROM history WHERE status BETWEEN 300 AND 399;
INSERT INTO totals (counter, n) SELECT 10, count(*) FROM history WHERE status BETWEEN 400 AND 499;
INSERT INTO totals (counter, n) SELECT 11, count(*) FROM history WHERE status BETWEEN 500 AND 599;
