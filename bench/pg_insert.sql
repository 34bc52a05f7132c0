-- pgbench script for bench/ingest_pg.sh: the rows and statements one
-- schedule of bench/post.lua makes on PostgreSQL (store_pg_message.c's
-- insert_message, insert_payload, insert_live, then store_pg.c's
-- count_delta and total_delta), with the same values, one message per
-- transaction. What postdate adds over this (HTTP, nginx, FastCGI, parsing,
-- validation, the id and fingerprint made in C) is what the ratio measures.
BEGIN;
INSERT INTO messages (id, due, created, urls, payload_bytes, content_type, callback,
	max_attempts, timeout, idempotency_key, fingerprint, report_of, queue, priority,
	expires, method, headers, publish, subscription, recurring)
VALUES (substr(md5(random()::text), 1, 26),
	(extract(epoch from clock_timestamp()) * 1000)::bigint + 3600000,
	(extract(epoch from clock_timestamp()) * 1000)::bigint,
	'http://127.0.0.1:9009/hook', 28, 'text/plain; charset=utf-8', NULL, 8, 10, NULL,
	sha256(random()::text::bytea), NULL, NULL, 0, NULL, 'POST', NULL, NULL, NULL,
	(SELECT key FROM recurring WHERE id = NULL))
ON CONFLICT DO NOTHING RETURNING key, created \gset
\set due :created + 3600000
INSERT INTO payloads (key, payload) VALUES (:key, 'renewal reminder for card 42'::bytea);
INSERT INTO live (key, due, next_round, buffered, lease_ms, queue, priority, expires)
VALUES (:key, :due, :due, 0, 10000, 0, 0, NULL);
INSERT INTO counts (state, shard, n) SELECT d.state, pg_backend_pid() % 16, d.n
FROM unnest('{0}'::integer[], '{1}'::bigint[]) AS d (state, n) ORDER BY d.state
ON CONFLICT (state, shard) DO UPDATE SET n = counts.n + excluded.n;
INSERT INTO totals (counter, shard, n) SELECT d.counter, pg_backend_pid() % 16, d.n
FROM unnest('{0}'::integer[], '{1}'::bigint[]) AS d (counter, n) ORDER BY d.counter
ON CONFLICT (counter, shard) DO UPDATE SET n = totals.n + excluded.n;
END;
