/*
 * store_pg_message.c: messages on PostgreSQL: scheduling (insert_batch,
 * queues made on first use, publishes handed to store_pg_topics.c),
 * cancel, get, history, list, counts and health, and the row readers the
 * other files share. store_sqlite.c is the reference for what each does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "store_pg.h"

/* How near max_pending a schedule takes its turn (see insert_body), and
 * how near its queue's max_depth a queue message does (pg_insert_message). */
#define SCHEDULE_TURN_MARGIN 1024
#define QUEUE_TURN_MARGIN 1024

#define MESSAGE_FROM "messages m LEFT JOIN live l ON l.key = m.key " PG_MESSAGE_JOINS

const char pg_message_columns[] = PG_MESSAGE_COLUMNS;

const struct pg_statement pg_message_statements[] = {
	/* A reused idempotency key or a made occurrence writes nothing: the
	 * unique indexes answer inside the one statement (PostgreSQL takes one
	 * ON CONFLICT clause; without a target it covers both). created is
	 * the caller's now, the time its due was computed from (a delay): the
	 * API promises due = created + delay, which the database's clock
	 * would break by the skew and the time in between. */
	{ "insert_message",
	  "INSERT INTO messages (id, due, created, urls, payload_bytes, content_type, callback, "
	  "max_attempts, timeout, idempotency_key, fingerprint, report_of, queue, priority, "
	  "expires, method, headers, publish, subscription, recurring) "
	  "VALUES ($1, $2, $20, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
	  "$16, $17, $18, (SELECT key FROM recurring WHERE id = $19)) "
	  "ON CONFLICT DO NOTHING RETURNING key, created" },
	{ "insert_payload", "INSERT INTO payloads (key, payload) VALUES ($1, $2)" },
	{ "insert_live",
	  "INSERT INTO live (key, due, next_round, buffered, lease_ms, queue, priority, expires) "
	  "VALUES ($1, $2, $2, $3, $4, $5, $6, $7)" },
	{ "find_by_key",
	  "SELECT id, fingerprint FROM messages WHERE idempotency_key = $1 "
	  "AND idempotency_key IS NOT NULL" },
	{ "message_get",
	  "SELECT " PG_MESSAGE_COLUMNS ", p.payload FROM " MESSAGE_FROM " "
	  "LEFT JOIN payloads p ON p.key = m.key WHERE m.id = $1" },
	{ "message_history",
	  "SELECT h.at, h.url, h.status, h.error, h.ms FROM history h "
	  "WHERE h.key = (SELECT key FROM messages WHERE id = $1) ORDER BY h.seq" },
	{ "list_state",
	  "SELECT " PG_MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	  "WHERE m.state = $1 AND (m.due, m.id) > ($2, $3) ORDER BY m.due, m.id LIMIT $4" },
	{ "list_alive",
	  "SELECT " PG_MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	  "WHERE m.state = 0 AND (m.due, m.id) > ($2, $3) AND (l.token <> 0) = ($1 <> 0) "
	  "ORDER BY m.due, m.id LIMIT $4" },
	{ "list_all",
	  "SELECT " PG_MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	  "WHERE (m.due, m.id) > ($1, $2) ORDER BY m.due, m.id LIMIT $3" },
	{ "list_queue_state",
	  "SELECT " PG_MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	  "WHERE m.queue = (SELECT key FROM queues WHERE name = $5) AND m.state = $1 "
	  "AND (m.due, m.id) > ($2, $3) ORDER BY m.due, m.id LIMIT $4" },
	{ "list_queue_alive",
	  "SELECT " PG_MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	  "WHERE m.queue = (SELECT key FROM queues WHERE name = $5) AND m.state = 0 "
	  "AND (m.due, m.id) > ($2, $3) AND (l.token <> 0) = ($1 <> 0) "
	  "ORDER BY m.due, m.id LIMIT $4" },
	{ "list_queue_all",
	  "SELECT " PG_MESSAGE_COLUMNS " FROM " MESSAGE_FROM " "
	  "WHERE m.queue = (SELECT key FROM queues WHERE name = $4) "
	  "AND (m.due, m.id) > ($1, $2) ORDER BY m.due, m.id LIMIT $3" },
	{ "counts", "SELECT state, sum(n) FROM counts GROUP BY state" },
	/* max_pending is one limit over every writer: near it the schedules
	 * take their turn to check it and insert ('pdsched'), as SQLite's write
	 * lock makes them. Without it two batches both read the same committed
	 * count and both went past the limit. */
	{ "schedule_turn", "SELECT pg_advisory_xact_lock(31635644143396196)" },
	/* The same for one queue's max_depth, a turn per queue ('pdqd', key). */
	{ "queue_turn", "SELECT pg_advisory_xact_lock(1885630820, $1::integer)" },
	/* Only a message that nobody holds can be cancelled: the same
	 * statement checks and ends it. */
	{ "cancel_live",
	  "DELETE FROM live WHERE key = (SELECT key FROM messages WHERE id = $1) AND token = 0 "
	  "RETURNING key, attempts, gone, queue" },
	{ "cancel_end",
	  "UPDATE messages SET state = 4, ended = " PG_NOW ", attempts = $2, gone = $3 "
	  "WHERE key = $1 AND state = 0" },
	{ "state_of",
	  "SELECT m.state, l.token FROM messages m LEFT JOIN live l ON l.key = m.key "
	  "WHERE m.id = $1" },
	/* The buffer's earliest due time: the earliest of each priority
	 * level's, each level one index lookup (a skip scan over the levels). */
	{ "earliest_buffered",
	  "WITH RECURSIVE levels (p) AS ("
	  "(SELECT priority FROM live WHERE buffered = 1 ORDER BY priority LIMIT 1) "
	  "UNION ALL SELECT (SELECT priority FROM live WHERE buffered = 1 AND priority > levels.p "
	  "ORDER BY priority LIMIT 1) FROM levels WHERE levels.p IS NOT NULL) "
	  "SELECT min((SELECT due FROM live WHERE buffered = 1 AND priority = levels.p "
	  "ORDER BY due LIMIT 1)) FROM levels WHERE p IS NOT NULL" },
	{ "earliest_unbuffered", "SELECT min(due) FROM live WHERE buffered = 0 AND queue = 0" },
	/* A queue is made on first use; two makers at once agree on one row. */
	{ "queue_make",
	  "INSERT INTO queues (name, visibility, max_attempts, created) "
	  "VALUES ($1, $2, $3, " PG_NOW ") ON CONFLICT (name) DO NOTHING RETURNING key" },
	{ "queue_counts_make",
	  "INSERT INTO queue_counts (queue, state) VALUES ($1, 0), ($1, 2), ($1, 3), ($1, 4), "
	  "($1, 5)" },
	{ "queue_find",
	  "SELECT key, visibility, max_attempts, max_depth, paused, "
	  "(SELECT n FROM queue_counts WHERE queue = queues.key AND state = 0) "
	  "FROM queues WHERE name = $1" },
	{ "queue_counts_of",
	  "SELECT c.state, c.n, (SELECT count(*) FROM live l WHERE l.queue = q.key "
	  "AND l.queue <> 0 AND l.token <> 0 AND l.due > " PG_NOW ") "
	  "FROM queues q JOIN queue_counts c ON c.queue = q.key WHERE q.name = $1" },
};
const int pg_message_nstatements =
	(int)(sizeof(pg_message_statements) / sizeof(pg_message_statements[0]));

/* ---- rows ---- */

static enum pd_method
method_or_post(const PGresult *r, int row, int c)
{
	int known = PQgetisnull(r, row, c) ? -1 :
	    method_parse(PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c));

	return known >= 0 ? (enum pd_method)known : PD_METHOD_POST;
}

int
pg_row_to_message(const PGresult *r, int row, int c, struct pd_message *m, int whole_pool)
{
	int state = (int)pg_get_int(r, row, c + 1);
	int alive = state == 0 && !PQgetisnull(r, row, c + 4);
	unsigned gone = (unsigned)pg_get_int(r, row, c + 18);
	const char *pool = PQgetisnull(r, row, c + 8) ? NULL : PQgetvalue(r, row, c + 8);

	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", PQgetvalue(r, row, c + 0));
	if (alive)
		m->state = pg_get_int(r, row, c + 4) != 0 ? PD_DELIVERING : PD_PENDING;
	else
		m->state = state > 0 && state < PD_NSTATES ? (enum pd_state)state : PD_PENDING;
	m->due = pg_get_int(r, row, c + 2);
	m->created = pg_get_int(r, row, c + 3);
	if (m->state == PD_PENDING)
		m->next_attempt = pg_get_int(r, row, c + 5);
	else if (m->state == PD_DELIVERING)
		m->next_attempt = pg_get_int(r, row, c + 6);
	m->delivered_at = pg_get_int(r, row, c + 7);
	if (pool != NULL)
		m->urls = whole_pool || gone == 0 ? strdup(pool) : urls_left(pool, gone);
	m->payload_len = (size_t)pg_get_int(r, row, c + 9);
	m->content_type = pg_get_strdup(r, row, c + 10);
	m->callback = pg_get_strdup(r, row, c + 11);
	m->idempotency_key = pg_get_strdup(r, row, c + 12);
	m->delivered_to = pg_get_strdup(r, row, c + 13);
	m->report_of = pg_get_strdup(r, row, c + 14);
	m->max_attempts = (int)pg_get_int(r, row, c + 15);
	m->timeout = (int)pg_get_int(r, row, c + 16);
	m->attempts = (int)pg_get_int(r, row, c + 17);
	m->report = pg_get_strdup(r, row, c + 19);
	m->queue = pg_get_strdup(r, row, c + 20);
	m->priority = (int)pg_get_int(r, row, c + 21);
	m->expires = pg_get_int(r, row, c + 22);
	m->envelope.method = method_or_post(r, row, c + 23);
	m->envelope.headers = pg_get_strdup(r, row, c + 24);
	m->topic = pg_get_strdup(r, row, c + 25);
	m->subscription = pg_get_strdup(r, row, c + 26);
	m->recurring = pg_get_strdup(r, row, c + 27);
	if (m->urls == NULL || m->content_type == NULL ||
	    (m->envelope.headers == NULL && !PQgetisnull(r, row, c + 24))) {
		message_free(m);
		return -1;
	}
	return 0;
}

/* A bytea column in text form is hex ("\x..."): PQunescapeBytea reads it. */
int
pg_row_payload(const PGresult *r, int row, int col, struct pd_message *m)
{
	size_t len = 0;
	unsigned char *bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &len);

	if (bytes == NULL || (m->payload = malloc(len + 1)) == NULL) {
		PQfreemem(bytes);
		return -1;
	}
	memcpy(m->payload, bytes, len);
	m->payload[len] = '\0';
	m->payload_len = len;
	PQfreemem(bytes);
	return 0;
}

/* ---- queues ---- */

/* What this transaction has added to queue's alive count so far. */
static long
queue_alive_change(const struct pg_store *s, int64_t queue)
{
	for (int i = 0; i < s->queue_deltas; i++)
		if (s->queue_delta[i].queue == queue && s->queue_delta[i].state == 0)
			return s->queue_delta[i].n;
	return 0;
}

static enum store_result
read_queue_row(struct pg_store *s, const char *name, struct pg_queue_row *q)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	pg_text(&p, name);
	if ((r = pg_exec(s, "queue_find", &p, "finding a queue", &res)) == NULL)
		return res;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return STORE_NOTFOUND;
	}
	q->key = pg_get_int(r, 0, 0);
	q->visibility = (int)pg_get_int(r, 0, 1);
	q->max_attempts = (int)pg_get_int(r, 0, 2);
	q->max_depth = (long)pg_get_int(r, 0, 3);
	q->paused = (int)pg_get_int(r, 0, 4);
	q->alive = (long)pg_get_int(r, 0, 5) + queue_alive_change(s, q->key);
	PQclear(r);
	return STORE_OK;
}

enum store_result
pg_find_queue(struct pg_store *s, const char *name, int make, pd_ms now, struct pg_queue_row *q)
{
	struct pg_params p = { 0 };
	enum store_result res;
	PGresult *r;

	(void)now;    /* created is the database's time */
	if ((res = read_queue_row(s, name, q)) != STORE_NOTFOUND || !make)
		return res;
	pg_text(&p, name);
	pg_int(&p, s->cfg->queue_visibility);
	pg_int(&p, s->cfg->default_max_attempts);
	if ((r = pg_exec(s, "queue_make", &p, "making a queue", &res)) == NULL)
		return res;
	if (PQntuples(r) == 1) {
		struct pg_params k = { 0 };
		PGresult *c;

		pg_int(&k, pg_get_int(r, 0, 0));
		c = pg_exec(s, "queue_counts_make", &k, "making a queue", &res);
		PQclear(c);
		if (c == NULL) {
			PQclear(r);
			return res;
		}
	}
	PQclear(r);
	res = read_queue_row(s, name, q);
	return res == STORE_NOTFOUND ? STORE_ERROR : res;
}

/* ---- scheduling ---- */

/* Reads message id into m (the snapshot is the caller's). */
static enum store_result
read_message(struct pg_store *s, const char *id, struct pd_message *m)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	pg_text(&p, id);
	if ((r = pg_exec(s, "message_get", &p, "reading a message", &res)) == NULL)
		return res;
	if (PQntuples(r) == 0)
		res = STORE_NOTFOUND;
	else if (pg_row_to_message(r, 0, 0, m, 0) != 0)
		res = STORE_ERROR;
	else if (pg_row_payload(r, 0, PG_MESSAGE_NCOLUMNS, m) != 0) {
		message_free(m);
		res = STORE_ERROR;
	}
	PQclear(r);
	return res;
}

/* The message that holds m's idempotency key: STORE_EXISTS with m replaced
 * by it when the requests agree, STORE_CONFLICT when they do not,
 * STORE_NOTFOUND when no message holds it. */
static enum store_result
existing_for_key(struct pg_store *s, struct pd_message *m, const unsigned char *print)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	struct pd_message original;
	char id[PD_ID_LEN + 1];
	unsigned char *stored = NULL;
	size_t len = 0;
	PGresult *r;
	int same;

	pg_text(&p, m->idempotency_key);
	if ((r = pg_exec(s, "find_by_key", &p, "reading a key", &res)) == NULL)
		return res;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return STORE_NOTFOUND;
	}
	snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
	if (!PQgetisnull(r, 0, 1))
		stored = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &len);
	same = PQgetisnull(r, 0, 1) ||
	    (stored != NULL && len == FINGERPRINT_LEN && memcmp(stored, print, len) == 0);
	PQfreemem(stored);
	PQclear(r);
	if (!same)
		return STORE_CONFLICT;
	if ((res = read_message(s, id, &original)) != STORE_OK)
		return res;
	message_free(m);
	*m = original;
	return STORE_EXISTS;
}

enum store_result
pg_insert_message(struct pg_store *s, struct pd_message *m, pd_ms now, int64_t publish)
{
	unsigned char print[FINGERPRINT_LEN];
	struct pg_queue_row q = { 0 };
	struct pg_params p = { 0 }, pl = { 0 }, lv = { 0 };
	enum store_result res = STORE_OK;
	int npool = 1;
	int64_t key;
	PGresult *r;

	if (m->queue != NULL) {
		if ((res = pg_find_queue(s, m->queue, 1, now, &q)) != STORE_OK)
			return res;
		/* Near its max_depth a queue's writers take turns and count
		 * again, as schedules do near max_pending: two batches that both
		 * read the same committed count both went past the limit. */
		if (q.max_depth > 0 && q.alive + QUEUE_TURN_MARGIN >= q.max_depth) {
			struct pg_params t = { 0 };

			pg_int(&t, q.key);
			if ((r = pg_exec(s, "queue_turn", &t, "scheduling", &res)) == NULL)
				return res;
			PQclear(r);
			if ((res = pg_find_queue(s, m->queue, 0, now, &q)) != STORE_OK)
				return res;
		}
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
	/* At the high-water mark nothing is written; a repeated request
	 * still gets the message its key holds. */
	if (q.key != 0 && q.max_depth > 0 && q.alive >= q.max_depth) {
		res = m->idempotency_key != NULL ? existing_for_key(s, m, print) : STORE_NOTFOUND;
		return res == STORE_NOTFOUND ? STORE_QUEUE_FULL : res;
	}
	pg_text(&p, m->id);
	pg_int(&p, m->due);
	pg_text(&p, m->urls);
	pg_int(&p, (int64_t)m->payload_len);
	pg_text(&p, m->content_type);
	pg_text(&p, m->callback);
	pg_int(&p, m->max_attempts);
	pg_int(&p, m->timeout);
	pg_text(&p, m->idempotency_key);
	pg_bytes(&p, print, FINGERPRINT_LEN);
	pg_text(&p, m->report_of);
	if (q.key != 0)
		pg_int(&p, q.key);
	else
		pg_text(&p, NULL);
	pg_int(&p, m->priority);
	if (m->expires != 0)
		pg_int(&p, m->expires);
	else
		pg_text(&p, NULL);
	pg_text(&p, method_name(m->envelope.method));
	pg_text(&p, m->envelope.headers);
	if (publish != 0)
		pg_int(&p, publish);
	else
		pg_text(&p, NULL);
	pg_text(&p, m->subscription);
	pg_text(&p, m->recurring);
	pg_int(&p, now);
	if ((r = pg_exec(s, "insert_message", &p, "inserting a message", &res)) == NULL)
		return res;
	if (PQntuples(r) == 0) {
		PQclear(r);
		/* An occurrence of a recurring definition made already. */
		if (m->recurring != NULL)
			return STORE_EXISTS;
		res = m->idempotency_key != NULL ? existing_for_key(s, m, print) : STORE_NOTFOUND;
		return res == STORE_NOTFOUND ? STORE_ERROR : res;
	}
	key = pg_get_int(r, 0, 0);
	m->created = pg_get_int(r, 0, 1);
	PQclear(r);
	pg_int(&pl, key);
	pg_bytes(&pl, m->payload, m->payload_len);
	if ((r = pg_exec(s, "insert_payload", &pl, "inserting a payload", &res)) == NULL)
		return res;
	PQclear(r);
	for (const char *c = m->urls; (c = strchr(c, '\n')) != NULL; c++)
		npool++;
	pg_int(&lv, key);
	pg_int(&lv, m->next_attempt);
	pg_int(&lv, q.key == 0 &&
	    m->next_attempt <= now + (pd_ms)s->cfg->buffer_horizon * PD_MS_PER_S);
	/* A lease covers a whole round: a timeout for every URL of the pool.
	 * A receive leases for its visibility instead. */
	pg_int(&lv, q.key != 0 ? 0 : (int64_t)m->timeout * PD_MS_PER_S * npool);
	pg_int(&lv, q.key);
	pg_int(&lv, m->priority);
	if (m->expires != 0)
		pg_int(&lv, m->expires);
	else
		pg_text(&lv, NULL);
	if ((r = pg_exec(s, "insert_live", &lv, "inserting a message", &res)) == NULL)
		return res;
	PQclear(r);
	pg_queue_count(s, q.key, 0, 1);
	pg_count(s, PD_PENDING, 1);
	pg_total(s, PG_TOTAL_MADE, 1);
	return STORE_OK;
}

enum store_result
pg_read_counts(struct pg_store *s, long counts[PD_NSTATES])
{
	enum store_result res = STORE_OK;
	PGresult *r;

	memset(counts, 0, sizeof(long) * PD_NSTATES);
	if ((r = pg_exec(s, "counts", NULL, "counting messages", &res)) == NULL)
		return res;
	for (int i = 0; i < PQntuples(r); i++) {
		int state = (int)pg_get_int(r, i, 0);

		if (state >= 0 && state < PD_NSTATES)
			counts[state] = (long)pg_get_int(r, i, 1);
	}
	PQclear(r);
	return STORE_OK;
}

static int
stored(enum store_result res)
{
	return res == STORE_OK || res == STORE_EXISTS;
}

#define TEXT_FIELDS(m) { &(m)->urls, &(m)->queue, &(m)->content_type, &(m)->callback, \
	&(m)->idempotency_key, &(m)->delivered_to, &(m)->report_of, &(m)->report, \
	&(m)->recurring, &(m)->topic, &(m)->subscription, &(m)->envelope.headers }

/* A deep copy of from into m; 0, or -1 out of memory (m then empty). */
static int
message_copy(struct pd_message *m, const struct pd_message *from)
{
	char **to[] = TEXT_FIELDS(m);
	char *const *src[] = TEXT_FIELDS(from);
	int failed = 0;

	*m = *from;
	m->payload = NULL;
	m->deliveries = NULL;
	m->ndeliveries = 0;
	for (size_t i = 0; i < sizeof(to) / sizeof(to[0]); i++)
		if (*src[i] != NULL && (*to[i] = strdup(*src[i])) == NULL)
			failed = 1;
	if (from->payload != NULL) {
		if ((m->payload = malloc(from->payload_len + 1)) == NULL)
			failed = 1;
		else {
			memcpy(m->payload, from->payload, from->payload_len);
			m->payload[from->payload_len] = '\0';
		}
	}
	if (failed)
		message_free(m);   /* frees the copies made; the NULLs are fine */
	return failed ? -1 : 0;
}

/* A batch works on copies of its messages: a transaction that is run
 * again after a deadlock starts from what the caller gave, and only the
 * committed run's messages (ids, created, originals) reach the caller. */
struct insert_work {
	struct store_insert *items;
	struct pd_message *copies;
	size_t n;
};

static enum store_result
insert_body(struct pg_store *s, void *arg)
{
	struct insert_work *w = arg;
	long pending;
	enum store_result res;

	{
		long counts[PD_NSTATES];
		PGresult *r;

		if ((res = pg_read_counts(s, counts)) != STORE_OK)
			return res;
		pending = counts[PD_PENDING];
		/* Far below the limit batches commit side by side (a turn for
		 * every one would serialise their commits: 8 writers of single
		 * messages made 257/s with it, 1600-2200/s without); within
		 * SCHEDULE_TURN_MARGIN of it they take turns and count again. The
		 * limit then holds exactly unless more than the margin's messages
		 * are in uncommitted batches at once. */
		if (pending + (long)w->n + SCHEDULE_TURN_MARGIN >= s->cfg->max_pending) {
			if ((r = pg_exec(s, "schedule_turn", NULL, "scheduling", &res)) == NULL)
				return res;
			PQclear(r);
			if ((res = pg_read_counts(s, counts)) != STORE_OK)
				return res;
			pending = counts[PD_PENDING];
		}
	}
	for (size_t i = 0; i < w->n; i++) {
		struct pd_message *m = &w->copies[i];

		message_free(m);
		if (message_copy(m, w->items[i].message) != 0)
			return STORE_ERROR;
		/* The count includes the batch's earlier messages. */
		if (pending + s->delta[PD_PENDING] >= s->cfg->max_pending) {
			w->items[i].result = STORE_FULL;
			continue;
		}
		if (m->topic != NULL)
			res = pg_publish_in_tx(s, m, w->items[i].now,
			                       s->cfg->max_pending - pending - s->delta[PD_PENDING]);
		else
			res = pg_insert_message(s, m, w->items[i].now, 0);
		w->items[i].result = res;
		/* A failed statement ends the transaction on PostgreSQL: the
		 * whole batch fails with it. */
		if (!stored(res) && res != STORE_FULL && res != STORE_QUEUE_FULL &&
		    res != STORE_CONFLICT)
			return res;
	}
	return STORE_OK;
}

void
pg_op_insert_batch(struct pd_store *store, struct store_insert *items, size_t n)
{
	struct pg_store *s = pg_of(store);
	struct insert_work w = { items, calloc(n ? n : 1, sizeof(struct pd_message)), n };
	enum store_result res;

	if (w.copies == NULL) {
		for (size_t i = 0; i < n; i++)
			items[i].result = STORE_ERROR;
		return;
	}
	res = pg_transaction(s, "scheduling", 0, insert_body, &w);
	for (size_t i = 0; i < n; i++) {
		if (res != STORE_OK)
			items[i].result = res;
		else if (stored(items[i].result)) {
			/* Committed: the caller's message becomes what was stored. */
			message_free(items[i].message);
			*items[i].message = w.copies[i];
			memset(&w.copies[i], 0, sizeof(w.copies[i]));
		}
		message_free(&w.copies[i]);
	}
	free(w.copies);
}

/* ---- cancel ---- */

struct cancel_work {
	const char *id;
	enum pd_state state;
};

static enum store_result
cancel_body(struct pg_store *s, void *arg)
{
	struct cancel_work *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	pg_text(&p, w->id);
	if ((r = pg_exec(s, "cancel_live", &p, "cancelling", &res)) == NULL)
		return res;
	if (PQntuples(r) == 1) {
		struct pg_params e = { 0 };
		int64_t queue = pg_get_int(r, 0, 3);
		PGresult *u;

		pg_int(&e, pg_get_int(r, 0, 0));
		pg_int(&e, pg_get_int(r, 0, 1));
		pg_int(&e, pg_get_int(r, 0, 2));
		PQclear(r);
		if ((u = pg_exec(s, "cancel_end", &e, "cancelling", &res)) == NULL)
			return res;
		PQclear(u);
		pg_queue_count(s, queue, 0, -1);
		pg_queue_count(s, queue, PD_CANCELLED, 1);
		pg_count(s, PD_PENDING, -1);
		pg_count(s, PD_CANCELLED, 1);
		pg_total(s, PG_TOTAL_CANCELLED, 1);
		w->state = PD_CANCELLED;
		return STORE_OK;
	}
	PQclear(r);
	/* Nothing was pending: say what it is (and write nothing). */
	if ((r = pg_exec(s, "state_of", &p, "reading a state", &res)) == NULL)
		return res;
	if (PQntuples(r) == 0)
		res = STORE_NOTFOUND;
	else {
		int ended = (int)pg_get_int(r, 0, 0);

		w->state = ended != 0 && ended < PD_NSTATES ? (enum pd_state)ended : PD_DELIVERING;
		res = w->state == PD_CANCELLED ? STORE_OK : STORE_CONFLICT;
	}
	PQclear(r);
	/* Not STORE_OK: the transaction (which wrote nothing) is rolled back,
	 * and an already-cancelled message answers OK below. */
	return res == STORE_OK ? STORE_EXISTS : res;
}

enum store_result
pg_state_of(struct pg_store *s, const char *id, enum pd_state *state)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	pg_text(&p, id);
	if ((r = pg_exec(s, "state_of", &p, "reading a state", &res)) == NULL)
		return res;
	if (PQntuples(r) == 0)
		res = STORE_NOTFOUND;
	else {
		int ended = (int)pg_get_int(r, 0, 0);

		if (ended != 0 && ended < PD_NSTATES)
			*state = (enum pd_state)ended;
		else
			*state = pg_get_int(r, 0, 1) != 0 ? PD_DELIVERING : PD_PENDING;
	}
	PQclear(r);
	return res;
}

enum store_result
pg_op_cancel(struct pd_store *store, const char *id, enum pd_state *state)
{
	struct cancel_work w = { id, PD_PENDING };
	enum store_result res = pg_transaction(pg_of(store), "cancelling", 0, cancel_body, &w);

	if (res == STORE_OK || res == STORE_EXISTS || res == STORE_CONFLICT)
		*state = w.state;
	return res == STORE_EXISTS ? STORE_OK : res;
}

/* ---- reading ---- */

struct read_work {
	const char *id;
	struct pd_message *m;
	store_attempt_fn fn;
	void *ctx;
	PGresult *history;
	int have_message;
};

static enum store_result
read_body(struct pg_store *s, void *arg)
{
	struct read_work *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;

	if (w->have_message) {
		message_free(w->m);
		w->have_message = 0;
	}
	PQclear(w->history);
	w->history = NULL;
	if (w->m != NULL) {
		if ((res = read_message(s, w->id, w->m)) != STORE_OK)
			return res;
		w->have_message = 1;
	}
	if (w->fn != NULL) {
		pg_text(&p, w->id);
		if ((w->history = pg_exec(s, "message_history", &p, "reading history", &res)) == NULL)
			return res;
	}
	return STORE_OK;
}

/* Hands the history read to fn, after the read ended. */
static void
hand_over_history(struct read_work *w)
{
	for (int i = 0; w->history != NULL && i < PQntuples(w->history); i++) {
		struct pd_attempt a = {
			.at = pg_get_int(w->history, i, 0),
			.url = PQgetvalue(w->history, i, 1),
			.status = (int)pg_get_int(w->history, i, 2),
			.error = pg_is_null(w->history, i, 3) ? NULL : PQgetvalue(w->history, i, 3),
			.ms = (int)pg_get_int(w->history, i, 4),
		};

		if (w->fn(w->ctx, &a) != 0)
			break;
	}
	PQclear(w->history);
	w->history = NULL;
}

enum store_result
pg_op_get(struct pd_store *store, const char *id, struct pd_message *m, store_attempt_fn fn,
          void *ctx)
{
	struct read_work w = { id, m, fn, ctx, NULL, 0 };
	enum store_result res = pg_read(pg_of(store), "reading a message", read_body, &w);

	if (res != STORE_OK) {
		if (w.have_message)
			message_free(m);
		PQclear(w.history);
		return res;
	}
	hand_over_history(&w);
	return STORE_OK;
}

enum store_result
pg_op_history(struct pd_store *store, const char *id, store_attempt_fn fn, void *ctx)
{
	struct read_work w = { id, NULL, fn, ctx, NULL, 0 };
	enum store_result res = pg_read(pg_of(store), "reading history", read_body, &w);

	if (res != STORE_OK) {
		PQclear(w.history);
		return res;
	}
	hand_over_history(&w);
	return STORE_OK;
}

struct counts_work {
	long *counts;
};

static enum store_result
counts_body(struct pg_store *s, void *arg)
{
	return pg_read_counts(s, ((struct counts_work *)arg)->counts);
}

enum store_result
pg_op_counts(struct pd_store *store, long counts[PD_NSTATES])
{
	struct counts_work w = { counts };

	return pg_read(pg_of(store), "counting messages", counts_body, &w);
}

/* A queue's counts as the list shows them: pending and delivering from
 * its alive count and its leases held now, the ended states as kept. */
static enum store_result
read_queue_counts(struct pg_store *s, const char *name, long counts[PD_NSTATES])
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	memset(counts, 0, sizeof(long) * PD_NSTATES);
	pg_text(&p, name);
	if ((r = pg_exec(s, "queue_counts_of", &p, "counting a queue", &res)) == NULL)
		return res;
	for (int i = 0; i < PQntuples(r); i++) {
		int state = (int)pg_get_int(r, i, 0);
		long n = (long)pg_get_int(r, i, 1);

		if (state == 0) {
			long leased = (long)pg_get_int(r, i, 2);

			counts[PD_DELIVERING] = leased < n ? leased : n;
			counts[PD_PENDING] = n - counts[PD_DELIVERING];
		} else if (state > 0 && state < PD_NSTATES)
			counts[state] = n;
	}
	PQclear(r);
	return STORE_OK;
}

struct list_work {
	int state;
	const char *queue;
	pd_ms after_due;
	const char *after_id;
	int limit;
	long *counts;
	PGresult *rows;
};

static enum store_result
list_body(struct pg_store *s, void *arg)
{
	struct list_work *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	const char *name;

	if (w->state < 0)
		name = w->queue != NULL ? "list_queue_all" : "list_all";
	else if (w->state == PD_PENDING || w->state == PD_DELIVERING)
		name = w->queue != NULL ? "list_queue_alive" : "list_alive";
	else
		name = w->queue != NULL ? "list_queue_state" : "list_state";
	/* Every statement but the "all" ones begins with the state (alive:
	 * whether leased). */
	if (w->state >= 0)
		pg_int(&p, w->state == PD_PENDING || w->state == PD_DELIVERING ?
		       w->state == PD_DELIVERING : w->state);
	/* The first page starts before every (due, id): ids are never empty. */
	pg_int(&p, w->after_id != NULL ? w->after_due : INT64_MIN);
	pg_text(&p, w->after_id != NULL ? w->after_id : "");
	pg_int(&p, w->limit);
	if (w->queue != NULL)
		pg_text(&p, w->queue);
	PQclear(w->rows);
	if ((w->rows = pg_exec(s, name, &p, "listing messages", &res)) == NULL)
		return res;
	if (w->counts != NULL)
		res = w->queue != NULL ? read_queue_counts(s, w->queue, w->counts)
		                       : pg_read_counts(s, w->counts);
	return res;
}

enum store_result
pg_op_list(struct pd_store *store, int state, const char *queue, pd_ms after_due,
           const char *after_id, int limit, store_message_fn fn, void *ctx,
           long counts[PD_NSTATES])
{
	struct list_work w = { state, queue, after_due, after_id, limit, counts, NULL };
	enum store_result res = pg_read(pg_of(store), "listing messages", list_body, &w);

	for (int i = 0; res == STORE_OK && i < PQntuples(w.rows); i++) {
		struct pd_message m;
		int stop;

		if (pg_row_to_message(w.rows, i, 0, &m, 0) != 0) {
			res = STORE_ERROR;
			break;
		}
		stop = fn(ctx, &m);
		message_free(&m);
		if (stop)
			break;
	}
	PQclear(w.rows);
	return res;
}

struct health_work {
	long *counts;
	pd_ms buffered, unbuffered;
};

static enum store_result
health_body(struct pg_store *s, void *arg)
{
	struct health_work *w = arg;
	enum store_result res;
	PGresult *r;

	if ((res = pg_read_counts(s, w->counts)) != STORE_OK)
		return res;
	if ((r = pg_exec(s, "earliest_buffered", NULL, "reading health", &res)) == NULL)
		return res;
	w->buffered = pg_get_int(r, 0, 0);
	PQclear(r);
	if ((r = pg_exec(s, "earliest_unbuffered", NULL, "reading health", &res)) == NULL)
		return res;
	w->unbuffered = pg_get_int(r, 0, 0);
	PQclear(r);
	return STORE_OK;
}

enum store_result
pg_op_health(struct pd_store *store, long counts[PD_NSTATES], pd_ms *earliest)
{
	struct health_work w = { counts, 0, 0 };
	enum store_result res = pg_read(pg_of(store), "reading health", health_body, &w);

	if (res != STORE_OK)
		return res;
	if (w.buffered == 0 || (w.unbuffered != 0 && w.unbuffered < w.buffered))
		*earliest = w.unbuffered;
	else
		*earliest = w.buffered;
	return STORE_OK;
}
