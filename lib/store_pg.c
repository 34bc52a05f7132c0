/*
 * store_pg.c: the store of store.h on PostgreSQL 15: the connection, the
 * prepared statements, parameters, transactions with their retries, the
 * count deltas written at commit, the migrations and the engine table.
 * The operations live beside it, one concept per file (store_pg_*.c).
 *
 * One connection per store (programs open one store per thread or per
 * process after fork). Every statement is prepared once per connection;
 * when the connection breaks, it is reset once, the statements prepared
 * again and the transaction run again. Transactions run at Read Committed:
 * every write that depends on what a row holds is a compare-and-set in its
 * own WHERE clause (token = $n), as on SQLite. A serialization failure or
 * a deadlock rolls the whole transaction back and runs it again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "postdate.h"
#include "store_pg.h"
#include "../sql/pg_migrations.h"

/* How often a transaction is run again after a serialization failure or
 * deadlock, and the longest random pause before each new run. */
#define PG_TRIES 8
#define PG_BACKOFF_MAX_US 20000
/* pg_advisory_xact_lock key of the migrations ('pdmigr'). */
#define PG_MIGRATION_LOCK 0x70646d696772LL

/* Whether the last failure on this thread's store was a serialization
 * failure or deadlock (pg_fail sets it; pg_transaction reads it). A store
 * is used by one thread at a time. */
static __thread int last_retryable;

/* ---- parameters and results ---- */

void
pg_int(struct pg_params *p, int64_t v)
{
	int i = p->n++;

	snprintf(p->buf[i], sizeof(p->buf[i]), "%lld", (long long)v);
	p->values[i] = p->buf[i];
	p->lengths[i] = 0;
	p->formats[i] = 0;
}

void
pg_text(struct pg_params *p, const char *text)
{
	int i = p->n++;

	p->values[i] = text;
	p->lengths[i] = 0;
	p->formats[i] = 0;
}

void
pg_bytes(struct pg_params *p, const void *data, size_t len)
{
	int i = p->n++;

	/* A NULL pointer is SQL NULL; an empty payload needs a pointer. */
	p->values[i] = data != NULL ? data : (len == 0 ? "" : NULL);
	p->lengths[i] = (int)len;
	p->formats[i] = 1;
}

/* ---- arrays: a batch as one parameter ---- */

/* Appends n bytes of text; a failed allocation is kept for pg_array_end. */
static void
array_put(struct pg_array *a, const char *text, size_t n)
{
	if (a->failed)
		return;
	if (a->len + n + 2 > a->cap) {
		size_t cap = a->cap != 0 ? a->cap : 256;
		char *grown;

		while (a->len + n + 2 > cap)
			cap *= 2;
		if ((grown = realloc(a->text, cap)) == NULL) {
			a->failed = 1;
			return;
		}
		a->text = grown;
		a->cap = cap;
	}
	memcpy(a->text + a->len, text, n);
	a->len += n;
}

/* The separator before an element, or the opening brace before the first. */
static void
array_next(struct pg_array *a)
{
	array_put(a, a->len == 0 ? "{" : ",", 1);
}

void
pg_array_int(struct pg_array *a, int64_t v)
{
	char num[24];

	array_next(a);
	array_put(a, num, (size_t)snprintf(num, sizeof(num), "%lld", (long long)v));
}

void
pg_array_text(struct pg_array *a, const char *text)
{
	array_next(a);
	if (text == NULL) {
		array_put(a, "NULL", 4);
		return;
	}
	/* Quoted, so that commas, braces, blanks and the word NULL stay
	 * text; inside quotes only the quote and the backslash are escaped. */
	array_put(a, "\"", 1);
	for (const char *c = text; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			array_put(a, "\\", 1);
		array_put(a, c, 1);
	}
	array_put(a, "\"", 1);
}

const char *
pg_array_end(struct pg_array *a)
{
	if (a->len == 0)
		array_put(a, "{", 1);
	array_put(a, "}", 1);
	if (a->failed)
		return NULL;
	a->text[a->len] = '\0';
	return a->text;
}

void
pg_array_free(struct pg_array *a)
{
	free(a->text);
	memset(a, 0, sizeof(*a));
}

int64_t
pg_get_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

int
pg_is_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col);
}

char *
pg_get_strdup(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

/* ---- failures ---- */

enum store_result
pg_fail(struct pg_store *s, const PGresult *r, const char *what, int *retry)
{
	const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r != NULL && *PQresultErrorMessage(r) ? PQresultErrorMessage(r) :
	                  PQerrorMessage(s->conn);

	if (retry != NULL)
		*retry = 0;
	if (PQstatus(s->conn) == CONNECTION_BAD) {
		log_error("store: %s: connection lost: %s", what, msg);
		return STORE_UNAVAILABLE;
	}
	if (state == NULL) {
		log_error("store: %s: %s", what, msg);
		return STORE_ERROR;
	}
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
		if (retry != NULL)
			*retry = 1;
		return STORE_BUSY;
	}
	if (strcmp(state, "53100") == 0) {
		log_error("store: %s: disk full", what);
		return STORE_NOSPACE;
	}
	if (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0) {
		log_warn("store: %s: database busy (%s)", what, state);
		return STORE_BUSY;
	}
	/* Too many connections, the server starting or shutting down. */
	if (strncmp(state, "08", 2) == 0 || strcmp(state, "53300") == 0 ||
	    strcmp(state, "57P01") == 0 || strcmp(state, "57P03") == 0) {
		log_error("store: %s: database unavailable: %s", what, msg);
		return STORE_UNAVAILABLE;
	}
	log_error("store: %s: %s (SQLSTATE %s)", what, msg, state);
	return STORE_ERROR;
}

/* Keeps the result of a command on success; else records the failure. */
static PGresult *
checked(struct pg_store *s, PGresult *r, const char *what, enum store_result *res)
{
	ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	*res = pg_fail(s, r, what, &last_retryable);
	PQclear(r);
	return NULL;
}

PGresult *
pg_exec(struct pg_store *s, const char *name, const struct pg_params *p, const char *what,
        enum store_result *res)
{
	PGresult *r = PQexecPrepared(s->conn, name, p != NULL ? p->n : 0,
	                             p != NULL ? p->values : NULL,
	                             p != NULL ? p->lengths : NULL,
	                             p != NULL ? p->formats : NULL, 0);

	return checked(s, r, what, res);
}

PGresult *
pg_exec_arrays(struct pg_store *s, const char *name, struct pg_params *p, struct pg_array *cols,
               int ncols, const char *what, enum store_result *res)
{
	PGresult *r = NULL;
	int complete = 1;

	for (int i = 0; i < ncols; i++) {
		pg_text(p, pg_array_end(&cols[i]));
		complete = complete && p->values[p->n - 1] != NULL;
	}
	if (complete)
		r = pg_exec(s, name, p, what, res);
	else {
		log_error("store: %s: out of memory", what);
		*res = STORE_ERROR;
	}
	for (int i = 0; i < ncols; i++)
		pg_array_free(&cols[i]);
	return r;
}

/* Runs plain SQL (no parameters); 0 or -1 with *res set. */
static int
simple(struct pg_store *s, const char *sql, const char *what, enum store_result *res)
{
	PGresult *r = checked(s, PQexec(s->conn, sql), what, res);

	PQclear(r);
	return r != NULL ? 0 : -1;
}

/* ---- counts ---- */

void
pg_count(struct pg_store *s, int state, long n)
{
	if (state >= 0 && state < PD_NSTATES)
		s->delta[state] += n;
}

void
pg_queue_count(struct pg_store *s, int64_t queue, int state, long n)
{
	int i;

	if (queue == 0 || n == 0)
		return;
	for (i = 0; i < s->queue_deltas; i++)
		if (s->queue_delta[i].queue == queue && s->queue_delta[i].state == state) {
			s->queue_delta[i].n += n;
			return;
		}
	if (s->queue_deltas == PG_QUEUE_DELTAS) {
		/* Full: fold into the last slot's queue would be wrong, so a
		 * transaction never touches more than PG_QUEUE_DELTAS pairs
		 * (a batch stays well below: each item names one queue). */
		log_error("store: more than %d queue count changes in one transaction",
		          PG_QUEUE_DELTAS);
		return;
	}
	s->queue_delta[s->queue_deltas++] = (struct pg_queue_delta){ queue, state, n };
}

void
pg_total(struct pg_store *s, enum pg_total t, long n)
{
	if (t >= 0 && t < PG_TOTAL_COUNT)
		s->total[t] += n;
}

static void
deltas_drop(struct pg_store *s)
{
	memset(s->delta, 0, sizeof(s->delta));
	s->queue_deltas = 0;
	memset(s->total, 0, sizeof(s->total));
}

static int
queue_delta_order(const void *a, const void *b)
{
	const struct pg_queue_delta *x = a, *y = b;

	if (x->queue != y->queue)
		return x->queue < y->queue ? -1 : 1;
	return (x->state > y->state) - (x->state < y->state);
}

/* Writes one statement's deltas (n[0..count-1], the zero ones left out)
 * as two arrays, of the indexes and of the changes. */
static enum store_result
write_deltas(struct pg_store *s, const char *statement, const long *n, int count,
             const char *what)
{
	struct pg_array col[2] = { 0 };
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	int any = 0;
	PGresult *r;

	for (int i = 0; i < count; i++)
		if (n[i] != 0) {
			pg_array_int(&col[0], i);
			pg_array_int(&col[1], n[i]);
			any = 1;
		}
	if (!any) {
		pg_array_free(&col[0]);
		pg_array_free(&col[1]);
		return STORE_OK;
	}
	if ((r = pg_exec_arrays(s, statement, &p, col, 2, what, &res)) == NULL)
		return res;
	PQclear(r);
	return STORE_OK;
}

/* Writes the transaction's count changes. Many writers update the same
 * rows, so each transaction takes their row locks in one fixed order
 * (counts by state, queue counts by queue and state, totals by counter):
 * two of them then wait for each other, never deadlock. */
static enum store_result
deltas_write(struct pg_store *s, const char *what)
{
	enum store_result res;
	PGresult *r;

	if ((res = write_deltas(s, "count_delta", s->delta, PD_NSTATES, what)) != STORE_OK)
		return res;
	qsort(s->queue_delta, (size_t)s->queue_deltas, sizeof(s->queue_delta[0]),
	      queue_delta_order);
	for (int i = 0; i < s->queue_deltas; i++) {
		struct pg_params p = { 0 };

		if (s->queue_delta[i].n == 0)
			continue;
		pg_int(&p, s->queue_delta[i].queue);
		pg_int(&p, s->queue_delta[i].state);
		pg_int(&p, s->queue_delta[i].n);
		if ((r = pg_exec(s, "queue_count_delta", &p, what, &res)) == NULL)
			return res;
		PQclear(r);
	}
	return write_deltas(s, "total_delta", s->total, PG_TOTAL_COUNT, what);
}

/* ---- statements ---- */

/* What this file itself runs. */
static const struct pg_statement core_statements[] = {
	/* The shard of this connection (see sql/pg/008-schema.sql). */
	/* $1: the states (counters) that changed, in ascending order, which is
	 * the order the rows are inserted and locked in (sorted here, so that
	 * no plan sorts); $2: by how much. */
	{ "count_delta",
	  "INSERT INTO counts (state, shard, n) SELECT d.state, pg_backend_pid() % 16, d.n "
	  "FROM unnest($1::integer[], $2::bigint[]) AS d (state, n) "
	  "ON CONFLICT (state, shard) DO UPDATE SET n = counts.n + excluded.n" },
	{ "queue_count_delta", "UPDATE queue_counts SET n = n + $3 WHERE queue = $1 AND state = $2" },
	{ "total_delta",
	  "INSERT INTO totals (counter, shard, n) SELECT d.counter, pg_backend_pid() % 16, d.n "
	  "FROM unnest($1::integer[], $2::bigint[]) AS d (counter, n) "
	  "ON CONFLICT (counter, shard) DO UPDATE SET n = totals.n + excluded.n" },
};

static int
prepare_table(struct pg_store *s, const struct pg_statement *t, int n)
{
	for (int i = 0; t != NULL && i < n; i++) {
		PGresult *r = PQprepare(s->conn, t[i].name, t[i].sql, 0, NULL);

		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			log_error("store: preparing %s \"%s\": %s", t[i].name, t[i].sql,
			          PQresultErrorMessage(r));
			PQclear(r);
			return -1;
		}
		PQclear(r);
	}
	return 0;
}

static int
prepare_all(struct pg_store *s)
{
	return prepare_table(s, core_statements,
	                     (int)(sizeof(core_statements) / sizeof(core_statements[0]))) ||
	    prepare_table(s, pg_message_statements, pg_message_nstatements) ||
	    prepare_table(s, pg_admin_statements, pg_admin_nstatements) ||
	    prepare_table(s, pg_dispatch_statements, pg_dispatch_nstatements) ||
	    prepare_table(s, pg_queue_statements, pg_queue_nstatements) ||
	    prepare_table(s, pg_topic_statements, pg_topic_nstatements) ||
	    prepare_table(s, pg_recurring_statements, pg_recurring_nstatements)
	    ? -1 : 0;
}

/* The connection broke: one reset, and the statements again. */
static int
reconnect(struct pg_store *s)
{
	PQreset(s->conn);
	if (PQstatus(s->conn) != CONNECTION_OK) {
		log_error("store: reconnecting: %s", PQerrorMessage(s->conn));
		return -1;
	}
	log_warn("store: connection to the database reset");
	return prepare_all(s);
}

/* ---- transactions ---- */

/* A pause before running a transaction again, random so that the two
 * sides of a deadlock do not meet again, growing with the attempts. Its
 * own generator, seeded per thread from the process and the clock: the
 * processes of one program would otherwise share random()'s sequence. */
static void
backoff(int attempt)
{
	static __thread uint64_t state;
	long cap = PG_BACKOFF_MAX_US / (PG_TRIES - attempt + 1);
	struct timespec nap;
	long us;

	if (state == 0)
		state = ((uint64_t)getpid() << 32) ^ (uint64_t)clock_monotonic() ^ 0x9e3779b97f4a7c15ULL;
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	us = 500 + (long)(state % (uint64_t)(cap > 500 ? cap : 500));
	nap.tv_sec = 0;
	nap.tv_nsec = us * 1000;
	nanosleep(&nap, NULL);
}

enum store_result
pg_run_again(struct pg_store *s)
{
	(void)s;
	last_retryable = 1;
	return STORE_BUSY;
}

static enum store_result
run(struct pg_store *s, const char *what, const char *begin, int writes, pg_body_fn body,
    void *arg)
{
	int reset = 0;

	for (int attempt = 1;; attempt++) {
		enum store_result res = STORE_OK;

		deltas_drop(s);
		last_retryable = 0;
		s->tx_began = time_now();
		if (simple(s, begin, what, &res) == 0 &&
		    (res = body(s, arg)) == STORE_OK &&
		    (!writes || (res = deltas_write(s, what)) == STORE_OK) &&
		    simple(s, "COMMIT", what, &res) == 0) {
			deltas_drop(s);
			s->tx_began = 0;
			return STORE_OK;
		}
		deltas_drop(s);
		s->tx_began = 0;
		if (PQstatus(s->conn) == CONNECTION_BAD) {
			if (reset++ == 0 && reconnect(s) == 0)
				continue;
			return STORE_UNAVAILABLE;
		}
		PQclear(PQexec(s->conn, "ROLLBACK"));
		if (!last_retryable || attempt == PG_TRIES) {
			if (last_retryable)
				log_warn("store: %s: still conflicting after %d tries", what, attempt);
			return res;
		}
		backoff(attempt);
	}
}

enum store_result
pg_transaction(struct pg_store *s, const char *what, int sync_off, pg_body_fn body, void *arg)
{
	/* One round trip: a simple query may hold several statements. */
	return run(s, what, sync_off ? "BEGIN; SET LOCAL synchronous_commit = off" : "BEGIN", 1,
	           body, arg);
}

enum store_result
pg_read(struct pg_store *s, const char *what, pg_body_fn body, void *arg)
{
	/* A read made inside a transaction of this store (a callback report
	 * built during a write-back or a sweep reads the message and its
	 * history) belongs to it: it sees what the transaction wrote, and
	 * neither begins nor commits. */
	if (PQtransactionStatus(s->conn) == PQTRANS_INTRANS)
		return body(s, arg);
	return run(s, what, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, body, arg);
}

/* ---- connecting and migrating ---- */

PGconn *
pg_connect(const char *database)
{
	/* Ours first and the URL (dbname, expanded) last: libpq keeps the
	 * last value of a repeated key, so whatever the URL sets wins. A URL
	 * with options= replaces the timeouts' options whole. */
	const char *keys[] = { "application_name", "options", "keepalives", "keepalives_idle",
	                       "dbname", NULL };
	const char *values[] = { program_invocation_short_name,
	                         "-c statement_timeout=30s "
	                         "-c idle_in_transaction_session_timeout=60s",
	                         "1", "30", database, NULL };

	return PQconnectdbParams(keys, values, 1);
}

/* Runs the migrations this database has not had, each in one transaction
 * under an advisory lock, so that concurrent openers run each once. The
 * first PostgreSQL migration (sql/pg/008-schema.sql) holds versions 1..8. */
static int
migrate(struct pg_store *s)
{
	int latest = store_schema_version();
	int n = (int)(sizeof(pg_migrations) / sizeof(pg_migrations[0]));

	if (atoi(pg_migrations[n - 1].name) != latest) {
		log_error("store: the PostgreSQL migrations end at %s, not at version %d",
		          pg_migrations[n - 1].name, latest);
		return -1;
	}
	for (;;) {
		enum store_result res;
		char lock[96], set[64];
		PGresult *r;
		int version = 0, i;

		snprintf(lock, sizeof(lock), "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
		         PG_MIGRATION_LOCK);
		if (simple(s, lock, "migrating", &res) != 0)
			return -1;
		r = checked(s, PQexec(s->conn, "SELECT to_regclass('schema_version') IS NOT NULL"),
		            "migrating", &res);
		if (r == NULL)
			goto fail;
		if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
			PQclear(r);
			r = checked(s, PQexec(s->conn, "SELECT max(version) FROM schema_version"),
			            "migrating", &res);
			if (r == NULL)
				goto fail;
			version = (int)pg_get_int(r, 0, 0);
		}
		PQclear(r);
		if (version == latest)
			return simple(s, "COMMIT", "migrating", &res);
		if (version > latest) {
			log_error("store: the database has schema version %d; this program knows up "
			          "to %d", version, latest);
			goto fail;
		}
		for (i = 0; i < n && atoi(pg_migrations[i].name) <= version; i++)
			;
		snprintf(set, sizeof(set), "UPDATE schema_version SET version = %d",
		         atoi(pg_migrations[i].name));
		if (simple(s, pg_migrations[i].sql, pg_migrations[i].name, &res) != 0 ||
		    simple(s, set, "migrating", &res) != 0 ||
		    simple(s, "COMMIT", "migrating", &res) != 0)
			goto fail;
		log_info("store: ran PostgreSQL migration %s (schema version %d)",
		         pg_migrations[i].name, atoi(pg_migrations[i].name));
		continue;
fail:
		PQclear(PQexec(s->conn, "ROLLBACK"));
		return -1;
	}
}

static void
pg_op_close(struct pd_store *store)
{
	struct pg_store *s = pg_of(store);

	if (s == NULL)
		return;
	PQfinish(s->conn);
	free(s);
}

static int
pg_op_open(struct pd_store **out, const struct pd_config *cfg)
{
	struct pg_store *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (s == NULL)
		return -1;
	s->base.engine = &store_pg_engine;
	s->cfg = cfg;
	s->conn = pg_connect(cfg->database);
	if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK) {
		/* The URL may hold a password: the message names no URL. */
		log_error("store: connecting to PostgreSQL: %s",
		          s->conn != NULL ? PQerrorMessage(s->conn) : "out of memory");
		goto fail;
	}
	if (migrate(s) != 0 || prepare_all(s) != 0)
		goto fail;
	*out = &s->base;
	return 0;
fail:
	pg_op_close(&s->base);
	return -1;
}

/* A libpq URL: postgresql://... or postgres://... */
static int
pg_names(const char *database)
{
	return store_database_is_url(database);
}

const struct store_engine store_pg_engine = {
	.name = "postgresql",
	/* A look every 20 ms: a waiter wakes within that of a commit, at 50
	 * reads a second per FastCGI process while anyone waits. */
	.caps = { .one_file = 0, .watch_ms = 20 },
	.names = pg_names,
	.open = pg_op_open,
	.close = pg_op_close,
	/* pgcore */
	.insert_batch = pg_op_insert_batch,
	.cancel = pg_op_cancel,
	.get = pg_op_get,
	.history = pg_op_history,
	.list = pg_op_list,
	.counts = pg_op_counts,
	.health = pg_op_health,
	.backup = pg_op_backup,
	.inspect = pg_op_inspect,
	.data_version = pg_op_data_version,
	.query_plans = pg_op_query_plans,
	.metrics = pg_op_metrics,
	.retry = pg_op_retry,
	.retry_state = pg_op_retry_state,
	.purge = pg_op_purge,
	/* pgdispatch */
	.sync_normal = pg_op_sync_normal,
	.next_due = pg_op_next_due,
	.promote = pg_op_promote,
	.claim = pg_op_claim,
	.settle = pg_op_settle,
	.end_overdue = pg_op_end_overdue,
	/* pgqueue */
	.queue_set = pg_op_queue_set,
	.queue_get = pg_op_queue_get,
	.queue_list = pg_op_queue_list,
	.queue_ready_at = pg_op_queue_ready_at,
	.queue_batch = pg_op_queue_batch,
	.release = pg_op_release,
	.extend = pg_op_extend,
	.subscribe = pg_op_subscribe,
	.unsubscribe = pg_op_unsubscribe,
	.topics = pg_op_topics,
	.recurring_add = pg_op_recurring_add,
	.recurring_get = pg_op_recurring_get,
	.recurring_list = pg_op_recurring_list,
	.recurring_pause = pg_op_recurring_pause,
	.recurring_resume = pg_op_recurring_resume,
	.recurring_delete = pg_op_recurring_delete,
	.recurring_make_at = pg_op_recurring_make_at,
	.recurring_make = pg_op_recurring_make,
};
