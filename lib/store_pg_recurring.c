/*
 * store_pg_recurring.c: recurring definitions on PostgreSQL: add, get,
 * list, pause, resume, delete, and the dispatcher's making of occurrences
 * under pg_try_advisory_xact_lock (a dispatcher that finds it held skips:
 * another one is making them). The unique (recurring, due) indexes make
 * an occurrence at most once whoever makes it. store_sqlite.c is the
 * reference for what each does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "store_pg.h"

/* The lock occurrences are made under ('pdrecu'). */
#define RECURRING_LOCK "123576685970293"

#define RECURRING_COLUMNS \
	"key, id, name, cron, tz, urls, queue, payload, content_type, callback, max_attempts, " \
	"timeout, priority, ttl, paused, created, next, last, topic, method, headers"

const struct pg_statement pg_recurring_statements[] = {
	/* A name is unique among the definitions that exist: a taken one
	 * writes nothing. */
	{ "rec_insert",
	  "INSERT INTO recurring (id, name, cron, tz, urls, queue, payload, content_type, "
	  "callback, max_attempts, timeout, priority, ttl, created, next, make_at, topic, method, "
	  "headers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
	  "$16, $17, $18, $19) ON CONFLICT DO NOTHING RETURNING key" },
	{ "rec_get",
	  "SELECT " RECURRING_COLUMNS " FROM recurring WHERE id = $1 AND deleted IS NULL" },
	{ "rec_get_locked",
	  "SELECT " RECURRING_COLUMNS " FROM recurring WHERE id = $1 AND deleted IS NULL "
	  "FOR UPDATE" },
	{ "rec_list",
	  "SELECT " RECURRING_COLUMNS " FROM recurring WHERE deleted IS NULL "
	  "ORDER BY created, key LIMIT $1" },
	{ "rec_latest",
	  "SELECT id FROM messages WHERE recurring = $1 ORDER BY due DESC LIMIT $2" },
	{ "rec_pause",
	  "UPDATE recurring SET paused = 1, next = NULL, make_at = NULL WHERE key = $1" },
	{ "rec_resume",
	  "UPDATE recurring SET paused = 0, next = $2, make_at = $3 WHERE key = $1" },
	{ "rec_delete",
	  "UPDATE recurring SET deleted = $2, name = NULL, paused = 1, next = NULL, "
	  "make_at = NULL WHERE key = $1" },
	/* The occurrence that waits: made, still pending, never tried. */
	{ "rec_waiting",
	  "SELECT m.id FROM messages m JOIN live l ON l.key = m.key "
	  "WHERE m.recurring = $1 AND m.due = $2 AND l.token = 0 AND l.attempts = 0" },
	{ "rec_lock", "SELECT pg_try_advisory_xact_lock(" RECURRING_LOCK ")" },
	/* The caller's now on the database's clock ($3: how far it lies from
	 * the caller's present), as the queue's statements compare. */
	{ "rec_to_make",
	  "SELECT " RECURRING_COLUMNS " FROM recurring WHERE make_at <= " PG_NOW " + $1::bigint "
	  "ORDER BY make_at LIMIT $2" },
	/* Compare-and-set on next: the occurrence read is the one advanced from. */
	{ "rec_advance",
	  "UPDATE recurring SET last = $3, next = $4, make_at = $5 WHERE key = $1 AND next = $2" },
	{ "rec_make_at",
	  "SELECT make_at FROM recurring WHERE make_at IS NOT NULL ORDER BY make_at LIMIT 1" },
};
const int pg_recurring_nstatements =
	(int)(sizeof(pg_recurring_statements) / sizeof(pg_recurring_statements[0]));

static enum pd_method
method_or_post(const PGresult *r, int row, int c)
{
	int known = PQgetisnull(r, row, c) ? -1 :
	    method_parse(PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c));

	return known >= 0 ? (enum pd_method)known : PD_METHOD_POST;
}

/* When the dispatcher is to make occurrence next, whose predecessor falls
 * due at previous: once that one is due, and not before next comes within
 * the buffer horizon. */
static pd_ms
make_time(const struct pg_store *s, pd_ms previous, pd_ms next)
{
	pd_ms horizon_start = next - (pd_ms)s->cfg->buffer_horizon * PD_MS_PER_S;

	return horizon_start > previous ? horizon_start : previous;
}

static void
time_or_null(struct pg_params *p, pd_ms t)
{
	if (t != 0)
		pg_int(p, t);
	else
		pg_text(p, NULL);
}

static int
row_to_recurring(const PGresult *res, int row, struct pd_recurring *r, int64_t *key)
{
	struct pd_message *m = &r->message;

	memset(r, 0, sizeof(*r));
	*key = pg_get_int(res, row, 0);
	snprintf(r->id, sizeof(r->id), "%s", PQgetvalue(res, row, 1));
	r->name = pg_get_strdup(res, row, 2);
	r->cron = pg_get_strdup(res, row, 3);
	r->tz = pg_get_strdup(res, row, 4);
	m->urls = pg_get_strdup(res, row, 5);
	m->queue = pg_get_strdup(res, row, 6);
	if (pg_row_payload(res, row, 7, m) != 0)
		m->payload = NULL;
	m->content_type = pg_get_strdup(res, row, 8);
	m->callback = pg_get_strdup(res, row, 9);
	m->max_attempts = (int)pg_get_int(res, row, 10);
	m->timeout = (int)pg_get_int(res, row, 11);
	m->priority = (int)pg_get_int(res, row, 12);
	r->ttl = pg_get_int(res, row, 13);
	r->paused = (int)pg_get_int(res, row, 14);
	r->created = pg_get_int(res, row, 15);
	r->next = pg_get_int(res, row, 16);
	r->last = pg_get_int(res, row, 17);
	m->topic = pg_get_strdup(res, row, 18);
	m->envelope.method = method_or_post(res, row, 19);
	m->envelope.headers = pg_get_strdup(res, row, 20);
	if (r->cron == NULL || r->tz == NULL || m->urls == NULL || m->payload == NULL ||
	    m->content_type == NULL) {
		recurring_free(r);
		return -1;
	}
	return 0;
}

static enum store_result
read_latest(struct pg_store *s, int64_t key, struct pd_recurring *r)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *q;

	r->nlatest = 0;
	pg_int(&p, key);
	pg_int(&p, PD_RECURRING_LATEST);
	if ((q = pg_exec(s, "rec_latest", &p, "reading a definition's messages", &res)) == NULL)
		return res;
	for (int i = 0; i < PQntuples(q) && r->nlatest < PD_RECURRING_LATEST; i++)
		snprintf(r->latest[r->nlatest++], PD_ID_LEN + 1, "%s", PQgetvalue(q, i, 0));
	PQclear(q);
	return STORE_OK;
}

/* Reads definition id and its latest messages (locked when for_update). */
static enum store_result
read_recurring(struct pg_store *s, const char *id, int for_update, struct pd_recurring *r,
               int64_t *key)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *q;

	pg_text(&p, id);
	q = pg_exec(s, for_update ? "rec_get_locked" : "rec_get", &p, "reading a definition",
	            &res);
	if (q == NULL)
		return res;
	if (PQntuples(q) == 0)
		res = STORE_NOTFOUND;
	else if (row_to_recurring(q, 0, r, key) != 0)
		res = STORE_ERROR;
	PQclear(q);
	if (res == STORE_OK && (res = read_latest(s, *key, r)) != STORE_OK)
		recurring_free(r);
	return res;
}

/* ---- add, get, list ---- */

struct add_work {
	struct pd_recurring *r;
	pd_ms now;
};

static enum store_result
add_body(struct pg_store *s, void *arg)
{
	struct add_work *w = arg;
	const struct pd_recurring *r = w->r;
	const struct pd_message *m = &r->message;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *q;

	pg_text(&p, r->id);
	pg_text(&p, r->name);
	pg_text(&p, r->cron);
	pg_text(&p, r->tz);
	pg_text(&p, m->urls);
	pg_text(&p, m->queue);
	pg_bytes(&p, m->payload, m->payload_len);
	pg_text(&p, m->content_type);
	pg_text(&p, m->callback);
	pg_int(&p, m->max_attempts);
	pg_int(&p, m->timeout);
	pg_int(&p, m->priority);
	time_or_null(&p, r->ttl);
	pg_int(&p, w->now);
	pg_int(&p, r->next);
	pg_int(&p, make_time(s, w->now, r->next));
	pg_text(&p, m->topic);
	pg_text(&p, method_name(m->envelope.method));
	pg_text(&p, m->envelope.headers);
	if ((q = pg_exec(s, "rec_insert", &p, "storing a definition", &res)) == NULL)
		return res;
	res = PQntuples(q) == 1 ? STORE_OK : STORE_CONFLICT;
	PQclear(q);
	return res;
}

enum store_result
pg_op_recurring_add(struct pd_store *store, struct pd_recurring *r, pd_ms now)
{
	struct add_work w = { r, now };
	const char *why;

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
	return pg_transaction(pg_of(store), "storing a definition", 0, add_body, &w);
}

struct get_work {
	const char *id;
	struct pd_recurring *r;
	int have;
};

static enum store_result
get_body(struct pg_store *s, void *arg)
{
	struct get_work *w = arg;
	int64_t key;
	enum store_result res;

	if (w->have)
		recurring_free(w->r);
	w->have = 0;
	res = read_recurring(s, w->id, 0, w->r, &key);
	w->have = res == STORE_OK;
	return res;
}

enum store_result
pg_op_recurring_get(struct pd_store *store, const char *id, struct pd_recurring *r)
{
	struct get_work w = { id, r, 0 };

	return pg_read(pg_of(store), "reading a definition", get_body, &w);
}

struct list_work {
	int limit;
	struct pd_recurring *all;
	int n;
};

static void
list_drop(struct list_work *w)
{
	for (int i = 0; i < w->n; i++)
		recurring_free(&w->all[i]);
	free(w->all);
	w->all = NULL;
	w->n = 0;
}

static enum store_result
list_body(struct pg_store *s, void *arg)
{
	struct list_work *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *q;

	list_drop(w);
	pg_int(&p, w->limit);
	if ((q = pg_exec(s, "rec_list", &p, "listing definitions", &res)) == NULL)
		return res;
	if (PQntuples(q) > 0 &&
	    (w->all = calloc((size_t)PQntuples(q), sizeof(*w->all))) == NULL)
		res = STORE_ERROR;
	for (int i = 0; res == STORE_OK && i < PQntuples(q); i++) {
		int64_t key;

		if (row_to_recurring(q, i, &w->all[w->n], &key) != 0) {
			res = STORE_ERROR;
			break;
		}
		w->n++;
		/* The latest messages are read beside the list, in its snapshot. */
		res = read_latest(s, key, &w->all[w->n - 1]);
	}
	PQclear(q);
	return res;
}

enum store_result
pg_op_recurring_list(struct pd_store *store, int limit, store_recurring_fn fn, void *ctx)
{
	struct list_work w = { limit, NULL, 0 };
	enum store_result res = pg_read(pg_of(store), "listing definitions", list_body, &w);

	for (int i = 0; res == STORE_OK && i < w.n; i++)
		if (fn(ctx, &w.all[i]) != 0)
			break;
	list_drop(&w);
	return res;
}

/* ---- pause, resume, delete ---- */

/* Cancels message id inside the caller's transaction if nobody holds it,
 * as store_cancel does (pgcore's statements). */
static enum store_result
cancel_in_tx(struct pg_store *s, const char *id)
{
	struct pg_params p = { 0 }, e = { 0 };
	enum store_result res = STORE_OK;
	int64_t queue;
	PGresult *r;

	pg_text(&p, id);
	if ((r = pg_exec(s, "cancel_live", &p, "cancelling an occurrence", &res)) == NULL)
		return res;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return STORE_OK;
	}
	pg_int(&e, pg_get_int(r, 0, 0));
	pg_int(&e, pg_get_int(r, 0, 1));
	pg_int(&e, pg_get_int(r, 0, 2));
	queue = pg_get_int(r, 0, 3);
	PQclear(r);
	if ((r = pg_exec(s, "cancel_end", &e, "cancelling an occurrence", &res)) == NULL)
		return res;
	PQclear(r);
	pg_queue_count(s, queue, 0, -1);
	pg_queue_count(s, queue, PD_CANCELLED, 1);
	pg_count(s, PD_PENDING, -1);
	pg_count(s, PD_CANCELLED, 1);
	return STORE_OK;
}

/* Cancels the occurrence at due of definition key if it still waits (made,
 * never tried, nobody holding it): its message or each copy of its
 * publish. cancelled names the first ("" for none). */
static enum store_result
cancel_waiting(struct pg_store *s, int64_t key, pd_ms due, char *cancelled, size_t len)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	char (*ids)[PD_ID_LEN + 1] = NULL;
	int n;
	PGresult *r;

	cancelled[0] = '\0';
	if (due == 0)
		return STORE_OK;
	pg_int(&p, key);
	pg_int(&p, due);
	if ((r = pg_exec(s, "rec_waiting", &p, "reading an occurrence", &res)) == NULL)
		return res;
	n = PQntuples(r);
	if (n > 0 && (ids = calloc((size_t)n, sizeof(*ids))) == NULL) {
		PQclear(r);
		return STORE_ERROR;
	}
	for (int i = 0; i < n; i++)
		snprintf(ids[i], PD_ID_LEN + 1, "%s", PQgetvalue(r, i, 0));
	PQclear(r);
	for (int i = 0; i < n && res == STORE_OK; i++)
		res = cancel_in_tx(s, ids[i]);
	if (res == STORE_OK && n > 0)
		snprintf(cancelled, len, "%s", ids[0]);
	free(ids);
	return res;
}

enum recurring_change { REC_PAUSE, REC_RESUME, REC_DELETE };
static const char *const whats[] = { "pausing", "resuming", "deleting" };

struct change_work {
	const char *id;
	pd_ms now;
	enum recurring_change what;
	char cancelled[PD_ID_LEN + 1];
};

static enum store_result
change_body(struct pg_store *s, void *arg)
{
	struct change_work *w = arg;
	struct pd_recurring r;
	struct pg_params p = { 0 };
	enum store_result res;
	int64_t key;
	pd_ms next = 0;
	PGresult *q = NULL;
	const char *why;

	w->cancelled[0] = '\0';
	/* Locked: a pause and a dispatcher making the occurrence take turns. */
	if ((res = read_recurring(s, w->id, 1, &r, &key)) != STORE_OK)
		return res;
	pg_int(&p, key);
	switch (w->what) {
	case REC_PAUSE:
	case REC_DELETE:
		res = cancel_waiting(s, key, r.last, w->cancelled, sizeof(w->cancelled));
		if (res != STORE_OK)
			break;
		if (w->what == REC_DELETE)
			pg_int(&p, w->now);
		q = pg_exec(s, w->what == REC_PAUSE ? "rec_pause" : "rec_delete", &p, whats[w->what],
		            &res);
		break;
	case REC_RESUME:
		if (!r.paused)
			break;
		/* From now: what fell due while it was paused is not made. */
		if (recurring_next_after(r.cron, r.tz, w->now, &next, &why) != 0)
			next = 0;
		time_or_null(&p, next);
		time_or_null(&p, next != 0 ? make_time(s, w->now, next) : 0);
		q = pg_exec(s, "rec_resume", &p, whats[w->what], &res);
		break;
	}
	PQclear(q);
	recurring_free(&r);
	return res;
}

static enum store_result
recurring_change(struct pd_store *store, const char *id, pd_ms now, enum recurring_change what)
{
	struct change_work w = { id, now, what, "" };
	enum store_result res = pg_transaction(pg_of(store), whats[what], 0, change_body, &w);

	if (res == STORE_OK && w.cancelled[0] != '\0')
		log_info("cancelled %s: the waiting occurrence of %s, %s", w.cancelled, id,
		         what == REC_PAUSE ? "paused" : "deleted");
	return res;
}

enum store_result
pg_op_recurring_pause(struct pd_store *store, const char *id, pd_ms now, struct pd_recurring *r)
{
	enum store_result res = recurring_change(store, id, now, REC_PAUSE);

	return res == STORE_OK ? pg_op_recurring_get(store, id, r) : res;
}

enum store_result
pg_op_recurring_resume(struct pd_store *store, const char *id, pd_ms now,
                       struct pd_recurring *r)
{
	enum store_result res = recurring_change(store, id, now, REC_RESUME);

	return res == STORE_OK ? pg_op_recurring_get(store, id, r) : res;
}

enum store_result
pg_op_recurring_delete(struct pd_store *store, const char *id, pd_ms now)
{
	return recurring_change(store, id, now, REC_DELETE);
}

/* ---- making occurrences ---- */

static enum store_result
make_at_body(struct pg_store *s, void *arg)
{
	pd_ms *at = arg;
	enum store_result res = STORE_OK;
	PGresult *q;

	*at = 0;
	if ((q = pg_exec(s, "rec_make_at", NULL, "reading when to make occurrences", &res)) == NULL)
		return res;
	if (PQntuples(q) == 1)
		*at = pg_get_int(q, 0, 0);
	PQclear(q);
	return STORE_OK;
}

enum store_result
pg_op_recurring_make_at(struct pd_store *store, pd_ms *at)
{
	return pg_read(pg_of(store), "reading when to make occurrences", make_at_body, at);
}

struct to_make {
	struct pd_recurring r;
	int64_t key;
};

/* Makes definition k's occurrence and advances it, inside the caller's
 * transaction (as store_sqlite.c's make_occurrence). The log lines wait
 * for the commit: the body may run again. */
static enum store_result
make_occurrence(struct pg_store *s, struct to_make *k, pd_ms now, long pending, int *made)
{
	struct pd_recurring *r = &k->r;
	struct pd_message m;
	struct pd_cron c;
	struct pd_tz *zone = NULL;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	const char *why;
	char when[PD_TIME_BUF], superseded[PD_ID_LEN + 1] = "";
	pd_ms at = r->next, next = 0;
	PGresult *q;

	*made = 0;
	if (cron_parse(r->cron, &c, &why) != 0 || recurring_zone(r->tz, &zone) != 0) {
		log_error("recurring %s: cannot read its schedule (%s in %s); it makes nothing "
		          "until resumed", r->id, r->cron, r->tz);
		at = 0;
		goto advance;
	}
	if (at <= now) {
		at = latest_occurrence_by(&c, zone, at, now);
		if ((res = cancel_waiting(s, k->key, r->last, superseded, sizeof(superseded))) !=
		    STORE_OK)
			goto out;
	}
	recurring_occurrence(r, at, &m);
	if (pending + s->delta[PD_PENDING] >= s->cfg->max_pending)
		res = STORE_FULL;
	else if (m.topic != NULL)
		res = pg_publish_in_tx(s, &m, now,
		                       s->cfg->max_pending - pending - s->delta[PD_PENDING]);
	else
		res = pg_insert_message(s, &m, now, 0);
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
	free(m.deliveries);
	free(m.subscription);
	res = STORE_OK;
	if (recurring_next_after(r->cron, r->tz, at, &next, &why) != 0)
		next = 0;
advance:
	pg_int(&p, k->key);
	pg_int(&p, r->next);
	time_or_null(&p, at != 0 ? at : r->last);
	time_or_null(&p, next);
	time_or_null(&p, next != 0 ? make_time(s, at, next) : 0);
	if ((q = pg_exec(s, "rec_advance", &p, "advancing a definition", &res)) != NULL)
		PQclear(q);
out:
	tz_free(zone);
	return res;
}

struct make_work {
	pd_ms now;
	int limit;
	struct to_make *k;
	int n, made, late;
};

static enum store_result
make_body(struct pg_store *s, void *arg)
{
	struct make_work *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	long counts[PD_NSTATES];
	PGresult *q;
	int locked;

	for (int i = 0; i < w->n; i++)
		recurring_free(&w->k[i].r);
	w->n = w->made = w->late = 0;
	/* Another dispatcher holding it is making them: skip. */
	if ((q = pg_exec(s, "rec_lock", NULL, "making occurrences", &res)) == NULL)
		return res;
	locked = PQntuples(q) == 1 && PQgetvalue(q, 0, 0)[0] == 't';
	PQclear(q);
	if (!locked)
		return STORE_OK;
	if ((res = pg_read_counts(s, counts)) != STORE_OK)
		return res;
	pg_int(&p, w->now - time_now());
	pg_int(&p, w->limit);
	if ((q = pg_exec(s, "rec_to_make", &p, "reading definitions", &res)) == NULL)
		return res;
	for (int i = 0; i < PQntuples(q) && w->n < w->limit; i++) {
		if (row_to_recurring(q, i, &w->k[w->n].r, &w->k[w->n].key) != 0) {
			PQclear(q);
			return STORE_ERROR;
		}
		w->n++;
	}
	PQclear(q);
	for (int i = 0; i < w->n; i++) {
		int one;

		if ((res = make_occurrence(s, &w->k[i], w->now, counts[PD_PENDING], &one)) !=
		    STORE_OK)
			return res;
		w->made += one;
		w->late += one && w->k[i].r.next <= w->now;
	}
	return STORE_OK;
}

enum store_result
pg_op_recurring_make(struct pd_store *store, pd_ms now, int limit, int *made, int *late)
{
	struct make_work w = { now, limit, NULL, 0, 0, 0 };
	enum store_result res;

	*made = *late = 0;
	if (limit <= 0)
		return STORE_OK;
	if ((w.k = calloc((size_t)limit, sizeof(*w.k))) == NULL)
		return STORE_ERROR;
	res = pg_transaction(pg_of(store), "making occurrences", 0, make_body, &w);
	if (res == STORE_OK) {
		*made = w.made;
		*late = w.late;
	}
	for (int i = 0; i < w.n; i++)
		recurring_free(&w.k[i].r);
	free(w.k);
	return res;
}
