/*
 * store_pg_topics.c: topics on PostgreSQL: subscriptions and publishes (one
 * copy per subscription, all or none, inside the schedule's transaction).
 * store_sqlite.c is the reference for what each does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "store_pg.h"

const struct pg_statement pg_topic_statements[] = {
	/* Made on first subscribe; two subscribers at once agree on one. */
	{ "topic_make",
	  "INSERT INTO topics (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING" },
	{ "topic_find", "SELECT key FROM topics WHERE name = $1" },
	{ "topic_names", "SELECT key, name FROM topics ORDER BY name" },
	/* Made, or else replaced: one statement on the row, which says which. */
	{ "subscribe",
	  "INSERT INTO subscriptions (topic, name, urls, queue, callback, max_attempts, timeout, "
	  "method, headers, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
	  "ON CONFLICT (topic, name) DO UPDATE SET urls = excluded.urls, queue = excluded.queue, "
	  "callback = excluded.callback, max_attempts = excluded.max_attempts, "
	  "timeout = excluded.timeout, method = excluded.method, headers = excluded.headers "
	  "RETURNING (xmax = 0)::int" },
	{ "subscription_count", "SELECT count(*) FROM subscriptions WHERE topic = $1" },
	{ "unsubscribe",
	  "DELETE FROM subscriptions WHERE topic = (SELECT key FROM topics WHERE name = $1) "
	  "AND name = $2" },
	{ "subscriptions_of",
	  "SELECT name, urls, queue, callback, max_attempts, timeout, created, method, headers "
	  "FROM subscriptions WHERE topic = $1 ORDER BY name LIMIT $2" },
	/* A reused idempotency key or a made occurrence writes nothing. */
	{ "publish_insert",
	  "INSERT INTO publishes (topic, due, created, idempotency_key, fingerprint, recurring) "
	  "VALUES ($1, $2, $3, $4, $5, (SELECT key FROM recurring WHERE id = $6)) "
	  "ON CONFLICT DO NOTHING RETURNING key" },
	{ "publish_by_key",
	  "SELECT key, fingerprint, due, created FROM publishes WHERE idempotency_key = $1 "
	  "AND idempotency_key IS NOT NULL" },
	{ "publish_deliveries",
	  "SELECT subscription, id FROM messages WHERE publish = $1 AND publish IS NOT NULL "
	  "ORDER BY key" },
};
const int pg_topic_nstatements =
	(int)(sizeof(pg_topic_statements) / sizeof(pg_topic_statements[0]));

static enum pd_method
method_or_post(const PGresult *r, int row, int c)
{
	int known = PQgetisnull(r, row, c) ? -1 :
	    method_parse(PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c));

	return known >= 0 ? (enum pd_method)known : PD_METHOD_POST;
}

/* A topic's key: STORE_NOTFOUND when there is none. */
static enum store_result
find_topic(struct pg_store *s, const char *name, int64_t *key)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	*key = 0;
	pg_text(&p, name);
	if ((r = pg_exec(s, "topic_find", &p, "finding a topic", &res)) == NULL)
		return res;
	if (PQntuples(r) == 1)
		*key = pg_get_int(r, 0, 0);
	else
		res = STORE_NOTFOUND;
	PQclear(r);
	return res;
}

/* The subscriptions of topic (at most PD_MAX_SUBSCRIPTIONS) in a new
 * array *subs of *n destinations, each one's name in subscription. */
static enum store_result
read_subscriptions(struct pg_store *s, int64_t topic, struct pd_message **subs, int *n)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	*subs = NULL;
	*n = 0;
	pg_int(&p, topic);
	pg_int(&p, PD_MAX_SUBSCRIPTIONS);
	if ((r = pg_exec(s, "subscriptions_of", &p, "reading subscriptions", &res)) == NULL)
		return res;
	if (PQntuples(r) > 0 && (*subs = calloc((size_t)PQntuples(r), sizeof(**subs))) == NULL)
		res = STORE_ERROR;
	for (int i = 0; res == STORE_OK && i < PQntuples(r); i++) {
		struct pd_message *d = &(*subs)[(*n)++];

		d->subscription = pg_get_strdup(r, i, 0);
		d->urls = pg_get_strdup(r, i, 1);
		d->queue = pg_get_strdup(r, i, 2);
		d->callback = pg_get_strdup(r, i, 3);
		d->max_attempts = (int)pg_get_int(r, i, 4);
		d->timeout = (int)pg_get_int(r, i, 5);
		d->created = pg_get_int(r, i, 6);
		d->envelope.method = method_or_post(r, i, 7);
		d->envelope.headers = pg_get_strdup(r, i, 8);
		if (d->subscription == NULL || d->urls == NULL ||
		    (d->envelope.headers == NULL && !PQgetisnull(r, i, 8)))
			res = STORE_ERROR;
	}
	PQclear(r);
	return res;
}

static void
subscriptions_free(struct pd_message *subs, int n)
{
	for (int i = 0; i < n; i++)
		message_free(&subs[i]);
	free(subs);
}

/* The copies publish made, into m->deliveries. */
static enum store_result
read_deliveries(struct pg_store *s, int64_t publish, struct pd_message *m)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	free(m->deliveries);
	m->deliveries = NULL;
	m->ndeliveries = 0;
	pg_int(&p, publish);
	if ((r = pg_exec(s, "publish_deliveries", &p, "reading a publish", &res)) == NULL)
		return res;
	if (PQntuples(r) > 0 &&
	    (m->deliveries = calloc((size_t)PQntuples(r), sizeof(*m->deliveries))) == NULL)
		res = STORE_ERROR;
	for (int i = 0; res == STORE_OK && i < PQntuples(r); i++) {
		struct pd_delivery *d = &m->deliveries[m->ndeliveries++];

		snprintf(d->subscription, sizeof(d->subscription), "%s", PQgetvalue(r, i, 0));
		snprintf(d->id, sizeof(d->id), "%s", PQgetvalue(r, i, 1));
	}
	PQclear(r);
	return res;
}

/* What a reused idempotency key of a publish answers: STORE_EXISTS with
 * the first publish's copies in m, or STORE_CONFLICT when the request
 * differs. */
static enum store_result
existing_publish(struct pg_store *s, struct pd_message *m, const unsigned char *print)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	unsigned char *stored = NULL;
	size_t len = 0;
	int64_t key;
	PGresult *r;
	int same;

	pg_text(&p, m->idempotency_key);
	if ((r = pg_exec(s, "publish_by_key", &p, "reading a publish", &res)) == NULL)
		return res;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return STORE_ERROR;
	}
	key = pg_get_int(r, 0, 0);
	if (!PQgetisnull(r, 0, 1))
		stored = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &len);
	same = stored != NULL && len == FINGERPRINT_LEN && memcmp(stored, print, len) == 0;
	PQfreemem(stored);
	m->due = pg_get_int(r, 0, 2);
	m->created = pg_get_int(r, 0, 3);
	PQclear(r);
	if (!same)
		return STORE_CONFLICT;
	if ((res = read_deliveries(s, key, m)) != STORE_OK)
		return res;
	return STORE_EXISTS;
}

/* A savepoint around one publish of a batch: all its copies or none, the
 * batch going on. */
static int
savepoint(struct pg_store *s, const char *sql)
{
	PGresult *r = PQexec(s->conn, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		log_error("store: %s: %s", sql, PQerrorMessage(s->conn));
	PQclear(r);
	return ok ? 0 : -1;
}

enum store_result
pg_publish_in_tx(struct pg_store *s, struct pd_message *m, pd_ms now, long room)
{
	unsigned char print[FINGERPRINT_LEN];
	long delta[PD_NSTATES], total[PG_TOTAL_COUNT];
	struct pg_queue_delta queue_delta[PG_QUEUE_DELTAS];
	int queue_deltas = s->queue_deltas, nsubs = 0;
	struct pd_message *subs = NULL;
	struct pg_params p = { 0 };
	enum store_result res = STORE_ERROR;
	int64_t topic, publish;
	PGresult *r;

	/* A savepoint undoes the database; the counts kept in memory are
	 * put back by hand. */
	memcpy(delta, s->delta, sizeof(delta));
	memcpy(total, s->total, sizeof(total));
	memcpy(queue_delta, s->queue_delta, sizeof(queue_delta));
	if (savepoint(s, "SAVEPOINT publish") != 0)
		return STORE_ERROR;
	if ((res = find_topic(s, m->topic, &topic)) != STORE_OK)
		goto undo;
	m->max_attempts = s->cfg->default_max_attempts;
	m->timeout = s->cfg->default_timeout;
	res = STORE_ERROR;
	if (fingerprint(m, print) != 0)
		goto undo;
	m->created = now;
	pg_int(&p, topic);
	pg_int(&p, m->due);
	pg_int(&p, now);
	pg_text(&p, m->idempotency_key);
	pg_bytes(&p, print, FINGERPRINT_LEN);
	pg_text(&p, m->recurring);
	if ((r = pg_exec(s, "publish_insert", &p, "publishing", &res)) == NULL)
		goto undo;
	if (PQntuples(r) == 0) {
		PQclear(r);
		/* A recurring definition's occurrence made already, or a key used. */
		res = m->recurring != NULL ? STORE_EXISTS : existing_publish(s, m, print);
		goto undo;
	}
	publish = pg_get_int(r, 0, 0);
	PQclear(r);
	if ((res = read_subscriptions(s, topic, &subs, &nsubs)) != STORE_OK)
		goto undo;
	if (nsubs == 0) {
		res = STORE_NOTFOUND;
		goto undo;
	}
	res = STORE_ERROR;
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

		res = pg_insert_message(s, &copy, now, publish);
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
	if (savepoint(s, "RELEASE publish") != 0) {
		res = STORE_ERROR;
		goto undo;
	}
	subscriptions_free(subs, nsubs);
	return STORE_OK;
undo:
	/* After a failed statement the transaction is aborted: going back to
	 * the savepoint makes it usable again. */
	if (savepoint(s, "ROLLBACK TO publish") == 0)
		savepoint(s, "RELEASE publish");
	memcpy(s->delta, delta, sizeof(delta));
	memcpy(s->total, total, sizeof(total));
	memcpy(s->queue_delta, queue_delta, sizeof(queue_delta));
	s->queue_deltas = queue_deltas;
	if (res != STORE_EXISTS) {
		free(m->deliveries);
		m->deliveries = NULL;
		m->ndeliveries = 0;
	}
	subscriptions_free(subs, nsubs);
	return res;
}

/* ---- subscriptions ---- */

struct subscribe_work {
	const char *topic, *name;
	const struct pd_message *dest;
	pd_ms now;
	int created;
};

static enum store_result
subscribe_body(struct pg_store *s, void *arg)
{
	struct subscribe_work *w = arg;
	struct pg_params p = { 0 }, t = { 0 };
	enum store_result res = STORE_OK;
	int64_t key;
	PGresult *r;

	w->created = 0;
	pg_text(&t, w->topic);
	pg_int(&t, w->now);
	if ((r = pg_exec(s, "topic_make", &t, "subscribing", &res)) == NULL)
		return res;
	PQclear(r);
	if ((res = find_topic(s, w->topic, &key)) != STORE_OK)
		return res == STORE_NOTFOUND ? STORE_ERROR : res;
	pg_int(&p, key);
	pg_text(&p, w->name);
	pg_text(&p, w->dest->urls);
	pg_text(&p, w->dest->queue);
	pg_text(&p, w->dest->callback);
	pg_int(&p, w->dest->max_attempts);
	pg_int(&p, w->dest->timeout);
	pg_text(&p, method_name(w->dest->envelope.method));
	pg_text(&p, w->dest->envelope.headers);
	pg_int(&p, w->now);
	if ((r = pg_exec(s, "subscribe", &p, "subscribing", &res)) == NULL)
		return res;
	w->created = PQntuples(r) == 1 && pg_get_int(r, 0, 0) == 1;
	PQclear(r);
	/* A publish copies to every subscription or refuses: a topic never
	 * holds more than a publish reads. */
	if (w->created) {
		struct pg_params c = { 0 };

		pg_int(&c, key);
		if ((r = pg_exec(s, "subscription_count", &c, "subscribing", &res)) == NULL)
			return res;
		if (pg_get_int(r, 0, 0) > PD_MAX_SUBSCRIPTIONS) {
			PQclear(r);
			w->created = 0;
			return STORE_FULL;    /* rolls back */
		}
		PQclear(r);
	}
	return STORE_OK;
}

enum store_result
pg_op_subscribe(struct pd_store *store, const char *topic, const char *name,
                const struct pd_message *dest, pd_ms now, int *created)
{
	struct subscribe_work w = { topic, name, dest, now, 0 };
	enum store_result res = pg_transaction(pg_of(store), "subscribing", 0, subscribe_body, &w);

	*created = res == STORE_OK && w.created;
	return res;
}

struct unsubscribe_work {
	const char *topic, *name;
};

static enum store_result
unsubscribe_body(struct pg_store *s, void *arg)
{
	struct unsubscribe_work *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	pg_text(&p, w->topic);
	pg_text(&p, w->name);
	if ((r = pg_exec(s, "unsubscribe", &p, "unsubscribing", &res)) == NULL)
		return res;
	if (strcmp(PQcmdTuples(r), "0") == 0)
		res = STORE_NOTFOUND;
	PQclear(r);
	return res;
}

enum store_result
pg_op_unsubscribe(struct pd_store *store, const char *topic, const char *name)
{
	struct unsubscribe_work w = { topic, name };

	return pg_transaction(pg_of(store), "unsubscribing", 0, unsubscribe_body, &w);
}

/* ---- listing ---- */

struct topic_read {
	const char *topic;        /* NULL: every topic */
	struct topic_list {
		char name[PD_MAX_QUEUE_NAME + 1];
		struct pd_message *subs;
		int n;
	} *topics;
	int n;
};

static void
topic_read_drop(struct topic_read *w)
{
	for (int i = 0; i < w->n; i++)
		subscriptions_free(w->topics[i].subs, w->topics[i].n);
	free(w->topics);
	w->topics = NULL;
	w->n = 0;
}

static enum store_result
topic_read_body(struct pg_store *s, void *arg)
{
	struct topic_read *w = arg;
	enum store_result res = STORE_OK;
	int64_t *keys = NULL;
	PGresult *r = NULL;
	int n;

	topic_read_drop(w);
	if (w->topic != NULL) {
		int64_t key;

		if ((res = find_topic(s, w->topic, &key)) != STORE_OK)
			return res;
		if ((w->topics = calloc(1, sizeof(*w->topics))) == NULL)
			return STORE_ERROR;
		snprintf(w->topics[0].name, sizeof(w->topics[0].name), "%s", w->topic);
		w->n = 1;
		return read_subscriptions(s, key, &w->topics[0].subs, &w->topics[0].n);
	}
	if ((r = pg_exec(s, "topic_names", NULL, "listing topics", &res)) == NULL)
		return res;
	n = PQntuples(r);
	if (n > 0 && ((w->topics = calloc((size_t)n, sizeof(*w->topics))) == NULL ||
	              (keys = calloc((size_t)n, sizeof(*keys))) == NULL)) {
		PQclear(r);
		free(keys);
		return STORE_ERROR;
	}
	for (int i = 0; i < n; i++) {
		keys[i] = pg_get_int(r, i, 0);
		snprintf(w->topics[i].name, sizeof(w->topics[i].name), "%s", PQgetvalue(r, i, 1));
	}
	PQclear(r);
	w->n = n;
	for (int i = 0; i < n && res == STORE_OK; i++)
		res = read_subscriptions(s, keys[i], &w->topics[i].subs, &w->topics[i].n);
	free(keys);
	return res;
}

enum store_result
pg_op_topics(struct pd_store *store, const char *topic, store_subscription_fn fn, void *ctx)
{
	struct topic_read w = { .topic = topic };
	enum store_result res = pg_read(pg_of(store), "listing topics", topic_read_body, &w);

	/* Handed over after the snapshot ended: a read run again hands
	 * nothing twice. */
	for (int i = 0; i < w.n && res == STORE_OK; i++) {
		if (w.topics[i].n == 0 && fn(ctx, w.topics[i].name, NULL) != 0)
			res = STORE_ERROR;
		for (int j = 0; j < w.topics[i].n && res == STORE_OK; j++)
			if (fn(ctx, w.topics[i].name, &w.topics[i].subs[j]) != 0)
				res = STORE_ERROR;
	}
	topic_read_drop(&w);
	return res;
}
