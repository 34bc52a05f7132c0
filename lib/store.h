/*
 * store.h: the database, as whole operations. Each function that changes
 * anything is one transaction inside the store; callers never see
 * transactions, SQL or query plans, so that another engine can stand
 * behind the same functions. Readers see one consistent snapshot per call.
 */
#ifndef POSTDATE_STORE_H
#define POSTDATE_STORE_H

#include "postdate.h"

enum store_result {
	STORE_OK = 0,
	STORE_NOTFOUND,     /* no such message */
	STORE_EXISTS,       /* the idempotency key was used; message holds the original */
	STORE_FULL,         /* max_pending reached */
	STORE_CONFLICT,     /* the message is in a state that forbids the change, or
	                       its idempotency key was used by a different request */
	STORE_BUSY,         /* the database stayed locked past the busy timeout */
	STORE_NOSPACE,      /* the disk is full */
	STORE_UNAVAILABLE,  /* the database could not be opened */
	STORE_ERROR         /* anything else; logged */
};

struct pd_store;

/* Opens the configured database, creating it or running the migrations in
 * sql/ that it has not had yet (each in one transaction). */
int store_open(struct pd_store **out, const struct pd_config *cfg);
void store_close(struct pd_store *s);

/* The schema version a store opened by this program has. */
int store_schema_version(void);

/* ---- scheduling ---- */

/* Assigns m->id and m->created and inserts m, into the near-term buffer
 * too when due within the horizon. Returns STORE_OK, STORE_EXISTS (m
 * replaced by the message holding its idempotency key), STORE_CONFLICT
 * (the key was used by a request with other contents: target, payload,
 * content type, callback, limits), STORE_FULL, STORE_BUSY, STORE_NOSPACE
 * or STORE_ERROR. */
enum store_result store_insert(struct pd_store *s, struct pd_message *m, pd_ms now);

/* One message of a batch insert and, afterwards, what became of it. */
struct store_insert {
	struct pd_message *message;
	pd_ms now;
	enum store_result result;  /* as store_insert's */
};

/* Inserts every message as store_insert does, all in one transaction and
 * so with one sync to disk: group commit. A message refused on its own
 * (507, its key already used) does not hold the others back; when the
 * transaction fails, every message that would have been stored gets the
 * failure. */
void store_insert_batch(struct pd_store *s, struct store_insert *items, size_t n);

/* Cancels a pending message. STORE_OK (also when already cancelled),
 * STORE_NOTFOUND, STORE_CONFLICT (*state says what it is), STORE_BUSY or
 * STORE_ERROR. */
enum store_result store_cancel(struct pd_store *s, const char *id, enum pd_state *state);

/* ---- reading ---- */

typedef int (*store_attempt_fn)(void *ctx, const struct pd_attempt *a);
typedef int (*store_message_fn)(void *ctx, const struct pd_message *m);

/* Reads one message and, when fn is not NULL, calls fn for each of its
 * attempts, oldest first. STORE_OK, STORE_NOTFOUND, STORE_BUSY or
 * STORE_ERROR. */
enum store_result store_get(struct pd_store *s, const char *id, struct pd_message *m,
                            store_attempt_fn fn, void *ctx);

/* Calls fn for each recorded attempt of id, oldest first. */
enum store_result store_history(struct pd_store *s, const char *id, store_attempt_fn fn,
                                void *ctx);

/* A page of the list: messages in state (or every state if state < 0)
 * ordered by (due, id) after the cursor position (after_due, after_id;
 * after_id NULL for the first page). Calls fn for each, at most limit,
 * and fills counts (messages per state), from the same snapshot. */
enum store_result store_list(struct pd_store *s, int state, pd_ms after_due, const char *after_id,
                             int limit, store_message_fn fn, void *ctx, long counts[PD_NSTATES]);

/* Message counts per state. */
enum store_result store_counts(struct pd_store *s, long counts[PD_NSTATES]);

/* The message counts per state and the earliest time a live message is
 * (or was) due, 0 if none, from one snapshot. */
enum store_result store_health(struct pd_store *s, long counts[PD_NSTATES], pd_ms *earliest);

/* ---- the dispatch side ---- */

/* Its writes (leases and outcomes) may run at synchronous=NORMAL: losing
 * the last of them to a power cut only means a message is delivered again,
 * which at-least-once allows. */
int store_sync_normal(struct pd_store *s);

/* When promotion next has work (the earliest due time among messages
 * outside the buffer) and when a claim next has (the earliest in the
 * buffer, a held lease counting as due when it ends); 0 for none. */
enum store_result store_next_due(struct pd_store *s, pd_ms *unbuffered, pd_ms *buffered);

/* Gives up to limit messages due by `until` their place in the buffer;
 * *promoted says how many. */
enum store_result store_promote(struct pd_store *s, pd_ms until, int limit, int *promoted);

/* What proves a claim: held until settled, or until it runs out and
 * another dispatcher claims the message. */
struct store_lease {
	int64_t key;              /* the message's key inside the store */
	int64_t token;            /* new for every claim */
	pd_ms until;
	unsigned gone;            /* bit i: URL i of the pool is dropped for good */
};

/* Leases up to limit buffered messages due at now, each for as long as its
 * round may take (a timeout for every URL of the pool) plus lease_slack_s,
 * and counts the round they begin (m->attempts includes it, so a round
 * that never settles still counts; a message whose rounds are all spent
 * comes with m->attempts > m->max_attempts, to be ended as failed). After
 * the commit calls fn with each message (payload read; fn owns it; m->state
 * is what it was before the claim: PD_DELIVERING when an earlier lease ran
 * out unsettled) and its lease. */
typedef int (*store_claim_fn)(void *ctx, struct pd_message *m, const struct store_lease *lease);
enum store_result store_claim(struct pd_store *s, pd_ms now, int limit, int lease_slack_s,
                              store_claim_fn fn, void *ctx);

/* The end of a round (or of a lease given back): what the message becomes. */
struct pd_settlement {
	const char *id;
	struct store_lease lease;  /* the lease the caller holds */
	enum pd_state state;       /* PD_PENDING (another round), PD_DELIVERED or PD_FAILED */
	int attempts;              /* rounds started, for the message from now on */
	pd_ms next_attempt;        /* for PD_PENDING */
	unsigned gone;             /* the pool's dropped URLs, as in store_lease */
	const char *delivered_to;  /* NULL unless delivered */
	pd_ms delivered_at;
	struct pd_attempt tried[PD_MAX_URLS];  /* the HTTP attempts of this round */
	size_t ntried;
	int wants_report;          /* the message ends and has a callback */
	enum store_result result;  /* out: STORE_OK, or STORE_CONFLICT when the lease was
	                              lost (the attempts are recorded all the same) */
};

/* Builds the callback report of o (one of the items given to store_settle,
 * inside its transaction; its history, this round included, readable with
 * store_history) into report; nonzero on failure. */
typedef int (*store_report_fn)(void *ctx, struct pd_settlement *o, struct pd_message *report);

/* Writes n settlements in one transaction: each round's attempts, and,
 * where the lease is still held (a compare-and-set on its token), what the
 * message becomes, with its callback report made by report_fn and stored
 * beside it (bypassing max_pending, so no outcome goes unreported).
 * STORE_OK with each item's result set, or the failure of the whole. */
enum store_result store_settle(struct pd_store *s, struct pd_settlement *items, size_t n,
                               pd_ms now, store_report_fn report_fn, void *ctx);

/* Calls fn with each prepared statement's SQL and each line of its query
 * plan, so a test can check that every statement uses an index. */
typedef void (*store_plan_fn)(void *ctx, const char *sql, const char *plan_line);
int store_query_plans(struct pd_store *s, store_plan_fn fn, void *ctx);

#endif
