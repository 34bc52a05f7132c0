/*
 * store_pg_admin.c: the administrative operations on PostgreSQL: metrics,
 * retry (the dead-letter redrive), retention (purge), backup (refused:
 * pg_dump does it), inspect (the schema version and the kept counts
 * against the rows), the query plans, and what longpoll watches
 * (data_version). store_sqlite.c is the reference for each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "store_pg.h"

/* The messages one batch of retry_state or purge moves. */
#define ADMIN_BATCH_MAX 10000

/* A retry's new start, as one UPDATE's SET (which reads the row's old
 * values): due at $2, its outcome cleared, its rounds and dropped URLs
 * reset, and a ttl of the same length counted from the new due time. */
#define RETRY_SET \
	"UPDATE messages SET state = 0, due = $2, " \
	"expires = CASE WHEN expires IS NULL THEN NULL ELSE $2 + (expires - due) END, " \
	"ended = NULL, attempts = 0, gone = 0, delivered_to = NULL, delivered_at = NULL, " \
	"report = NULL "

/* The counts kept by deltas against the rows they count, as
 * store_sqlite.c's counts_checks. */
#define CHECK_COUNTS \
	"SELECT c.state, c.n, CASE c.state WHEN 0 THEN (SELECT count(*) FROM live WHERE token = 0) " \
	"WHEN 1 THEN (SELECT count(*) FROM live WHERE token <> 0) " \
	"ELSE (SELECT count(*) FROM messages m WHERE m.state = c.state) END, NULL " \
	"FROM (SELECT state, sum(n) AS n FROM counts GROUP BY state) c"
#define CHECK_QUEUE_COUNTS \
	"SELECT c.state, c.n, CASE c.state WHEN 0 THEN (SELECT count(*) FROM live l " \
	"WHERE l.queue = c.queue) ELSE (SELECT count(*) FROM messages m WHERE m.queue = c.queue " \
	"AND m.state = c.state) END, q.name FROM queue_counts c JOIN queues q ON q.key = c.queue"

const struct pg_statement pg_admin_statements[] = {
	{ "totals", "SELECT counter, sum(n) FROM totals GROUP BY counter" },
	/* The compare-and-set on the ended state is the statement itself. */
	{ "retry_message",
	  RETRY_SET "WHERE id = $1 AND state = $3 RETURNING key, coalesce(queue, 0)" },
	/* The messages of a state due before $4: a range of the state's index,
	 * earliest first, locked in that order. Those it retries are due at
	 * $2, not before $4, so a later batch never takes them again. */
	{ "retry_all",
	  "WITH picked AS MATERIALIZED (SELECT key FROM messages WHERE state = $3 AND due < $4 "
	  "ORDER BY due, id LIMIT $1 FOR UPDATE SKIP LOCKED) "
	  RETRY_SET "FROM picked WHERE messages.key = picked.key AND messages.state = $3 "
	  "RETURNING messages.key, coalesce(messages.queue, 0)" },
	/* Its live row again, as an insert makes it. */
	{ "retry_live",
	  "INSERT INTO live (key, due, next_round, buffered, lease_ms, queue, priority, expires) "
	  "SELECT key, $2, $2, (queue IS NULL)::integer, CASE WHEN queue IS NULL THEN "
	  "timeout::bigint * 1000 * (1 + length(urls) - length(replace(urls, E'\\n', ''))) "
	  "ELSE 0 END, coalesce(queue, 0), priority, expires FROM messages WHERE key = $1" },
	/* Retention: the oldest ended messages, one index range, in key order
	 * locked. */
	{ "purge_messages",
	  "WITH picked AS MATERIALIZED (SELECT key FROM messages WHERE state <> 0 AND ended < $1 "
	  "ORDER BY ended LIMIT $2 FOR UPDATE SKIP LOCKED) "
	  "DELETE FROM messages m USING picked WHERE m.key = picked.key AND m.state <> 0 "
	  "RETURNING m.key, m.state, coalesce(m.queue, 0), coalesce(m.publish, 0)" },
	{ "purge_payload", "DELETE FROM payloads WHERE key = $1" },
	{ "purge_history", "DELETE FROM history WHERE key = $1" },
	/* A publish is forgotten with its last copy. */
	{ "purge_publish",
	  "DELETE FROM publishes WHERE key = $1 AND NOT EXISTS "
	  "(SELECT 1 FROM messages WHERE publish = $1 AND publish IS NOT NULL)" },
	{ "earliest_buffered_admin",
	  "WITH RECURSIVE levels (p) AS ("
	  "(SELECT priority FROM live WHERE buffered = 1 ORDER BY priority LIMIT 1) "
	  "UNION ALL SELECT (SELECT priority FROM live WHERE buffered = 1 AND priority > levels.p "
	  "ORDER BY priority LIMIT 1) FROM levels WHERE levels.p IS NOT NULL) "
	  "SELECT min((SELECT due FROM live WHERE buffered = 1 AND priority = levels.p "
	  "ORDER BY due LIMIT 1)) FROM levels WHERE p IS NOT NULL" },
	/* What longpoll watches: the WAL insert position moves with every
	 * write on the server, ours among them, and reading it writes and
	 * locks nothing, so it never serialises commits. A waiter woken by
	 * someone else's write looks at its queue and sleeps again. */
	{ "data_version", "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint" },
};
const int pg_admin_nstatements =
	(int)(sizeof(pg_admin_statements) / sizeof(pg_admin_statements[0]));

/* ---- metrics ---- */

struct metrics_work {
	struct store_metrics *m;
	pd_ms buffered, unbuffered;
};

static enum store_result
metrics_body(struct pg_store *s, void *arg)
{
	struct metrics_work *w = arg;
	struct store_metrics *m = w->m;
	enum store_result res;
	PGresult *r;

	memset(m, 0, sizeof(*m));
	if ((res = pg_read_counts(s, m->counts)) != STORE_OK)
		return res;
	if ((r = pg_exec(s, "earliest_buffered_admin", NULL, "reading metrics", &res)) == NULL)
		return res;
	w->buffered = pg_get_int(r, 0, 0);
	PQclear(r);
	if ((r = pg_exec(s, "earliest_unbuffered", NULL, "reading metrics", &res)) == NULL)
		return res;
	w->unbuffered = pg_get_int(r, 0, 0);
	PQclear(r);
	if ((r = pg_exec(s, "totals", NULL, "reading the totals", &res)) == NULL)
		return res;
	for (int i = 0; i < PQntuples(r); i++) {
		int counter = (int)pg_get_int(r, i, 0);
		long long n = pg_get_int(r, i, 1);

		switch (counter) {
		case PG_TOTAL_MADE: m->made = n; break;
		case PG_TOTAL_DELIVERED: m->ended[PD_DELIVERED] = n; break;
		case PG_TOTAL_FAILED: m->ended[PD_FAILED] = n; break;
		case PG_TOTAL_CANCELLED: m->ended[PD_CANCELLED] = n; break;
		case PG_TOTAL_EXPIRED: m->ended[PD_EXPIRED] = n; break;
		case PG_TOTAL_RECEIVES: m->receives = n; break;
		default:
			if (counter >= PG_TOTAL_ATTEMPTS && counter < PG_TOTAL_COUNT)
				m->attempts[counter - PG_TOTAL_ATTEMPTS] = n;
			break;
		}
	}
	PQclear(r);
	return STORE_OK;
}

enum store_result
pg_op_metrics(struct pd_store *store, pd_ms now, struct store_metrics *m, store_queue_fn fn,
              void *ctx)
{
	struct metrics_work w = { m, 0, 0 };
	enum store_result res = pg_read(pg_of(store), "reading metrics", metrics_body, &w);

	if (res != STORE_OK)
		return res;
	if (w.buffered == 0 || (w.unbuffered != 0 && w.unbuffered < w.buffered))
		m->earliest = w.unbuffered;
	else
		m->earliest = w.buffered;
	/* The queues in a read of their own (store_pg_queue.c's). */
	if (fn != NULL && store_pg_engine.queue_list != NULL)
		res = store_pg_engine.queue_list(store, now, fn, ctx);
	return res;
}

/* ---- retry ---- */

/* Brings back message key (of queue, 0 for none), just moved from state
 * from to alive in this transaction: its live row, and the counts. */
static enum store_result
revive(struct pg_store *s, int64_t key, int64_t queue, enum pd_state from, pd_ms now)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	pg_int(&p, key);
	pg_int(&p, now);
	if ((r = pg_exec(s, "retry_live", &p, "retrying", &res)) == NULL)
		return res;
	PQclear(r);
	pg_queue_count(s, queue, from, -1);
	pg_queue_count(s, queue, 0, 1);
	pg_count(s, from, -1);
	pg_count(s, PD_PENDING, 1);
	return STORE_OK;
}

struct retry_work {
	const char *id;
	pd_ms now;
	enum pd_state state;
};

static enum store_result
retry_body(struct pg_store *s, void *arg)
{
	static const enum pd_state retryable[] = { PD_FAILED, PD_EXPIRED };
	struct retry_work *w = arg;
	enum store_result res = STORE_OK;
	PGresult *r;

	/* Each try is a compare-and-set on one ended state. */
	for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++) {
		struct pg_params p = { 0 };
		int64_t key, queue;

		pg_text(&p, w->id);
		pg_int(&p, w->now);
		pg_int(&p, retryable[i]);
		if ((r = pg_exec(s, "retry_message", &p, "retrying", &res)) == NULL)
			return res;
		if (PQntuples(r) == 0) {
			PQclear(r);
			continue;
		}
		key = pg_get_int(r, 0, 0);
		queue = pg_get_int(r, 0, 1);
		PQclear(r);
		if ((res = revive(s, key, queue, retryable[i], w->now)) != STORE_OK)
			return res;
		w->state = PD_PENDING;
		return STORE_OK;
	}
	/* Nothing was retried: say what it is (and roll back: nothing written). */
	res = pg_state_of(s, w->id, &w->state);
	return res == STORE_OK ? STORE_CONFLICT : res;
}

enum store_result
pg_op_retry(struct pd_store *store, const char *id, pd_ms now, enum pd_state *state)
{
	struct retry_work w = { id, now, PD_PENDING };
	enum store_result res = pg_transaction(pg_of(store), "retrying", 0, retry_body, &w);

	if (res == STORE_OK || res == STORE_CONFLICT)
		*state = w.state;
	return res;
}

struct batch_work {
	enum pd_state state;
	pd_ms due_before, now;
	int limit;
	int done;
};

static enum store_result
retry_state_body(struct pg_store *s, void *arg)
{
	struct batch_work *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	w->done = 0;
	pg_int(&p, w->limit);
	pg_int(&p, w->now);
	pg_int(&p, w->state);
	pg_int(&p, w->due_before);
	if ((r = pg_exec(s, "retry_all", &p, "retrying", &res)) == NULL)
		return res;
	for (int i = 0; i < PQntuples(r); i++)
		if ((res = revive(s, pg_get_int(r, i, 0), pg_get_int(r, i, 1), w->state,
		                  w->now)) != STORE_OK)
			break;
	if (res == STORE_OK)
		w->done = PQntuples(r);
	PQclear(r);
	return res;
}

enum store_result
pg_op_retry_state(struct pd_store *store, enum pd_state state, pd_ms due_before, pd_ms now,
                  int limit, int *retried)
{
	struct batch_work w = { state, due_before, now, limit, 0 };
	enum store_result res;

	*retried = 0;
	if (state != PD_FAILED && state != PD_EXPIRED)
		return STORE_CONFLICT;
	if (limit <= 0)
		return STORE_OK;
	if (w.limit > ADMIN_BATCH_MAX)
		w.limit = ADMIN_BATCH_MAX;
	res = pg_transaction(pg_of(store), "retrying", 0, retry_state_body, &w);
	if (res == STORE_OK)
		*retried = w.done;
	return res;
}

/* ---- retention ---- */

static enum store_result
purge_body(struct pg_store *s, void *arg)
{
	struct batch_work *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	w->done = 0;
	pg_int(&p, w->due_before);
	pg_int(&p, w->limit);
	if ((r = pg_exec(s, "purge_messages", &p, "purging", &res)) == NULL)
		return res;
	for (int i = 0; i < PQntuples(r) && res == STORE_OK; i++) {
		int64_t key = pg_get_int(r, i, 0), publish = pg_get_int(r, i, 3);
		int state = (int)pg_get_int(r, i, 1);
		static const char *const steps[] = { "purge_payload", "purge_history" };

		for (size_t k = 0; k < 2 && res == STORE_OK; k++) {
			struct pg_params q = { 0 };
			PGresult *d;

			pg_int(&q, key);
			if ((d = pg_exec(s, steps[k], &q, "purging", &res)) != NULL)
				PQclear(d);
		}
		if (res == STORE_OK && publish != 0) {
			struct pg_params q = { 0 };
			PGresult *d;

			pg_int(&q, publish);
			if ((d = pg_exec(s, "purge_publish", &q, "purging", &res)) != NULL)
				PQclear(d);
		}
		pg_queue_count(s, pg_get_int(r, i, 2), state, -1);
		if (state > 0 && state < PD_NSTATES)
			pg_count(s, state, -1);
	}
	if (res == STORE_OK)
		w->done = PQntuples(r);
	PQclear(r);
	return res;
}

enum store_result
pg_op_purge(struct pd_store *store, pd_ms before, int limit, int *purged)
{
	struct batch_work w = { PD_PENDING, before, 0, limit, 0 };
	enum store_result res;

	*purged = 0;
	if (limit <= 0)
		return STORE_OK;
	if (w.limit > ADMIN_BATCH_MAX)
		w.limit = ADMIN_BATCH_MAX;
	res = pg_transaction(pg_of(store), "purging", 0, purge_body, &w);
	if (res == STORE_OK)
		*purged = w.done;
	return res;
}

/* A server's database is not one file: pg_dump backs it up, as the
 * refusal says (store.c hands it here to name the tool). */
enum store_result
pg_op_backup(struct pd_store *s, const char *path)
{
	(void)s;
	(void)path;
	log_error("store: a PostgreSQL database is not copied by postdate backup: back it up "
	          "with pg_dump (e.g. pg_dump -Fc -f FILE URL)");
	return STORE_ERROR;
}

/* ---- inspect ---- */

/* Compares one of the kept counts with the rows, calling fn per
 * disagreement; returns how many. */
static long
check_counts(PGconn *c, const char *sql, store_problem_fn fn, void *ctx)
{
	PGresult *r = PQexec(c, sql);
	long found = 0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char problem[256];

		snprintf(problem, sizeof(problem), "the counts cannot be compared: %s",
		         PQresultErrorMessage(r));
		fn(ctx, problem);
		PQclear(r);
		return 1;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		int state = (int)pg_get_int(r, i, 0);
		long long kept = pg_get_int(r, i, 1), rows = pg_get_int(r, i, 2);
		const char *queue = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
		char problem[256];

		if (kept == rows)
			continue;
		snprintf(problem, sizeof(problem), "%s%s%scounts %lld %s messages, and %lld are stored",
		         queue != NULL ? "queue " : "", queue != NULL ? queue : "",
		         queue != NULL ? ": " : "", kept,
		         state >= 0 && state < PD_NSTATES ? state_name((enum pd_state)state) :
		         "unknown-state", rows);
		fn(ctx, problem);
		found++;
	}
	PQclear(r);
	return found;
}

/* Connects, never migrates: what the server holds is what is checked. */
enum store_result
pg_op_inspect(const char *database, int *version, store_problem_fn fn, void *ctx,
              long *problems)
{
	PGconn *c = pg_connect(database);
	enum store_result res = STORE_OK;
	PGresult *r = NULL;

	*version = -1;
	if (problems != NULL)
		*problems = 0;
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		log_error("store: connecting to PostgreSQL: %s",
		          c != NULL ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return STORE_UNAVAILABLE;
	}
	/* One snapshot for every check, while the programs may write. */
	PQclear(PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
	/* An empty database (never migrated) is version 0, as an empty file. */
	r = PQexec(c, "SELECT to_regclass('schema_version') IS NOT NULL");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		PQclear(r);
		r = PQexec(c, "SELECT max(version) FROM schema_version");
	} else if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		PQclear(r);
		r = PQexec(c, "SELECT 0");
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_error("store: reading the schema version: %s", PQresultErrorMessage(r));
		res = STORE_UNAVAILABLE;
		goto out;
	}
	*version = (int)pg_get_int(r, 0, 0);
	if (fn != NULL && *version > 0) {
		long found = check_counts(c, CHECK_COUNTS, fn, ctx) +
		    check_counts(c, CHECK_QUEUE_COUNTS, fn, ctx);

		if (problems != NULL)
			*problems += found;
	}
out:
	PQclear(r);
	PQclear(PQexec(c, "COMMIT"));
	PQfinish(c);
	return res;
}

/* ---- query plans ---- */

/*
 * Every statement prepared on this connection, explained as its generic
 * plan (the one a prepared statement settles on) with sequential scans
 * and sorts made as costly as the planner allows: what still scans or
 * sorts has no index to use. fn gets each line of each plan.
 */
int
pg_op_query_plans(struct pd_store *store, store_plan_fn fn, void *ctx)
{
	struct pg_store *s = pg_of(store);
	PGresult *names;
	int failed = 0;

	names = PQexec(s->conn, "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; "
	                        "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; "
	                        "SELECT name, statement, cardinality(parameter_types) "
	                        "FROM pg_prepared_statements ORDER BY name");
	if (PQresultStatus(names) != PGRES_TUPLES_OK) {
		log_error("store: reading the statements: %s", PQresultErrorMessage(names));
		PQclear(names);
		PQclear(PQexec(s->conn, "ROLLBACK"));
		return -1;
	}
	for (int i = 0; i < PQntuples(names) && !failed; i++) {
		char sql[256];
		int nparams = (int)pg_get_int(names, i, 2), len;
		PGresult *plan;

		len = snprintf(sql, sizeof(sql), "EXPLAIN EXECUTE %s", PQgetvalue(names, i, 0));
		for (int k = 0; k < nparams && len < (int)sizeof(sql) - 8; k++)
			len += snprintf(sql + len, sizeof(sql) - (size_t)len, "%sNULL", k ? ", " : "(");
		if (nparams > 0)
			snprintf(sql + len, sizeof(sql) - (size_t)len, ")");
		plan = PQexec(s->conn, sql);
		if (PQresultStatus(plan) != PGRES_TUPLES_OK) {
			log_error("store: %s: %s", sql, PQresultErrorMessage(plan));
			failed = 1;
		}
		for (int k = 0; !failed && k < PQntuples(plan); k++)
			fn(ctx, PQgetvalue(names, i, 1), PQgetvalue(plan, k, 0));
		PQclear(plan);
	}
	PQclear(names);
	PQclear(PQexec(s->conn, "ROLLBACK"));
	return failed ? -1 : 0;
}

/* ---- longpoll ---- */

enum store_result
pg_op_data_version(struct pd_store *store, long long *version)
{
	struct pg_store *s = pg_of(store);
	enum store_result res = STORE_OK;
	PGresult *r = pg_exec(s, "data_version", NULL, "reading the data version", &res);

	*version = r != NULL ? pg_get_int(r, 0, 0) : 0;
	PQclear(r);
	return res;
}
