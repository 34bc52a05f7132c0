/*
 * store.c: the store of store.h on SQLite.
 *
 * A message is written when it is made and once more when it ends
 * (messages); while it is alive, what changes lives in the narrow table
 * live (next due time, lease token, rounds, dropped URLs). Every statement
 * is prepared once when the store opens and bound per call. Writes run in
 * BEGIN IMMEDIATE transactions: the write lock is taken up front, so a
 * transaction never fails half-way for a lock. Every write that depends on
 * what a row holds says so in its WHERE clause (token = ?, token = 0), so
 * it stays right with several writers, as on PostgreSQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "postdate.h"
#include "store.h"
#include "../sql/migrations.h"

#define STORE_BUSY_TIMEOUT_MS 5000
#define FINGERPRINT_LEN 32

/* Integer states in the tables; messages.state is 0 while alive. */
#define ALIVE 0

/* What a message row and its live row give a reader, in the order
 * row_to_message reads them. */
#define MESSAGE_COLUMNS \
	"m.id, m.state, m.due, m.created, l.token, l.due, l.next_round, m.delivered_at, " \
	"m.urls, m.payload_bytes, m.content_type, m.callback, m.idempotency_key, " \
	"m.delivered_to, m.report_of, m.max_attempts, m.timeout, " \
	"coalesce(l.attempts, m.attempts), coalesce(l.gone, m.gone), m.report"
#define MESSAGE_FROM "messages m LEFT JOIN live l ON l.key = m.key"

enum statement {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT_MESSAGE,
	ST_INSERT_PAYLOAD,
	ST_INSERT_LIVE,
	ST_FIND_BY_KEY,
	ST_GET,
	ST_KEY_OF,
	ST_HISTORY,
	ST_ADD_ATTEMPT,
	ST_LIST_STATE,
	ST_LIST_ALIVE,
	ST_LIST_ALL,
	ST_COUNTS,
	ST_COUNT_DELTA,
	ST_CANCEL_LIVE,
	ST_STATE_OF,
	ST_END_MESSAGE,
	ST_EARLIEST_BUFFERED,
	ST_EARLIEST_UNBUFFERED,
	ST_PROMOTE,
	ST_CLAIMABLE,
	ST_LEASE,
	ST_RELEASE_FOR_ROUND,
	ST_END_LIVE,
	ST_COUNT
};

static const char *const statement_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_BEGIN_READ] = "BEGIN",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* A reused idempotency key writes nothing: the partial unique index
	 * answers the conflict inside the one statement. */
	[ST_INSERT_MESSAGE] =
	    "INSERT INTO messages (id, due, created, urls, payload_bytes, content_type, callback, "
	    "max_attempts, timeout, idempotency_key, fingerprint, report_of) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
	    "ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
	[ST_INSERT_PAYLOAD] = "INSERT INTO payloads (key, payload) VALUES (?1, ?2)",
	[ST_INSERT_LIVE] =
	    "INSERT INTO live (key, due, next_round, buffered, lease_ms) VALUES (?1, ?2, ?2, ?3, ?4)",
	[ST_FIND_BY_KEY] =
	    "SELECT id, fingerprint FROM messages WHERE idempotency_key = ?1 "
	    "AND idempotency_key IS NOT NULL",
	[ST_GET] = "SELECT " MESSAGE_COLUMNS " FROM " MESSAGE_FROM " WHERE m.id = ?1",
	[ST_KEY_OF] = "SELECT key FROM messages WHERE id = ?1",
	[ST_HISTORY] =
	    "SELECT h.at, h.url, h.status, h.error, h.ms FROM history h "
	    "WHERE h.key = (SELECT key FROM messages WHERE id = ?1) ORDER BY h.seq",
	[ST_ADD_ATTEMPT] =
	    "INSERT INTO history (key, seq, at, url, status, error, ms) VALUES (?1, "
	    "(SELECT coalesce(max(seq), 0) + 1 FROM history WHERE key = ?1), ?2, ?3, ?4, ?5, ?6)",
	[ST_LIST_STATE] =
	    "SELECT " MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	    "WHERE m.state = ?1 AND (m.due, m.id) > (?2, ?3) ORDER BY m.due, m.id LIMIT ?4",
	/* Pending and delivering messages are both alive; the lease tells them apart. */
	[ST_LIST_ALIVE] =
	    "SELECT " MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	    "WHERE m.state = 0 AND (m.due, m.id) > (?2, ?3) AND (l.token <> 0) = ?1 "
	    "ORDER BY m.due, m.id LIMIT ?4",
	[ST_LIST_ALL] =
	    "SELECT " MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	    "WHERE (m.due, m.id) > (?2, ?3) ORDER BY m.due, m.id LIMIT ?4",
	[ST_COUNTS] = "SELECT state, n FROM counts",
	[ST_COUNT_DELTA] = "UPDATE counts SET n = n + ?2 WHERE state = ?1",
	/* Only a message that nobody holds can be cancelled: the same
	 * statement checks and ends it, so a dispatcher never claims it after. */
	[ST_CANCEL_LIVE] =
	    "DELETE FROM live WHERE key = (SELECT key FROM messages WHERE id = ?1) AND token = 0 "
	    "RETURNING key, attempts, gone",
	[ST_STATE_OF] =
	    "SELECT m.state, l.token FROM " MESSAGE_FROM " WHERE m.id = ?1",
	[ST_END_MESSAGE] =
	    "UPDATE messages SET state = ?2, ended = ?3, attempts = ?4, gone = ?5, "
	    "delivered_to = ?6, delivered_at = ?7, report = ?8 WHERE key = ?1 AND state = 0",
	[ST_EARLIEST_BUFFERED] = "SELECT min(due) FROM live WHERE buffered = 1",
	[ST_EARLIEST_UNBUFFERED] = "SELECT min(due) FROM live WHERE buffered = 0",
	[ST_PROMOTE] =
	    "UPDATE live SET buffered = 1 WHERE key IN (SELECT key FROM live "
	    "WHERE buffered = 0 AND due <= ?1 ORDER BY due LIMIT ?2)",
	/* Due buffer rows, expired leases (a dispatcher that died) included:
	 * a claim moves a row's due time to its lease's end, so this index
	 * range never holds the rows leased right now. */
	[ST_CLAIMABLE] =
	    "SELECT l.key, l.token, l.attempts, l.gone, l.lease_ms, l.next_round, "
	    MESSAGE_COLUMNS ", p.payload FROM live l JOIN messages m ON m.key = l.key "
	    "JOIN payloads p ON p.key = l.key "
	    "WHERE l.buffered = 1 AND l.due <= ?1 ORDER BY l.due LIMIT ?2",
	[ST_LEASE] =
	    "UPDATE live SET token = ?3, due = ?4, attempts = attempts + 1 "
	    "WHERE key = ?1 AND token = ?2",
	[ST_RELEASE_FOR_ROUND] =
	    "UPDATE live SET token = 0, due = ?3, next_round = ?3, buffered = ?4, attempts = ?5, "
	    "gone = ?6 WHERE key = ?1 AND token = ?2",
	[ST_END_LIVE] = "DELETE FROM live WHERE key = ?1 AND token = ?2",
};

struct pd_store {
	sqlite3 *db;
	const struct pd_config *cfg;
	sqlite3_stmt *st[ST_COUNT];
	pd_ms busy_since;         /* when the current wait for a lock began */
	long delta[PD_NSTATES];   /* count changes of the transaction in progress */
};

int
store_schema_version(void)
{
	return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

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

/* ---- transactions ---- */

static enum store_result
tx_begin(struct pd_store *s, const char *what)
{
	int rc = store_exec(s, ST_BEGIN);

	memset(s->delta, 0, sizeof(s->delta));
	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, what);
}

/* One snapshot for the reads of one call; inside a write transaction (a
 * report reading history during a settle) that transaction is the snapshot. */
static int
read_begin(struct pd_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		return 0;
	return store_exec(s, ST_BEGIN_READ) == SQLITE_OK ? 1 : 0;
}

static void
read_end(struct pd_store *s, int began)
{
	if (began)
		store_exec(s, ST_COMMIT);
}

static void
tx_rollback(struct pd_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		store_exec(s, ST_ROLLBACK);
	memset(s->delta, 0, sizeof(s->delta));
}

/* Applies the transaction's count deltas, one statement per state that
 * changed, and commits; rolls back when either fails. */
static enum store_result
tx_commit(struct pd_store *s, const char *what)
{
	sqlite3_stmt *st = s->st[ST_COUNT_DELTA];
	enum store_result res;
	int rc = SQLITE_OK;

	for (int i = 0; i < PD_NSTATES && rc == SQLITE_OK; i++) {
		if (s->delta[i] == 0)
			continue;
		sqlite3_bind_int(st, 1, i);
		sqlite3_bind_int64(st, 2, s->delta[i]);
		rc = store_exec(s, ST_COUNT_DELTA);
	}
	if (rc == SQLITE_OK)
		rc = store_exec(s, ST_COMMIT);
	if (rc == SQLITE_OK) {
		memset(s->delta, 0, sizeof(s->delta));
		return STORE_OK;
	}
	res = store_fail(s, rc, what);
	tx_rollback(s);
	return res;
}

/* ---- rows ---- */

static int
bind_text_or_null(sqlite3_stmt *st, int i, const char *text)
{
	return text != NULL ? sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC)
	                    : sqlite3_bind_null(st, i);
}

static int
bind_time_or_null(sqlite3_stmt *st, int i, pd_ms t)
{
	return t != 0 ? sqlite3_bind_int64(st, i, t) : sqlite3_bind_null(st, i);
}

static char *
column_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t != NULL ? strdup((const char *)t) : NULL;
}

/* The pool less the URLs whose bit is set in gone (malloc'd). */
static char *
urls_left(const char *pool, unsigned gone)
{
	char *out = malloc(strlen(pool) + 1), *o = out;
	const char *p = pool;

	if (out == NULL)
		return NULL;
	for (int i = 0; *p != '\0'; i++) {
		size_t len = strcspn(p, "\n");

		if (!(gone & (1u << i))) {
			if (o != out)
				*o++ = '\n';
			memcpy(o, p, len);
			o += len;
		}
		p += len + (p[len] == '\n');
	}
	*o = '\0';
	return out;
}

/* Fills m from MESSAGE_COLUMNS starting at column c. whole_pool keeps
 * every URL (a claim: the dispatcher tracks dropped ones by index);
 * otherwise the URLs dropped for good are left out, as status shows. The
 * payload itself is not read: status needs only its length. */
static int
row_to_message(sqlite3_stmt *st, int c, struct pd_message *m, int whole_pool)
{
	const unsigned char *id = sqlite3_column_text(st, c + 0);
	int state = sqlite3_column_int(st, c + 1);
	int alive = state == ALIVE && sqlite3_column_type(st, c + 4) != SQLITE_NULL;
	unsigned gone = (unsigned)sqlite3_column_int64(st, c + 18);
	const unsigned char *pool = sqlite3_column_text(st, c + 8);

	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id != NULL ? (const char *)id : "");
	if (alive)
		m->state = sqlite3_column_int64(st, c + 4) != 0 ? PD_DELIVERING : PD_PENDING;
	else
		m->state = state > 0 && state < PD_NSTATES ? (enum pd_state)state : PD_PENDING;
	m->due = sqlite3_column_int64(st, c + 2);
	m->created = sqlite3_column_int64(st, c + 3);
	if (m->state == PD_PENDING)
		m->next_attempt = sqlite3_column_int64(st, c + 5);
	else if (m->state == PD_DELIVERING)
		m->next_attempt = sqlite3_column_int64(st, c + 6);
	m->delivered_at = sqlite3_column_int64(st, c + 7);
	if (pool != NULL)
		m->urls = whole_pool || gone == 0 ? strdup((const char *)pool) :
		    urls_left((const char *)pool, gone);
	m->payload_len = (size_t)sqlite3_column_int64(st, c + 9);
	m->content_type = column_strdup(st, c + 10);
	m->callback = column_strdup(st, c + 11);
	m->idempotency_key = column_strdup(st, c + 12);
	m->delivered_to = column_strdup(st, c + 13);
	m->report_of = column_strdup(st, c + 14);
	m->max_attempts = sqlite3_column_int(st, c + 15);
	m->timeout = sqlite3_column_int(st, c + 16);
	m->attempts = sqlite3_column_int(st, c + 17);
	m->report = column_strdup(st, c + 19);
	if (m->urls == NULL || m->content_type == NULL) {
		message_free(m);
		return -1;
	}
	return 0;
}

/* SHA-256 over what a schedule request asked for, its times aside (a
 * repeated "delay=30s" names another instant each time): a reused
 * idempotency key with other contents is a different request. */
static int
fingerprint(const struct pd_message *m, unsigned char out[FINGERPRINT_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char limits[64];
	int ok;

	if (ctx == NULL)
		return -1;
	snprintf(limits, sizeof(limits), "%d %d", m->max_attempts, m->timeout);
	/* Each part with its NUL, so that no two splits of the bytes agree. */
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, m->urls, strlen(m->urls) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, m->content_type, strlen(m->content_type) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, m->callback != NULL ? m->callback : "",
	                     m->callback != NULL ? strlen(m->callback) + 1 : 0) == 1 &&
	    EVP_DigestUpdate(ctx, limits, strlen(limits) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, m->payload, m->payload_len) == 1 &&
	    EVP_DigestFinal_ex(ctx, out, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* ---- opening ---- */

/* Runs the migrations this database has not had yet, each in its own
 * transaction that also sets user_version. Several programs may open a
 * new database at once: the IMMEDIATE transaction makes exactly one of
 * them run each migration, and the others find it done. */
static int
store_migrate(struct pd_store *s)
{
	int latest = store_schema_version();

	for (;;) {
		sqlite3_stmt *st = NULL;
		char *errmsg = NULL, set_version[48];
		int version, rc;

		rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
		if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
			log_error("store: opening %s: %s", s->cfg->database, sqlite3_errmsg(s->db));
			goto fail;
		}
		version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		st = NULL;
		if (version == latest)
			return sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
		if (version > latest) {
			log_error("store: %s has schema version %d; this program knows up to %d",
			          s->cfg->database, version, latest);
			goto fail;
		}
		snprintf(set_version, sizeof(set_version), "PRAGMA user_version = %d", version + 1);
		if (sqlite3_exec(s->db, migrations[version].sql, NULL, NULL, &errmsg) != SQLITE_OK ||
		    sqlite3_exec(s->db, set_version, NULL, NULL, &errmsg) != SQLITE_OK ||
		    sqlite3_exec(s->db, "COMMIT", NULL, NULL, &errmsg) != SQLITE_OK) {
			log_error("store: migration %s of %s: %s", migrations[version].name,
			          s->cfg->database, errmsg != NULL ? errmsg : "failed");
			sqlite3_free(errmsg);
			goto fail;
		}
		log_info("store: %s: ran migration %s (schema version %d)", s->cfg->database,
		         migrations[version].name, version + 1);
		continue;
fail:
		sqlite3_finalize(st);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
}

/* Sets WAL mode and checks that it took: a database on a file system
 * without shared memory, or opened read-only, stays in another mode, where
 * readers and the writer block each other. */
static int
store_use_wal(struct pd_store *s)
{
	sqlite3_stmt *st = NULL;
	int ok = 0;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		ok = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
	if (!ok)
		log_error("store: %s: could not switch to WAL mode (journal mode %s)",
		          s->cfg->database,
		          st != NULL && sqlite3_column_text(st, 0) != NULL ?
		          (const char *)sqlite3_column_text(st, 0) : "unknown");
	sqlite3_finalize(st);
	return ok ? 0 : -1;
}

int
store_open(struct pd_store **out, const struct pd_config *cfg)
{
	struct pd_store *s;
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
	if (store_use_wal(s) != 0)
		goto fail;
	rc = sqlite3_exec(s->db, cfg->synchronous_full ? "PRAGMA synchronous = FULL" :
	                  "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
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

/* ---- scheduling ---- */

/* Reads message id into m (the snapshot is the caller's). */
static enum store_result
read_message(struct pd_store *s, const char *id, struct pd_message *m)
{
	sqlite3_stmt *st = s->st[ST_GET];
	enum store_result res;
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		res = row_to_message(st, 0, m, 0) == 0 ? STORE_OK : STORE_ERROR;
	else if (rc == SQLITE_DONE)
		res = STORE_NOTFOUND;
	else
		res = store_fail(s, rc, "reading a message");
	sqlite3_reset(st);
	return res;
}

/* The message that holds m's idempotency key: STORE_EXISTS with m replaced
 * by it when the requests agree, STORE_CONFLICT when they do not. */
static enum store_result
existing_for_key(struct pd_store *s, struct pd_message *m, const unsigned char *print)
{
	sqlite3_stmt *st = s->st[ST_FIND_BY_KEY];
	char id[PD_ID_LEN + 1];
	struct pd_message original;
	enum store_result res;
	int rc, same;

	sqlite3_bind_text(st, 1, m->idempotency_key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? STORE_ERROR : store_fail(s, rc, "reading a key");
	}
	snprintf(id, sizeof(id), "%s", (const char *)sqlite3_column_text(st, 0));
	/* A v1 message has no fingerprint: it answers as before. */
	same = sqlite3_column_type(st, 1) == SQLITE_NULL ||
	    (sqlite3_column_bytes(st, 1) == FINGERPRINT_LEN &&
	     memcmp(sqlite3_column_blob(st, 1), print, FINGERPRINT_LEN) == 0);
	sqlite3_reset(st);
	if (!same)
		return STORE_CONFLICT;
	if ((res = read_message(s, id, &original)) != STORE_OK)
		return res;
	message_free(m);
	*m = original;
	return STORE_EXISTS;
}

/* Inserts m, inside the caller's transaction: the message row and its live
 * row, in the buffer when due within the horizon. STORE_EXISTS or
 * STORE_CONFLICT when its idempotency key is taken. */
static enum store_result
insert_message(struct pd_store *s, struct pd_message *m, pd_ms now)
{
	sqlite3_stmt *st = s->st[ST_INSERT_MESSAGE], *live = s->st[ST_INSERT_LIVE];
	unsigned char print[FINGERPRINT_LEN];
	int rc, npool = 1;
	sqlite3_int64 key;

	if (id_generate(m->id) != 0) {
		log_error("store: no randomness for an id");
		return STORE_ERROR;
	}
	if (fingerprint(m, print) != 0) {
		log_error("store: cannot hash a request");
		return STORE_ERROR;
	}
	m->created = now;
	sqlite3_bind_text(st, 1, m->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, m->due);
	sqlite3_bind_int64(st, 3, m->created);
	sqlite3_bind_text(st, 4, m->urls, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)m->payload_len);
	sqlite3_bind_text(st, 6, m->content_type, -1, SQLITE_STATIC);
	bind_text_or_null(st, 7, m->callback);
	sqlite3_bind_int(st, 8, m->max_attempts);
	sqlite3_bind_int(st, 9, m->timeout);
	bind_text_or_null(st, 10, m->idempotency_key);
	sqlite3_bind_blob(st, 11, print, FINGERPRINT_LEN, SQLITE_STATIC);
	bind_text_or_null(st, 12, m->report_of);
	rc = store_exec(s, ST_INSERT_MESSAGE);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "inserting a message");
	if (sqlite3_changes(s->db) == 0)
		return existing_for_key(s, m, print);
	key = sqlite3_last_insert_rowid(s->db);
	sqlite3_bind_int64(s->st[ST_INSERT_PAYLOAD], 1, key);
	sqlite3_bind_blob64(s->st[ST_INSERT_PAYLOAD], 2, m->payload, m->payload_len, SQLITE_STATIC);
	rc = store_exec(s, ST_INSERT_PAYLOAD);
	sqlite3_clear_bindings(s->st[ST_INSERT_PAYLOAD]);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "inserting a payload");

	for (const char *p = m->urls; (p = strchr(p, '\n')) != NULL; p++)
		npool++;
	sqlite3_bind_int64(live, 1, key);
	sqlite3_bind_int64(live, 2, m->next_attempt);
	sqlite3_bind_int(live, 3,
	    m->next_attempt <= now + (pd_ms)s->cfg->buffer_horizon * PD_MS_PER_S);
	/* A lease covers a whole round: a timeout for every URL of the pool. */
	sqlite3_bind_int64(live, 4, (sqlite3_int64)m->timeout * PD_MS_PER_S * npool);
	rc = store_exec(s, ST_INSERT_LIVE);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "inserting a message");
	s->delta[PD_PENDING]++;
	return STORE_OK;
}

/* Whether a result means the message is (or already was) in the store. */
static int
stored(enum store_result res)
{
	return res == STORE_OK || res == STORE_EXISTS;
}

/* The pending count, as committed, for the max_pending check. */
static int
pending_count(struct pd_store *s, long *n)
{
	sqlite3_stmt *st = s->st[ST_COUNTS];
	int rc;

	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (sqlite3_column_int(st, 0) == PD_PENDING)
			*n = (long)sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void
store_insert_batch(struct pd_store *s, struct store_insert *items, size_t n)
{
	enum store_result fail;
	long pending = 0;
	size_t i = 0;
	int rc;

	if ((fail = tx_begin(s, "beginning a schedule")) != STORE_OK)
		goto failed;
	if ((rc = pending_count(s, &pending)) != SQLITE_OK) {
		fail = store_fail(s, rc, "counting pending messages");
		goto failed;
	}
	for (i = 0; i < n; i++) {
		/* The count includes the batch's earlier messages. */
		if (pending + s->delta[PD_PENDING] >= s->cfg->max_pending) {
			items[i].result = STORE_FULL;
			continue;
		}
		items[i].result = insert_message(s, items[i].message, items[i].now);
		if (sqlite3_get_autocommit(s->db)) {
			/* SQLite gave up the whole transaction (disk full, I/O):
			 * what the batch wrote so far is gone too. */
			fail = items[i].result;
			goto failed;
		}
		if (items[i].result == STORE_ERROR || items[i].result == STORE_BUSY ||
		    items[i].result == STORE_NOSPACE) {
			fail = items[i].result;
			i = n;
			goto failed;
		}
	}
	/* The answers are sent only after this commit: an acknowledged message
	 * is on disk. */
	if ((fail = tx_commit(s, "committing a schedule")) == STORE_OK)
		return;
	i = n;
failed:
	tx_rollback(s);
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
store_cancel(struct pd_store *s, const char *id, enum pd_state *state)
{
	sqlite3_stmt *del = s->st[ST_CANCEL_LIVE], *st = s->st[ST_STATE_OF];
	sqlite3_stmt *end = s->st[ST_END_MESSAGE];
	enum store_result res;
	int rc;

	if ((res = tx_begin(s, "beginning a cancel")) != STORE_OK)
		return res;
	sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(del);
	if (rc == SQLITE_ROW) {
		sqlite3_int64 key = sqlite3_column_int64(del, 0);
		int attempts = sqlite3_column_int(del, 1);
		sqlite3_int64 gone = sqlite3_column_int64(del, 2);

		sqlite3_reset(del);
		sqlite3_bind_int64(end, 1, key);
		sqlite3_bind_int(end, 2, PD_CANCELLED);
		sqlite3_bind_int64(end, 3, time_now());
		sqlite3_bind_int(end, 4, attempts);
		sqlite3_bind_int64(end, 5, gone);
		rc = store_exec(s, ST_END_MESSAGE);
		sqlite3_clear_bindings(end);
		if (rc != SQLITE_OK) {
			res = store_fail(s, rc, "cancelling");
			goto out;
		}
		s->delta[PD_PENDING]--;
		s->delta[PD_CANCELLED]++;
		*state = PD_CANCELLED;
		res = tx_commit(s, "cancelling");
		goto out;
	}
	sqlite3_reset(del);
	if (rc != SQLITE_DONE) {
		res = store_fail(s, rc, "cancelling");
		goto out;
	}
	/* Nothing was pending: say what it is. */
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int ended = sqlite3_column_int(st, 0);

		*state = ended != ALIVE && ended < PD_NSTATES ? (enum pd_state)ended : PD_DELIVERING;
		res = *state == PD_CANCELLED ? STORE_OK : STORE_CONFLICT;
	} else
		res = rc == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, rc, "reading a state");
	sqlite3_reset(st);
out:
	tx_rollback(s);
	return res;
}

/* ---- reading ---- */

static enum store_result
read_history(struct pd_store *s, const char *id, store_attempt_fn fn, void *ctx)
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
store_get(struct pd_store *s, const char *id, struct pd_message *m, store_attempt_fn fn,
          void *ctx)
{
	int began = read_begin(s);
	enum store_result res = read_message(s, id, m);

	if (res == STORE_OK && fn != NULL && (res = read_history(s, id, fn, ctx)) != STORE_OK)
		message_free(m);
	read_end(s, began);
	return res;
}

enum store_result
store_history(struct pd_store *s, const char *id, store_attempt_fn fn, void *ctx)
{
	int began = read_begin(s);
	enum store_result res = read_history(s, id, fn, ctx);

	read_end(s, began);
	return res;
}

static enum store_result
read_counts(struct pd_store *s, long counts[PD_NSTATES])
{
	sqlite3_stmt *st = s->st[ST_COUNTS];
	enum store_result res = STORE_OK;
	int rc;

	memset(counts, 0, sizeof(long) * PD_NSTATES);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 0);

		if (state >= 0 && state < PD_NSTATES)
			counts[state] = (long)sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE)
		res = store_fail(s, rc, "counting messages");
	sqlite3_reset(st);
	return res;
}

enum store_result
store_counts(struct pd_store *s, long counts[PD_NSTATES])
{
	int began = read_begin(s);
	enum store_result res = read_counts(s, counts);

	read_end(s, began);
	return res;
}

enum store_result
store_list(struct pd_store *s, int state, const char *queue, pd_ms after_due,
           const char *after_id, int limit, store_message_fn fn, void *ctx,
           long counts[PD_NSTATES])
{
	enum statement which = state < 0 ? ST_LIST_ALL :
	    state == PD_PENDING || state == PD_DELIVERING ? ST_LIST_ALIVE : ST_LIST_STATE;
	sqlite3_stmt *st = s->st[which];
	enum store_result res = STORE_OK;
	int rc, began = read_begin(s);

	(void)queue;	/* the queue filter comes with the queue tables, in migration 003 */
	if (which == ST_LIST_ALIVE)
		sqlite3_bind_int(st, 1, state == PD_DELIVERING);
	else if (which == ST_LIST_STATE)
		sqlite3_bind_int(st, 1, state);
	/* The first page starts before every (due, id): ids are never empty. */
	sqlite3_bind_int64(st, 2, after_id != NULL ? after_due : INT64_MIN);
	sqlite3_bind_text(st, 3, after_id != NULL ? after_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct pd_message m;
		int stop;

		if (row_to_message(st, 0, &m, 0) != 0) {
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
	if (res == STORE_OK && counts != NULL)
		res = read_counts(s, counts);
	read_end(s, began);
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
store_health(struct pd_store *s, long counts[PD_NSTATES], pd_ms *earliest)
{
	pd_ms buffered = 0, unbuffered = 0;
	enum store_result res;
	int rc, began = read_begin(s);

	/* Both minimums are index lookups; a single min over all live
	 * messages would have to merge the buffer with the far future. */
	if ((res = read_counts(s, counts)) == STORE_OK &&
	    ((rc = store_min(s, ST_EARLIEST_BUFFERED, &buffered)) != SQLITE_OK ||
	     (rc = store_min(s, ST_EARLIEST_UNBUFFERED, &unbuffered)) != SQLITE_OK))
		res = store_fail(s, rc, "reading health");
	read_end(s, began);
	if (res != STORE_OK)
		return res;
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
store_next_due(struct pd_store *s, pd_ms *unbuffered, pd_ms *buffered)
{
	int rc, began = read_begin(s);

	if ((rc = store_min(s, ST_EARLIEST_UNBUFFERED, unbuffered)) == SQLITE_OK)
		rc = store_min(s, ST_EARLIEST_BUFFERED, buffered);
	read_end(s, began);
	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "reading the next due time");
}

enum store_result
store_promote(struct pd_store *s, pd_ms until, int limit, int *promoted)
{
	sqlite3_stmt *st = s->st[ST_PROMOTE];
	enum store_result res;
	int rc;

	*promoted = 0;
	if ((res = tx_begin(s, "beginning a promotion")) != STORE_OK)
		return res;
	sqlite3_bind_int64(st, 1, until);
	sqlite3_bind_int(st, 2, limit);
	if ((rc = store_exec(s, ST_PROMOTE)) != SQLITE_OK) {
		res = store_fail(s, rc, "promoting");
		tx_rollback(s);
		return res;
	}
	*promoted = sqlite3_changes(s->db);
	return tx_commit(s, "committing a promotion");
}

/* A fresh lease token: random, never 0 (0 means "not leased"). */
static int64_t
new_token(void)
{
	uint64_t t = 0;

	if (RAND_bytes((unsigned char *)&t, sizeof(t)) != 1)
		return 0;
	t >>= 1;
	return t != 0 ? (int64_t)t : 1;
}

struct claim {
	struct pd_message m;
	struct store_lease lease;
};

enum store_result
store_claim(struct pd_store *s, pd_ms now, int limit, int lease_slack_s,
            store_claim_fn fn, void *ctx)
{
	sqlite3_stmt *st = s->st[ST_CLAIMABLE], *lease = s->st[ST_LEASE];
	struct claim *c;
	enum store_result res;
	int64_t token = new_token();
	int n = 0, rc = SQLITE_DONE;

	if (limit <= 0)
		return STORE_OK;
	if (token == 0) {
		log_error("store: no randomness for a lease token");
		return STORE_ERROR;
	}
	if ((c = calloc((size_t)limit, sizeof(*c))) == NULL)
		return STORE_ERROR;
	if ((res = tx_begin(s, "beginning a claim")) != STORE_OK)
		goto out;
	/* Read first, then lease: SQLite does not promise what a statement
	 * sees of rows changed while it steps over them. */
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, limit);
	while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *blob = sqlite3_column_blob(st, 26);
		size_t len = (size_t)sqlite3_column_bytes(st, 26);
		struct claim *k = &c[n];

		if (row_to_message(st, 6, &k->m, 1) != 0 || (k->m.payload = malloc(len + 1)) == NULL) {
			message_free(&k->m);
			res = STORE_ERROR;
			break;
		}
		/* NUL-terminated too, like every payload. */
		if (len > 0)
			memcpy(k->m.payload, blob, len);
		k->m.payload[len] = '\0';
		k->m.payload_len = len;
		k->lease.key = sqlite3_column_int64(st, 0);
		k->lease.token = sqlite3_column_int64(st, 1);   /* the one it held until now */
		k->m.attempts = sqlite3_column_int(st, 2) + 1;
		k->lease.gone = (unsigned)sqlite3_column_int64(st, 3);
		k->lease.until = now + sqlite3_column_int64(st, 4) + (pd_ms)lease_slack_s * PD_MS_PER_S;
		k->m.next_attempt = sqlite3_column_int64(st, 5);
		/* What it was: delivering when an earlier lease ran out unsettled. */
		k->m.state = k->lease.token != 0 ? PD_DELIVERING : PD_PENDING;
		n++;
	}
	sqlite3_reset(st);
	if (res == STORE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		res = store_fail(s, rc, "claiming");
	for (int i = 0; i < n && res == STORE_OK; i++) {
		struct claim *k = &c[i];

		sqlite3_bind_int64(lease, 1, k->lease.key);
		sqlite3_bind_int64(lease, 2, k->lease.token);
		sqlite3_bind_int64(lease, 3, token);
		sqlite3_bind_int64(lease, 4, k->lease.until);
		if ((rc = store_exec(s, ST_LEASE)) != SQLITE_OK) {
			res = store_fail(s, rc, "leasing");
			break;
		}
		/* An expired lease taken over was counted as delivering already. */
		if (k->lease.token == 0) {
			s->delta[PD_PENDING]--;
			s->delta[PD_DELIVERING]++;
		}
		k->lease.token = token;
	}
	if (res == STORE_OK)
		res = tx_commit(s, "committing a claim");
	else
		tx_rollback(s);
	/* Only what is committed is handed on. */
	for (int i = 0; i < n; i++) {
		if (res == STORE_OK && fn(ctx, &c[i].m, &c[i].lease) != 0)
			res = STORE_ERROR;
		message_free(&c[i].m);
	}
out:
	free(c);
	return res;
}

/* Appends one HTTP attempt to the message key's history. */
static int
add_attempt(struct pd_store *s, int64_t key, const struct pd_attempt *a)
{
	sqlite3_stmt *st = s->st[ST_ADD_ATTEMPT];
	int rc;

	sqlite3_bind_int64(st, 1, key);
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
	return rc;
}

/* Ends message key (state, outcome, report id): the second and last write
 * of its row. */
static int
end_message(struct pd_store *s, const struct pd_settlement *o, pd_ms now, const char *report)
{
	sqlite3_stmt *st = s->st[ST_END_MESSAGE];
	int rc;

	sqlite3_bind_int64(st, 1, o->lease.key);
	sqlite3_bind_int(st, 2, o->state);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int(st, 4, o->attempts);
	sqlite3_bind_int64(st, 5, o->gone);
	bind_text_or_null(st, 6, o->delivered_to);
	bind_time_or_null(st, 7, o->delivered_at);
	bind_text_or_null(st, 8, report);
	rc = store_exec(s, ST_END_MESSAGE);
	sqlite3_clear_bindings(st);
	return rc;
}

/* One settlement inside the settle's transaction. */
static enum store_result
settle_one(struct pd_store *s, struct pd_settlement *o, pd_ms now, store_report_fn report_fn,
           void *ctx)
{
	const struct store_lease *l = &o->lease;
	int rc;

	for (size_t i = 0; i < o->ntried; i++)
		if ((rc = add_attempt(s, l->key, &o->tried[i])) != SQLITE_OK)
			return store_fail(s, rc, "recording an attempt");
	o->result = STORE_OK;
	if (o->state == PD_PENDING) {
		sqlite3_stmt *st = s->st[ST_RELEASE_FOR_ROUND];

		sqlite3_bind_int64(st, 1, l->key);
		sqlite3_bind_int64(st, 2, l->token);
		sqlite3_bind_int64(st, 3, o->next_attempt);
		sqlite3_bind_int(st, 4,
		    o->next_attempt <= now + (pd_ms)s->cfg->buffer_horizon * PD_MS_PER_S);
		sqlite3_bind_int(st, 5, o->attempts);
		sqlite3_bind_int64(st, 6, o->gone);
		if ((rc = store_exec(s, ST_RELEASE_FOR_ROUND)) != SQLITE_OK)
			return store_fail(s, rc, "settling a message");
	} else {
		sqlite3_bind_int64(s->st[ST_END_LIVE], 1, l->key);
		sqlite3_bind_int64(s->st[ST_END_LIVE], 2, l->token);
		if ((rc = store_exec(s, ST_END_LIVE)) != SQLITE_OK)
			return store_fail(s, rc, "settling a message");
	}
	/* Only the holder of the lease moves the message on: if it ran out and
	 * another dispatcher claimed the message, that one decides. */
	if (sqlite3_changes(s->db) == 0) {
		o->result = STORE_CONFLICT;
		return STORE_OK;
	}
	s->delta[PD_DELIVERING]--;
	s->delta[o->state]++;
	if (o->state == PD_PENDING)
		return STORE_OK;

	if (o->wants_report && report_fn != NULL) {
		struct pd_message report = { 0 };
		enum store_result res;

		if (report_fn(ctx, o, &report) != 0) {
			message_free(&report);
			return STORE_ERROR;
		}
		res = insert_message(s, &report, now);
		if (res == STORE_OK)
			rc = end_message(s, o, now, report.id);
		message_free(&report);
		if (res != STORE_OK)
			return res;
	} else
		rc = end_message(s, o, now, NULL);
	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "ending a message");
}

enum store_result
store_settle(struct pd_store *s, struct pd_settlement *items, size_t n, pd_ms now,
             store_report_fn report_fn, void *ctx)
{
	enum store_result res;

	if (n == 0)
		return STORE_OK;
	if ((res = tx_begin(s, "beginning a write-back")) != STORE_OK)
		return res;
	for (size_t i = 0; i < n; i++) {
		if ((res = settle_one(s, &items[i], now, report_fn, ctx)) != STORE_OK) {
			tx_rollback(s);
			return res;
		}
	}
	return tx_commit(s, "committing a write-back");
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
		if (strcmp(sqlite3_sql(st), "BEGIN IMMEDIATE") == 0)
			continue;
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
