/*
 * store.h: the database, as whole operations. Callers never see
 * transactions or SQL; store.c keeps them.
 */
#ifndef POSTDATE_STORE_H
#define POSTDATE_STORE_H

#include "postdate.h"

enum store_result {
	STORE_OK = 0,
	STORE_NOTFOUND,     /* no such message */
	STORE_EXISTS,       /* the idempotency key was used; message holds the original */
	STORE_FULL,         /* max_pending reached */
	STORE_CONFLICT,     /* the message is in a state that forbids the change */
	STORE_BUSY,         /* the database stayed locked past the busy timeout */
	STORE_NOSPACE,      /* the disk is full */
	STORE_UNAVAILABLE,  /* the database could not be opened */
	STORE_ERROR         /* anything else; logged */
};

struct pd_store;

/* Opens (creating and migrating as needed) the configured database. */
int store_open(struct pd_store **out, const struct pd_config *cfg);
void store_close(struct pd_store *s);

/* Assigns m->id and m->created and inserts m in one transaction, into the
 * near-term buffer too when due within the horizon. Returns STORE_OK,
 * STORE_EXISTS (m replaced by the message holding its idempotency key),
 * STORE_FULL, STORE_BUSY, STORE_NOSPACE or STORE_ERROR. */
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

/* Reads one message. STORE_OK, STORE_NOTFOUND, STORE_BUSY or STORE_ERROR. */
enum store_result store_get(struct pd_store *s, const char *id, struct pd_message *m);

typedef int (*store_attempt_fn)(void *ctx, const struct pd_attempt *a);

/* Calls fn for each recorded attempt of id, oldest first. */
enum store_result store_history(struct pd_store *s, const char *id, store_attempt_fn fn, void *ctx);

/* A page of the list: messages in state (or every state if state < 0)
 * ordered by (due, id) after the cursor position (after_due, after_id;
 * after_id NULL for the first page). Calls fn for each, at most limit. */
typedef int (*store_message_fn)(void *ctx, const struct pd_message *m);
enum store_result store_list(struct pd_store *s, int state, pd_ms after_due, const char *after_id,
                             int limit, store_message_fn fn, void *ctx);

/* Message counts per state. */
enum store_result store_counts(struct pd_store *s, long counts[PD_NSTATES]);

/* Cancels a pending message. STORE_OK (also when already cancelled),
 * STORE_NOTFOUND, STORE_CONFLICT (*state says what it is), STORE_BUSY or
 * STORE_ERROR. */
enum store_result store_cancel(struct pd_store *s, const char *id, enum pd_state *state);

/* How many messages are pending and the earliest next attempt among them
 * (0 if none). */
enum store_result store_health(struct pd_store *s, long *pending, pd_ms *earliest);

/* The dispatch side. Its writes (leases and outcomes) may run at
 * synchronous=NORMAL: losing the last of them to a power cut only means a
 * message is delivered again, which at-least-once allows. */
int store_sync_normal(struct pd_store *s);

/* Explicit transactions (BEGIN IMMEDIATE) for the batched calls below,
 * each of which runs inside one. store_commit rolls back when it fails. */
enum store_result store_begin(struct pd_store *s);
enum store_result store_commit(struct pd_store *s);
void store_abort(struct pd_store *s);

/* The earliest next attempt among pending messages without a buffer row,
 * or 0: whether promotion has anything to do. */
enum store_result store_next_unbuffered(struct pd_store *s, pd_ms *next);

/* In its own transaction, gives up to limit pending messages whose next
 * attempt is at or before until a buffer row; *promoted says how many. */
enum store_result store_promote(struct pd_store *s, pd_ms until, int limit, int *promoted);

/* The earliest due time in the buffer, or 0. A leased row is due when its
 * lease ends. */
enum store_result store_next_due(struct pd_store *s, pd_ms *due);

/* Inside a transaction: leases up to limit buffer rows due at now (moving
 * their due time to the lease's end), marks their messages delivering,
 * counts the round each starts (attempts + 1, so a round that never
 * settles still counts) and calls fn with each (payload read; fn owns the
 * message; m->attempts includes the new round; m->state is the state
 * before the claim, PD_DELIVERING when an earlier lease ran out without
 * a settle) and the lease it holds. */
typedef int (*store_claim_fn)(void *ctx, struct pd_message *m, pd_ms lease);
enum store_result store_claim(struct pd_store *s, pd_ms now, int limit, int lease_slack_s,
                              store_claim_fn fn, void *ctx);

/* Inside a transaction: appends one HTTP attempt to id's history. */
enum store_result store_add_attempt(struct pd_store *s, const char *id, const struct pd_attempt *a);

/* The end of a round (or of a lease given back): what the message becomes. */
struct pd_settlement {
	const char *id;
	pd_ms lease;              /* the lease the caller holds */
	enum pd_state state;      /* PD_PENDING (another round), PD_DELIVERED or PD_FAILED */
	int attempts;             /* rounds done */
	pd_ms next_attempt;       /* for PD_PENDING */
	const char *urls;         /* the pool, less any URL that answered 410 */
	const char *delivered_to; /* NULL unless delivered */
	pd_ms delivered_at;
};

/* Inside a transaction: writes o when its lease is still held (STORE_OK),
 * else changes nothing (STORE_CONFLICT); BUSY or ERROR otherwise. */
enum store_result store_settle(struct pd_store *s, const struct pd_settlement *o, pd_ms now);

/* Inside a transaction: inserts a callback report message (assigning its
 * id), bypassing max_pending so that no outcome goes unreported. */
enum store_result store_add_report(struct pd_store *s, struct pd_message *m, pd_ms now);

/* Calls fn with each prepared statement's SQL and each line of its query
 * plan, so a test can check that every statement uses an index. */
typedef void (*store_plan_fn)(void *ctx, const char *sql, const char *plan_line);
int store_query_plans(struct pd_store *s, store_plan_fn fn, void *ctx);

#endif
