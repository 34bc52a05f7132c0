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
	STORE_QUEUE_FULL,   /* the queue holds max_depth pending and delivering messages */
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
 * too when due within the horizon. A message for a queue (m->queue) makes
 * the queue on first use with the configured defaults, and takes the
 * queue's max_attempts when m->max_attempts is 0. Returns STORE_OK,
 * STORE_EXISTS (m replaced by the message holding its idempotency key),
 * STORE_CONFLICT (the key was used by a request with other contents:
 * target, payload, content type, callback, limits, queue, priority),
 * STORE_FULL, STORE_QUEUE_FULL, STORE_BUSY, STORE_NOSPACE or STORE_ERROR.
 *
 * A message with a topic (m->topic, urls "") is a publish: one message
 * per subscription of the topic, made all or none, listed in
 * m->deliveries. STORE_NOTFOUND when the topic has no subscriptions;
 * STORE_QUEUE_FULL with m->subscription naming the one whose queue is
 * full; STORE_EXISTS with the first publish's deliveries (and due,
 * created) for a reused idempotency key. */
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

/* Reads one message, its payload included, and, when fn is not NULL,
 * calls fn for each of its attempts, oldest first. STORE_OK, STORE_NOTFOUND, STORE_BUSY or
 * STORE_ERROR. */
enum store_result store_get(struct pd_store *s, const char *id, struct pd_message *m,
                            store_attempt_fn fn, void *ctx);

/* Calls fn for each recorded attempt of id, oldest first. */
enum store_result store_history(struct pd_store *s, const char *id, store_attempt_fn fn,
                                void *ctx);

/* A page of the list: messages in state (or every state if state < 0),
 * of one queue's when queue is not NULL, ordered by (due, id) after the
 * cursor position (after_due, after_id; after_id NULL for the first page).
 * Calls fn for each, at most limit, and fills counts (messages per state,
 * the queue's when queue is given), from the same snapshot. */
enum store_result store_list(struct pd_store *s, int state, const char *queue, pd_ms after_due,
                             const char *after_id, int limit, store_message_fn fn, void *ctx,
                             long counts[PD_NSTATES]);

/* Message counts per state. */
enum store_result store_counts(struct pd_store *s, long counts[PD_NSTATES]);

/* The message counts per state and the earliest time a live message is
 * (or was) due, 0 if none, from one snapshot. */
enum store_result store_health(struct pd_store *s, long counts[PD_NSTATES], pd_ms *earliest);

/* ---- queues: pull delivery ---- */

/* A queue's settings and, as store_queue_get reads them, its figures. */
struct pd_queue {
	char name[PD_MAX_QUEUE_NAME + 1];
	int visibility;           /* seconds a receive leases for unless it says */
	int max_attempts;         /* receives of a message that gives none */
	long max_depth;           /* pending + delivering at most; 0: no limit */
	int paused;               /* receives get nothing */
	long pending;             /* waiting, due or not (ready included) */
	long ready;               /* pending and due now: receivable */
	long delivering;          /* leased, the lease not yet run out */
	long delivered, failed, cancelled, expired;
	pd_ms oldest_ready;       /* when the longest-waiting ready message fell due; 0 */
};

/* A change to a queue's settings: a negative value (or -1 paused) keeps
 * what it has, or the configured default for a new queue. */
struct pd_queue_change {
	const char *name;
	int visibility;
	int max_attempts;
	long max_depth;
	int paused;
};

/* Creates or changes a queue, then reads it into q as store_queue_get. */
enum store_result store_queue_set(struct pd_store *s, const struct pd_queue_change *c,
                                  pd_ms now, struct pd_queue *q);

/* ---- topics ---- */

/* Makes or replaces subscription name of topic (made on first use): its
 * destination and delivery options are dest's urls or queue, callback,
 * max_attempts, timeout, method and headers. *created says which.
 * STORE_OK, STORE_FULL (a new one past the PD_MAX_SUBSCRIPTIONS the topic
 * may hold), STORE_BUSY or STORE_ERROR. */
enum store_result store_subscribe(struct pd_store *s, const char *topic, const char *name,
                                  const struct pd_message *dest, pd_ms now, int *created);

/* Removes a subscription: later publishes make no copy for it, copies
 * already made go on. STORE_OK, STORE_NOTFOUND, STORE_BUSY or STORE_ERROR. */
enum store_result store_unsubscribe(struct pd_store *s, const char *topic, const char *name);

/* Calls fn with each subscription (a destination as store_subscribe takes
 * it, its name in sub->subscription, its creation in sub->created) of
 * topic, or of every topic by name when topic is NULL; a topic without
 * subscriptions once with sub NULL. STORE_NOTFOUND for an unknown topic. */
typedef int (*store_subscription_fn)(void *ctx, const char *topic, const struct pd_message *sub);
enum store_result store_topics(struct pd_store *s, const char *topic, store_subscription_fn fn,
                               void *ctx);

/* Reads queue name, its figures as of now. STORE_NOTFOUND if unknown. */
enum store_result store_queue_get(struct pd_store *s, const char *name, pd_ms now,
                                  struct pd_queue *q);

/* A queue as GET /api/queues (and `postdate queues --json`) shows it, its
 * figures as of now (render.c). */
struct json_object *render_queue(const struct pd_queue *q, pd_ms now);

/* Calls fn with every queue, by name, from one snapshot. */
typedef int (*store_queue_fn)(void *ctx, const struct pd_queue *q);
enum store_result store_queue_list(struct pd_store *s, pd_ms now, store_queue_fn fn, void *ctx);

/* What a receive hands out: the message (payload read; fn owns it) and the
 * receipt that proves the lease (PD_RECEIPT_LEN hex digits). */
typedef int (*store_received_fn)(void *ctx, struct pd_message *m, const char *receipt,
                                 pd_ms visible_until);

/* Leases up to max receivable messages of queue (due at now, lowest
 * priority first, then due time, then creation order) for visibility_s
 * seconds (0: the queue's), each with a new receipt, counting the receive
 * as an attempt; all in one transaction. A message it meets whose ttl ran
 * out, or whose last allowed receive ran out unacknowledged, is ended
 * (expired, failed) there and then, with its callback report from
 * report_fn, instead of being handed out. After the commit calls fn for
 * each message. STORE_OK (none, when paused or empty), STORE_NOTFOUND (no
 * such queue), STORE_BUSY or STORE_ERROR. */
struct pd_settlement;
typedef int (*store_report_fn)(void *ctx, struct pd_settlement *o, struct pd_message *report);
enum store_result store_receive(struct pd_store *s, const char *queue, int max,
                                int visibility_s, pd_ms now, store_report_fn report_fn,
                                void *report_ctx, store_received_fn fn, void *ctx);

/* When a message of queue is next receivable (now or earlier when one is
 * ready; 0 when none waits, or the queue is paused or unknown): a cheap
 * read, for a long-polling receive to claim only when there is work. */
enum store_result store_queue_ready_at(struct pd_store *s, const char *queue, pd_ms *at);

/* A number that changes whenever any connection commits a change to the
 * database (PRAGMA data_version): polled cheaply by waiting receives. */
enum store_result store_data_version(struct pd_store *s, long long *version);

/* How often a watcher polls store_data_version while receives wait, in
 * ms: the wake-up latency a publish sees against the cost of a read (on
 * SQLite a read of shared memory, on PostgreSQL a round trip). */
int store_watch_interval_ms(const struct pd_store *s);

/* One acknowledgement (or release or extension) and its outcome. */
struct store_ack {
	const char *id;
	const char *receipt;
	enum store_result result;  /* STORE_OK, STORE_NOTFOUND, or STORE_CONFLICT: the
	                              receipt is stale (state says what the message is) */
	enum pd_state state;       /* what the message is now */
};

/* Ends each message delivered whose receipt still holds its lease (even a
 * lease run out, as long as nobody received it since), with its callback
 * report; all in one transaction. A message whose ttl ran out meanwhile
 * ends expired instead (STORE_CONFLICT, state PD_EXPIRED). STORE_OK with
 * each item's result set, or the failure of the whole. */
enum store_result store_ack(struct pd_store *s, struct store_ack *items, size_t n, pd_ms now,
                            store_report_fn report_fn, void *ctx);

/* One piece of queue work of a batch: an ack of items (n of them), or,
 * when items is NULL, a receive (as store_receive's arguments). */
struct store_queue_op {
	struct store_ack *items;
	size_t n;
	const char *queue;
	int max;
	int visibility_s;
	store_received_fn fn;      /* called after the commit */
	void *ctx;
	enum store_result result;  /* as store_ack's or store_receive's */
};

/* Runs n pieces of queue work in one transaction, so one commit (one sync
 * to disk) serves them all: group commit for a queue program's requests.
 * An unknown queue refuses its own receive; a failure of the transaction
 * is every op's result. */
void store_queue_batch(struct pd_store *s, struct store_queue_op *ops, size_t n, pd_ms now,
                       store_report_fn report_fn, void *report_ctx);

/* Gives a received message back: receivable again at now + delay_ms
 * (*due), or failed when that was its last allowed receive (item->state
 * says which). */
enum store_result store_release(struct pd_store *s, struct store_ack *item, pd_ms delay_ms,
                                pd_ms now, pd_ms *due, store_report_fn report_fn, void *ctx);

/* Keeps a received message leased until now + visibility_ms (*until). */
enum store_result store_extend(struct pd_store *s, struct store_ack *item, pd_ms visibility_ms,
                               pd_ms now, pd_ms *until);

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
	enum pd_state state;       /* PD_PENDING (another round), PD_DELIVERED, PD_FAILED
	                              or PD_EXPIRED */
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

/* A store_report_fn builds the callback report of o (one of the items
 * given to store_settle, or a message a store operation ends, inside its
 * transaction; its history, this round included, readable with
 * store_history and the message with store_get) into report; nonzero on
 * failure. report_of_message (report.c) builds it from what the store
 * holds. */

/* Writes n settlements in one transaction: each round's attempts, and,
 * where the lease is still held (a compare-and-set on its token), what the
 * message becomes, with its callback report made by report_fn and stored
 * beside it (bypassing max_pending, so no outcome goes unreported).
 * STORE_OK with each item's result set, or the failure of the whole. */
enum store_result store_settle(struct pd_store *s, struct pd_settlement *items, size_t n,
                               pd_ms now, store_report_fn report_fn, void *ctx);

/* Ends, with their callback reports, up to limit live messages that end
 * by themselves: a ttl run out (unless a dispatcher holds a lease on it
 * right now: that round decides), or a queue message whose last allowed
 * receive ran out unacknowledged. *ended says how many. */
enum store_result store_end_overdue(struct pd_store *s, pd_ms now, int limit,
                                    store_report_fn report_fn, void *ctx, int *ended);

/* report.c: the callback report of a message that a store operation ends
 * (an ack, a last release, a ttl run out), made from what the store holds:
 * the message, its history, no target's answer. A store_report_fn whose
 * ctx is a struct pd_reporter. */
struct pd_reporter {
	struct pd_store *store;
	const struct pd_config *cfg;
};
int report_of_message(void *reporter, struct pd_settlement *o, struct pd_message *report);

/* The report message (to reported->callback, due at now) carrying the
 * report of reported as render_report makes it; history passes to it. */
struct json_object;
struct pd_response;
int report_message(const struct pd_config *cfg, const struct pd_message *reported,
                   const char *url, const struct pd_response *r, struct json_object *history,
                   pd_ms now, struct pd_message *report);

/* ---- recurring definitions ---- */

/* How many of its latest messages a definition is read with. */
#define PD_RECURRING_LATEST 10

/* A recurring definition: a cron expression read on the wall clock of tz,
 * and the template of the messages it makes (the message fields of
 * schedule: urls or queue, payload, content_type, callback, max_attempts,
 * timeout, priority; ttl counted from each occurrence). */
struct pd_recurring {
	char id[PD_ID_LEN + 1];
	char *name;               /* NULL if none */
	char *cron;               /* as written */
	char *tz;                 /* an IANA zone ("UTC" by default) */
	struct pd_message message;  /* the template; its due, id and state unused */
	pd_ms ttl;                /* ms after each occurrence; 0: never expires */
	int paused;
	pd_ms created;
	pd_ms next;               /* the next occurrence; 0 when paused or none left */
	pd_ms last;               /* the latest occurrence made; 0 before the first */
	char latest[PD_RECURRING_LATEST][PD_ID_LEN + 1];  /* its latest messages, newest first */
	int nlatest;
};

void recurring_free(struct pd_recurring *r);

/* The first occurrence of cron (text) in zone tz strictly after `after`:
 * 0 with *out, or -1 with *why (a bad expression or zone, or none within
 * ten years). */
int recurring_next_after(const char *cron, const char *tz, pd_ms after, pd_ms *out,
                         const char **why);

/* Stores a new definition (r->cron and r->tz already checked): assigns
 * r->id and r->created, and its first occurrence after now (r->next).
 * STORE_OK, STORE_CONFLICT (r->name is taken), STORE_BUSY, STORE_NOSPACE
 * or STORE_ERROR. */
enum store_result store_recurring_add(struct pd_store *s, struct pd_recurring *r, pd_ms now);

/* Reads definition id (not deleted) into r. STORE_NOTFOUND if none. */
enum store_result store_recurring_get(struct pd_store *s, const char *id,
                                      struct pd_recurring *r);

/* Calls fn with each definition, oldest first, at most limit, from one
 * snapshot; fn does not own r. */
typedef int (*store_recurring_fn)(void *ctx, const struct pd_recurring *r);
enum store_result store_recurring_list(struct pd_store *s, int limit, store_recurring_fn fn,
                                       void *ctx);

/* Pauses, resumes or deletes definition id, each in one transaction.
 * Pause and delete cancel the occurrence that waits (made and never
 * tried); messages of earlier occurrences are kept. Resume makes the next
 * occurrence the first after now (nothing missed while paused is made).
 * Pausing a paused one or resuming a running one changes nothing. Then
 * reads it into r (pause, resume). STORE_OK, STORE_NOTFOUND, STORE_BUSY
 * or STORE_ERROR. */
enum store_result store_recurring_pause(struct pd_store *s, const char *id, pd_ms now,
                                        struct pd_recurring *r);
enum store_result store_recurring_resume(struct pd_store *s, const char *id, pd_ms now,
                                         struct pd_recurring *r);
enum store_result store_recurring_delete(struct pd_store *s, const char *id, pd_ms now);

/* When the earliest definition's next occurrence is to be made (0: none):
 * a cheap read, for the dispatcher's promotion check. */
enum store_result store_recurring_make_at(struct pd_store *s, pd_ms *at);

/* The dispatcher's side: makes the next occurrence of up to limit
 * definitions whose time to make it has come (the one before it has
 * fallen due, and it lies within the buffer horizon), each as an ordinary
 * message with `recurring` set, in one transaction with advancing each
 * definition. An occurrence that is already past (no dispatcher ran for a
 * while) is the latest one missed, made once, late; an earlier occurrence
 * still waiting untried is then cancelled, so that only the latest missed
 * one is delivered. The unique (recurring, due) index makes an occurrence
 * at most once whoever else makes it. An occurrence that the store or its
 * queue has no room for (max_pending, max_depth) is skipped and logged.
 * *made says how many messages were made, *late how many of them were
 * past already (a gap). */
enum store_result store_recurring_make(struct pd_store *s, pd_ms now, int limit, int *made,
                                       int *late);

/* Calls fn with each prepared statement's SQL and each line of its query
 * plan, so a test can check that every statement uses an index. */
typedef void (*store_plan_fn)(void *ctx, const char *sql, const char *plan_line);
int store_query_plans(struct pd_store *s, store_plan_fn fn, void *ctx);

/* ---- metrics: what GET /api/metrics shows ---- */

/* How an HTTP attempt was answered, as the totals count it. */
enum store_attempt_outcome {
	STORE_ATTEMPT_NO_ANSWER,  /* no HTTP answer: timeout, refused, TLS, ... */
	STORE_ATTEMPT_OTHER,      /* a status outside 200-599 */
	STORE_ATTEMPT_2XX,
	STORE_ATTEMPT_3XX,
	STORE_ATTEMPT_4XX,
	STORE_ATTEMPT_5XX,
	STORE_ATTEMPT_OUTCOMES
};

/* The outcome of an attempt answered with status (0: none). */
enum store_attempt_outcome store_attempt_outcome_of(int status);

/* The figures of a scrape. The totals count since the database was made
 * (the store adds to them inside the transactions that make messages,
 * record attempts and end messages), so they only go up, whichever process
 * reads them. */
struct store_metrics {
	long counts[PD_NSTATES];    /* messages per state now, as store_counts */
	pd_ms earliest;             /* as store_health: the earliest time a pushed
	                               message not leased right now is (or was) due; 0 */
	long long made;             /* messages made: scheduled, and callback reports */
	long long ended[PD_NSTATES];/* messages ended, by the state they ended in
	                               (delivered, failed, cancelled, expired) */
	long long receives;         /* receives of queue messages */
	long long attempts[STORE_ATTEMPT_OUTCOMES];  /* HTTP attempts by outcome */
};

/* Reads m and calls fn (when not NULL) with every queue as store_queue_list
 * does, all from one snapshot: every read an index lookup or one of the
 * small tables of counts. STORE_OK, STORE_BUSY or STORE_ERROR. */
enum store_result store_metrics(struct pd_store *s, pd_ms now, struct store_metrics *m,
                                store_queue_fn fn, void *ctx);
/* ---- retry, retention, backup and check ---- */

/* Puts a failed or expired message back to pending, due at now, with its
 * rounds (receives, for a queue's) and dropped URLs reset, its outcome
 * cleared and a ttl of the same length counted from now; a queue's message
 * becomes receivable again. One compare-and-set on its state, never "read,
 * then write". Its history is kept. STORE_OK (*state PD_PENDING),
 * STORE_NOTFOUND, STORE_CONFLICT (*state says what it is), STORE_BUSY,
 * STORE_NOSPACE or STORE_ERROR. */
enum store_result store_retry(struct pd_store *s, const char *id, pd_ms now,
                              enum pd_state *state);

/* As store_retry for up to limit (at most 10000) messages in state
 * (PD_FAILED or PD_EXPIRED, else STORE_CONFLICT) that were due before
 * due_before, earliest due first, in one transaction; *retried says how
 * many. With due_before at most now, batch after batch never meets a
 * message that an earlier batch retried. */
enum store_result store_retry_state(struct pd_store *s, enum pd_state state, pd_ms due_before,
                                    pd_ms now, int limit, int *retried);

/* Deletes up to limit (at most 10000) messages that ended before `before`,
 * oldest first, with their payloads and history, in one transaction (the
 * counts follow); *purged says how many. Their ids are then unknown, and
 * their idempotency keys free. */
enum store_result store_purge(struct pd_store *s, pd_ms before, int limit, int *purged);

/* Copies the whole database into the new file path with SQLite's online
 * backup API, from one read snapshot: a consistent copy while the programs
 * keep writing (WAL mode lets them). STORE_OK, STORE_BUSY, STORE_NOSPACE or
 * STORE_ERROR (logged). */
enum store_result store_backup(struct pd_store *s, const char *path);

/* Opens the database file at path as it is (never created, never
 * migrated) and reads its schema version (PRAGMA user_version) into
 * *version; when fn is not NULL, also runs SQLite's integrity check and
 * compares the counts the store keeps (per state, per queue and state)
 * with the rows they count, all in one snapshot, calling fn with each
 * problem found, counted in *problems (0: sound).
 * STORE_OK, STORE_UNAVAILABLE (it cannot be opened or is no database), or
 * STORE_ERROR. */
/* Whether database (the setting's value) is a PostgreSQL URL
 * (postgresql://, postgres://) rather than an SQLite file path: a server's
 * database has no file to look for, copy or create. */
int store_database_is_url(const char *database);

/* The database setting as it may be shown and logged: a URL's password
 * (user:password@ and a password= parameter) replaced by "***", as
 * url_redact does for targets; a path as it is. buf: len bytes, returned
 * unless database is returned itself. */
const char *store_database_shown(const char *database, char *buf, size_t len);
#define DATABASE_SHOWN(db) store_database_shown((db), (char[1024]){ 0 }, 1024)

typedef void (*store_problem_fn)(void *ctx, const char *problem);
enum store_result store_inspect(const char *path, int *version, store_problem_fn fn,
                                void *ctx, long *problems);

#endif
