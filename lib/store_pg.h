/* store_pg.h: the PostgreSQL engine's internals, shared by lib/store_pg*.c. */
#ifndef POSTDATE_STORE_PG_H
#define POSTDATE_STORE_PG_H

#include <libpq-fe.h>
#include "store_engine.h"

#define PG_QUEUE_DELTAS 32

/* The counters of the totals table (as store_sqlite.c's enum total). */
enum pg_total { PG_TOTAL_MADE, PG_TOTAL_DELIVERED, PG_TOTAL_FAILED, PG_TOTAL_CANCELLED,
	PG_TOTAL_EXPIRED, PG_TOTAL_RECEIVES, PG_TOTAL_ATTEMPTS,
	PG_TOTAL_COUNT = PG_TOTAL_ATTEMPTS + STORE_ATTEMPT_OUTCOMES };

struct pg_store {
	struct pd_store base;          /* first: what store.c sees */
	PGconn *conn;
	const struct pd_config *cfg;
	int sync_off;                  /* store_sync_normal was asked */
	pd_ms tx_began;                /* time_now() as the transaction in progress began, or 0 */
	/* What the transaction in progress changes, written at commit (pg_commit) and
	 * dropped on rollback or retry. */
	long delta[PD_NSTATES];
	struct pg_queue_delta { int64_t queue; int state; long n; } queue_delta[PG_QUEUE_DELTAS];
	int queue_deltas;
	long total[PG_TOTAL_COUNT];
};

static inline struct pg_store *pg_of(struct pd_store *s) { return (struct pg_store *)s; }

/* A prepared statement: each file has a table of its own, prepared on
 * every (re)connection by store_pg.c; names are unique ("queue_receive"). */
struct pg_statement { const char *name; const char *sql; };
extern const struct pg_statement pg_message_statements[], pg_dispatch_statements[],
	pg_queue_statements[], pg_topic_statements[], pg_recurring_statements[],
	pg_admin_statements[];
extern const int pg_message_nstatements, pg_dispatch_nstatements, pg_queue_nstatements,
	pg_topic_nstatements, pg_recurring_nstatements, pg_admin_nstatements;

/* Parameters in text form, built on the stack: pg_params p = {0}; pg_int(&p, v); ... */
struct pg_params {
	int n;
	const char *values[24];
	int lengths[24];
	int formats[24];               /* 1 for binary (payloads, receipts) */
	char buf[24][24];              /* room for numbers */
};
void pg_int(struct pg_params *p, int64_t v);
void pg_text(struct pg_params *p, const char *text);        /* NULL: SQL NULL */
void pg_bytes(struct pg_params *p, const void *data, size_t len);  /* bytea, binary */

/* A batch as one parameter: a PostgreSQL array in text form
 * ({1,NULL,"a\"b"}), which a statement reads as unnest($1::bigint[], ...).
 * Start from struct pg_array a = {0}; append one element per item; pass
 * pg_array_end(&a) with pg_text (NULL after an allocation failed: check
 * it); pg_array_free when the statement has run. */
struct pg_array {
	char *text;
	size_t len, cap;
	int failed;
};
void pg_array_int(struct pg_array *a, int64_t v);
void pg_array_text(struct pg_array *a, const char *text);     /* NULL: SQL NULL */
const char *pg_array_end(struct pg_array *a);
void pg_array_free(struct pg_array *a);
/* Runs prepared statement name with p (NULL: none). Returns the result on
 * PGRES_COMMAND_OK / PGRES_TUPLES_OK (caller PQclear()s it), or NULL after
 * recording the failure in *res (pg_fail's mapping) and logging it with what. */
PGresult *pg_exec(struct pg_store *s, const char *name, const struct pg_params *p,
                  const char *what, enum store_result *res);

/* pg_exec with the ncols arrays' texts appended to p's parameters (after
 * those already in it, so a statement's scalars come first); the arrays
 * are freed either way. */
PGresult *pg_exec_arrays(struct pg_store *s, const char *name, struct pg_params *p,
                         struct pg_array *cols, int ncols, const char *what,
                         enum store_result *res);
/* SQLSTATE of a failed result mapped to a store result: 40001/40P01 -> STORE_BUSY
 * with *retry set; 53100 (disk full) -> STORE_NOSPACE; 57014 (statement timeout),
 * 55P03 (lock not available) -> STORE_BUSY; a broken connection -> STORE_UNAVAILABLE;
 * else STORE_ERROR (logged). */
enum store_result pg_fail(struct pg_store *s, const PGresult *r, const char *what, int *retry);

/* Runs body(s, arg) in one transaction: BEGIN, body, the deltas written,
 * COMMIT; on a serialization failure or deadlock the whole is rolled back
 * and run again (up to 8 times, with a short random backoff), so a body
 * must not hand anything to callers' callbacks before it returns: collect,
 * and hand over after pg_transaction returned STORE_OK. A body's failure
 * rolls back and is returned. sync_off: SET LOCAL synchronous_commit = off
 * (dispatcher write-backs only). A broken connection is reset once,
 * statements prepared again, and the transaction run again. */
typedef enum store_result (*pg_body_fn)(struct pg_store *s, void *arg);
enum store_result pg_transaction(struct pg_store *s, const char *what, int sync_off,
                                 pg_body_fn body, void *arg);
/* What a body returns when a concurrent transaction took what it was about
 * to write (a history number): STORE_BUSY, and the transaction is rolled
 * back and run again, with a snapshot that sees the other's commit. */
enum store_result pg_run_again(struct pg_store *s);
/* The same for a read: one snapshot (REPEATABLE READ READ ONLY), retried likewise. */
enum store_result pg_read(struct pg_store *s, const char *what, pg_body_fn body, void *arg);

/* Count changes inside a transaction, written at its commit. */
void pg_count(struct pg_store *s, int state, long n);           /* counts table */
void pg_queue_count(struct pg_store *s, int64_t queue, int state, long n);
void pg_total(struct pg_store *s, enum pg_total t, long n);

/* Column helpers on a result row. */
int64_t pg_get_int(const PGresult *r, int row, int col);        /* NULL -> 0 */
int pg_is_null(const PGresult *r, int row, int col);
char *pg_get_strdup(const PGresult *r, int row, int col);       /* NULL -> NULL */

/* SQL for the database's clock in epoch ms, to paste into statements. */
#define PG_NOW "(extract(epoch from clock_timestamp()) * 1000)::bigint"

/* Row readers shared by several files (store_pg_message.c). MESSAGE_COLUMNS
 * as store_sqlite.c's, in the same order. */
extern const char pg_message_columns[];   /* the select list, with m/l/q/pb/tp aliases */
int pg_row_to_message(const PGresult *r, int row, int col, struct pd_message *m, int whole_pool);
int pg_row_payload(const PGresult *r, int row, int col, struct pd_message *m);

/* Queue rows, used by inserts (store_pg_message.c) and queue work (store_pg_queue.c). */
struct pg_queue_row { int64_t key; int visibility, max_attempts, paused; long max_depth;
	long alive;                    /* pending + delivering, this transaction's changes in */
};
/* Finds queue name (STORE_NOTFOUND), or makes it with the configured defaults when make. */
enum store_result pg_find_queue(struct pg_store *s, const char *name, int make, pd_ms now,
                                struct pg_queue_row *q);

/* ---- pgcore: store_pg.c, store_pg_message.c, store_pg_admin.c ---- */
extern const struct store_engine store_pg_engine;

/* What message id is now (an ended state, else delivering while leased,
 * else pending), inside the caller's transaction: STORE_OK, STORE_NOTFOUND
 * or the failure of the read. */
enum store_result pg_state_of(struct pg_store *s, const char *id, enum pd_state *state);

/* The columns of pg_message_columns, and the joins they need beside
 * messages m and live l (as store_sqlite.c's MESSAGE_NCOLUMNS, MESSAGE_JOINS). */
#define PG_MESSAGE_NCOLUMNS 28
#define PG_MESSAGE_COLUMNS \
	"m.id, m.state, m.due, m.created, l.token, l.due, l.next_round, m.delivered_at, " \
	"m.urls, m.payload_bytes, m.content_type, m.callback, m.idempotency_key, " \
	"m.delivered_to, m.report_of, m.max_attempts, m.timeout, " \
	"coalesce(l.attempts, m.attempts), coalesce(l.gone, m.gone), m.report, " \
	"q.name, m.priority, m.expires, m.method, m.headers, tp.name, m.subscription, " \
	"(SELECT r.id FROM recurring r WHERE r.key = m.recurring)"
#define PG_MESSAGE_JOINS \
	"LEFT JOIN queues q ON q.key = m.queue LEFT JOIN publishes pb ON pb.key = m.publish " \
	"LEFT JOIN topics tp ON tp.key = pb.topic"

/* The engine's own connection (ours), for inspect: the URL with our defaults. */
PGconn *pg_connect(const char *database);

/* store_pg_message.c */
void pg_op_insert_batch(struct pd_store *s, struct store_insert *items, size_t n);
enum store_result pg_op_cancel(struct pd_store *s, const char *id, enum pd_state *state);
enum store_result pg_op_get(struct pd_store *s, const char *id, struct pd_message *m,
                            store_attempt_fn fn, void *ctx);
enum store_result pg_op_history(struct pd_store *s, const char *id, store_attempt_fn fn,
                                void *ctx);
enum store_result pg_op_list(struct pd_store *s, int state, const char *queue,
                             pd_ms after_due, const char *after_id, int limit,
                             store_message_fn fn, void *ctx, long counts[PD_NSTATES]);
enum store_result pg_op_counts(struct pd_store *s, long counts[PD_NSTATES]);
enum store_result pg_op_health(struct pd_store *s, long counts[PD_NSTATES], pd_ms *earliest);
/* Inserts m inside the caller's transaction (a publish's copies too):
 * STORE_OK, STORE_EXISTS (m then holds the original's id), STORE_CONFLICT,
 * STORE_QUEUE_FULL; publish is publishes.key or 0. */
enum store_result pg_insert_message(struct pg_store *s, struct pd_message *m, pd_ms now,
                                    int64_t publish);
/* Reads the per-state counts table into counts. */
enum store_result pg_read_counts(struct pg_store *s, long counts[PD_NSTATES]);

/* store_pg_admin.c */
enum store_result pg_op_inspect(const char *database, int *version, store_problem_fn fn,
                                void *ctx, long *problems);
int pg_op_query_plans(struct pd_store *s, store_plan_fn fn, void *ctx);
enum store_result pg_op_metrics(struct pd_store *s, pd_ms now, struct store_metrics *m,
                                store_queue_fn fn, void *ctx);
enum store_result pg_op_retry(struct pd_store *s, const char *id, pd_ms now,
                              enum pd_state *state);
enum store_result pg_op_retry_state(struct pd_store *s, enum pd_state state, pd_ms due_before,
                                    pd_ms now, int limit, int *retried);
enum store_result pg_op_purge(struct pd_store *s, pd_ms before, int limit, int *purged);
enum store_result pg_op_backup(struct pd_store *s, const char *path);
enum store_result pg_op_data_version(struct pd_store *s, long long *version);

/* ---- pgdispatch: store_pg_dispatch.c ---- */
/* How far the caller's now lies ahead of its own clock (ms; a few ms
 * behind for a caller passing its present): a statement compares with
 * PG_NOW + pg_ahead(now), the database's clock moved as far as the caller
 * asks, so the caller's skew cancels out. */
int64_t pg_ahead(pd_ms now);
/* The pg_try_advisory_xact_lock key promotion runs under ('pdprom'). */
#define PG_PROMOTION_LOCK "123576685588333"
int pg_op_sync_normal(struct pd_store *s);
enum store_result pg_op_next_due(struct pd_store *s, pd_ms *unbuffered, pd_ms *buffered);
enum store_result pg_op_promote(struct pd_store *s, pd_ms until, int limit, int *promoted);
enum store_result pg_op_claim(struct pd_store *s, pd_ms now, int limit, int lease_slack_s,
                              store_claim_fn fn, void *ctx);
enum store_result pg_op_settle(struct pd_store *s, struct pd_settlement *items, size_t n,
                               pd_ms now, store_report_fn report_fn, void *ctx);
enum store_result pg_op_end_overdue(struct pd_store *s, pd_ms now, int limit,
                                    store_report_fn report_fn, void *ctx, int *ended);
/* ---- pgqueue: store_pg_queue.c, store_pg_topics.c, store_pg_recurring.c ---- */
/* A publish inside the caller's transaction (store_pg_message.c's insert calls it). */
enum store_result pg_publish_in_tx(struct pg_store *s, struct pd_message *m, pd_ms now, long room);
enum store_result pg_op_queue_set(struct pd_store *s, const struct pd_queue_change *c,
                                  pd_ms now, struct pd_queue *q);
enum store_result pg_op_queue_get(struct pd_store *s, const char *name, pd_ms now,
                                  struct pd_queue *q);
enum store_result pg_op_queue_list(struct pd_store *s, pd_ms now, store_queue_fn fn, void *ctx);
enum store_result pg_op_queue_ready_at(struct pd_store *s, const char *queue, pd_ms *at);
void pg_op_queue_batch(struct pd_store *s, struct store_queue_op *ops, size_t n, pd_ms now,
                       store_report_fn report_fn, void *report_ctx);
enum store_result pg_op_release(struct pd_store *s, struct store_ack *item, pd_ms delay_ms,
                                pd_ms now, pd_ms *due, store_report_fn report_fn, void *ctx);
enum store_result pg_op_extend(struct pd_store *s, struct store_ack *item, pd_ms visibility_ms,
                               pd_ms now, pd_ms *until);
enum store_result pg_op_subscribe(struct pd_store *s, const char *topic, const char *name,
                                  const struct pd_message *dest, pd_ms now, int *created);
enum store_result pg_op_unsubscribe(struct pd_store *s, const char *topic, const char *name);
enum store_result pg_op_topics(struct pd_store *s, const char *topic, store_subscription_fn fn,
                               void *ctx);
enum store_result pg_op_recurring_add(struct pd_store *s, struct pd_recurring *r, pd_ms now);
enum store_result pg_op_recurring_get(struct pd_store *s, const char *id, struct pd_recurring *r);
enum store_result pg_op_recurring_list(struct pd_store *s, int limit, store_recurring_fn fn,
                                       void *ctx);
enum store_result pg_op_recurring_pause(struct pd_store *s, const char *id, pd_ms now,
                                        struct pd_recurring *r);
enum store_result pg_op_recurring_resume(struct pd_store *s, const char *id, pd_ms now,
                                         struct pd_recurring *r);
enum store_result pg_op_recurring_delete(struct pd_store *s, const char *id, pd_ms now);
enum store_result pg_op_recurring_make_at(struct pd_store *s, pd_ms *at);
enum store_result pg_op_recurring_make(struct pd_store *s, pd_ms now, int limit, int *made,
                                       int *late);

#endif
