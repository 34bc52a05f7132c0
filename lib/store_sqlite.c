/*
 * store_sqlite.c: the store of store.h on SQLite.
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
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "postdate.h"
#include "store_engine.h"
#include "../sql/migrations.h"

#define STORE_BUSY_TIMEOUT_MS 5000
/* Queue count changes a transaction keeps before writing them out. */
#define QUEUE_DELTAS 32

/* Integer states in the tables; messages.state is 0 while alive. */
#define ALIVE 0

/* What a message row and its live row give a reader, in the order
 * row_to_message reads them. */
#define MESSAGE_COLUMNS \
	"m.id, m.state, m.due, m.created, l.token, l.due, l.next_round, m.delivered_at, " \
	"m.urls, m.payload_bytes, m.content_type, m.callback, m.idempotency_key, " \
	"m.delivered_to, m.report_of, m.max_attempts, m.timeout, " \
	"coalesce(l.attempts, m.attempts), coalesce(l.gone, m.gone), m.report, " \
	"q.name, m.priority, m.expires, m.method, m.headers, tp.name, m.subscription, " \
	"(SELECT r.id FROM recurring r WHERE r.key = m.recurring)"
#define MESSAGE_NCOLUMNS 28
/* Whether the message of a live row being changed has a callback. */
/* A recurring definition, in the order row_to_recurring reads them. */
#define RECURRING_COLUMNS \
	"key, id, name, cron, tz, urls, queue, payload, content_type, callback, max_attempts, " \
	"timeout, priority, ttl, paused, created, next, last, topic, method, headers"
#define HAS_CALLBACK "(SELECT callback IS NOT NULL FROM messages WHERE key = live.key)"
/* What MESSAGE_COLUMNS names beside messages m and live l. */
#define MESSAGE_JOINS \
	"LEFT JOIN queues q ON q.key = m.queue LEFT JOIN publishes pb ON pb.key = m.publish " \
	"LEFT JOIN topics tp ON tp.key = pb.topic"
#define MESSAGE_FROM "messages m LEFT JOIN live l ON l.key = m.key " MESSAGE_JOINS

/* A retry's new start, as one UPDATE's SET (which reads the row's old
 * values): due now, its outcome cleared, its rounds and dropped URLs
 * reset, and a ttl of the same length counted from the new due time. */
#define RETRY_SET \
	"UPDATE messages SET state = 0, due = ?2, " \
	"expires = CASE WHEN expires IS NULL THEN NULL ELSE ?2 + (expires - due) END, " \
	"ended = NULL, attempts = 0, gone = 0, delivered_to = NULL, delivered_at = NULL, " \
	"report = NULL "

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
	ST_EARLIEST_UNBUFFERED,
	ST_PROMOTE,
	ST_CLAIMABLE,
	ST_LEASE,
	ST_RELEASE_FOR_ROUND,
	ST_END_LIVE,
	ST_BUFFER_PRIORITY_AFTER,
	ST_EARLIEST_BUFFERED_AT,
	ST_LIST_QUEUE_STATE,
	ST_LIST_QUEUE_ALIVE,
	ST_LIST_QUEUE_ALL,
	ST_QUEUE_MAKE,
	ST_QUEUE_COUNTS_MAKE,
	ST_QUEUE_FIND,
	ST_QUEUE_CHANGE,
	ST_QUEUE_NAMES,
	ST_QUEUE_COUNTS,
	ST_QUEUE_COUNT_DELTA,
	ST_QUEUE_PRIORITY_AFTER,
	ST_QUEUE_READY_COUNT,
	ST_QUEUE_LEASED_COUNT,
	ST_QUEUE_EARLIEST,
	ST_RECEIVABLE,
	ST_RECEIVE_LEASE,
	ST_ACK,
	ST_RELEASE,
	ST_END_RECEIVED,
	ST_EXTEND,
	ST_EXPIRED_ROWS,
	ST_SPENT_ROWS,
	ST_END_LIVE_ANY,
	ST_DATA_VERSION,
	ST_TOPIC_MAKE,
	ST_TOPIC_FIND,
	ST_TOPIC_NAMES,
	ST_SUBSCRIBE,
	ST_SUBSCRIPTION_CHANGE,
	ST_UNSUBSCRIBE,
	ST_SUBSCRIPTIONS_OF,
	ST_PUBLISH_INSERT,
	ST_PUBLISH_BY_KEY,
	ST_PUBLISH_DELIVERIES,
	ST_SAVEPOINT,
	ST_SAVEPOINT_RELEASE,
	ST_SAVEPOINT_ROLLBACK,
	ST_TOTALS,
	ST_TOTAL_DELTA,
	ST_RETRY_MESSAGE,
	ST_RETRY_ALL,
	ST_RETRY_LIVE,
	ST_PURGE_MESSAGES,
	ST_PURGE_PAYLOAD,
	ST_PURGE_HISTORY,
	ST_PURGE_PUBLISH,
	ST_SUBSCRIPTION_COUNT,
	ST_REC_INSERT,
	ST_REC_GET,
	ST_REC_LIST,
	ST_REC_LATEST,
	ST_REC_PAUSE,
	ST_REC_RESUME,
	ST_REC_DELETE,
	ST_REC_WAITING,
	ST_REC_TO_MAKE,
	ST_REC_ADVANCE,
	ST_REC_MAKE_AT,
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
	    "max_attempts, timeout, idempotency_key, fingerprint, report_of, queue, priority, expires, "
	    "method, headers, publish, subscription, recurring) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
	    "?18, ?19, (SELECT key FROM recurring WHERE id = ?20)) "
	    "ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
	    "ON CONFLICT (recurring, due) WHERE recurring IS NOT NULL AND publish IS NULL "
	    "DO NOTHING",
	[ST_INSERT_PAYLOAD] = "INSERT INTO payloads (key, payload) VALUES (?1, ?2)",
	[ST_INSERT_LIVE] =
	    "INSERT INTO live (key, due, next_round, buffered, lease_ms, queue, priority, expires) "
	    "VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_FIND_BY_KEY] =
	    "SELECT id, fingerprint FROM messages WHERE idempotency_key = ?1 "
	    "AND idempotency_key IS NOT NULL",
	[ST_GET] =
	    "SELECT " MESSAGE_COLUMNS ", p.payload FROM " MESSAGE_FROM " "
	    "LEFT JOIN payloads p ON p.key = m.key WHERE m.id = ?1",
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
	    "RETURNING key, attempts, gone, queue",
	[ST_STATE_OF] =
	    "SELECT m.state, l.token FROM " MESSAGE_FROM " WHERE m.id = ?1",
	[ST_END_MESSAGE] =
	    "UPDATE messages SET state = ?2, ended = ?3, attempts = ?4, gone = ?5, "
	    "delivered_to = ?6, delivered_at = ?7, report = ?8 WHERE key = ?1 AND state = 0",
	/* The buffer is in (priority, due) order: its earliest due time is the
	 * earliest of each priority level's, each level one index lookup. */
	[ST_EARLIEST_BUFFERED_AT] =
	    "SELECT min(due) FROM live WHERE buffered = 1 AND priority = ?1",
	[ST_BUFFER_PRIORITY_AFTER] =
	    "SELECT min(priority) FROM live WHERE buffered = 1 AND priority > ?1",
	[ST_EARLIEST_UNBUFFERED] = "SELECT min(due) FROM live WHERE buffered = 0 AND queue = 0",
	[ST_PROMOTE] =
	    "UPDATE live SET buffered = 1 WHERE key IN (SELECT key FROM live "
	    "WHERE buffered = 0 AND queue = 0 AND due <= ?1 ORDER BY due LIMIT ?2)",
	/* Due buffer rows, expired leases (a dispatcher that died) included:
	 * a claim moves a row's due time to its lease's end, so this index
	 * range never holds the rows leased right now. */
	[ST_CLAIMABLE] =
	    "SELECT l.key, l.token, l.attempts, l.gone, l.lease_ms, l.next_round, "
	    MESSAGE_COLUMNS ", p.payload FROM live l JOIN messages m ON m.key = l.key "
	    "JOIN payloads p ON p.key = l.key " MESSAGE_JOINS " "
	    "WHERE l.buffered = 1 AND l.priority = ?3 AND l.due <= ?1 ORDER BY l.due LIMIT ?2",
	[ST_LEASE] =
	    "UPDATE live SET token = ?3, due = ?4, attempts = attempts + 1 "
	    "WHERE key = ?1 AND token = ?2",
	[ST_RELEASE_FOR_ROUND] =
	    "UPDATE live SET token = 0, due = ?3, next_round = ?3, buffered = ?4, attempts = ?5, "
	    "gone = ?6 WHERE key = ?1 AND token = ?2",
	[ST_END_LIVE] = "DELETE FROM live WHERE key = ?1 AND token = ?2",
	[ST_LIST_QUEUE_STATE] =
	    "SELECT " MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	    "WHERE m.queue = (SELECT key FROM queues WHERE name = ?5) AND m.state = ?1 "
	    "AND (m.due, m.id) > (?2, ?3) ORDER BY m.due, m.id LIMIT ?4",
	[ST_LIST_QUEUE_ALIVE] =
	    "SELECT " MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	    "WHERE m.queue = (SELECT key FROM queues WHERE name = ?5) AND m.state = 0 "
	    "AND (m.due, m.id) > (?2, ?3) AND (l.token <> 0) = ?1 ORDER BY m.due, m.id LIMIT ?4",
	[ST_LIST_QUEUE_ALL] =
	    "SELECT " MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	    "WHERE m.queue = (SELECT key FROM queues WHERE name = ?5) "
	    "AND (m.due, m.id) > (?2, ?3) ORDER BY m.due, m.id LIMIT ?4",
	/* A queue is made on first use; two makers at once agree on one row. */
	[ST_QUEUE_MAKE] =
	    "INSERT INTO queues (name, visibility, max_attempts, created) VALUES (?1, ?2, ?3, ?4) "
	    "ON CONFLICT (name) DO NOTHING",
	[ST_QUEUE_COUNTS_MAKE] =
	    "INSERT INTO queue_counts (queue, state) VALUES (?1, 0), (?1, 2), (?1, 3), (?1, 4), "
	    "(?1, 5)",
	[ST_QUEUE_FIND] =
	    "SELECT key, name, visibility, max_attempts, max_depth, paused, "
	    "(SELECT n FROM queue_counts WHERE queue = queues.key AND state = 0) "
	    "FROM queues WHERE name = ?1",
	[ST_QUEUE_CHANGE] =
	    "UPDATE queues SET visibility = coalesce(?2, visibility), "
	    "max_attempts = coalesce(?3, max_attempts), max_depth = coalesce(?4, max_depth), "
	    "paused = coalesce(?5, paused) WHERE name = ?1",
	[ST_QUEUE_NAMES] = "SELECT name FROM queues ORDER BY name",
	[ST_QUEUE_COUNTS] = "SELECT state, n FROM queue_counts WHERE queue = ?1",
	[ST_QUEUE_COUNT_DELTA] =
	    "UPDATE queue_counts SET n = n + ?3 WHERE queue = ?1 AND state = ?2",
	/* A queue is read a priority level at a time, like the buffer. */
	[ST_QUEUE_PRIORITY_AFTER] =
	    "SELECT min(priority) FROM live WHERE queue = ?1 AND queue <> 0 AND priority > ?2",
	[ST_QUEUE_READY_COUNT] =
	    "SELECT count(*), min(due) FROM live WHERE queue = ?1 AND queue <> 0 AND priority = ?2 "
	    "AND due <= ?3",
	[ST_QUEUE_LEASED_COUNT] =
	    "SELECT count(*) FROM live WHERE queue = ?1 AND queue <> 0 AND priority = ?2 AND due > ?3 "
	    "AND token <> 0",
	[ST_QUEUE_EARLIEST] =
	    "SELECT min(due) FROM live WHERE queue = ?1 AND queue <> 0 AND priority = ?2",
	/* Receivable: due, a lease run out counting as due (a receive moves
	 * due to the lease's end). FIFO within a priority level. */
	[ST_RECEIVABLE] =
	    "SELECT l.key, l.token, l.attempts, l.expires, " MESSAGE_COLUMNS ", p.payload "
	    "FROM live l JOIN messages m ON m.key = l.key JOIN payloads p ON p.key = l.key "
	    MESSAGE_JOINS " "
	    "WHERE l.queue = ?1 AND l.queue <> 0 AND l.priority = ?2 AND l.due <= ?3 "
	    "ORDER BY l.due, l.key LIMIT ?4",
	[ST_RECEIVE_LEASE] =
	    "UPDATE live SET token = ?3, receipt = ?4, due = ?5, attempts = attempts + 1, "
	    "spent = ?6 WHERE key = ?1 AND token = ?2",
	/* The receipt proves the lease, run out or not, until the next receive.
	 * Read here and deleted by ST_END_LIVE in the same write transaction:
	 * a DELETE ... RETURNING costs more than the two (callgrind). */
	[ST_ACK] =
	    "SELECT l.key, l.queue, l.attempts, coalesce(l.expires <= ?4, 0), "
	    "m.callback IS NOT NULL FROM messages m JOIN live l ON l.key = m.key "
	    "WHERE m.id = ?1 AND l.token = ?2 AND l.receipt = ?3 AND l.queue <> 0",
	[ST_RELEASE] =
	    "UPDATE live SET token = 0, receipt = NULL, due = ?4 "
	    "WHERE key = (SELECT key FROM messages WHERE id = ?1) "
	    "AND token = ?2 AND receipt = ?3 AND queue <> 0 AND spent = 0 "
	    "AND coalesce(expires > ?5, 1) RETURNING key, queue",
	/* A receipt's message that cannot go back: its last receive, or its
	 * ttl run out. */
	[ST_END_RECEIVED] =
	    "DELETE FROM live WHERE key = (SELECT key FROM messages WHERE id = ?1) "
	    "AND token = ?2 AND receipt = ?3 AND queue <> 0 AND (spent = 1 OR expires <= ?4) "
	    "RETURNING key, queue, attempts, coalesce(expires <= ?4, 0), " HAS_CALLBACK,
	[ST_EXTEND] =
	    "UPDATE live SET due = ?4 WHERE key = (SELECT key FROM messages WHERE id = ?1) "
	    "AND token = ?2 AND receipt = ?3 AND queue <> 0 AND coalesce(expires > ?5, 1)",
	/* Ends by itself: the ttl ran out, unless a dispatcher's round on it
	 * is in flight right now (that round decides)... */
	[ST_EXPIRED_ROWS] =
	    "SELECT l.key, l.token, l.queue, l.attempts, l.gone, m.id, m.callback IS NOT NULL "
	    "FROM live l JOIN messages m ON m.key = l.key "
	    "WHERE l.expires <= ?1 AND (l.queue <> 0 OR l.token = 0 OR l.due <= ?1) "
	    "ORDER BY l.expires LIMIT ?2",
	/* ... or a queue message's last allowed receive ran out unacknowledged. */
	[ST_SPENT_ROWS] =
	    "SELECT l.key, l.token, l.queue, l.attempts, l.gone, m.id, m.callback IS NOT NULL "
	    "FROM live l JOIN messages m ON m.key = l.key "
	    "WHERE l.spent = 1 AND l.due <= ?1 ORDER BY l.due LIMIT ?2",
	[ST_END_LIVE_ANY] = "DELETE FROM live WHERE key = ?1 AND token = ?2 RETURNING queue",
	[ST_DATA_VERSION] = "PRAGMA data_version",
	/* Topics: made on first subscribe; two subscribers at once agree on one. */
	[ST_TOPIC_MAKE] =
	    "INSERT INTO topics (name, created) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
	[ST_TOPIC_FIND] = "SELECT key FROM topics WHERE name = ?1",
	[ST_TOPIC_NAMES] = "SELECT key, name FROM topics ORDER BY name",
	[ST_SUBSCRIBE] =
	    "INSERT INTO subscriptions (topic, name, urls, queue, callback, max_attempts, timeout, "
	    "method, headers, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
	    "ON CONFLICT (topic, name) DO NOTHING",
	[ST_SUBSCRIPTION_CHANGE] =
	    "UPDATE subscriptions SET urls = ?3, queue = ?4, callback = ?5, max_attempts = ?6, "
	    "timeout = ?7, method = ?8, headers = ?9 WHERE topic = ?1 AND name = ?2",
	[ST_UNSUBSCRIBE] =
	    "DELETE FROM subscriptions WHERE topic = (SELECT key FROM topics WHERE name = ?1) "
	    "AND name = ?2",
	[ST_SUBSCRIPTIONS_OF] =
	    "SELECT name, urls, queue, callback, max_attempts, timeout, created, method, headers "
	    "FROM subscriptions WHERE topic = ?1 ORDER BY name LIMIT ?2",
	/* A reused idempotency key writes nothing, as for a message. */
	[ST_PUBLISH_INSERT] =
	    "INSERT INTO publishes (topic, due, created, idempotency_key, fingerprint, recurring) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, (SELECT key FROM recurring WHERE id = ?6)) "
	    "ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
	    "ON CONFLICT (recurring, due) WHERE recurring IS NOT NULL DO NOTHING",
	[ST_PUBLISH_BY_KEY] =
	    "SELECT key, fingerprint, due, created FROM publishes WHERE idempotency_key = ?1 "
	    "AND idempotency_key IS NOT NULL",
	[ST_PUBLISH_DELIVERIES] =
	    "SELECT subscription, id FROM messages WHERE publish = ?1 AND publish IS NOT NULL "
	    "ORDER BY key",
	/* A publish inside a batch: all its copies or none, the batch going on. */
	[ST_SAVEPOINT] = "SAVEPOINT publish",
	[ST_SAVEPOINT_RELEASE] = "RELEASE publish",
	[ST_SAVEPOINT_ROLLBACK] = "ROLLBACK TO publish",
	/* The metrics' counters (sql/007-metrics.sql): a dozen rows. */
	[ST_TOTALS] = "SELECT counter, n FROM totals",
	[ST_TOTAL_DELTA] =
	    "INSERT INTO totals (counter, n) VALUES (?1, ?2) "
	    "ON CONFLICT (counter) DO UPDATE SET n = n + excluded.n",
	/* A retry: the compare-and-set on the ended state is the statement
	 * itself (RETRY_SET), so two retries at once move the message once. */
	[ST_RETRY_MESSAGE] =
	    RETRY_SET "WHERE id = ?1 AND state = ?3 RETURNING key, coalesce(queue, 0)",
	/* The messages of a state that were due before ?4: a range of the
	 * state's index, earliest first. Those it retries are due at ?2, not
	 * before ?4, so a batch after it never takes them again (even when
	 * they have failed again meanwhile). (+state: each row is found by its
	 * key, not by walking the state's index.) */
	[ST_RETRY_ALL] =
	    RETRY_SET "WHERE key IN (SELECT key FROM messages WHERE state = ?3 AND due < ?4 "
	    "ORDER BY due, id LIMIT ?1) AND +state = ?3 RETURNING key, coalesce(queue, 0)",
	/* Its live row again, as an insert makes it: a pushed one in the
	 * buffer (due now), a queue's in its queue. */
	[ST_RETRY_LIVE] =
	    "INSERT INTO live (key, due, next_round, buffered, lease_ms, queue, priority, expires) "
	    "SELECT key, ?2, ?2, queue IS NULL, CASE WHEN queue IS NULL THEN timeout * 1000 * "
	    "(1 + length(urls) - length(replace(urls, char(10), ''))) ELSE 0 END, "
	    "coalesce(queue, 0), priority, expires FROM messages WHERE key = ?1",
	/* Retention: the oldest ended messages, one index range. */
	[ST_PURGE_MESSAGES] =
	    "DELETE FROM messages WHERE key IN (SELECT key FROM messages WHERE state <> 0 "
	    "AND ended < ?1 ORDER BY ended LIMIT ?2) "
	    "RETURNING key, state, coalesce(queue, 0), coalesce(publish, 0)",
	[ST_PURGE_PAYLOAD] = "DELETE FROM payloads WHERE key = ?1",
	[ST_PURGE_HISTORY] = "DELETE FROM history WHERE key = ?1",
	/* A publish is forgotten with its last copy: its idempotency key then
	 * makes a new one, as a message's does once the message is gone. */
	[ST_SUBSCRIPTION_COUNT] = "SELECT count(*) FROM subscriptions WHERE topic = ?1",
	[ST_PURGE_PUBLISH] =
	    "DELETE FROM publishes WHERE key = ?1 AND NOT EXISTS "
	    "(SELECT 1 FROM messages WHERE publish = ?1 AND publish IS NOT NULL)",
	/* A name is unique among the definitions that exist (a deleted one
	 * gives its name up): a taken one writes nothing. */
	[ST_REC_INSERT] =
	    "INSERT INTO recurring (id, name, cron, tz, urls, queue, payload, content_type, callback, "
	    "max_attempts, timeout, priority, ttl, created, next, make_at, topic, method, headers) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
	    "?18, ?19) "
	    "ON CONFLICT (name) DO NOTHING",
	[ST_REC_GET] =
	    "SELECT " RECURRING_COLUMNS " FROM recurring WHERE id = ?1 AND deleted IS NULL",
	[ST_REC_LIST] =
	    "SELECT " RECURRING_COLUMNS " FROM recurring WHERE deleted IS NULL AND created >= ?2 "
	    "ORDER BY created, key LIMIT ?1",
	[ST_REC_LATEST] =
	    "SELECT id FROM messages WHERE recurring = ?1 ORDER BY due DESC LIMIT ?2",
	[ST_REC_PAUSE] =
	    "UPDATE recurring SET paused = 1, next = NULL, make_at = NULL WHERE key = ?1",
	[ST_REC_RESUME] =
	    "UPDATE recurring SET paused = 0, next = ?2, make_at = ?3 WHERE key = ?1",
	[ST_REC_DELETE] =
	    "UPDATE recurring SET deleted = ?2, name = NULL, paused = 1, next = NULL, "
	    "make_at = NULL WHERE key = ?1",
	/* The occurrence that waits: made, still pending, never tried. */
	[ST_REC_WAITING] =
	    "SELECT m.id FROM messages m JOIN live l ON l.key = m.key "
	    "WHERE m.recurring = ?1 AND m.due = ?2 AND l.token = 0 AND l.attempts = 0",
	[ST_REC_TO_MAKE] =
	    "SELECT " RECURRING_COLUMNS " FROM recurring WHERE make_at <= ?1 "
	    "ORDER BY make_at LIMIT ?2",
	/* Compare-and-set on next: the occurrence read is the one advanced from. */
	[ST_REC_ADVANCE] =
	    "UPDATE recurring SET last = ?3, next = ?4, make_at = ?5 WHERE key = ?1 AND next = ?2",
	[ST_REC_MAKE_AT] = "SELECT min(make_at) FROM recurring WHERE make_at IS NOT NULL",
};

/* The counters of the totals table, numbered as sql/007-metrics.sql says. */
enum total {
	TOTAL_MADE,
	TOTAL_DELIVERED,
	TOTAL_FAILED,
	TOTAL_CANCELLED,
	TOTAL_EXPIRED,
	TOTAL_RECEIVES,
	TOTAL_ATTEMPTS,           /* + enum store_attempt_outcome */
	TOTAL_COUNT = TOTAL_ATTEMPTS + STORE_ATTEMPT_OUTCOMES
};

struct sqlite_store {
	struct pd_store base;     /* first: what store.c sees */
	sqlite3 *db;
	const struct pd_config *cfg;
	sqlite3_stmt *st[ST_COUNT];
	pd_ms busy_since;         /* when the current wait for a lock began */
	pd_ms write_asked;        /* while beginning a write: when the turn was asked for */
	long delta[PD_NSTATES];   /* count changes of the transaction in progress */
	struct queue_delta {      /* queue count changes of the transaction in progress */
		int64_t queue;
		int state;        /* 0 (alive) or a final state */
		long n;
	} queue_delta[QUEUE_DELTAS];
	int queue_deltas;
	long total[TOTAL_COUNT];  /* and what it adds to the totals */
	int writing;              /* holds this process's turn to write (threads_turn) */
	struct writer_turn *turn; /* the turn across processes (writer_turn.c), or NULL */
	int turn_taken;           /* holds that one */
};

/* The engine's store behind store.c's (its first member). */
static struct sqlite_store *
sqlite_of(struct pd_store *store)
{
	return (struct sqlite_store *)store;
}


/* Maps an SQLite result code to a store result, logging the unexpected. */
static enum store_result
store_fail(struct sqlite_store *s, int rc, const char *what)
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
	struct sqlite_store *s = ctx;
	pd_ms now = clock_monotonic();   /* a wait: never on the wall clock */
	struct timespec nap = { 0, 0 };

	if (tries == 0)
		s->busy_since = s->write_asked != 0 ? s->write_asked : now;
	if (now - s->busy_since >= STORE_BUSY_TIMEOUT_MS)
		return 0;
	nap.tv_nsec = (tries < 10 ? tries + 1 : 10) * 100000L;
	nanosleep(&nap, NULL);
	return 1;
}

/* Steps a statement that returns no rows we need, and resets it. */
static int
store_exec(struct sqlite_store *s, enum statement id)
{
	int rc = sqlite3_step(s->st[id]);

	sqlite3_reset(s->st[id]);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ---- transactions ---- */

/*
 * SQLite has one writer at a time. The threads of one process (a queue
 * program's requests, each with a connection of its own) take turns on this
 * mutex before they ask for the database's write lock: a thread waiting
 * here is woken the moment the turn is free, where one waiting for the
 * database lock sleeps and polls (on_busy) beside the other threads, and
 * may sleep past a lock that was free. Between processes the same is done
 * by the turn of writer_turn.c, which a thread asks for after this one.
 */
static pthread_mutex_t threads_turn = PTHREAD_MUTEX_INITIALIZER;

static void
writer_done(struct sqlite_store *s)
{
	if (s->turn_taken) {
		s->turn_taken = 0;
		writer_turn_give(s->turn);
	}
	if (s->writing) {
		s->writing = 0;
		pthread_mutex_unlock(&threads_turn);
	}
}

static enum store_result
tx_begin(struct sqlite_store *s, const char *what)
{
	int rc;

	pthread_mutex_lock(&threads_turn);
	s->writing = 1;
	/* Then the turn among processes (writer_turn.c); without it (no turn
	 * file, or a holder past the busy timeout) SQLite's lock still
	 * decides. The busy timeout counts from here: the wait for the turn is
	 * part of it. */
	s->write_asked = clock_monotonic();
	s->turn_taken = writer_turn_take(s->turn, STORE_BUSY_TIMEOUT_MS) == 0;
	rc = store_exec(s, ST_BEGIN);
	s->write_asked = 0;
	memset(s->delta, 0, sizeof(s->delta));
	s->queue_deltas = 0;
	memset(s->total, 0, sizeof(s->total));
	if (rc == SQLITE_OK)
		return STORE_OK;
	writer_done(s);
	return store_fail(s, rc, what);
}

/* One snapshot for the reads of one call; inside a write transaction (a
 * report reading history during a settle) that transaction is the snapshot. */
static int
read_begin(struct sqlite_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		return 0;
	return store_exec(s, ST_BEGIN_READ) == SQLITE_OK ? 1 : 0;
}

static void
read_end(struct sqlite_store *s, int began)
{
	if (began)
		store_exec(s, ST_COMMIT);
}

static void
tx_rollback(struct sqlite_store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		store_exec(s, ST_ROLLBACK);
	memset(s->delta, 0, sizeof(s->delta));
	s->queue_deltas = 0;
	memset(s->total, 0, sizeof(s->total));
	writer_done(s);
}

static int totals_apply(struct sqlite_store *s);

/* Writes out the queue count changes kept so far in this transaction. */
static int
write_queue_deltas(struct sqlite_store *s)
{
	sqlite3_stmt *st = s->st[ST_QUEUE_COUNT_DELTA];
	int rc = SQLITE_OK;

	for (int i = 0; i < s->queue_deltas && rc == SQLITE_OK; i++) {
		const struct queue_delta *d = &s->queue_delta[i];

		if (d->n == 0)
			continue;
		sqlite3_bind_int64(st, 1, d->queue);
		sqlite3_bind_int(st, 2, d->state);
		sqlite3_bind_int64(st, 3, d->n);
		rc = store_exec(s, ST_QUEUE_COUNT_DELTA);
	}
	if (rc == SQLITE_OK)
		s->queue_deltas = 0;
	return rc;
}

/* Applies the transaction's count deltas, one statement per state (and
 * queue) that changed, and its totals, and commits; rolls back when any
 * fails. */
static enum store_result
tx_commit(struct sqlite_store *s, const char *what)
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
		rc = write_queue_deltas(s);
	if (rc == SQLITE_OK)
		rc = totals_apply(s);
	if (rc == SQLITE_OK)
		rc = store_exec(s, ST_COMMIT);
	if (rc == SQLITE_OK) {
		memset(s->delta, 0, sizeof(s->delta));
		memset(s->total, 0, sizeof(s->total));
		writer_done(s);
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


/* The method in column c; a POST when it holds none this build knows. */
static enum pd_method
method_or_post(sqlite3_stmt *st, int c)
{
	const unsigned char *text = sqlite3_column_text(st, c);
	int known = text != NULL ? method_parse((const char *)text,
	                                        (size_t)sqlite3_column_bytes(st, c)) : -1;

	return known >= 0 ? (enum pd_method)known : PD_METHOD_POST;
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
	m->queue = column_strdup(st, c + 20);
	m->priority = sqlite3_column_int(st, c + 21);
	m->expires = sqlite3_column_int64(st, c + 22);
	m->envelope.method = method_or_post(st, c + 23);
	m->envelope.headers = column_strdup(st, c + 24);
	m->topic = column_strdup(st, c + 25);
	m->subscription = column_strdup(st, c + 26);
	m->recurring = column_strdup(st, c + 27);
	if (m->urls == NULL || m->content_type == NULL ||
	    (m->envelope.headers == NULL && sqlite3_column_type(st, c + 24) != SQLITE_NULL)) {
		message_free(m);
		return -1;
	}
	return 0;
}

/* Reads the payload in column c into m (NUL-terminated too, like every
 * payload). */
static int
column_payload(sqlite3_stmt *st, int c, struct pd_message *m)
{
	const void *blob = sqlite3_column_blob(st, c);
	size_t len = (size_t)sqlite3_column_bytes(st, c);

	if ((m->payload = malloc(len + 1)) == NULL)
		return -1;
	if (len > 0)
		memcpy(m->payload, blob, len);
	m->payload[len] = '\0';
	m->payload_len = len;
	return 0;
}



/* ---- opening ---- */

/* Runs the migrations this database has not had yet, each in its own
 * transaction that also sets user_version. Several programs may open a
 * new database at once: the IMMEDIATE transaction makes exactly one of
 * them run each migration, and the others find it done. */
static int
store_migrate(struct sqlite_store *s)
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
store_use_wal(struct sqlite_store *s)
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

static void
sqlite_close(struct pd_store *store)
{
	struct sqlite_store *s = sqlite_of(store);

	if (s == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	writer_turn_close(s->turn);
	free(s);
}

/* Before SQLite's first use in the process. Its memory statistics, which
 * nothing here reads, take a process-wide mutex on every allocation, which
 * the threads of a queue or schedule process then queue for: about 5% of
 * the queue program's instructions (callgrind). */
static void
sqlite_configure(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int
sqlite_open(struct pd_store **out, const struct pd_config *cfg)
{
	static pthread_once_t configured = PTHREAD_ONCE_INIT;
	struct sqlite_store *s;
	int rc;

	pthread_once(&configured, sqlite_configure);
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -1;
	s->base.engine = &store_sqlite_engine;
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
	if ((s->turn = writer_turn_open(cfg->database)) == NULL)
		log_warn("store: %s-turn: %s: the writers of several processes will poll for the "
		         "database's lock instead of queueing for it", cfg->database, strerror(errno));
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
	*out = &s->base;
	return 0;
fail:
	sqlite_close(&s->base);
	return -1;
}

/* ---- scheduling ---- */

/* Reads message id into m (the snapshot is the caller's). */
static enum store_result
read_message(struct sqlite_store *s, const char *id, struct pd_message *m)
{
	sqlite3_stmt *st = s->st[ST_GET];
	enum store_result res;
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		res = row_to_message(st, 0, m, 0) == 0 ? STORE_OK : STORE_ERROR;
		if (res == STORE_OK && column_payload(st, MESSAGE_NCOLUMNS, m) != 0) {
			message_free(m);
			res = STORE_ERROR;
		}
	} else if (rc == SQLITE_DONE)
		res = STORE_NOTFOUND;
	else
		res = store_fail(s, rc, "reading a message");
	sqlite3_reset(st);
	return res;
}

/* The message that holds m's idempotency key: STORE_EXISTS with m replaced
 * by it when the requests agree, STORE_CONFLICT when they do not,
 * STORE_NOTFOUND when no message holds it. */
static enum store_result
existing_for_key(struct sqlite_store *s, struct pd_message *m, const unsigned char *print)
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
		return rc == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, rc, "reading a key");
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

/* A queue as a transaction reads it. */
struct queue_row {
	int64_t key;
	int visibility;
	int max_attempts;
	long max_depth;
	int paused;
	long alive;               /* pending + delivering */
};

/* What this transaction has added to queue's alive count so far. */
static long
queue_alive_change(const struct sqlite_store *s, int64_t queue)
{
	for (int i = 0; i < s->queue_deltas; i++)
		if (s->queue_delta[i].queue == queue && s->queue_delta[i].state == 0)
			return s->queue_delta[i].n;
	return 0;
}

/* Reads queue name into q; SQLITE_DONE when there is none. */
static int
find_queue(struct sqlite_store *s, const char *name, struct queue_row *q, char *shown, size_t len)
{
	sqlite3_stmt *st = s->st[ST_QUEUE_FIND];
	int rc;

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		q->key = sqlite3_column_int64(st, 0);
		if (shown != NULL)
			snprintf(shown, len, "%s", (const char *)sqlite3_column_text(st, 1));
		q->visibility = sqlite3_column_int(st, 2);
		q->max_attempts = sqlite3_column_int(st, 3);
		q->max_depth = (long)sqlite3_column_int64(st, 4);
		q->paused = sqlite3_column_int(st, 5);
		q->alive = (long)sqlite3_column_int64(st, 6) + queue_alive_change(s, q->key);
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	return rc;
}

/* Reads queue name into q, making it with the configured defaults when it
 * is new (inside the caller's transaction). */
static int
make_queue(struct sqlite_store *s, const char *name, pd_ms now, struct queue_row *q)
{
	sqlite3_stmt *st = s->st[ST_QUEUE_MAKE];
	int rc;

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, s->cfg->queue_visibility);
	sqlite3_bind_int(st, 3, s->cfg->default_max_attempts);
	sqlite3_bind_int64(st, 4, now);
	if ((rc = store_exec(s, ST_QUEUE_MAKE)) != SQLITE_OK)
		return rc;
	if (sqlite3_changes(s->db) > 0) {
		sqlite3_bind_int64(s->st[ST_QUEUE_COUNTS_MAKE], 1, sqlite3_last_insert_rowid(s->db));
		if ((rc = store_exec(s, ST_QUEUE_COUNTS_MAKE)) != SQLITE_OK)
			return rc;
	}
	rc = find_queue(s, name, q, NULL, 0);
	return rc == SQLITE_DONE ? SQLITE_ERROR : rc;
}

/* The change kept for queue's state in this transaction, made on first use. */
static struct queue_delta *
queue_delta_of(struct sqlite_store *s, int64_t queue, int state)
{
	for (int i = 0; i < s->queue_deltas; i++)
		if (s->queue_delta[i].queue == queue && s->queue_delta[i].state == state)
			return &s->queue_delta[i];
	if (s->queue_deltas == QUEUE_DELTAS)
		return NULL;
	s->queue_delta[s->queue_deltas] = (struct queue_delta){ queue, state, 0 };
	return &s->queue_delta[s->queue_deltas++];
}

/* Moves one message of queue from one state to another in the queue's
 * figures (0: alive; -1: none, for a new or a removed message). The change
 * is kept in the transaction and written once at its commit, one statement
 * per queue and state however many messages moved. */
static int
queue_move(struct sqlite_store *s, int64_t queue, int from, int to)
{
	int rc;

	if (queue == 0)
		return SQLITE_OK;
	for (int i = 0; i < 2; i++) {
		int state = i == 0 ? from : to;
		struct queue_delta *d;

		if (state < 0)
			continue;
		state = state == PD_DELIVERING ? 0 : state;
		if ((d = queue_delta_of(s, queue, state)) == NULL) {
			if ((rc = write_queue_deltas(s)) != SQLITE_OK)
				return rc;
			d = queue_delta_of(s, queue, state);
		}
		d->n += i == 0 ? -1 : 1;
	}
	return SQLITE_OK;
}

/* Inserts m, inside the caller's transaction: the message row and its live
 * row, in the buffer when due within the horizon (a queue's message: in its
 * queue). STORE_EXISTS or STORE_CONFLICT when its idempotency key is
 * taken, STORE_QUEUE_FULL when its queue is at max_depth. */
static enum store_result
insert_message(struct sqlite_store *s, struct pd_message *m, pd_ms now, int64_t publish)
{
	sqlite3_stmt *st = s->st[ST_INSERT_MESSAGE], *live = s->st[ST_INSERT_LIVE];
	unsigned char print[FINGERPRINT_LEN];
	struct queue_row q = { 0 };
	int rc, npool = 1;
	sqlite3_int64 key;

	if (m->queue != NULL) {
		if ((rc = make_queue(s, m->queue, now, &q)) != SQLITE_OK)
			return store_fail(s, rc, "finding a queue");
		if (m->max_attempts == 0)
			m->max_attempts = q.max_attempts;
	}
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
	if (q.key != 0)
		sqlite3_bind_int64(st, 13, q.key);
	else
		sqlite3_bind_null(st, 13);
	sqlite3_bind_int(st, 14, m->priority);
	bind_time_or_null(st, 15, m->expires);
	sqlite3_bind_text(st, 16, method_name(m->envelope.method), -1, SQLITE_STATIC);
	bind_text_or_null(st, 17, m->envelope.headers);
	if (publish != 0)
		sqlite3_bind_int64(st, 18, publish);
	else
		sqlite3_bind_null(st, 18);
	bind_text_or_null(st, 19, m->subscription);
	bind_text_or_null(st, 20, m->recurring);
	/* At the high-water mark nothing is written; a repeated request
	 * still gets the message its key holds. */
	if (q.key != 0 && q.max_depth > 0 && q.alive >= q.max_depth) {
		enum store_result res = STORE_NOTFOUND;

		sqlite3_clear_bindings(st);
		if (m->idempotency_key != NULL)
			res = existing_for_key(s, m, print);
		return res == STORE_NOTFOUND ? STORE_QUEUE_FULL : res;
	}
	rc = store_exec(s, ST_INSERT_MESSAGE);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "inserting a message");
	if (sqlite3_changes(s->db) == 0) {
		enum store_result res;

		/* An occurrence of a recurring definition made already. */
		if (m->recurring != NULL)
			return STORE_EXISTS;
		res = existing_for_key(s, m, print);

		return res == STORE_NOTFOUND ? STORE_ERROR : res;
	}
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
	sqlite3_bind_int(live, 3, q.key == 0 &&
	    m->next_attempt <= now + (pd_ms)s->cfg->buffer_horizon * PD_MS_PER_S);
	/* A lease covers a whole round: a timeout for every URL of the pool.
	 * A receive leases for its visibility instead. */
	sqlite3_bind_int64(live, 4, q.key != 0 ? 0 :
	    (sqlite3_int64)m->timeout * PD_MS_PER_S * npool);
	sqlite3_bind_int64(live, 5, q.key);
	sqlite3_bind_int(live, 6, m->priority);
	bind_time_or_null(live, 7, m->expires);
	rc = store_exec(s, ST_INSERT_LIVE);
	sqlite3_clear_bindings(live);
	if (rc == SQLITE_OK)
		rc = queue_move(s, q.key, -1, 0);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "inserting a message");
	s->delta[PD_PENDING]++;
	s->total[TOTAL_MADE]++;
	return STORE_OK;
}

/* ---- topics ---- */

/* A topic's key, or 0 (SQLITE_DONE) when there is none. */
static int
find_topic(struct sqlite_store *s, const char *name, int64_t *key)
{
	sqlite3_stmt *st = s->st[ST_TOPIC_FIND];
	int rc;

	*key = 0;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*key = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_reset(st);
	return rc;
}

/* Reads the subscriptions of topic (at most PD_MAX_SUBSCRIPTIONS) into
 * *subs, a new array of *n destinations, each one's name in subscription. */
static int
read_subscriptions(struct sqlite_store *s, int64_t topic, struct pd_message **subs, int *n)
{
	sqlite3_stmt *st = s->st[ST_SUBSCRIPTIONS_OF];
	int rc, room = 0;

	*subs = NULL;
	*n = 0;
	sqlite3_bind_int64(st, 1, topic);
	sqlite3_bind_int(st, 2, PD_MAX_SUBSCRIPTIONS);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct pd_message *d;

		if (*n == room) {
			void *more = realloc(*subs, (size_t)(room = room ? 2 * room : 8) * sizeof(**subs));

			if (more == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			*subs = more;
		}
		d = &(*subs)[(*n)++];
		memset(d, 0, sizeof(*d));
		d->subscription = column_strdup(st, 0);
		d->urls = column_strdup(st, 1);
		d->queue = column_strdup(st, 2);
		d->callback = column_strdup(st, 3);
		d->max_attempts = sqlite3_column_int(st, 4);
		d->timeout = sqlite3_column_int(st, 5);
		d->created = sqlite3_column_int64(st, 6);
		d->envelope.method = method_or_post(st, 7);
		d->envelope.headers = column_strdup(st, 8);
		if (d->subscription == NULL || d->urls == NULL ||
		    (d->envelope.headers == NULL && sqlite3_column_type(st, 8) != SQLITE_NULL)) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Frees what read_subscriptions read. */
static void
subscriptions_free(struct pd_message *subs, int n)
{
	for (int i = 0; i < n; i++)
		message_free(&subs[i]);
	free(subs);
}

/* The copies publish made, into m->deliveries. */
static int
read_deliveries(struct sqlite_store *s, int64_t publish, struct pd_message *m)
{
	sqlite3_stmt *st = s->st[ST_PUBLISH_DELIVERIES];
	int rc;

	size_t room = 0;

	free(m->deliveries);
	m->deliveries = NULL;
	m->ndeliveries = 0;
	sqlite3_bind_int64(st, 1, publish);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 0);
		struct pd_delivery *d;

		if (m->ndeliveries == room) {
			void *more = realloc(m->deliveries,
			                     (room = room ? 2 * room : 8) * sizeof(*m->deliveries));

			if (more == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			m->deliveries = more;
		}
		d = &m->deliveries[m->ndeliveries++];

		snprintf(d->subscription, sizeof(d->subscription), "%s",
		         name != NULL ? (const char *)name : "");
		snprintf(d->id, sizeof(d->id), "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* What a reused idempotency key of a publish answers: STORE_EXISTS with
 * the first publish's copies in m, or STORE_CONFLICT when the request
 * differs. */
static enum store_result
existing_publish(struct sqlite_store *s, struct pd_message *m, const unsigned char *print)
{
	sqlite3_stmt *st = s->st[ST_PUBLISH_BY_KEY];
	int64_t key;
	int rc, same;

	sqlite3_bind_text(st, 1, m->idempotency_key, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? STORE_ERROR : store_fail(s, rc, "reading a publish");
	}
	key = sqlite3_column_int64(st, 0);
	same = sqlite3_column_bytes(st, 1) == FINGERPRINT_LEN &&
	    memcmp(sqlite3_column_blob(st, 1), print, FINGERPRINT_LEN) == 0;
	m->due = sqlite3_column_int64(st, 2);
	m->created = sqlite3_column_int64(st, 3);
	sqlite3_reset(st);
	if (!same)
		return STORE_CONFLICT;
	if ((rc = read_deliveries(s, key, m)) != SQLITE_OK)
		return store_fail(s, rc, "reading a publish");
	return STORE_EXISTS;
}

/* Makes the copies of topic message m, one per subscription of its topic,
 * inside the batch's transaction: all of them or none (a savepoint), with
 * room for at most room more pending messages. STORE_NOTFOUND for a topic
 * without subscriptions; STORE_QUEUE_FULL (m->subscription naming it) when
 * a subscribed queue is at its max_depth; STORE_EXISTS / STORE_CONFLICT
 * for a reused idempotency key. */
static enum store_result
publish_in_tx(struct sqlite_store *s, struct pd_message *m, pd_ms now, long room)
{
	sqlite3_stmt *st = s->st[ST_PUBLISH_INSERT];
	unsigned char print[FINGERPRINT_LEN];
	long delta[PD_NSTATES], total[TOTAL_COUNT];
	struct queue_delta queue_delta[QUEUE_DELTAS];
	int queue_deltas = s->queue_deltas, nsubs = 0, rc;
	struct pd_message *subs = NULL;
	enum store_result res = STORE_ERROR;
	int64_t topic, publish;

	/* A savepoint undoes the database; the counts kept in memory are
	 * put back by hand. */
	memcpy(delta, s->delta, sizeof(delta));
	memcpy(total, s->total, sizeof(total));
	memcpy(queue_delta, s->queue_delta, sizeof(queue_delta));
	if ((rc = store_exec(s, ST_SAVEPOINT)) != SQLITE_OK)
		return store_fail(s, rc, "publishing");
	if ((rc = find_topic(s, m->topic, &topic)) != SQLITE_OK) {
		res = rc == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, rc, "finding a topic");
		goto undo;
	}
	m->max_attempts = s->cfg->default_max_attempts;
	m->timeout = s->cfg->default_timeout;
	if (fingerprint(m, print) != 0)
		goto undo;
	m->created = now;
	sqlite3_bind_int64(st, 1, topic);
	sqlite3_bind_int64(st, 2, m->due);
	sqlite3_bind_int64(st, 3, now);
	bind_text_or_null(st, 4, m->idempotency_key);
	sqlite3_bind_blob(st, 5, print, FINGERPRINT_LEN, SQLITE_STATIC);
	bind_text_or_null(st, 6, m->recurring);
	rc = store_exec(s, ST_PUBLISH_INSERT);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK) {
		res = store_fail(s, rc, "publishing");
		goto undo;
	}
	if (sqlite3_changes(s->db) == 0) {
		/* A recurring definition's occurrence made already, or a key used. */
		res = m->recurring != NULL ? STORE_EXISTS : existing_publish(s, m, print);
		goto undo;
	}
	publish = sqlite3_last_insert_rowid(s->db);
	if ((rc = read_subscriptions(s, topic, &subs, &nsubs)) != SQLITE_OK) {
		res = store_fail(s, rc, "reading subscriptions");
		goto undo;
	}
	if (nsubs == 0) {
		res = STORE_NOTFOUND;
		goto undo;
	}
	if ((m->deliveries = calloc((size_t)nsubs, sizeof(*m->deliveries))) == NULL)
		goto undo;
	if (nsubs > room) {
		res = STORE_FULL;
		goto undo;
	}
	for (int i = 0; i < nsubs; i++) {
		struct pd_message *d = &subs[i];
		/* The copy borrows the publish's payload and the subscription's
		 * destination: nothing of it is freed on its own. */
		struct pd_message copy = {
			.state = PD_PENDING, .due = m->due, .next_attempt = m->next_attempt,
			.priority = m->priority, .expires = m->expires,
			.payload = m->payload, .payload_len = m->payload_len,
			.content_type = m->content_type,
			.urls = d->urls, .queue = d->queue, .callback = d->callback,
			.max_attempts = d->max_attempts, .timeout = d->timeout,
			.envelope = d->envelope, .subscription = d->subscription,
			.recurring = m->recurring,
		};

		res = insert_message(s, &copy, now, publish);
		if (res != STORE_OK) {
			if (res == STORE_QUEUE_FULL) {
				free(m->subscription);
				m->subscription = strdup(d->subscription);
			}
			goto undo;
		}
		snprintf(m->deliveries[i].subscription, sizeof(m->deliveries[i].subscription), "%s",
		         d->subscription);
		memcpy(m->deliveries[i].id, copy.id, sizeof(copy.id));
		m->ndeliveries++;
	}
	if ((rc = store_exec(s, ST_SAVEPOINT_RELEASE)) != SQLITE_OK) {
		res = store_fail(s, rc, "publishing");
		goto undo;
	}
	res = STORE_OK;
	goto done;
undo:
	/* Inside a transaction SQLite may have rolled back already (I/O):
	 * then there is no savepoint left to return to. */
	if (!sqlite3_get_autocommit(s->db)) {
		store_exec(s, ST_SAVEPOINT_ROLLBACK);
		store_exec(s, ST_SAVEPOINT_RELEASE);
	}
	memcpy(s->delta, delta, sizeof(delta));
	memcpy(s->total, total, sizeof(total));
	memcpy(s->queue_delta, queue_delta, sizeof(queue_delta));
	s->queue_deltas = queue_deltas;
	if (res != STORE_EXISTS) {
		free(m->deliveries);
		m->deliveries = NULL;
		m->ndeliveries = 0;
	}
done:
	subscriptions_free(subs, nsubs);
	return res;
}

static enum store_result
sqlite_subscribe(struct pd_store *store, const char *topic, const char *name,
                 const struct pd_message *dest, pd_ms now, int *created)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st;
	enum store_result res;
	int64_t key;
	int rc;

	*created = 0;
	if ((res = tx_begin(s, "beginning a subscribe")) != STORE_OK)
		return res;
	sqlite3_bind_text(s->st[ST_TOPIC_MAKE], 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->st[ST_TOPIC_MAKE], 2, now);
	if ((rc = store_exec(s, ST_TOPIC_MAKE)) != SQLITE_OK ||
	    (rc = find_topic(s, topic, &key)) != SQLITE_OK)
		goto failed;
	/* Made, or else replaced: each one statement on the row. */
	for (int i = 0; i < 2; i++) {
		st = s->st[i == 0 ? ST_SUBSCRIBE : ST_SUBSCRIPTION_CHANGE];
		sqlite3_bind_int64(st, 1, key);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, dest->urls, -1, SQLITE_STATIC);
		bind_text_or_null(st, 4, dest->queue);
		bind_text_or_null(st, 5, dest->callback);
		sqlite3_bind_int(st, 6, dest->max_attempts);
		sqlite3_bind_int(st, 7, dest->timeout);
		sqlite3_bind_text(st, 8, method_name(dest->envelope.method), -1, SQLITE_STATIC);
		bind_text_or_null(st, 9, dest->envelope.headers);
		if (i == 0)
			sqlite3_bind_int64(st, 10, now);
		rc = store_exec(s, i == 0 ? ST_SUBSCRIBE : ST_SUBSCRIPTION_CHANGE);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_OK)
			goto failed;
		if (i == 0 && sqlite3_changes(s->db) == 1) {
			*created = 1;
			break;
		}
	}
	/* A publish copies to every subscription or refuses: a topic never
	 * holds more than a publish reads. */
	if (*created) {
		sqlite3_stmt *count = s->st[ST_SUBSCRIPTION_COUNT];
		long n = 0;

		sqlite3_bind_int64(count, 1, key);
		if ((rc = sqlite3_step(count)) == SQLITE_ROW)
			n = (long)sqlite3_column_int64(count, 0);
		sqlite3_reset(count);
		if (rc != SQLITE_ROW)
			goto failed;
		if (n > PD_MAX_SUBSCRIPTIONS) {
			*created = 0;
			tx_rollback(s);
			return STORE_FULL;
		}
	}
	return tx_commit(s, "committing a subscribe");
failed:
	res = store_fail(s, rc, "subscribing");
	tx_rollback(s);
	return res;
}

static enum store_result
sqlite_unsubscribe(struct pd_store *store, const char *topic, const char *name)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_UNSUBSCRIBE];
	enum store_result res;
	int rc;

	if ((res = tx_begin(s, "beginning an unsubscribe")) != STORE_OK)
		return res;
	sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if ((rc = store_exec(s, ST_UNSUBSCRIBE)) != SQLITE_OK) {
		res = store_fail(s, rc, "unsubscribing");
		tx_rollback(s);
		return res;
	}
	if (sqlite3_changes(s->db) == 0) {
		tx_rollback(s);
		return STORE_NOTFOUND;
	}
	return tx_commit(s, "committing an unsubscribe");
}

/* Hands fn the subscriptions of one topic, or the topic alone (sub NULL)
 * when it has none. */
static enum store_result
hand_over_topic(struct sqlite_store *s, int64_t key, const char *name, store_subscription_fn fn,
                void *ctx)
{
	struct pd_message *subs;
	enum store_result res = STORE_OK;
	int n = 0, rc;

	if ((rc = read_subscriptions(s, key, &subs, &n)) != SQLITE_OK)
		res = store_fail(s, rc, "reading subscriptions");
	else if (n == 0 && fn(ctx, name, NULL) != 0)
		res = STORE_ERROR;
	for (int i = 0; i < n && res == STORE_OK; i++)
		if (fn(ctx, name, &subs[i]) != 0)
			res = STORE_ERROR;
	subscriptions_free(subs, n);
	return res;
}

static enum store_result
sqlite_topics(struct pd_store *store, const char *topic, store_subscription_fn fn, void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_TOPIC_NAMES];
	struct topic_name { int64_t key; char name[PD_MAX_QUEUE_NAME + 1]; } *names = NULL;
	enum store_result res = STORE_OK;
	size_t n = 0, room = 0;
	int began = read_begin(s), rc;

	if (topic != NULL) {
		int64_t key;

		if ((rc = find_topic(s, topic, &key)) == SQLITE_OK)
			res = hand_over_topic(s, key, topic, fn, ctx);
		else
			res = rc == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, rc, "finding a topic");
		read_end(s, began);
		return res;
	}
	/* The names first, then each topic's subscriptions: no statement is
	 * stepped inside another. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == room) {
			void *more = realloc(names, (room = room ? 2 * room : 16) * sizeof(*names));

			if (more == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			names = more;
		}
		names[n].key = sqlite3_column_int64(st, 0);
		snprintf(names[n].name, sizeof(names[n].name), "%s",
		         (const char *)sqlite3_column_text(st, 1));
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		res = store_fail(s, rc, "listing topics");
	for (size_t i = 0; i < n && res == STORE_OK; i++)
		res = hand_over_topic(s, names[i].key, names[i].name, fn, ctx);
	free(names);
	read_end(s, began);
	return res;
}

/* Whether a result means the message is (or already was) in the store. */
static int
stored(enum store_result res)
{
	return res == STORE_OK || res == STORE_EXISTS;
}

/* The pending count, as committed, for the max_pending check. */
static int
pending_count(struct sqlite_store *s, long *n)
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

static void
sqlite_insert_batch(struct pd_store *store, struct store_insert *items, size_t n)
{
	struct sqlite_store *s = sqlite_of(store);
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
		if (items[i].message->topic != NULL)
			items[i].result = publish_in_tx(s, items[i].message, items[i].now,
			                                s->cfg->max_pending - pending -
			                                s->delta[PD_PENDING]);
		else
			items[i].result = insert_message(s, items[i].message, items[i].now, 0);
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


static enum store_result
sqlite_cancel(struct pd_store *store, const char *id, enum pd_state *state)
{
	struct sqlite_store *s = sqlite_of(store);
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
		sqlite3_int64 queue = sqlite3_column_int64(del, 3);

		sqlite3_reset(del);
		sqlite3_bind_int64(end, 1, key);
		sqlite3_bind_int(end, 2, PD_CANCELLED);
		sqlite3_bind_int64(end, 3, time_now());
		sqlite3_bind_int(end, 4, attempts);
		sqlite3_bind_int64(end, 5, gone);
		rc = store_exec(s, ST_END_MESSAGE);
		sqlite3_clear_bindings(end);
		if (rc == SQLITE_OK)
			rc = queue_move(s, queue, 0, PD_CANCELLED);
		if (rc != SQLITE_OK) {
			res = store_fail(s, rc, "cancelling");
			goto out;
		}
		s->delta[PD_PENDING]--;
		s->delta[PD_CANCELLED]++;
		s->total[TOTAL_CANCELLED]++;
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
read_history(struct sqlite_store *s, const char *id, store_attempt_fn fn, void *ctx)
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

static enum store_result
sqlite_get(struct pd_store *store, const char *id, struct pd_message *m, store_attempt_fn fn,
           void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
	int began = read_begin(s);
	enum store_result res = read_message(s, id, m);

	if (res == STORE_OK && fn != NULL && (res = read_history(s, id, fn, ctx)) != STORE_OK)
		message_free(m);
	read_end(s, began);
	return res;
}

static enum store_result
sqlite_history(struct pd_store *store, const char *id, store_attempt_fn fn, void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
	int began = read_begin(s);
	enum store_result res = read_history(s, id, fn, ctx);

	read_end(s, began);
	return res;
}

static enum store_result
read_counts(struct sqlite_store *s, long counts[PD_NSTATES])
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

static enum store_result
sqlite_counts(struct pd_store *store, long counts[PD_NSTATES])
{
	struct sqlite_store *s = sqlite_of(store);
	int began = read_begin(s);
	enum store_result res = read_counts(s, counts);

	read_end(s, began);
	return res;
}

/* ---- queues: settings and figures ---- */

/* Steps through the priority levels of queue (or of the buffer, queue 0):
 * the next level above after, in *level. SQLITE_ROW when there is one,
 * SQLITE_DONE when there is none, else an SQLite error. */
static int
next_level(struct sqlite_store *s, int64_t queue, int after, int *level)
{
	enum statement id = queue != 0 ? ST_QUEUE_PRIORITY_AFTER : ST_BUFFER_PRIORITY_AFTER;
	sqlite3_stmt *st = s->st[id];
	int rc;

	if (queue != 0) {
		sqlite3_bind_int64(st, 1, queue);
		sqlite3_bind_int(st, 2, after);
	} else
		sqlite3_bind_int(st, 1, after);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			*level = sqlite3_column_int(st, 0);
		else
			rc = SQLITE_DONE;
	}
	sqlite3_reset(st);
	return rc;
}

#define FIRST_LEVEL (PD_MIN_PRIORITY - 1)

/* The earliest value a one-row "SELECT min(due) ... priority = ?" gives
 * over every priority level; 0 when none. */
static int
earliest_over_levels(struct sqlite_store *s, int64_t queue, pd_ms *out)
{
	enum statement id = queue != 0 ? ST_QUEUE_EARLIEST : ST_EARLIEST_BUFFERED_AT;
	sqlite3_stmt *st = s->st[id];
	int level = FIRST_LEVEL, rc;

	*out = 0;
	while ((rc = next_level(s, queue, level, &level)) == SQLITE_ROW) {
		if (queue != 0) {
			sqlite3_bind_int64(st, 1, queue);
			sqlite3_bind_int(st, 2, level);
		} else
			sqlite3_bind_int(st, 1, level);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
			pd_ms t = sqlite3_column_int64(st, 0);

			if (*out == 0 || t < *out)
				*out = t;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_ROW)
			return rc;
	}
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Fills the figures of queue q (its key, its alive count read) as of now. */
static int
queue_figures(struct sqlite_store *s, const struct queue_row *row, pd_ms now, struct pd_queue *q)
{
	sqlite3_stmt *st = s->st[ST_QUEUE_COUNTS];
	int level = FIRST_LEVEL, rc;

	q->visibility = row->visibility;
	q->max_attempts = row->max_attempts;
	q->max_depth = row->max_depth;
	q->paused = row->paused;
	q->ready = q->delivering = 0;
	q->oldest_ready = 0;
	if ((rc = write_queue_deltas(s)) != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, row->key);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		long n = (long)sqlite3_column_int64(st, 1);

		switch (sqlite3_column_int(st, 0)) {
		case PD_DELIVERED: q->delivered = n; break;
		case PD_FAILED: q->failed = n; break;
		case PD_CANCELLED: q->cancelled = n; break;
		case PD_EXPIRED: q->expired = n; break;
		default: break;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc;
	/* Ready and leased, a priority level at a time: index ranges. A lease
	 * that ran out counts as ready: the message is receivable. */
	while ((rc = next_level(s, row->key, level, &level)) == SQLITE_ROW) {
		sqlite3_stmt *ready = s->st[ST_QUEUE_READY_COUNT];
		sqlite3_stmt *leased = s->st[ST_QUEUE_LEASED_COUNT];

		sqlite3_bind_int64(ready, 1, row->key);
		sqlite3_bind_int(ready, 2, level);
		sqlite3_bind_int64(ready, 3, now);
		if ((rc = sqlite3_step(ready)) == SQLITE_ROW) {
			q->ready += (long)sqlite3_column_int64(ready, 0);
			if (sqlite3_column_type(ready, 1) != SQLITE_NULL &&
			    (q->oldest_ready == 0 || sqlite3_column_int64(ready, 1) < q->oldest_ready))
				q->oldest_ready = sqlite3_column_int64(ready, 1);
		}
		sqlite3_reset(ready);
		if (rc != SQLITE_ROW)
			return rc;
		sqlite3_bind_int64(leased, 1, row->key);
		sqlite3_bind_int(leased, 2, level);
		sqlite3_bind_int64(leased, 3, now);
		if ((rc = sqlite3_step(leased)) == SQLITE_ROW)
			q->delivering += (long)sqlite3_column_int64(leased, 0);
		sqlite3_reset(leased);
		if (rc != SQLITE_ROW)
			return rc;
	}
	if (rc != SQLITE_DONE)
		return rc;
	q->pending = row->alive - q->delivering;
	return SQLITE_OK;
}

static enum store_result
read_queue(struct sqlite_store *s, const char *name, pd_ms now, struct pd_queue *q)
{
	struct queue_row row;
	int rc;

	memset(q, 0, sizeof(*q));
	rc = find_queue(s, name, &row, q->name, sizeof(q->name));
	if (rc == SQLITE_DONE)
		return STORE_NOTFOUND;
	if (rc == SQLITE_OK)
		rc = queue_figures(s, &row, now, q);
	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "reading a queue");
}

/* A queue's messages per state, as the list's counts. */
static enum store_result
read_queue_counts(struct sqlite_store *s, const char *name, pd_ms now, long counts[PD_NSTATES])
{
	struct pd_queue q;
	enum store_result res = read_queue(s, name, now, &q);

	memset(counts, 0, sizeof(long) * PD_NSTATES);
	if (res == STORE_NOTFOUND)
		return STORE_OK;
	counts[PD_PENDING] = q.pending;
	counts[PD_DELIVERING] = q.delivering;
	counts[PD_DELIVERED] = q.delivered;
	counts[PD_FAILED] = q.failed;
	counts[PD_CANCELLED] = q.cancelled;
	counts[PD_EXPIRED] = q.expired;
	return res;
}

static enum store_result
sqlite_queue_get(struct pd_store *store, const char *name, pd_ms now, struct pd_queue *q)
{
	struct sqlite_store *s = sqlite_of(store);
	int began = read_begin(s);
	enum store_result res = read_queue(s, name, now, q);

	read_end(s, began);
	return res;
}

static enum store_result
sqlite_queue_list(struct pd_store *store, pd_ms now, store_queue_fn fn, void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_QUEUE_NAMES];
	enum store_result res = STORE_OK;
	char (*names)[PD_MAX_QUEUE_NAME + 1] = NULL;
	size_t n = 0, room = 0;
	int rc, began = read_begin(s);

	/* The names first: reading a queue steps other statements. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == room) {
			void *more = realloc(names, (room = room ? 2 * room : 16) * sizeof(*names));

			if (more == NULL) {
				res = STORE_ERROR;
				break;
			}
			names = more;
		}
		snprintf(names[n++], sizeof(*names), "%s", (const char *)sqlite3_column_text(st, 0));
	}
	if (res == STORE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		res = store_fail(s, rc, "listing queues");
	sqlite3_reset(st);
	for (size_t i = 0; i < n && res == STORE_OK; i++) {
		struct pd_queue q;

		if ((res = read_queue(s, names[i], now, &q)) == STORE_OK && fn(ctx, &q) != 0)
			break;
	}
	read_end(s, began);
	free(names);
	return res;
}

static enum store_result
sqlite_queue_set(struct pd_store *store, const struct pd_queue_change *c, pd_ms now,
                 struct pd_queue *q)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_QUEUE_CHANGE];
	struct queue_row row;
	enum store_result res;
	int rc;

	if ((res = tx_begin(s, "beginning a queue change")) != STORE_OK)
		return res;
	rc = make_queue(s, c->name, now, &row);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
		if (c->visibility > 0)
			sqlite3_bind_int(st, 2, c->visibility);
		if (c->max_attempts > 0)
			sqlite3_bind_int(st, 3, c->max_attempts);
		if (c->max_depth >= 0)
			sqlite3_bind_int64(st, 4, c->max_depth);
		if (c->paused >= 0)
			sqlite3_bind_int(st, 5, c->paused != 0);
		rc = store_exec(s, ST_QUEUE_CHANGE);
		sqlite3_clear_bindings(st);
	}
	if (rc != SQLITE_OK) {
		res = store_fail(s, rc, "changing a queue");
		tx_rollback(s);
		return res;
	}
	if ((res = tx_commit(s, "committing a queue change")) != STORE_OK)
		return res;
	return sqlite_queue_get(&s->base, c->name, now, q);
}

static enum store_result
sqlite_list(struct pd_store *store, int state, const char *queue, pd_ms after_due,
            const char *after_id, int limit, store_message_fn fn, void *ctx,
            long counts[PD_NSTATES])
{
	struct sqlite_store *s = sqlite_of(store);
	enum statement which = state < 0 ? ST_LIST_ALL :
	    state == PD_PENDING || state == PD_DELIVERING ? ST_LIST_ALIVE : ST_LIST_STATE;
	sqlite3_stmt *st;
	enum store_result res = STORE_OK;
	int rc, began = read_begin(s);

	if (queue != NULL)
		which = which == ST_LIST_ALL ? ST_LIST_QUEUE_ALL :
		    which == ST_LIST_ALIVE ? ST_LIST_QUEUE_ALIVE : ST_LIST_QUEUE_STATE;
	st = s->st[which];
	if (which == ST_LIST_ALIVE || which == ST_LIST_QUEUE_ALIVE)
		sqlite3_bind_int(st, 1, state == PD_DELIVERING);
	else if (which == ST_LIST_STATE || which == ST_LIST_QUEUE_STATE)
		sqlite3_bind_int(st, 1, state);
	if (queue != NULL)
		sqlite3_bind_text(st, 5, queue, -1, SQLITE_STATIC);
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
		res = queue != NULL ? read_queue_counts(s, queue, time_now(), counts)
		                    : read_counts(s, counts);
	read_end(s, began);
	return res;
}

/* The smallest value a one-row "SELECT min(...)" gives, or 0 when NULL. */
static int
store_min(struct sqlite_store *s, enum statement id, pd_ms *out)
{
	sqlite3_stmt *st = s->st[id];
	int rc = sqlite3_step(st);

	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static enum store_result
sqlite_health(struct pd_store *store, long counts[PD_NSTATES], pd_ms *earliest)
{
	struct sqlite_store *s = sqlite_of(store);
	pd_ms buffered = 0, unbuffered = 0;
	enum store_result res;
	int rc, began = read_begin(s);

	/* Both minimums are index lookups; a single min over all live
	 * messages would have to merge the buffer with the far future. */
	if ((res = read_counts(s, counts)) == STORE_OK &&
	    ((rc = earliest_over_levels(s, 0, &buffered)) != SQLITE_OK ||
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

static int
sqlite_sync_normal(struct pd_store *store)
{
	struct sqlite_store *s = sqlite_of(store);

	return sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) == SQLITE_OK
	    ? 0 : -1;
}

static enum store_result
sqlite_next_due(struct pd_store *store, pd_ms *unbuffered, pd_ms *buffered)
{
	struct sqlite_store *s = sqlite_of(store);
	int rc, began = read_begin(s);

	if ((rc = store_min(s, ST_EARLIEST_UNBUFFERED, unbuffered)) == SQLITE_OK)
		rc = earliest_over_levels(s, 0, buffered);
	read_end(s, began);
	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "reading the next due time");
}

static enum store_result
sqlite_promote(struct pd_store *store, pd_ms until, int limit, int *promoted)
{
	struct sqlite_store *s = sqlite_of(store);
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


struct claim {
	struct pd_message m;
	struct store_lease lease;
};

static enum store_result
sqlite_claim(struct pd_store *store, pd_ms now, int limit, int lease_slack_s,
             store_claim_fn fn, void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
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
	 * sees of rows changed while it steps over them. Lower priority values
	 * first, a level at a time, each an index range in due order. */
	for (int level = FIRST_LEVEL; n < limit && res == STORE_OK;) {
		if ((rc = next_level(s, 0, level, &level)) != SQLITE_ROW)
			break;
		sqlite3_bind_int64(st, 1, now);
		sqlite3_bind_int(st, 2, limit - n);
		sqlite3_bind_int(st, 3, level);
		while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct claim *k = &c[n];

			if (row_to_message(st, 6, &k->m, 1) != 0 ||
			    column_payload(st, 6 + MESSAGE_NCOLUMNS, &k->m) != 0) {
				message_free(&k->m);
				res = STORE_ERROR;
				break;
			}
			k->lease.key = sqlite3_column_int64(st, 0);
			k->lease.token = sqlite3_column_int64(st, 1);   /* the one it held until now */
			k->m.attempts = sqlite3_column_int(st, 2) + 1;
			k->lease.gone = (unsigned)sqlite3_column_int64(st, 3);
			k->lease.until = now + sqlite3_column_int64(st, 4) +
			    (pd_ms)lease_slack_s * PD_MS_PER_S;
			k->m.next_attempt = sqlite3_column_int64(st, 5);
			/* What it was: delivering when an earlier lease ran out unsettled. */
			k->m.state = k->lease.token != 0 ? PD_DELIVERING : PD_PENDING;
			n++;
		}
		sqlite3_reset(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			break;
		rc = SQLITE_DONE;
	}
	if (res == STORE_OK && rc != SQLITE_DONE)
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
add_attempt(struct sqlite_store *s, int64_t key, const struct pd_attempt *a)
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
	if (rc == SQLITE_OK)
		s->total[TOTAL_ATTEMPTS + store_attempt_outcome_of(a->status)]++;
	return rc;
}

/* Ends message key (state, outcome, report id): the second and last write
 * of its row. */
static int
end_message(struct sqlite_store *s, const struct pd_settlement *o, pd_ms now, const char *report)
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

/* Writes the end of a message whose live row is gone (o->state and its
 * outcome), with its callback report made by report_fn and stored beside
 * it (bypassing max_pending, so no outcome goes unreported). */
static enum store_result
finish_message(struct sqlite_store *s, struct pd_settlement *o, pd_ms now,
               store_report_fn report_fn, void *ctx)
{
	int rc;

	/* Every end passes here but a cancel (store_cancel counts its own). */
	s->total[o->state == PD_DELIVERED ? TOTAL_DELIVERED : o->state == PD_FAILED ?
	         TOTAL_FAILED : o->state == PD_CANCELLED ? TOTAL_CANCELLED : TOTAL_EXPIRED]++;
	if (o->wants_report && report_fn != NULL) {
		struct pd_message report = { 0 };
		enum store_result res;

		if (report_fn(ctx, o, &report) != 0) {
			message_free(&report);
			return STORE_ERROR;
		}
		res = insert_message(s, &report, now, 0);
		if (res == STORE_OK)
			rc = end_message(s, o, now, report.id);
		message_free(&report);
		if (res != STORE_OK)
			return res;
	} else
		rc = end_message(s, o, now, NULL);
	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "ending a message");
}

/* One settlement inside the settle's transaction. */
static enum store_result
settle_one(struct sqlite_store *s, struct pd_settlement *o, pd_ms now, store_report_fn report_fn,
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
	return finish_message(s, o, now, report_fn, ctx);
}

static enum store_result
sqlite_settle(struct pd_store *store, struct pd_settlement *items, size_t n, pd_ms now,
              store_report_fn report_fn, void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
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

/* ---- queues: receive, ack, release, extend ---- */





/* Binds id, token, receipt as ?1, ?2, ?3. */
static void
bind_receipt(sqlite3_stmt *st, const char *id, const struct receipt *r)
{
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->token);
	sqlite3_bind_blob(st, 3, r->bytes, sizeof(r->bytes), SQLITE_STATIC);
}

/* Ends a queue message whose live row the caller just deleted (key, queue,
 * was_leased), in state with its report: the counts, the end of its row. */
static enum store_result
end_queued(struct sqlite_store *s, const char *id, int64_t key, int64_t queue, int was_leased,
           enum pd_state state, int attempts, int wants_report, pd_ms now,
           store_report_fn report_fn, void *ctx)
{
	struct pd_settlement o = {
		.id = id,
		.lease = { .key = key },
		.state = state,
		.attempts = attempts,
		.delivered_at = state == PD_DELIVERED ? now : 0,
		.wants_report = wants_report,
	};
	int rc;

	s->delta[was_leased ? PD_DELIVERING : PD_PENDING]--;
	s->delta[state]++;
	if ((rc = queue_move(s, queue, 0, state)) != SQLITE_OK)
		return store_fail(s, rc, "counting a queue");
	return finish_message(s, &o, now, report_fn, ctx);
}

/* Why a receipt did not hold: STORE_NOTFOUND, or STORE_CONFLICT with the
 * message's state. */
static enum store_result
receipt_refused(struct sqlite_store *s, struct store_ack *a)
{
	sqlite3_stmt *st = s->st[ST_STATE_OF];
	enum store_result res;
	int rc;

	sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int ended = sqlite3_column_int(st, 0);

		if (ended != ALIVE && ended < PD_NSTATES)
			a->state = (enum pd_state)ended;
		else
			a->state = sqlite3_column_int64(st, 1) != 0 ? PD_DELIVERING : PD_PENDING;
		res = STORE_CONFLICT;
	} else
		res = rc == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, rc, "reading a state");
	sqlite3_reset(st);
	return res;
}

/* A message met by a receive and what becomes of it. */
struct received {
	struct pd_message m;
	int64_t key, old_token;
	int end;                  /* 0: leased; else the state it ends in */
	struct receipt receipt;
	pd_ms until;
};

/* Reads up to room receivable messages of one priority level into r. */
static int
read_receivable(struct sqlite_store *s, int64_t queue, int level, pd_ms now, struct received *r,
                int room, int *n)
{
	sqlite3_stmt *st = s->st[ST_RECEIVABLE];
	int rc;

	*n = 0;
	sqlite3_bind_int64(st, 1, queue);
	sqlite3_bind_int(st, 2, level);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int(st, 4, room);
	while (*n < room && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct received *k = &r[*n];
		pd_ms expires = sqlite3_column_int64(st, 3);

		memset(k, 0, sizeof(*k));
		if (row_to_message(st, 4, &k->m, 0) != 0 ||
		    column_payload(st, 4 + MESSAGE_NCOLUMNS, &k->m) != 0) {
			message_free(&k->m);
			sqlite3_reset(st);
			return SQLITE_NOMEM;
		}
		k->key = sqlite3_column_int64(st, 0);
		k->old_token = sqlite3_column_int64(st, 1);
		k->m.attempts = sqlite3_column_int(st, 2);
		if (expires != 0 && expires <= now)
			k->end = PD_EXPIRED;
		else if (k->m.attempts >= k->m.max_attempts)
			k->end = PD_FAILED;          /* its last receive ran out */
		(*n)++;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Leases k (inside the receive's transaction) until k->until. */
static int
lease_received(struct sqlite_store *s, struct received *k)
{
	sqlite3_stmt *st = s->st[ST_RECEIVE_LEASE];
	int rc;

	sqlite3_bind_int64(st, 1, k->key);
	sqlite3_bind_int64(st, 2, k->old_token);
	sqlite3_bind_int64(st, 3, k->receipt.token);
	sqlite3_bind_blob(st, 4, k->receipt.bytes, sizeof(k->receipt.bytes), SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, k->until);
	sqlite3_bind_int(st, 6, k->m.attempts + 1 >= k->m.max_attempts);
	rc = store_exec(s, ST_RECEIVE_LEASE);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_OK && sqlite3_changes(s->db) != 1)
		rc = SQLITE_ERROR;            /* cannot happen inside the transaction */
	return rc;
}

/* Most messages a receive ends (ttl run out, last receive run out) on its
 * way to the ones it hands out: the rest are the sweep's. */
#define RECEIVE_MAX_ENDS 100

/* A receive inside a transaction, and what it leased, to hand over once
 * the transaction has committed. */
struct receive_work {
	struct received *r;
	int total, room;
};

/* Makes room in w for more rows after its total. */
static int
receive_room(struct receive_work *w, int more)
{
	struct received *grown;
	int want = w->total + more;

	if (want <= w->room)
		return 0;
	if ((grown = realloc(w->r, (size_t)want * sizeof(*grown))) == NULL)
		return -1;
	w->r = grown;
	w->room = want;
	return 0;
}

/* Runs one receive inside the caller's transaction. STORE_OK (nothing
 * leased when paused or empty) or STORE_NOTFOUND with the transaction
 * still good; any other result means it must roll back. */
static enum store_result
receive_in_tx(struct sqlite_store *s, const char *queue, int max, int visibility_s, pd_ms now,
              store_report_fn report_fn, void *report_ctx, struct receive_work *w)
{
	struct queue_row q;
	enum store_result res;
	int got = 0, ends = 0, level = FIRST_LEVEL, rc;

	*w = (struct receive_work){ 0 };
	if (max <= 0)
		return STORE_OK;
	rc = find_queue(s, queue, &q, NULL, 0);
	if (rc == SQLITE_DONE)
		return STORE_NOTFOUND;
	if (rc != SQLITE_OK || q.paused)
		goto done;
	if (visibility_s <= 0)
		visibility_s = q.visibility;
	while (got < max && ends < RECEIVE_MAX_ENDS) {
		int n;

		if ((rc = next_level(s, q.key, level, &level)) != SQLITE_ROW)
			break;
		/* Reads only as many rows as are still wanted; a level is read
		 * again after ends, the rows it ended being gone. */
		for (;;) {
			int room = max - got, first = w->total;

			if (receive_room(w, room) != 0) {
				rc = SQLITE_NOMEM;
				goto done;
			}
			rc = read_receivable(s, q.key, level, now, w->r + first, room, &n);
			w->total = first + n;
			if (rc != SQLITE_OK)
				goto done;
			for (int i = first; i < w->total; i++) {
				struct received *k = &w->r[i];

				if (k->end == 0) {
					if (receipt_new(&k->receipt) != 0) {
						rc = SQLITE_ERROR;
						goto done;
					}
					k->until = now + (pd_ms)visibility_s * PD_MS_PER_S;
					if ((rc = lease_received(s, k)) != SQLITE_OK)
						goto done;
					if (k->old_token == 0) {
						s->delta[PD_PENDING]--;
						s->delta[PD_DELIVERING]++;
					}
					s->total[TOTAL_RECEIVES]++;
					got++;
				} else if (ends < RECEIVE_MAX_ENDS) {
					sqlite3_bind_int64(s->st[ST_END_LIVE], 1, k->key);
					sqlite3_bind_int64(s->st[ST_END_LIVE], 2, k->old_token);
					if ((rc = store_exec(s, ST_END_LIVE)) != SQLITE_OK)
						goto done;
					res = end_queued(s, k->m.id, k->key, q.key, k->old_token != 0,
					                 (enum pd_state)k->end, k->m.attempts,
					                 k->m.callback != NULL, now, report_fn, report_ctx);
					if (res != STORE_OK)
						return res == STORE_NOTFOUND ? STORE_ERROR : res;
					log_info("%s %s of queue %s: %s", k->end == PD_EXPIRED ? "expired" :
					         "failed", k->m.id, queue, k->end == PD_EXPIRED ?
					         "its ttl ran out" : "its last allowed receive ran out");
					ends++;
				} else
					k->end = -1;          /* neither: left for the sweep */
			}
			/* A full read that ended some may leave more at this level. */
			if (n < room || got >= max || ends >= RECEIVE_MAX_ENDS)
				break;
		}
	}
done:
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
		return store_fail(s, rc, "receiving");
	return STORE_OK;
}

/* Hands what a committed receive leased to fn (when committed is set),
 * and frees the work. */
static enum store_result
receive_hand_over(struct receive_work *w, int committed, store_received_fn fn, void *ctx)
{
	enum store_result res = STORE_OK;

	for (int i = 0; i < w->total; i++) {
		struct received *k = &w->r[i];
		char text[PD_RECEIPT_LEN + 1];

		if (committed && k->end == 0 && res == STORE_OK) {
			receipt_format(&k->receipt, text);
			k->m.attempts++;
			k->m.state = PD_DELIVERING;
			if (fn(ctx, &k->m, text, k->until) != 0)
				res = STORE_ERROR;
		}
		message_free(&k->m);
	}
	free(w->r);
	w->r = NULL;
	w->total = w->room = 0;
	return res;
}


/* Deletes the live row key that the caller's transaction read with token. */
static int
end_live(struct sqlite_store *s, int64_t key, int64_t token)
{
	int rc;

	sqlite3_bind_int64(s->st[ST_END_LIVE], 1, key);
	sqlite3_bind_int64(s->st[ST_END_LIVE], 2, token);
	rc = store_exec(s, ST_END_LIVE);
	if (rc == SQLITE_OK && sqlite3_changes(s->db) != 1)
		rc = SQLITE_ERROR;            /* cannot happen inside the transaction */
	return rc;
}

/* Acks n items inside the caller's transaction: STORE_OK with each item's
 * result, or a failure that means it must roll back. */
static enum store_result
ack_in_tx(struct sqlite_store *s, struct store_ack *items, size_t n, pd_ms now,
          store_report_fn report_fn, void *ctx)
{
	sqlite3_stmt *st = s->st[ST_ACK];
	enum store_result res;

	for (size_t i = 0; i < n; i++) {
		struct store_ack *a = &items[i];
		struct receipt r;
		int rc;

		if (receipt_parse(a->receipt, &r) != 0) {
			a->result = receipt_refused(s, a);
			continue;
		}
		bind_receipt(st, a->id, &r);
		sqlite3_bind_int64(st, 4, now);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			int64_t key = sqlite3_column_int64(st, 0), queue = sqlite3_column_int64(st, 1);
			int attempts = sqlite3_column_int(st, 2), expired = sqlite3_column_int(st, 3);
			int wants_report = sqlite3_column_int(st, 4);

			sqlite3_reset(st);
			if ((rc = end_live(s, key, r.token)) != SQLITE_OK)
				return store_fail(s, rc, "acknowledging");
			a->state = expired ? PD_EXPIRED : PD_DELIVERED;
			a->result = expired ? STORE_CONFLICT : STORE_OK;
			res = end_queued(s, a->id, key, queue, 1, a->state, attempts, wants_report, now,
			                 report_fn, ctx);
		} else {
			sqlite3_reset(st);
			res = rc == SQLITE_DONE ? STORE_OK : store_fail(s, rc, "acknowledging");
			if (res == STORE_OK)
				a->result = receipt_refused(s, a);
		}
		if (res != STORE_OK)
			return res;
		if (a->result == STORE_ERROR || a->result == STORE_BUSY)
			return a->result;
	}
	return STORE_OK;
}


static void
sqlite_queue_batch(struct pd_store *store, struct store_queue_op *ops, size_t n, pd_ms now,
                   store_report_fn report_fn, void *report_ctx)
{
	struct sqlite_store *s = sqlite_of(store);
	struct receive_work *w = calloc(n > 0 ? n : 1, sizeof(*w));
	enum store_result res = w != NULL ? STORE_OK : STORE_ERROR;

	if (res == STORE_OK)
		res = tx_begin(s, "beginning a batch of queue work");
	for (size_t i = 0; i < n && res == STORE_OK; i++) {
		struct store_queue_op *op = &ops[i];

		if (op->items != NULL)
			op->result = ack_in_tx(s, op->items, op->n, now, report_fn, report_ctx);
		else
			op->result = receive_in_tx(s, op->queue, op->max, op->visibility_s, now,
			                           report_fn, report_ctx, &w[i]);
		/* An unknown queue refuses only its receive. */
		if (op->result != STORE_OK && op->result != STORE_NOTFOUND) {
			res = op->result;
			tx_rollback(s);
		}
	}
	if (res == STORE_OK)
		res = tx_commit(s, "committing a batch of queue work");
	for (size_t i = 0; i < n; i++) {
		if (res != STORE_OK)
			ops[i].result = res;
		if (w != NULL && ops[i].items == NULL) {
			enum store_result handed = receive_hand_over(&w[i], res == STORE_OK,
			                                             ops[i].fn, ops[i].ctx);

			if (res == STORE_OK && ops[i].result == STORE_OK)
				ops[i].result = handed;
		}
	}
	free(w);
}

/* The end of a receipt's message that cannot be given back or kept (its
 * last receive, or its ttl run out), inside the caller's transaction:
 * STORE_OK with a->state when it ended, STORE_NOTFOUND when the receipt
 * does not hold it. */
static enum store_result
end_received(struct sqlite_store *s, struct store_ack *a, const struct receipt *r, pd_ms now,
             store_report_fn report_fn, void *ctx)
{
	sqlite3_stmt *st = s->st[ST_END_RECEIVED];
	int rc;

	bind_receipt(st, a->id, r);
	sqlite3_bind_int64(st, 4, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t key = sqlite3_column_int64(st, 0), queue = sqlite3_column_int64(st, 1);
		int attempts = sqlite3_column_int(st, 2), expired = sqlite3_column_int(st, 3);
		int wants_report = sqlite3_column_int(st, 4);

		sqlite3_reset(st);
		a->state = expired ? PD_EXPIRED : PD_FAILED;
		return end_queued(s, a->id, key, queue, 1, a->state, attempts, wants_report, now,
		                  report_fn, ctx);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, rc, "ending a message");
}

static enum store_result
sqlite_release(struct pd_store *store, struct store_ack *a, pd_ms delay_ms, pd_ms now,
               pd_ms *due, store_report_fn report_fn, void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_RELEASE];
	struct receipt r;
	enum store_result res;
	int rc;

	*due = 0;
	if ((res = tx_begin(s, "beginning a release")) != STORE_OK)
		return res;
	if (receipt_parse(a->receipt, &r) != 0) {
		a->result = receipt_refused(s, a);
		tx_rollback(s);
		return STORE_OK;
	}
	bind_receipt(st, a->id, &r);
	sqlite3_bind_int64(st, 4, now + delay_ms);
	sqlite3_bind_int64(st, 5, now);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW) {
		s->delta[PD_DELIVERING]--;
		s->delta[PD_PENDING]++;
		a->state = PD_PENDING;
		a->result = STORE_OK;
		*due = now + delay_ms;
	} else if (rc != SQLITE_DONE) {
		res = store_fail(s, rc, "releasing");
	} else if ((res = end_received(s, a, &r, now, report_fn, ctx)) == STORE_OK) {
		/* Its last receive: a release ends it failed (an expired one: 409). */
		a->result = a->state == PD_FAILED ? STORE_OK : STORE_CONFLICT;
	} else if (res == STORE_NOTFOUND) {
		a->result = receipt_refused(s, a);
		res = STORE_OK;
		tx_rollback(s);
		return res;
	}
	if (res != STORE_OK) {
		tx_rollback(s);
		return res;
	}
	return tx_commit(s, "committing a release");
}

static enum store_result
sqlite_extend(struct pd_store *store, struct store_ack *a, pd_ms visibility_ms, pd_ms now,
              pd_ms *until)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_EXTEND];
	struct receipt r;
	enum store_result res;
	int rc;

	*until = 0;
	if ((res = tx_begin(s, "beginning an extend")) != STORE_OK)
		return res;
	if (receipt_parse(a->receipt, &r) != 0) {
		a->result = receipt_refused(s, a);
		tx_rollback(s);
		return STORE_OK;
	}
	bind_receipt(st, a->id, &r);
	sqlite3_bind_int64(st, 4, now + visibility_ms);
	sqlite3_bind_int64(st, 5, now);
	rc = store_exec(s, ST_EXTEND);
	if (rc != SQLITE_OK) {
		res = store_fail(s, rc, "extending");
		tx_rollback(s);
		return res;
	}
	if (sqlite3_changes(s->db) == 1) {
		a->state = PD_DELIVERING;
		a->result = STORE_OK;
		*until = now + visibility_ms;
		return tx_commit(s, "committing an extend");
	}
	a->result = receipt_refused(s, a);
	tx_rollback(s);
	return STORE_OK;
}

static enum store_result
sqlite_queue_ready_at(struct pd_store *store, const char *queue, pd_ms *at)
{
	struct sqlite_store *s = sqlite_of(store);
	struct queue_row q;
	int rc, began = read_begin(s);

	*at = 0;
	rc = find_queue(s, queue, &q, NULL, 0);
	if (rc == SQLITE_OK && !q.paused)
		rc = earliest_over_levels(s, q.key, at);
	read_end(s, began);
	return rc == SQLITE_OK || rc == SQLITE_DONE ? STORE_OK : store_fail(s, rc, "reading a queue");
}

static enum store_result
sqlite_data_version(struct pd_store *store, long long *version)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_DATA_VERSION];
	int rc = sqlite3_step(st);

	*version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? STORE_OK : store_fail(s, rc, "reading the data version");
}

/* A live row that ends by itself, as the sweep reads it. */
struct overdue {
	int64_t key, token, queue;
	int attempts;
	unsigned gone;
	char id[PD_ID_LEN + 1];
	int wants_report;
	enum pd_state state;
};

static int
read_overdue(struct sqlite_store *s, enum statement id, enum pd_state state, pd_ms now,
             struct overdue *o, int room, int *n)
{
	sqlite3_stmt *st = s->st[id];
	int rc;

	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, room);
	while (*n < room && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct overdue *k = &o[*n];
		int seen = 0;

		k->key = sqlite3_column_int64(st, 0);
		/* A row both spent and expired is read by both statements. */
		for (int i = 0; i < *n; i++)
			seen |= o[i].key == k->key;
		if (seen)
			continue;
		k->token = sqlite3_column_int64(st, 1);
		k->queue = sqlite3_column_int64(st, 2);
		k->attempts = sqlite3_column_int(st, 3);
		k->gone = (unsigned)sqlite3_column_int64(st, 4);
		snprintf(k->id, sizeof(k->id), "%s", (const char *)sqlite3_column_text(st, 5));
		k->wants_report = sqlite3_column_int(st, 6);
		k->state = state;
		(*n)++;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum store_result
sqlite_end_overdue(struct pd_store *store, pd_ms now, int limit, store_report_fn report_fn,
                   void *ctx, int *ended)
{
	struct sqlite_store *s = sqlite_of(store);
	struct overdue *o;
	enum store_result res;
	int n = 0, rc;

	*ended = 0;
	if (limit <= 0)
		return STORE_OK;
	if ((o = calloc((size_t)limit, sizeof(*o))) == NULL)
		return STORE_ERROR;
	if ((res = tx_begin(s, "beginning a sweep")) != STORE_OK)
		goto out;
	if ((rc = read_overdue(s, ST_EXPIRED_ROWS, PD_EXPIRED, now, o, limit, &n)) != SQLITE_OK ||
	    (rc = read_overdue(s, ST_SPENT_ROWS, PD_FAILED, now, o, limit, &n)) != SQLITE_OK) {
		res = store_fail(s, rc, "reading what ends");
		goto rollback;
	}
	for (int i = 0; i < n; i++) {
		struct overdue *k = &o[i];
		struct pd_settlement e = {
			.id = k->id,
			.lease = { .key = k->key, .token = k->token },
			.state = k->state,
			.attempts = k->attempts,
			.gone = k->gone,
			.wants_report = k->wants_report,
		};

		sqlite3_bind_int64(s->st[ST_END_LIVE], 1, k->key);
		sqlite3_bind_int64(s->st[ST_END_LIVE], 2, k->token);
		if ((rc = store_exec(s, ST_END_LIVE)) != SQLITE_OK) {
			res = store_fail(s, rc, "ending a message");
			goto rollback;
		}
		s->delta[k->token != 0 ? PD_DELIVERING : PD_PENDING]--;
		s->delta[k->state]++;
		if ((rc = queue_move(s, k->queue, 0, k->state)) != SQLITE_OK) {
			res = store_fail(s, rc, "counting a queue");
			goto rollback;
		}
		if ((res = finish_message(s, &e, now, report_fn, ctx)) != STORE_OK)
			goto rollback;
		log_info("%s %s: %s", k->state == PD_EXPIRED ? "expired" : "failed", k->id,
		         k->state == PD_EXPIRED ? "its ttl ran out" :
		         "its last allowed receive ran out unacknowledged");
	}
	if ((res = tx_commit(s, "committing a sweep")) == STORE_OK)
		*ended = n;
	goto out;
rollback:
	tx_rollback(s);
out:
	free(o);
	return res;
}

static int
sqlite_query_plans(struct pd_store *store, store_plan_fn fn, void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);

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

/* ---- metrics ---- */


/* Adds the transaction's totals, one statement per counter that changed,
 * inside it (from tx_commit). */
static int
totals_apply(struct sqlite_store *s)
{
	sqlite3_stmt *st = s->st[ST_TOTAL_DELTA];
	int rc = SQLITE_OK;

	for (int i = 0; i < TOTAL_COUNT && rc == SQLITE_OK; i++) {
		if (s->total[i] == 0)
			continue;
		sqlite3_bind_int(st, 1, i);
		sqlite3_bind_int64(st, 2, s->total[i]);
		rc = store_exec(s, ST_TOTAL_DELTA);
	}
	return rc;
}

static int
read_totals(struct sqlite_store *s, struct store_metrics *m)
{
	sqlite3_stmt *st = s->st[ST_TOTALS];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int counter = sqlite3_column_int(st, 0);
		long long n = sqlite3_column_int64(st, 1);

		switch (counter) {
		case TOTAL_MADE: m->made = n; break;
		case TOTAL_DELIVERED: m->ended[PD_DELIVERED] = n; break;
		case TOTAL_FAILED: m->ended[PD_FAILED] = n; break;
		case TOTAL_CANCELLED: m->ended[PD_CANCELLED] = n; break;
		case TOTAL_EXPIRED: m->ended[PD_EXPIRED] = n; break;
		case TOTAL_RECEIVES: m->receives = n; break;
		default:
			if (counter >= TOTAL_ATTEMPTS && counter < TOTAL_COUNT)
				m->attempts[counter - TOTAL_ATTEMPTS] = n;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum store_result
sqlite_metrics(struct pd_store *store, pd_ms now, struct store_metrics *m, store_queue_fn fn,
               void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
	enum store_result res;
	int rc, began = read_begin(s);

	memset(m, 0, sizeof(*m));
	/* Inside this snapshot, the calls below read in it too. */
	if ((res = sqlite_health(&s->base, m->counts, &m->earliest)) == STORE_OK &&
	    (rc = read_totals(s, m)) != SQLITE_OK)
		res = store_fail(s, rc, "reading the totals");
	if (res == STORE_OK && fn != NULL)
		res = sqlite_queue_list(&s->base, now, fn, ctx);
	read_end(s, began);
	return res;
}

/* ---- retry, retention, backup and check ----
 *
 * What an operator does to messages that ended: puts them back (retry,
 * the dead-letter redrive), deletes them once they are old (retention,
 * purge), and copies or checks the whole database.
 */

/* The messages one batch of store_retry_state or store_purge moves. */
#define ADMIN_BATCH_MAX 10000

/* Brings back message key (of queue, 0 for none), which the caller has
 * just moved from state `from` to alive, inside the caller's transaction:
 * its live row, and the counts. */
static int
revive(struct sqlite_store *s, int64_t key, int64_t queue, enum pd_state from, pd_ms now)
{
	sqlite3_stmt *st = s->st[ST_RETRY_LIVE];
	int rc;

	sqlite3_bind_int64(st, 1, key);
	sqlite3_bind_int64(st, 2, now);
	if ((rc = store_exec(s, ST_RETRY_LIVE)) != SQLITE_OK)
		return rc;
	if ((rc = queue_move(s, queue, from, 0)) != SQLITE_OK)
		return rc;
	s->delta[from]--;
	s->delta[PD_PENDING]++;
	return SQLITE_OK;
}

/* A batch's rows: a message's key, its queue and (purge) its state and
 * the publish that made it (0: none). */
struct admin_row {
	int64_t key, queue, publish;
	int state;
};

/* Steps st (an UPDATE or DELETE ... RETURNING key, ...) to its end,
 * keeping up to room rows: SQLite makes every change at the first step,
 * and the rows are then only read. with_state: the second column is the
 * state, the third the queue, the fourth the publish. */
static int
returned_rows(sqlite3_stmt *st, int with_state, struct admin_row *rows, int room, int *n)
{
	int rc;

	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == room)
			continue;
		rows[*n].key = sqlite3_column_int64(st, 0);
		rows[*n].state = with_state ? sqlite3_column_int(st, 1) : 0;
		rows[*n].queue = sqlite3_column_int64(st, with_state ? 2 : 1);
		rows[*n].publish = with_state ? sqlite3_column_int64(st, 3) : 0;
		(*n)++;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum store_result
sqlite_retry(struct pd_store *store, const char *id, pd_ms now, enum pd_state *state)
{
	struct sqlite_store *s = sqlite_of(store);
	static const enum pd_state retryable[] = { PD_FAILED, PD_EXPIRED };
	sqlite3_stmt *st = s->st[ST_RETRY_MESSAGE], *of = s->st[ST_STATE_OF];
	enum store_result res;
	int rc = SQLITE_OK;

	if ((res = tx_begin(s, "beginning a retry")) != STORE_OK)
		return res;
	/* Each try is a compare-and-set on one ended state: a message another
	 * retry brought back meanwhile matches neither. */
	for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++) {
		struct admin_row row;
		int n;

		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_int(st, 3, retryable[i]);
		rc = returned_rows(st, 0, &row, 1, &n);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_OK)
			break;
		if (n == 0)
			continue;
		if ((rc = revive(s, row.key, row.queue, retryable[i], now)) != SQLITE_OK)
			break;
		*state = PD_PENDING;
		return tx_commit(s, "committing a retry");
	}
	if (rc != SQLITE_OK) {
		res = store_fail(s, rc, "retrying");
		tx_rollback(s);
		return res;
	}
	/* Nothing was retried: say what it is. */
	sqlite3_bind_text(of, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(of);
	if (rc == SQLITE_ROW) {
		int ended = sqlite3_column_int(of, 0);

		if (ended != ALIVE && ended < PD_NSTATES)
			*state = (enum pd_state)ended;
		else
			*state = sqlite3_column_int64(of, 1) != 0 ? PD_DELIVERING : PD_PENDING;
		res = STORE_CONFLICT;
	} else
		res = rc == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, rc, "reading a state");
	sqlite3_reset(of);
	tx_rollback(s);
	return res;
}

static enum store_result
sqlite_retry_state(struct pd_store *store, enum pd_state state, pd_ms due_before, pd_ms now,
                   int limit, int *retried)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_RETRY_ALL];
	struct admin_row *rows;
	enum store_result res;
	int n = 0, rc;

	*retried = 0;
	if (state != PD_FAILED && state != PD_EXPIRED)
		return STORE_CONFLICT;
	if (limit <= 0)
		return STORE_OK;
	if (limit > ADMIN_BATCH_MAX)
		limit = ADMIN_BATCH_MAX;
	if ((rows = calloc((size_t)limit, sizeof(*rows))) == NULL)
		return STORE_ERROR;
	if ((res = tx_begin(s, "beginning a retry")) != STORE_OK)
		goto out;
	sqlite3_bind_int(st, 1, limit);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, state);
	sqlite3_bind_int64(st, 4, due_before);
	rc = returned_rows(st, 0, rows, limit, &n);
	sqlite3_clear_bindings(st);
	for (int i = 0; i < n && rc == SQLITE_OK; i++)
		rc = revive(s, rows[i].key, rows[i].queue, state, now);
	if (rc != SQLITE_OK) {
		res = store_fail(s, rc, "retrying");
		tx_rollback(s);
		goto out;
	}
	if ((res = tx_commit(s, "committing a retry")) == STORE_OK)
		*retried = n;
out:
	free(rows);
	return res;
}

static enum store_result
sqlite_purge(struct pd_store *store, pd_ms before, int limit, int *purged)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_PURGE_MESSAGES];
	struct admin_row *rows;
	enum store_result res;
	int n = 0, rc;

	*purged = 0;
	if (limit <= 0)
		return STORE_OK;
	if (limit > ADMIN_BATCH_MAX)
		limit = ADMIN_BATCH_MAX;
	if ((rows = calloc((size_t)limit, sizeof(*rows))) == NULL)
		return STORE_ERROR;
	if ((res = tx_begin(s, "beginning a purge")) != STORE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int(st, 2, limit);
	rc = returned_rows(st, 1, rows, limit, &n);
	for (int i = 0; i < n && rc == SQLITE_OK; i++) {
		int state = rows[i].state;

		sqlite3_bind_int64(s->st[ST_PURGE_PAYLOAD], 1, rows[i].key);
		sqlite3_bind_int64(s->st[ST_PURGE_HISTORY], 1, rows[i].key);
		if ((rc = store_exec(s, ST_PURGE_PAYLOAD)) != SQLITE_OK ||
		    (rc = store_exec(s, ST_PURGE_HISTORY)) != SQLITE_OK ||
		    (rc = queue_move(s, rows[i].queue, state, -1)) != SQLITE_OK)
			break;
		if (rows[i].publish != 0) {
			sqlite3_bind_int64(s->st[ST_PURGE_PUBLISH], 1, rows[i].publish);
			if ((rc = store_exec(s, ST_PURGE_PUBLISH)) != SQLITE_OK)
				break;
		}
		if (state > 0 && state < PD_NSTATES)
			s->delta[state]--;
	}
	if (rc != SQLITE_OK) {
		res = store_fail(s, rc, "purging");
		tx_rollback(s);
		goto out;
	}
	if ((res = tx_commit(s, "committing a purge")) == STORE_OK)
		*purged = n;
out:
	free(rows);
	return res;
}

static enum store_result
sqlite_backup(struct pd_store *store, const char *path)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3 *copy = NULL;
	sqlite3_backup *b;
	enum store_result res = STORE_ERROR;
	int rc;

	rc = sqlite3_open_v2(path, &copy, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		log_error("store: backup to %s: %s", path,
		          copy != NULL ? sqlite3_errmsg(copy) : sqlite3_errstr(rc));
		sqlite3_close(copy);
		return STORE_ERROR;
	}
	/* All pages in one step: one read transaction on the source, so the
	 * copy is one snapshot, while in WAL mode writers carry on beside it. */
	if ((b = sqlite3_backup_init(copy, "main", s->db, "main")) == NULL) {
		log_error("store: backup to %s: %s", path, sqlite3_errmsg(copy));
		sqlite3_close(copy);
		return STORE_ERROR;
	}
	rc = sqlite3_backup_step(b, -1);
	if (rc == SQLITE_DONE)
		res = STORE_OK;
	else if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		res = STORE_BUSY;
	else if ((rc & 0xff) == SQLITE_FULL)
		res = STORE_NOSPACE;
	if (res != STORE_OK)
		log_error("store: backup to %s: %s", path, sqlite3_errstr(rc));
	rc = sqlite3_backup_finish(b);
	if (res == STORE_OK && rc != SQLITE_OK) {
		log_error("store: backup to %s: %s", path, sqlite3_errmsg(copy));
		res = STORE_ERROR;
	}
	if (sqlite3_close(copy) != SQLITE_OK && res == STORE_OK)
		res = STORE_ERROR;
	return res;
}

/* The one integer a "PRAGMA name" answers, or -1. */
static int
pragma_int(sqlite3 *db, const char *pragma)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_prepare_v2(db, pragma, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The counts the store keeps by deltas against the rows they count (a
 * count per state: alive and not leased, leased, and each ended state;
 * the same per queue), each one a problem when they differ. */
static const char *const counts_checks[] = {
	"SELECT c.state, c.n, CASE c.state WHEN 0 THEN (SELECT count(*) FROM live WHERE token = 0) "
	"WHEN 1 THEN (SELECT count(*) FROM live WHERE token <> 0) "
	"ELSE (SELECT count(*) FROM messages m WHERE m.state = c.state) END, NULL FROM counts c",
	"SELECT c.state, c.n, CASE c.state WHEN 0 THEN (SELECT count(*) FROM live l "
	"WHERE l.queue = c.queue) ELSE (SELECT count(*) FROM messages m WHERE m.queue = c.queue "
	"AND m.state = c.state) END, q.name FROM queue_counts c JOIN queues q ON q.key = c.queue",
};

/* Runs counts_checks (those the schema version has tables for), calling fn
 * with each disagreement; returns how many. */
static long
check_counts(sqlite3 *db, int version, store_problem_fn fn, void *ctx)
{
	long found = 0;

	for (size_t i = 0; i < sizeof(counts_checks) / sizeof(counts_checks[0]); i++) {
		sqlite3_stmt *st = NULL;
		char problem[256];
		int rc;

		/* counts came with version 2, queue_counts with 3. */
		if (version < (int)i + 2)
			break;
		if (sqlite3_prepare_v2(db, counts_checks[i], -1, &st, NULL) != SQLITE_OK) {
			snprintf(problem, sizeof(problem), "the counts cannot be compared: %s",
			         sqlite3_errmsg(db));
			fn(ctx, problem);
			found++;
			continue;
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int state = sqlite3_column_int(st, 0);
			sqlite3_int64 kept = sqlite3_column_int64(st, 1);
			sqlite3_int64 rows = sqlite3_column_int64(st, 2);
			const char *queue = (const char *)sqlite3_column_text(st, 3);

			if (kept == rows)
				continue;
			snprintf(problem, sizeof(problem),
			         "%s%s%scounts %lld %s messages, and %lld are stored",
			         queue != NULL ? "queue " : "", queue != NULL ? queue : "",
			         queue != NULL ? ": " : "", (long long)kept,
			         state >= 0 && state < PD_NSTATES ? state_name((enum pd_state)state) :
			         "unknown-state", (long long)rows);
			fn(ctx, problem);
			found++;
		}
		if (rc != SQLITE_DONE) {
			fn(ctx, sqlite3_errmsg(db));
			found++;
		}
		sqlite3_finalize(st);
	}
	return found;
}

static enum store_result
sqlite_inspect(const char *path, int *version, store_problem_fn fn, void *ctx, long *problems)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	enum store_result res = STORE_OK;
	int rc;

	*version = -1;
	if (problems != NULL)
		*problems = 0;
	/* Never created here, never migrated: what is on disk is what is
	 * checked. Read-write only so that a WAL database's shared memory can
	 * be made; nothing is written. */
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL;
		rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	}
	if (rc != SQLITE_OK) {
		log_error("store: opening %s: %s", path,
		          db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return STORE_UNAVAILABLE;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	if ((*version = pragma_int(db, "PRAGMA user_version")) < 0) {
		log_error("store: %s: %s", path, sqlite3_errmsg(db));
		res = STORE_UNAVAILABLE;
		goto out;
	}
	if (fn == NULL)
		goto out;
	/* One snapshot for every check, while the programs may write. */
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
		log_error("store: %s: %s", path, sqlite3_errmsg(db));
		res = STORE_ERROR;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 0);

		if (line != NULL && strcmp(line, "ok") == 0)
			continue;
		fn(ctx, line != NULL ? line : "(no text)");
		if (problems != NULL)
			(*problems)++;
	}
	if (rc != SQLITE_DONE) {
		/* A file that is not a database at all ends the check here. */
		fn(ctx, sqlite3_errmsg(db));
		if (problems != NULL)
			(*problems)++;
	} else {
		long found = check_counts(db, *version, fn, ctx);

		if (problems != NULL)
			*problems += found;
	}
out:
	sqlite3_finalize(st);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return res;
}

/* ---- recurring definitions ---- */





/* When the dispatcher is to make occurrence next, whose predecessor falls
 * due at previous: once that one is due (so at most one waits), and not
 * before next comes within the buffer horizon. */
static pd_ms
make_time(const struct sqlite_store *s, pd_ms previous, pd_ms next)
{
	pd_ms horizon_start = next - (pd_ms)s->cfg->buffer_horizon * PD_MS_PER_S;

	return horizon_start > previous ? horizon_start : previous;
}

/* Fills r from RECURRING_COLUMNS; *key gets the row's key. */
static int
row_to_recurring(sqlite3_stmt *st, struct pd_recurring *r, int64_t *key)
{
	struct pd_message *m = &r->message;
	const void *blob;
	size_t len;

	memset(r, 0, sizeof(*r));
	*key = sqlite3_column_int64(st, 0);
	snprintf(r->id, sizeof(r->id), "%s", (const char *)sqlite3_column_text(st, 1));
	r->name = column_strdup(st, 2);
	r->cron = column_strdup(st, 3);
	r->tz = column_strdup(st, 4);
	m->urls = column_strdup(st, 5);
	m->queue = column_strdup(st, 6);
	blob = sqlite3_column_blob(st, 7);
	len = (size_t)sqlite3_column_bytes(st, 7);
	if ((m->payload = malloc(len + 1)) != NULL) {
		if (len > 0)
			memcpy(m->payload, blob, len);
		m->payload[len] = '\0';
		m->payload_len = len;
	}
	m->content_type = column_strdup(st, 8);
	m->callback = column_strdup(st, 9);
	m->max_attempts = sqlite3_column_int(st, 10);
	m->timeout = sqlite3_column_int(st, 11);
	m->priority = sqlite3_column_int(st, 12);
	r->ttl = sqlite3_column_int64(st, 13);
	r->paused = sqlite3_column_int(st, 14);
	r->created = sqlite3_column_int64(st, 15);
	r->next = sqlite3_column_int64(st, 16);
	r->last = sqlite3_column_int64(st, 17);
	m->topic = column_strdup(st, 18);
	m->envelope.method = method_or_post(st, 19);
	m->envelope.headers = column_strdup(st, 20);
	if (r->cron == NULL || r->tz == NULL || m->urls == NULL || m->payload == NULL ||
	    m->content_type == NULL) {
		recurring_free(r);
		return -1;
	}
	return 0;
}

/* The ids of the latest messages of definition key, into r. */
static int
read_latest(struct sqlite_store *s, int64_t key, struct pd_recurring *r)
{
	sqlite3_stmt *st = s->st[ST_REC_LATEST];
	int rc;

	r->nlatest = 0;
	sqlite3_bind_int64(st, 1, key);
	sqlite3_bind_int(st, 2, PD_RECURRING_LATEST);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && r->nlatest < PD_RECURRING_LATEST)
		snprintf(r->latest[r->nlatest++], PD_ID_LEN + 1, "%s",
		         (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Reads definition id and its latest messages (the snapshot is the
 * caller's). */
static enum store_result
read_recurring(struct sqlite_store *s, const char *id, struct pd_recurring *r, int64_t *key)
{
	sqlite3_stmt *st = s->st[ST_REC_GET];
	enum store_result res;
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		res = row_to_recurring(st, r, key) == 0 ? STORE_OK : STORE_ERROR;
	else
		res = rc == SQLITE_DONE ? STORE_NOTFOUND : store_fail(s, rc, "reading a definition");
	sqlite3_reset(st);
	if (res == STORE_OK && (rc = read_latest(s, *key, r)) != SQLITE_OK) {
		recurring_free(r);
		res = store_fail(s, rc, "reading a definition's messages");
	}
	return res;
}

static enum store_result
sqlite_recurring_add(struct pd_store *store, struct pd_recurring *r, pd_ms now)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_REC_INSERT];
	const struct pd_message *m = &r->message;
	enum store_result res;
	const char *why;
	int rc;

	if (recurring_next_after(r->cron, r->tz, now, &r->next, &why) != 0) {
		log_error("store: a definition's schedule: %s", why);
		return STORE_ERROR;
	}
	if (id_generate(r->id) != 0) {
		log_error("store: no randomness for an id");
		return STORE_ERROR;
	}
	r->created = now;
	r->paused = 0;
	r->last = 0;
	r->nlatest = 0;
	if ((res = tx_begin(s, "beginning a definition")) != STORE_OK)
		return res;
	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	bind_text_or_null(st, 2, r->name);
	sqlite3_bind_text(st, 3, r->cron, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->tz, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, m->urls, -1, SQLITE_STATIC);
	bind_text_or_null(st, 6, m->queue);
	sqlite3_bind_blob64(st, 7, m->payload, m->payload_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, m->content_type, -1, SQLITE_STATIC);
	bind_text_or_null(st, 9, m->callback);
	sqlite3_bind_int(st, 10, m->max_attempts);
	sqlite3_bind_int(st, 11, m->timeout);
	sqlite3_bind_int(st, 12, m->priority);
	bind_time_or_null(st, 13, r->ttl);
	sqlite3_bind_int64(st, 14, now);
	sqlite3_bind_int64(st, 15, r->next);
	sqlite3_bind_int64(st, 16, make_time(s, now, r->next));
	bind_text_or_null(st, 17, m->topic);
	sqlite3_bind_text(st, 18, method_name(m->envelope.method), -1, SQLITE_STATIC);
	bind_text_or_null(st, 19, m->envelope.headers);
	rc = store_exec(s, ST_REC_INSERT);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_OK) {
		res = store_fail(s, rc, "storing a definition");
		tx_rollback(s);
		return res;
	}
	if (sqlite3_changes(s->db) == 0) {
		tx_rollback(s);
		return STORE_CONFLICT;
	}
	return tx_commit(s, "committing a definition");
}

static enum store_result
sqlite_recurring_get(struct pd_store *store, const char *id, struct pd_recurring *r)
{
	struct sqlite_store *s = sqlite_of(store);
	int64_t key;
	int began = read_begin(s);
	enum store_result res = read_recurring(s, id, r, &key);

	read_end(s, began);
	return res;
}

static enum store_result
sqlite_recurring_list(struct pd_store *store, int limit, store_recurring_fn fn, void *ctx)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_REC_LIST];
	enum store_result res = STORE_OK;
	int rc, began = read_begin(s);

	sqlite3_bind_int(st, 1, limit);
	sqlite3_bind_int64(st, 2, INT64_MIN);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct pd_recurring r;
		int64_t key;
		int stop;

		/* The latest messages are read beside the list, in its snapshot. */
		if (row_to_recurring(st, &r, &key) != 0) {
			res = STORE_ERROR;
			break;
		}
		if ((rc = read_latest(s, key, &r)) != SQLITE_OK) {
			recurring_free(&r);
			res = store_fail(s, rc, "reading a definition's messages");
			break;
		}
		stop = fn(ctx, &r);
		recurring_free(&r);
		if (stop)
			break;
	}
	if (res == STORE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
		res = store_fail(s, rc, "listing definitions");
	sqlite3_reset(st);
	read_end(s, began);
	return res;
}

/* Cancels message id inside the caller's transaction, if nobody holds it
 * (as store_cancel does). */
static int
cancel_in_tx(struct sqlite_store *s, const char *id, pd_ms now)
{
	sqlite3_stmt *del = s->st[ST_CANCEL_LIVE], *end = s->st[ST_END_MESSAGE];
	sqlite3_int64 key, gone, queue;
	int attempts, rc;

	sqlite3_bind_text(del, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(del);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(del);
		return rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	key = sqlite3_column_int64(del, 0);
	attempts = sqlite3_column_int(del, 1);
	gone = sqlite3_column_int64(del, 2);
	queue = sqlite3_column_int64(del, 3);
	sqlite3_reset(del);
	sqlite3_bind_int64(end, 1, key);
	sqlite3_bind_int(end, 2, PD_CANCELLED);
	sqlite3_bind_int64(end, 3, now);
	sqlite3_bind_int(end, 4, attempts);
	sqlite3_bind_int64(end, 5, gone);
	rc = store_exec(s, ST_END_MESSAGE);
	sqlite3_clear_bindings(end);
	if (rc == SQLITE_OK)
		rc = queue_move(s, queue, 0, PD_CANCELLED);
	if (rc != SQLITE_OK)
		return rc;
	s->delta[PD_PENDING]--;
	s->delta[PD_CANCELLED]++;
	return SQLITE_OK;
}

/* Cancels the occurrence at `due` of definition key if it still waits
 * (made, never tried, nobody holding it): its message, or each copy of
 * its publish that still waits. *cancelled names the first it cancelled
 * ("" for none). */
static int
cancel_waiting(struct sqlite_store *s, int64_t key, pd_ms due, pd_ms now, char *cancelled,
               size_t len)
{
	sqlite3_stmt *st = s->st[ST_REC_WAITING];
	char (*ids)[PD_ID_LEN + 1] = NULL;
	size_t n = 0, room = 0;
	int rc;

	if (cancelled != NULL && len > 0)
		cancelled[0] = '\0';
	if (due == 0)
		return SQLITE_OK;
	/* The ids first, then the cancels: no statement is stepped while
	 * another changes its rows. */
	sqlite3_bind_int64(st, 1, key);
	sqlite3_bind_int64(st, 2, due);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == room) {
			void *more = realloc(ids, (room = room ? 2 * room : 4) * sizeof(*ids));

			if (more == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			ids = more;
		}
		snprintf(ids[n++], PD_ID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(ids);
		return rc;
	}
	rc = SQLITE_OK;
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
		rc = cancel_in_tx(s, ids[i], now);
	if (rc == SQLITE_OK && n > 0 && cancelled != NULL)
		snprintf(cancelled, len, "%s", ids[0]);
	free(ids);
	return rc;
}

enum recurring_change { REC_PAUSE, REC_RESUME, REC_DELETE };

/* Pause, resume or delete, in one transaction. */
static enum store_result
recurring_change(struct sqlite_store *s, const char *id, pd_ms now, enum recurring_change what)
{
	static const char *const whats[] = { "pausing", "resuming", "deleting" };
	struct pd_recurring r;
	enum store_result res;
	char cancelled[PD_ID_LEN + 1] = "";
	int64_t key;
	pd_ms next = 0;
	int rc = SQLITE_OK;

	if ((res = tx_begin(s, whats[what])) != STORE_OK)
		return res;
	if ((res = read_recurring(s, id, &r, &key)) != STORE_OK)
		goto rollback;
	switch (what) {
	case REC_PAUSE:
	case REC_DELETE:
		if ((rc = cancel_waiting(s, key, r.last, now, cancelled, sizeof(cancelled))) !=
		    SQLITE_OK)
			break;
		if (what == REC_PAUSE) {
			sqlite3_bind_int64(s->st[ST_REC_PAUSE], 1, key);
			rc = store_exec(s, ST_REC_PAUSE);
		} else {
			sqlite3_bind_int64(s->st[ST_REC_DELETE], 1, key);
			sqlite3_bind_int64(s->st[ST_REC_DELETE], 2, now);
			rc = store_exec(s, ST_REC_DELETE);
		}
		break;
	case REC_RESUME: {
		const char *why;

		if (!r.paused)
			break;
		/* From now: what fell due while it was paused is not made. */
		if (recurring_next_after(r.cron, r.tz, now, &next, &why) != 0)
			next = 0;
		sqlite3_bind_int64(s->st[ST_REC_RESUME], 1, key);
		bind_time_or_null(s->st[ST_REC_RESUME], 2, next);
		bind_time_or_null(s->st[ST_REC_RESUME], 3, next != 0 ? make_time(s, now, next) : 0);
		rc = store_exec(s, ST_REC_RESUME);
		sqlite3_clear_bindings(s->st[ST_REC_RESUME]);
		break;
	}
	}
	recurring_free(&r);
	if (rc != SQLITE_OK) {
		res = store_fail(s, rc, whats[what]);
		goto rollback;
	}
	if ((res = tx_commit(s, whats[what])) == STORE_OK && cancelled[0] != '\0')
		log_info("cancelled %s: the waiting occurrence of %s, %s", cancelled, id,
		         what == REC_PAUSE ? "paused" : "deleted");
	return res;
rollback:
	tx_rollback(s);
	return res;
}

static enum store_result
sqlite_recurring_pause(struct pd_store *store, const char *id, pd_ms now, struct pd_recurring *r)
{
	struct sqlite_store *s = sqlite_of(store);
	enum store_result res = recurring_change(s, id, now, REC_PAUSE);

	return res == STORE_OK ? sqlite_recurring_get(&s->base, id, r) : res;
}

static enum store_result
sqlite_recurring_resume(struct pd_store *store, const char *id, pd_ms now, struct pd_recurring *r)
{
	struct sqlite_store *s = sqlite_of(store);
	enum store_result res = recurring_change(s, id, now, REC_RESUME);

	return res == STORE_OK ? sqlite_recurring_get(&s->base, id, r) : res;
}

static enum store_result
sqlite_recurring_delete(struct pd_store *store, const char *id, pd_ms now)
{
	struct sqlite_store *s = sqlite_of(store);

	return recurring_change(s, id, now, REC_DELETE);
}

static enum store_result
sqlite_recurring_make_at(struct pd_store *store, pd_ms *at)
{
	struct sqlite_store *s = sqlite_of(store);
	int rc = store_min(s, ST_REC_MAKE_AT, at);

	return rc == SQLITE_OK ? STORE_OK : store_fail(s, rc, "reading when to make occurrences");
}

/* A definition read for making its next occurrence. */
struct to_make {
	struct pd_recurring r;
	int64_t key;
};

/*
 * Makes definition k's occurrence and advances it, inside the caller's
 * transaction. The occurrence is k's next, or when that is past already
 * the latest one missed (and an earlier one still waiting untried is
 * cancelled). *made is 1 when a message was made.
 */
static enum store_result
make_occurrence(struct sqlite_store *s, struct to_make *k, pd_ms now, long pending, int *made)
{
	struct pd_recurring *r = &k->r;
	struct pd_message m;
	struct pd_cron c;
	struct pd_tz *zone = NULL;
	enum store_result res = STORE_OK;
	const char *why;
	char when[PD_TIME_BUF], superseded[PD_ID_LEN + 1] = "";
	pd_ms at = r->next, next = 0;
	int rc;

	*made = 0;
	if (cron_parse(r->cron, &c, &why) != 0 || recurring_zone(r->tz, &zone) != 0) {
		/* Checked when it was stored: only a zone gone from the system. */
		log_error("recurring %s: cannot read its schedule (%s in %s); it makes nothing "
		          "until resumed", r->id, r->cron, r->tz);
		at = 0;
		goto advance;
	}
	if (at <= now) {
		at = latest_occurrence_by(&c, zone, at, now);
		if ((rc = cancel_waiting(s, k->key, r->last, now, superseded, sizeof(superseded))) !=
		    SQLITE_OK) {
			res = store_fail(s, rc, "superseding an occurrence");
			goto out;
		}
	}
	recurring_occurrence(r, at, &m);
	/* To a topic: a publish, one message per subscription. */
	if (pending + s->delta[PD_PENDING] >= s->cfg->max_pending)
		res = STORE_FULL;
	else if (m.topic != NULL)
		res = publish_in_tx(s, &m, now,
		                    s->cfg->max_pending - pending - s->delta[PD_PENDING]);
	else
		res = insert_message(s, &m, now, 0);
	switch (res) {
	case STORE_OK:
		*made = 1;
		if (m.topic != NULL)
			log_info("recurring %s: published its occurrence at %s to topic %s: %zu "
			         "copies", r->id, time_format(at, when), m.topic, m.ndeliveries);
		else
			log_info("recurring %s: made %s, its occurrence at %s", r->id, m.id,
			         time_format(at, when));
		if (superseded[0] != '\0')
			log_info("recurring %s: cancelled %s, an earlier occurrence never tried: only "
			         "the latest missed occurrence is delivered", r->id, superseded);
		break;
	case STORE_EXISTS:
		break;
	case STORE_FULL:
	case STORE_QUEUE_FULL:
	case STORE_NOTFOUND:
		log_warn("recurring %s: skipped its occurrence at %s: %s", r->id,
		         time_format(at, when), res == STORE_FULL ?
		         "the store holds max_pending pending messages" :
		         res == STORE_NOTFOUND ? "its topic has no subscriptions" :
		         "its queue holds its max_depth of messages");
		break;
	default:
		free(m.deliveries);
		free(m.subscription);
		goto out;
	}
	/* Of m, only what the publish made is its own. */
	free(m.deliveries);
	free(m.subscription);
	res = STORE_OK;
	if (recurring_next_after(r->cron, r->tz, at, &next, &why) != 0)
		next = 0;
advance:
	sqlite3_bind_int64(s->st[ST_REC_ADVANCE], 1, k->key);
	sqlite3_bind_int64(s->st[ST_REC_ADVANCE], 2, r->next);
	bind_time_or_null(s->st[ST_REC_ADVANCE], 3, at != 0 ? at : r->last);
	bind_time_or_null(s->st[ST_REC_ADVANCE], 4, next);
	bind_time_or_null(s->st[ST_REC_ADVANCE], 5, next != 0 ? make_time(s, at, next) : 0);
	rc = store_exec(s, ST_REC_ADVANCE);
	sqlite3_clear_bindings(s->st[ST_REC_ADVANCE]);
	if (rc != SQLITE_OK)
		res = store_fail(s, rc, "advancing a definition");
out:
	tz_free(zone);
	return res;
}

static enum store_result
sqlite_recurring_make(struct pd_store *store, pd_ms now, int limit, int *made, int *late)
{
	struct sqlite_store *s = sqlite_of(store);
	sqlite3_stmt *st = s->st[ST_REC_TO_MAKE];
	struct to_make *k;
	enum store_result res;
	long pending = 0;
	int n = 0, rc;

	*made = *late = 0;
	if (limit <= 0)
		return STORE_OK;
	if ((k = calloc((size_t)limit, sizeof(*k))) == NULL)
		return STORE_ERROR;
	if ((res = tx_begin(s, "beginning to make occurrences")) != STORE_OK)
		goto out;
	if ((rc = pending_count(s, &pending)) != SQLITE_OK) {
		res = store_fail(s, rc, "counting pending messages");
		goto rollback;
	}
	/* Read first, then write: the statement must not step over rows it
	 * changes. */
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, limit);
	while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (row_to_recurring(st, &k[n].r, &k[n].key) != 0) {
			sqlite3_reset(st);
			res = STORE_ERROR;
			goto rollback;
		}
		n++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		res = store_fail(s, rc, "reading definitions");
		goto rollback;
	}
	for (int i = 0; i < n; i++) {
		int one;

		if ((res = make_occurrence(s, &k[i], now, pending, &one)) != STORE_OK)
			goto rollback;
		*made += one;
		*late += one && k[i].r.next <= now;
	}
	if ((res = tx_commit(s, "committing occurrences")) != STORE_OK)
		*made = *late = 0;
	goto out;
rollback:
	tx_rollback(s);
	*made = *late = 0;
out:
	for (int i = 0; i < n; i++)
		recurring_free(&k[i].r);
	free(k);
	return res;
}

/* ---- the engine ---- */

/* Any database setting but a PostgreSQL URL is an SQLite file path. */
static int
sqlite_names(const char *database)
{
	return !store_database_is_url(database);
}

const struct store_engine store_sqlite_engine = {
	.name = "sqlite",
	.caps = { .one_file = 1, .watch_ms = 3 },
	.names = sqlite_names,
	.open = sqlite_open,
	.inspect = sqlite_inspect,
	.close = sqlite_close,
	.insert_batch = sqlite_insert_batch,
	.cancel = sqlite_cancel,
	.get = sqlite_get,
	.history = sqlite_history,
	.list = sqlite_list,
	.counts = sqlite_counts,
	.health = sqlite_health,
	.queue_set = sqlite_queue_set,
	.subscribe = sqlite_subscribe,
	.unsubscribe = sqlite_unsubscribe,
	.topics = sqlite_topics,
	.queue_get = sqlite_queue_get,
	.queue_list = sqlite_queue_list,
	.queue_ready_at = sqlite_queue_ready_at,
	.data_version = sqlite_data_version,
	.queue_batch = sqlite_queue_batch,
	.release = sqlite_release,
	.extend = sqlite_extend,
	.sync_normal = sqlite_sync_normal,
	.next_due = sqlite_next_due,
	.promote = sqlite_promote,
	.claim = sqlite_claim,
	.settle = sqlite_settle,
	.end_overdue = sqlite_end_overdue,
	.recurring_add = sqlite_recurring_add,
	.recurring_get = sqlite_recurring_get,
	.recurring_list = sqlite_recurring_list,
	.recurring_pause = sqlite_recurring_pause,
	.recurring_resume = sqlite_recurring_resume,
	.recurring_delete = sqlite_recurring_delete,
	.recurring_make_at = sqlite_recurring_make_at,
	.recurring_make = sqlite_recurring_make,
	.query_plans = sqlite_query_plans,
	.metrics = sqlite_metrics,
	.retry = sqlite_retry,
	.retry_state = sqlite_retry_state,
	.purge = sqlite_purge,
	.backup = sqlite_backup,
};
