/*
 * store_engine.h: what an engine behind store.h implements, and the pieces
 * of the store that do not depend on the engine (store_common.c). Only
 * store.c and the engines (store_sqlite.c, and the PostgreSQL one) include
 * it; the programs see store.h alone.
 *
 * Each engine keeps its own SQL. An engine's store begins with struct
 * pd_store, so store.c can find its engine; the rest is the engine's own.
 */
#ifndef POSTDATE_STORE_ENGINE_H
#define POSTDATE_STORE_ENGINE_H

#include <openssl/evp.h>

#include "store.h"

/* Where the engines differ in what they can do, for the callers that ask
 * (the admin CLI, health, the tests). */
struct store_caps {
	int one_file;     /* the database is one file: store_backup copies it,
	                     store_inspect checks it */
	int watch_ms;     /* store_watch_interval_ms */
};

struct store_engine {
	const char *name;             /* "sqlite", "postgresql": for logs */
	struct store_caps caps;
	/* Whether database (the setting's value) names a database of this engine. */
	int (*names)(const char *database);
	int (*open)(struct pd_store **out, const struct pd_config *cfg);
	enum store_result (*inspect)(const char *database, int *version, store_problem_fn fn,
	                             void *ctx, long *problems);
	/* The operations, each as store.h says of the store_ function of its name. */
	void (*close)(struct pd_store *s);
	void (*insert_batch)(struct pd_store *s, struct store_insert *items, size_t n);
	enum store_result (*cancel)(struct pd_store *s, const char *id, enum pd_state *state);
	enum store_result (*get)(struct pd_store *s, const char *id, struct pd_message *m,
	                         store_attempt_fn fn, void *ctx);
	enum store_result (*history)(struct pd_store *s, const char *id, store_attempt_fn fn,
	                             void *ctx);
	enum store_result (*list)(struct pd_store *s, int state, const char *queue,
	                          pd_ms after_due, const char *after_id, int limit,
	                          store_message_fn fn, void *ctx, long counts[PD_NSTATES]);
	enum store_result (*counts)(struct pd_store *s, long counts[PD_NSTATES]);
	enum store_result (*health)(struct pd_store *s, long counts[PD_NSTATES],
	                            pd_ms *earliest);
	enum store_result (*queue_set)(struct pd_store *s, const struct pd_queue_change *c,
	                               pd_ms now, struct pd_queue *q);
	enum store_result (*subscribe)(struct pd_store *s, const char *topic, const char *name,
	                               const struct pd_message *dest, pd_ms now, int *created);
	enum store_result (*unsubscribe)(struct pd_store *s, const char *topic,
	                                 const char *name);
	enum store_result (*topics)(struct pd_store *s, const char *topic,
	                            store_subscription_fn fn, void *ctx);
	enum store_result (*queue_get)(struct pd_store *s, const char *name, pd_ms now,
	                               struct pd_queue *q);
	enum store_result (*queue_list)(struct pd_store *s, pd_ms now, store_queue_fn fn,
	                                void *ctx);
	enum store_result (*queue_ready_at)(struct pd_store *s, const char *queue, pd_ms *at);
	enum store_result (*data_version)(struct pd_store *s, long long *version);
	void (*queue_batch)(struct pd_store *s, struct store_queue_op *ops, size_t n, pd_ms now,
	                    store_report_fn report_fn, void *report_ctx);
	enum store_result (*release)(struct pd_store *s, struct store_ack *item, pd_ms delay_ms,
	                             pd_ms now, pd_ms *due, store_report_fn report_fn,
	                             void *ctx);
	enum store_result (*extend)(struct pd_store *s, struct store_ack *item,
	                            pd_ms visibility_ms, pd_ms now, pd_ms *until);
	int (*sync_normal)(struct pd_store *s);
	enum store_result (*next_due)(struct pd_store *s, pd_ms *unbuffered, pd_ms *buffered);
	enum store_result (*promote)(struct pd_store *s, pd_ms until, int limit, int *promoted);
	enum store_result (*claim)(struct pd_store *s, pd_ms now, int limit, int lease_slack_s,
	                           store_claim_fn fn, void *ctx);
	enum store_result (*settle)(struct pd_store *s, struct pd_settlement *items, size_t n,
	                            pd_ms now, store_report_fn report_fn, void *ctx);
	enum store_result (*end_overdue)(struct pd_store *s, pd_ms now, int limit,
	                                 store_report_fn report_fn, void *ctx, int *ended);
	enum store_result (*recurring_add)(struct pd_store *s, struct pd_recurring *r,
	                                   pd_ms now);
	enum store_result (*recurring_get)(struct pd_store *s, const char *id,
	                                   struct pd_recurring *r);
	enum store_result (*recurring_list)(struct pd_store *s, int limit,
	                                    store_recurring_fn fn, void *ctx);
	enum store_result (*recurring_pause)(struct pd_store *s, const char *id, pd_ms now,
	                                     struct pd_recurring *r);
	enum store_result (*recurring_resume)(struct pd_store *s, const char *id, pd_ms now,
	                                      struct pd_recurring *r);
	enum store_result (*recurring_delete)(struct pd_store *s, const char *id, pd_ms now);
	enum store_result (*recurring_make_at)(struct pd_store *s, pd_ms *at);
	enum store_result (*recurring_make)(struct pd_store *s, pd_ms now, int limit, int *made,
	                                    int *late);
	int (*query_plans)(struct pd_store *s, store_plan_fn fn, void *ctx);
	enum store_result (*metrics)(struct pd_store *s, pd_ms now, struct store_metrics *m,
	                             store_queue_fn fn, void *ctx);
	enum store_result (*retry)(struct pd_store *s, const char *id, pd_ms now,
	                           enum pd_state *state);
	enum store_result (*retry_state)(struct pd_store *s, enum pd_state state,
	                                 pd_ms due_before, pd_ms now, int limit, int *retried);
	enum store_result (*purge)(struct pd_store *s, pd_ms before, int limit, int *purged);
	enum store_result (*backup)(struct pd_store *s, const char *path);
};

/* Every engine's store starts with this. */
struct pd_store {
	const struct store_engine *engine;
};

extern const struct store_engine store_sqlite_engine;

/* ---- store_common.c: the same on every engine ---- */

#define FINGERPRINT_LEN 32

/* The pool less the URLs whose bit is set in gone (malloc'd). */
char *urls_left(const char *pool, unsigned gone);

/* SHA-256 over what a schedule request asked for, its times aside: a
 * reused idempotency key with other contents is a different request.
 * 0, or -1 on failure. */
int fingerprint(const struct pd_message *m, unsigned char out[FINGERPRINT_LEN]);

/* A fresh lease token: random, never 0 (0 means "not leased"); 0 on failure. */
int64_t new_token(void);

/* A receipt: 128 random bits; the first 63 (never 0) are the lease token,
 * all 128 are kept with the lease and compared by every ack. */
struct receipt {
	unsigned char bytes[16];
	int64_t token;
};

int receipt_new(struct receipt *r);
void receipt_format(const struct receipt *r, char out[PD_RECEIPT_LEN + 1]);
/* -1 unless text is PD_RECEIPT_LEN lowercase hex digits. */
int receipt_parse(const char *text, struct receipt *r);

/* The zone a definition's fields are read in: NULL for UTC itself. */
int recurring_zone(const char *tz, struct pd_tz **zone);

/* Fills m as the occurrence of definition r due at `at`: the template's
 * fields, borrowed from r (m owns none of them), a ttl counted from at. */
void recurring_occurrence(struct pd_recurring *r, pd_ms at, struct pd_message *m);

/* The latest occurrence of c at or before now, given one (from) that is. */
pd_ms latest_occurrence_by(const struct pd_cron *c, const struct pd_tz *zone, pd_ms from,
                           pd_ms now);

/* writer_turn.c: the turn to write an SQLite database, across processes. */
struct writer_turn;
/* The turn of database (a path), or NULL when its file cannot be made. */
struct writer_turn *writer_turn_open(const char *database);
/* Waits up to timeout_ms for the turn: 0 when taken, -1 when not (NULL t,
 * or timed out). */
int writer_turn_take(struct writer_turn *t, int timeout_ms);
void writer_turn_give(struct writer_turn *t);
void writer_turn_close(struct writer_turn *t);

#endif
