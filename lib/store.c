/*
 * store.c: everything that touches SQLite. The rest of postdate sees only
 * the functions in store.h, so another backend (PostgreSQL) is an
 * added file, not a rewrite.
 *
 * Every statement is prepared once when the store opens and bound per
 * call. Writes run in BEGIN IMMEDIATE transactions: the write lock is
 * taken up front, so a transaction never fails half-way for a lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "postdate.h"
#include "store.h"
#include "../sql/schema.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_BUSY_TIMEOUT_MS 5000

/* The message columns every reader selects, in the order row_to_message reads. */
#define MESSAGE_COLUMNS \
	"id, state, due, created, next_attempt, delivered_at, urls, length(payload), " \
	"content_type, callback, idempotency_key, delivered_to, report_of, " \
	"max_attempts, timeout, attempts"

/* The end of a lease on a buffer row (inside ST_CLAIM). */
#define LEASE_END \
	"?1 + 1000 * (?3 + coalesce((SELECT timeout * " \
	"(1 + length(urls) - length(replace(urls, char(10), ''))) " \
	"FROM messages WHERE id = buffer.message_id), 0))"

enum statement {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_FIND_BY_KEY,
	ST_PENDING_COUNT,
	ST_INSERT_MESSAGE,
	ST_INSERT_BUFFER,
	ST_GET,
	ST_HISTORY,
	ST_LIST_STATE,
	ST_LIST_ALL,
	ST_COUNTS,
	ST_STATE_OF,
	ST_CANCEL,
	ST_UNBUFFER,
	ST_EARLIEST_BUFFERED,
	ST_EARLIEST_UNBUFFERED,
	ST_PROMOTE,
	ST_CLAIM,
	ST_CLAIM_MESSAGE,
	ST_MARK_DELIVERING,
	ST_LEASE_OF,
	ST_ADD_ATTEMPT,
	ST_SETTLE,
	ST_REBUFFER,
	ST_COUNT
};

static const char *const statement_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* One per message of a batch insert, so a message that fails leaves
	 * nothing behind and the others still commit. */
	[ST_SAVEPOINT] = "SAVEPOINT message",
	[ST_RELEASE] = "RELEASE message",
	[ST_ROLLBACK_TO] = "ROLLBACK TO message",
	[ST_FIND_BY_KEY] = "SELECT id FROM messages WHERE idempotency_key = ?1",
	[ST_PENDING_COUNT] = "SELECT n FROM state_counts WHERE state = 'pending'",
	[ST_INSERT_MESSAGE] =
	    "INSERT INTO messages (id, state, due, created, next_attempt, buffered, urls, "
	    "payload, content_type, callback, max_attempts, timeout, idempotency_key, report_of) "
	    "VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[ST_INSERT_BUFFER] = "INSERT INTO buffer (message_id, due) VALUES (?1, ?2)",
	[ST_GET] = "SELECT " MESSAGE_COLUMNS " FROM messages WHERE id = ?1",
	[ST_HISTORY] =
	    "SELECT at, url, status, error, ms FROM attempts WHERE message_id = ?1 ORDER BY seq",
	[ST_LIST_STATE] =
	    "SELECT " MESSAGE_COLUMNS " FROM messages "
	    "WHERE state = ?1 AND (due, id) > (?2, ?3) ORDER BY due, id LIMIT ?4",
	[ST_LIST_ALL] =
	    "SELECT " MESSAGE_COLUMNS " FROM messages "
	    "WHERE (due, id) > (?2, ?3) ORDER BY due, id LIMIT ?4",
	[ST_COUNTS] = "SELECT state, n FROM state_counts",
	[ST_STATE_OF] = "SELECT state FROM messages WHERE id = ?1",
	[ST_CANCEL] =
	    "UPDATE messages SET state = 'cancelled', next_attempt = NULL, buffered = 0 "
	    "WHERE id = ?1 AND state = 'pending'",
	[ST_UNBUFFER] = "DELETE FROM buffer WHERE message_id = ?1",
	[ST_EARLIEST_BUFFERED] = "SELECT min(due) FROM buffer",
	/* Without statistics the planner would pick messages_by_state_due and
	 * walk every pending message; the partial index answers at once. */
	[ST_EARLIEST_UNBUFFERED] =
	    "SELECT min(next_attempt) FROM messages INDEXED BY messages_to_promote "
	    "WHERE state = 'pending' AND buffered = 0",
	/* Dispatch. Promotion marks the earliest unbuffered messages and
	 * returns them, so the caller can give each its buffer row. */
	[ST_PROMOTE] =
	    "UPDATE messages SET buffered = 1 WHERE id IN ("
	    "SELECT id FROM messages INDEXED BY messages_to_promote "
	    "WHERE state = 'pending' AND buffered = 0 AND next_attempt <= ?1 "
	    "ORDER BY next_attempt LIMIT ?2) RETURNING id, next_attempt",
	/* A lease lasts as long as a whole round may take: the timeout for
	 * every URL of the pool, plus ?3 seconds for writing the result back.
	 * The claim moves the row's due time to the lease's end, so the due
	 * index alone finds what is claimable, expired leases (a dispatcher
	 * that died) included, without walking the rows leased right now. */
	[ST_CLAIM] =
	    "UPDATE buffer SET lease_until = " LEASE_END ", due = " LEASE_END " "
	    "WHERE message_id IN (SELECT message_id FROM buffer "
	    "WHERE due <= ?1 ORDER BY due LIMIT ?2) "
	    "RETURNING message_id, lease_until",
	/* A read and an update rather than UPDATE ... RETURNING, and OR
	 * rather than IN (...): both would build a temporary table for each
	 * message, which profiling showed to be a fifth of a claim's cost. */
	[ST_CLAIM_MESSAGE] =
	    "SELECT " MESSAGE_COLUMNS ", payload FROM messages "
	    "WHERE id = ?1 AND (state = 'pending' OR state = 'delivering')",
	/* A round counts when it is claimed, not when it is written back: a
	 * message whose delivery kills the dispatcher still uses up its
	 * rounds. (ST_CLAIM_MESSAGE has just read it pending or delivering.) */
	[ST_MARK_DELIVERING] =
	    "UPDATE messages SET state = 'delivering', attempts = attempts + 1 WHERE id = ?1",
	[ST_LEASE_OF] = "SELECT lease_until FROM buffer WHERE message_id = ?1",
	[ST_ADD_ATTEMPT] =
	    "INSERT INTO attempts (message_id, seq, at, url, status, error, ms) VALUES (?1, "
	    "(SELECT coalesce(max(seq), 0) + 1 FROM attempts WHERE message_id = ?1), "
	    "?2, ?3, ?4, ?5, ?6)",
	[ST_SETTLE] =
	    "UPDATE messages SET state = ?2, attempts = ?3, next_attempt = ?4, buffered = ?5, "
	    "urls = ?6, delivered_to = ?7, delivered_at = ?8 WHERE id = ?1",
	[ST_REBUFFER] = "UPDATE buffer SET due = ?2, lease_until = 0 WHERE message_id = ?1",
};

struct pd_store {
	sqlite3 *db;
	const struct pd_config *cfg;
	sqlite3_stmt *st[ST_COUNT];
	pd_ms busy_since;         /* when the current wait for a lock began */
};

/* Maps an SQLite result code to a store result, logging the unexpected. */
static enum store_result
store_fail(struct pd_store *s, int rc, const char *what)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		log_warn("store: %s: database busy", what);
		return STORE_BUSY;
	case SQLITE_FULL:
		log_error("store: %s: disk full", what);
		return STORE_NOSPACE;
	default:
		log_error("store: %s: %s", what, sqlite3_errmsg(s->db));
		return STORE_ERROR;
	}
}

/*
 * Waits for another connection's lock, up to STORE_BUSY_TIMEOUT_MS.
 * SQLite's own busy timeout sleeps 1, 2, 5, 10 ms and longer between tries,
 * while the write lock here is held for well under a millisecond (one
 * group commit): several schedule processes and dispatchers then spend
 * their time asleep beside a free lock. Short sleeps, growing to 1 ms,
 * keep them in step at the cost of a few more tries.
 */
static int
on_busy(void *ctx, int tries)
{
	struct pd_store *s = ctx;
	pd_ms now = clock_monotonic();   /* a wait: never on the wall clock */
	struct timespec nap = { 0, 0 };

	if (tries == 0)
		s->busy_since = now;
	if (now - s->busy_since >= STORE_BUSY_TIMEOUT_MS)
		return 0;
	nap.tv_nsec = (tries < 10 ? tries + 1 : 10) * 100000L;
	nanosleep(&nap, NULL);
	return 1;
}

/* Steps a statement that returns no rows we need, and resets it. */
static int
store_exec(struct pd_store *s, enum statement id)
{
	int rc = sqlite3_step(s->st[id]);

	sqlite3_reset(s->st[id]);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void
store_rollback(struct pd_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		store_exec(s, ST_ROLLBACK);
}

static int
bind_text_or_null(sqlite3_stmt *st, int i, const char *text)
{
	return text != NULL ? sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC)
	                    : sqlite3_bind_null(st, i);
}

static char *
column_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? strdup((const char *)t) : NULL;
}

/* Fills m from a row of MESSAGE_COLUMNS. The payload itself is not read:
 * status needs only its length. */
static int
row_to_message(sqlite3_stmt *st, struct pd_message *m)
{
	const unsigned char *id = sqlite3_column_text(st, 0);
	int state;

	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id != NULL ? (const char *)id : "");
	state = state_parse((const char *)sqlite3_column_text(st, 1));
	m->state = state >= 0 ? (enum pd_state)state : PD_PENDING;
	m->due = sqlite3_column_int64(st, 2);
	m->created = sqlite3_column_int64(st, 3);
	m->next_attempt = sqlite3_column_int64(st, 4);
	m->delivered_at = sqlite3_column_int64(st, 5);
	m->urls = column_strdup(st, 6);
	m->payload_len = (size_t)sqlite3_column_int64(st, 7);
	m->content_type = column_strdup(st, 8);
	m->callback = column_strdup(st, 9);
	m->idempotency_key = column_strdup(st, 10);
	m->delivered_to = column_strdup(st, 11);
	m->report_of = column_strdup(st, 12);
	m->max_attempts = sqlite3_column_int(st, 13);
	m->timeout = sqlite3_column_int(st, 14);
	m->attempts = sqlite3_column_int(st, 15);
	if (m->urls == NULL || m->content_type == NULL) {
		message_free(m);
		return -1;
	}
	return 0;
}

/* Creates the schema in an empty database, or checks the version of an
 * existing one. Several programs may open a new database at once: the
 * IMMEDIATE transaction makes exactly one of them create it. */
static int
store_migrate(struct pd_store *s)
{
	sqlite3_stmt *st = NULL;
	char *errmsg = NULL;
	int version, rc;

	rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (version == 0) {
		rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, &errmsg);
		if (rc != SQLITE_OK) {
			log_error("store: creating the schema: %s", errmsg);
			sqlite3_free(errmsg);
			goto fail;
		}
		log_info("store: created %s (schema version %d)", s->cfg->database,
		         STORE_SCHEMA_VERSION);
	} else if (version != STORE_SCHEMA_VERSION) {
		log_error("store: %s has schema version %d; this program knows version %d",
		          s->cfg->database, version, STORE_SCHEMA_VERSION);
		goto fail;
	}
	rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	return 0;
fail:
	if (rc != SQLITE_OK)
		log_error("store: opening %s: %s", s->cfg->database, sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int
store_open(struct pd_store **out, const struct pd_config *cfg)
{
	struct pd_store *s;
	char pragmas[128];
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -1;
	s->cfg = cfg;
	rc = sqlite3_open_v2(cfg->database, &s->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_error("store: opening %s: %s", cfg->database,
		          s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_handler(s->db, on_busy, s);
	snprintf(pragmas, sizeof(pragmas),
	    "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;",
	    cfg->synchronous_full ? "FULL" : "NORMAL");
	rc = sqlite3_exec(s->db, pragmas, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		log_error("store: opening %s: %s", cfg->database, sqlite3_errmsg(s->db));
		goto fail;
	}
	if (store_migrate(s) != 0)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &s->st[i], NULL);
		if (rc != SQLITE_OK) {
			log_error("store: preparing \"%s\": %s", statement_sql[i],
			          sqlite3_errmsg(s->db));
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	store_close(s);
	return -1;
}

void
store_close(struct pd_store *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s);
}

/* Reads the message id into m; STORE_OK or STORE_NOTFOUND, or an error. */
static enum store_result
store_read(struct pd_store *s, const char *id, struct pd_message *m)
{
	sqlite3_stmt *st = s->st[ST_GET];
	enum store_result res;
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		res = row_to_message(st, m) == 0 ? STORE_OK : STORE_ERROR;
	else if (rc == SQLITE_DONE)
		res = STORE_NOTFOUND;
	else
		res = store_fail(s, rc, "reading a message");
	sqlite3_reset(st);
	return res;
}

/* The id of the message holding key, into id; 1 if found, 0 if not, -1 on error. */
static int
store_find_key(struct pd_store *s, const char *key, char id[PD_ID_LEN + 1], int *rc)
{
	sqlite3_stmt *st = s->st[ST_FIND_BY_KEY];
	int found = 0;

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	*rc = sqlite3_step(st);
	if (*rc == SQLITE_ROW) {
		snprintf(id, PD_ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
		found = 1;
		*rc = SQLITE_OK;
	} else if (*rc == SQLITE_DONE)
		*rc = SQLITE_OK;
	else
		found = -1;
	sqlite3_reset(st);
	return found;
}

static int
store_pending_count(struct pd_store *s, long *n)
{
	sqlite3_stmt *st = s->st[ST_PENDING_COUNT];
	int rc = sqlite3_step(st);

	*n = rc == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Assigns m->id and m->created and inserts m, with its buffer row when due
 * within the horizon, inside the caller's transaction. */
static enum store_result
store_insert_row(struct pd_store *s, struct pd_message *m, pd_ms now)
{
	sqlite3_stmt *st = s->st[ST_INSERT_MESSAGE];
	int buffered, rc;

	if (id_generate(m->id) != 0) {
		log_error("store: no randomness for an id");
		return STORE_ERROR;
	}
	m->created = now;
	buffered = m->next_attempt <= now + (pd_ms)s->cfg->buffer_horizon * PD_MS_PER_S;
	sqlite3_bind_text(st, 1, m->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, m->due);
	sqlite3_bind_int64(st, 3, m->created);
	sqlite3_bind_int64(st, 4, m->next_attempt);
	sqlite3_bind_int(st, 5, buffered);
	sqlite3_bind_text(st, 6, m->urls, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(st, 7, m->payload, m->payload_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, m->content_type, -1, SQLITE_STATIC);
	bind_text_or_null(st, 9, m->callback);
	sqlite3_bind_int(st, 10, m->max_attempts);
	sqlite3_bind_int(st, 11, m->timeout);
	bind_text_or_null(st, 12, m->idempotency_key);
	bind_text_or_null(st, 13, m->report_of);
	rc = store_exec(s, ST_INSERT_MESSAGE);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "inserting a message");
	if (buffered) {
		sqlite3_bind_text(s->st[ST_INSERT_BUFFER], 1, m->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s->st[ST_INSERT_BUFFER], 2, m->next_attempt);
		rc = store_exec(s, ST_INSERT_BUFFER);
		if (rc != SQLITE_OK)
			return store_fail(s, rc, "buffering a message");
	}
	return STORE_OK;
}

/* One message of a batch, inside the batch's transaction: its idempotency
 * key, the max_pending check (the count includes the batch's earlier
 * messages), then the rows. */
static enum store_result
store_insert_one(struct pd_store *s, struct pd_message *m, pd_ms now)
{
	char existing[PD_ID_LEN + 1];
	long pending;
	int rc;

	if (m->idempotency_key != NULL) {
		int found = store_find_key(s, m->idempotency_key, existing, &rc);

		if (found < 0)
			return store_fail(s, rc, "looking up an idempotency key");
		if (found) {
			struct pd_message original;
			enum store_result res = store_read(s, existing, &original);

			if (res != STORE_OK)
				return res;
			message_free(m);
			*m = original;
			return STORE_EXISTS;
		}
	}
	rc = store_pending_count(s, &pending);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "counting pending messages");
	if (pending >= s->cfg->max_pending)
		return STORE_FULL;
	return store_insert_row(s, m, now);
}

/* Whether a result means the message is (or already was) in the store. */
static int
stored(enum store_result res)
{
	return res == STORE_OK || res == STORE_EXISTS;
}

void
store_insert_batch(struct pd_store *s, struct store_insert *items, size_t n)
{
	enum store_result fail;
	size_t i;
	int rc;

	rc = store_exec(s, ST_BEGIN);
	if (rc != SQLITE_OK) {
		fail = store_fail(s, rc, "beginning a schedule");
		i = 0;
		goto failed;
	}
	for (i = 0; i < n; i++) {
		rc = store_exec(s, ST_SAVEPOINT);
		items[i].result = rc == SQLITE_OK ?
		    store_insert_one(s, items[i].message, items[i].now) :
		    store_fail(s, rc, "beginning a schedule");
		if (sqlite3_get_autocommit(s->db)) {
			/* SQLite gave up the whole transaction (disk full, I/O):
			 * what the batch wrote so far is gone too. */
			fail = items[i].result;
			goto failed;
		}
		if (!stored(items[i].result))
			store_exec(s, ST_ROLLBACK_TO);
		store_exec(s, ST_RELEASE);
	}
	/* The answers are sent only after this commit: an acknowledged message
	 * is on disk. */
	rc = store_exec(s, ST_COMMIT);
	if (rc == SQLITE_OK)
		return;
	fail = store_fail(s, rc, "committing a schedule");
	i = n;
failed:
	store_rollback(s);
	for (size_t j = 0; j < n; j++)
		if (j >= i || stored(items[j].result))
			items[j].result = fail;
}

enum store_result
store_insert(struct pd_store *s, struct pd_message *m, pd_ms now)
{
	struct store_insert item = { .message = m, .now = now };

	store_insert_batch(s, &item, 1);
	return item.result;
}

enum store_result
store_get(struct pd_store *s, const char *id, struct pd_message *m)
{
	return store_read(s, id, m);
}

enum store_result
store_history(struct pd_store *s, const char *id, store_attempt_fn fn, void *ctx)
{
	sqlite3_stmt *st = s->st[ST_HISTORY];
	enum store_result res = STORE_OK;
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct pd_attempt a = {
			.at = sqlite3_column_int64(st, 0),
			.url = (const char *)sqlite3_column_text(st, 1),
			.status = sqlite3_column_int(st, 2),
			.error = (const char *)sqlite3_column_text(st, 3),
			.ms = sqlite3_column_int(st, 4),
		};

		if (fn(ctx, &a) != 0)
			break;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		res = store_fail(s, rc, "reading history");
	sqlite3_reset(st);
	return res;
}

enum store_result
store_list(struct pd_store *s, int state, pd_ms after_due, const char *after_id,
           int limit, store_message_fn fn, void *ctx)
{
	sqlite3_stmt *st = s->st[state >= 0 ? ST_LIST_STATE : ST_LIST_ALL];
	enum store_result res = STORE_OK;
	int rc;

	if (state >= 0)
		sqlite3_bind_text(st, 1, state_name((enum pd_state)state), -1, SQLITE_STATIC);
	/* The first page starts before every (due, id): ids are never empty. */
	sqlite3_bind_int64(st, 2, after_id != NULL ? after_due : INT64_MIN);
	sqlite3_bind_text(st, 3, after_id != NULL ? after_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct pd_message m;
		int stop;

		if (row_to_message(st, &m) != 0) {
			res = STORE_ERROR;
			break;
		}
		stop = fn(ctx, &m);
		message_free(&m);
		if (stop)
			break;
	}
	if (res == STORE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		res = store_fail(s, rc, "listing messages");
	sqlite3_reset(st);
	return res;
}

enum store_result
store_counts(struct pd_store *s, long counts[PD_NSTATES])
{
	sqlite3_stmt *st = s->st[ST_COUNTS];
	enum store_result res = STORE_OK;
	int rc;

	memset(counts, 0, sizeof(long) * PD_NSTATES);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = state_parse((const char *)sqlite3_column_text(st, 0));

		if (state >= 0)
			counts[state] = (long)sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE)
		res = store_fail(s, rc, "counting messages");
	sqlite3_reset(st);
	return res;
}

enum store_result
store_cancel(struct pd_store *s, const char *id, enum pd_state *state)
{
	sqlite3_stmt *st = s->st[ST_STATE_OF];
	enum store_result res;
	int rc, current;

	rc = store_exec(s, ST_BEGIN);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "beginning a cancel");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(st);
		res = STORE_NOTFOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		res = store_fail(s, rc, "reading a state");
		goto out;
	}
	current = state_parse((const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	*state = current >= 0 ? (enum pd_state)current : PD_PENDING;
	if (current == PD_CANCELLED) {
		res = STORE_OK;
		goto out;
	}
	if (current != PD_PENDING) {
		res = STORE_CONFLICT;
		goto out;
	}
	/* Dropping the buffer row in the same transaction is what keeps a
	 * cancelled message from ever being claimed by a dispatcher. */
	sqlite3_bind_text(s->st[ST_CANCEL], 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->st[ST_UNBUFFER], 1, id, -1, SQLITE_STATIC);
	if ((rc = store_exec(s, ST_CANCEL)) != SQLITE_OK ||
	    (rc = store_exec(s, ST_UNBUFFER)) != SQLITE_OK ||
	    (rc = store_exec(s, ST_COMMIT)) != SQLITE_OK) {
		res = store_fail(s, rc, "cancelling");
		goto out;
	}
	*state = PD_CANCELLED;
	res = STORE_OK;
out:
	if (!sqlite3_get_autocommit(s->db) && (res == STORE_NOTFOUND || res == STORE_CONFLICT ||
	    res == STORE_OK)) {
		rc = store_exec(s, ST_COMMIT);
		if (rc != SQLITE_OK)
			res = store_fail(s, rc, "ending a cancel");
	}
	store_rollback(s);
	return res;
}

/* The smallest value a one-row "SELECT min(...)" gives, or 0 when NULL. */
static int
store_min(struct pd_store *s, enum statement id, pd_ms *out)
{
	sqlite3_stmt *st = s->st[id];
	int rc = sqlite3_step(st);

	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

enum store_result
store_health(struct pd_store *s, long *pending, pd_ms *earliest)
{
	pd_ms buffered, unbuffered;
	int rc;

	/* Both minimums are index lookups; a single min over all pending
	 * messages would have to merge the buffer with the far future. */
	if ((rc = store_pending_count(s, pending)) != SQLITE_OK ||
	    (rc = store_min(s, ST_EARLIEST_BUFFERED, &buffered)) != SQLITE_OK ||
	    (rc = store_min(s, ST_EARLIEST_UNBUFFERED, &unbuffered)) != SQLITE_OK)
		return store_fail(s, rc, "reading health");
	if (buffered == 0 || (unbuffered != 0 && unbuffered < buffered))
		*earliest = unbuffered;
	else
		*earliest = buffered;
	return STORE_OK;
}

/* ---- the dispatch side ---- */

int
store_sync_normal(struct pd_store *s)
{
	return sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) == SQLITE_OK
	    ? 0 : -1;
}

enum store_result
store_begin(struct pd_store *s)
{
	int rc = store_exec(s, ST_BEGIN);

	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "beginning a transaction");
}

enum store_result
store_commit(struct pd_store *s)
{
	int rc = store_exec(s, ST_COMMIT);
	enum store_result res;

	if (rc == SQLITE_OK)
		return STORE_OK;
	res = store_fail(s, rc, "committing");
	store_rollback(s);
	return res;
}

void
store_abort(struct pd_store *s)
{
	store_rollback(s);
}

enum store_result
store_next_unbuffered(struct pd_store *s, pd_ms *next)
{
	int rc = store_min(s, ST_EARLIEST_UNBUFFERED, next);

	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "reading the next promotion");
}

enum store_result
store_promote(struct pd_store *s, pd_ms until, int limit, int *promoted)
{
	sqlite3_stmt *st = s->st[ST_PROMOTE], *ins = s->st[ST_INSERT_BUFFER];
	struct { char id[PD_ID_LEN + 1]; pd_ms due; } *rows;
	enum store_result res;
	int n = 0, rc;

	*promoted = 0;
	rows = calloc((size_t)limit, sizeof(*rows));
	if (rows == NULL)
		return STORE_ERROR;
	if ((res = store_begin(s)) != STORE_OK) {
		free(rows);
		return res;
	}
	/* RETURNING rows are all computed at the first step; they are read
	 * out before the buffer rows go in, to keep the two apart. */
	sqlite3_bind_int64(st, 1, until);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
		snprintf(rows[n].id, sizeof(rows[n].id), "%s", (const char *)sqlite3_column_text(st, 0));
		rows[n].due = sqlite3_column_int64(st, 1);
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		res = store_fail(s, rc, "promoting");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		sqlite3_bind_text(ins, 1, rows[i].id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 2, rows[i].due);
		if ((rc = store_exec(s, ST_INSERT_BUFFER)) != SQLITE_OK) {
			res = store_fail(s, rc, "buffering a promoted message");
			goto out;
		}
	}
	res = store_commit(s);
	if (res == STORE_OK)
		*promoted = n;
out:
	store_rollback(s);
	free(rows);
	return res;
}

enum store_result
store_next_due(struct pd_store *s, pd_ms *due)
{
	int rc = store_min(s, ST_EARLIEST_BUFFERED, due);

	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "reading the next due time");
}

/* Deletes the buffer row of id (inside a transaction). */
static int
store_unbuffer(struct pd_store *s, const char *id)
{
	sqlite3_bind_text(s->st[ST_UNBUFFER], 1, id, -1, SQLITE_STATIC);
	return store_exec(s, ST_UNBUFFER);
}

/* Marks message id delivering, counts the round it starts, and reads it
 * whole, payload included: m->attempts includes the new round, m->state
 * is what it was before (PD_DELIVERING: an earlier claim's lease ran out
 * unsettled). STORE_NOTFOUND when it is no longer deliverable (a stale
 * buffer row). */
static enum store_result
store_claim_message(struct pd_store *s, const char *id, struct pd_message *m)
{
	sqlite3_stmt *st = s->st[ST_CLAIM_MESSAGE];
	enum store_result res = STORE_NOTFOUND;
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *blob = sqlite3_column_blob(st, 16);
		size_t len = (size_t)sqlite3_column_bytes(st, 16);

		res = STORE_ERROR;
		if (row_to_message(st, m) == 0) {
			/* NUL-terminated too, like every payload. */
			m->payload = malloc(len + 1);
			if (m->payload != NULL) {
				if (len > 0)
					memcpy(m->payload, blob, len);
				m->payload[len] = '\0';
				m->payload_len = len;
				res = STORE_OK;
			} else
				message_free(m);
		}
	} else if (rc != SQLITE_DONE)
		res = store_fail(s, rc, "claiming a message");
	sqlite3_reset(st);
	if (res == STORE_OK) {
		sqlite3_bind_text(s->st[ST_MARK_DELIVERING], 1, id, -1, SQLITE_STATIC);
		if ((rc = store_exec(s, ST_MARK_DELIVERING)) != SQLITE_OK) {
			message_free(m);
			res = store_fail(s, rc, "claiming a message");
		} else
			m->attempts++;
	}
	return res;
}

enum store_result
store_claim(struct pd_store *s, pd_ms now, int limit, int lease_slack_s,
            store_claim_fn fn, void *ctx)
{
	sqlite3_stmt *st = s->st[ST_CLAIM];
	struct { char id[PD_ID_LEN + 1]; pd_ms lease; } *rows;
	enum store_result res = STORE_OK;
	int n = 0, rc;

	if (limit <= 0)
		return STORE_OK;
	rows = calloc((size_t)limit, sizeof(*rows));
	if (rows == NULL)
		return STORE_ERROR;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, limit);
	sqlite3_bind_int(st, 3, lease_slack_s);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n < limit) {
			snprintf(rows[n].id, sizeof(rows[n].id), "%s",
			         (const char *)sqlite3_column_text(st, 0));
			rows[n].lease = sqlite3_column_int64(st, 1);
			n++;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(rows);
		return store_fail(s, rc, "claiming");
	}
	for (int i = 0; i < n && res == STORE_OK; i++) {
		struct pd_message m;

		res = store_claim_message(s, rows[i].id, &m);
		if (res == STORE_NOTFOUND) {
			/* Neither pending nor delivering: nothing to deliver. */
			rc = store_unbuffer(s, rows[i].id);
			res = rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "dropping a stale lease");
			continue;
		}
		if (res == STORE_OK && fn(ctx, &m, rows[i].lease) != 0)
			res = STORE_ERROR;
	}
	free(rows);
	return res;
}

enum store_result
store_add_attempt(struct pd_store *s, const char *id, const struct pd_attempt *a)
{
	sqlite3_stmt *st = s->st[ST_ADD_ATTEMPT];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, a->at);
	sqlite3_bind_text(st, 3, a->url, -1, SQLITE_STATIC);
	if (a->status != 0)
		sqlite3_bind_int(st, 4, a->status);
	else
		sqlite3_bind_null(st, 4);
	bind_text_or_null(st, 5, a->error);
	sqlite3_bind_int(st, 6, a->ms);
	rc = store_exec(s, ST_ADD_ATTEMPT);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "recording an attempt");
}

enum store_result
store_settle(struct pd_store *s, const struct pd_settlement *o, pd_ms now)
{
	sqlite3_stmt *lease = s->st[ST_LEASE_OF], *st = s->st[ST_SETTLE];
	int rc, held, buffered;

	/* Only the holder of the lease may move the message on: if it expired
	 * and another dispatcher claimed the row, that one decides. */
	sqlite3_bind_text(lease, 1, o->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(lease);
	held = rc == SQLITE_ROW && sqlite3_column_int64(lease, 0) == o->lease;
	sqlite3_reset(lease);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "reading a lease");
	if (!held)
		return STORE_CONFLICT;

	buffered = o->state == PD_PENDING &&
	    o->next_attempt <= now + (pd_ms)s->cfg->buffer_horizon * PD_MS_PER_S;
	sqlite3_bind_text(st, 1, o->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, state_name(o->state), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, o->attempts);
	if (o->state == PD_PENDING)
		sqlite3_bind_int64(st, 4, o->next_attempt);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_int(st, 5, buffered);
	sqlite3_bind_text(st, 6, o->urls, -1, SQLITE_STATIC);
	bind_text_or_null(st, 7, o->delivered_to);
	if (o->delivered_at != 0)
		sqlite3_bind_int64(st, 8, o->delivered_at);
	else
		sqlite3_bind_null(st, 8);
	rc = store_exec(s, ST_SETTLE);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "settling a message");
	if (buffered) {
		sqlite3_bind_text(s->st[ST_REBUFFER], 1, o->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s->st[ST_REBUFFER], 2, o->next_attempt);
		rc = store_exec(s, ST_REBUFFER);
	} else
		rc = store_unbuffer(s, o->id);
	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "updating the buffer");
}

enum store_result
store_add_report(struct pd_store *s, struct pd_message *m, pd_ms now)
{
	return store_insert_row(s, m, now);
}

int
store_query_plans(struct pd_store *s, store_plan_fn fn, void *ctx)
{
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_stmt *st = s->st[i], *plan = NULL;
		char *sql;
		int rc;

		if (sqlite3_stmt_readonly(st) && sqlite3_bind_parameter_count(st) == 0 &&
		    strncmp(sqlite3_sql(st), "SELECT", 6) != 0)
			continue;	/* BEGIN, COMMIT, ROLLBACK have no plan */
		sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sqlite3_sql(st));
		rc = sql != NULL ? sqlite3_prepare_v2(s->db, sql, -1, &plan, NULL) : SQLITE_NOMEM;
		sqlite3_free(sql);
		if (rc != SQLITE_OK)
			return -1;
		while (sqlite3_step(plan) == SQLITE_ROW)
			fn(ctx, sqlite3_sql(st), (const char *)sqlite3_column_text(plan, 3));
		sqlite3_finalize(plan);
	}
	return 0;
}
