/*
 * store_pg_queue.c: queues on PostgreSQL: their settings and figures,
 * receives (SKIP LOCKED, a receipt per lease), acks, releases and
 * extensions, each a compare-and-set on the receipt. store_sqlite.c is
 * the reference for what each does; every comparison with "now" and every
 * lease end here is on the database's clock (TX_NOW, below), so front ends on
 * hosts with skewed clocks agree on what is receivable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "store_pg.h"

/* A queue's settings, counts and figures from one row: ready (due, a
 * lease run out counting as due), the oldest ready one's due time, and
 * the leased ones whose lease holds, all on the database's clock. */
/* The caller's now on the database's clock: the transaction's start on
 * that clock, moved as far as the caller's now lies from the caller's own
 * clock at that start (caller_ahead), so the caller's skew cancels out and
 * a test asking about a minute later gets a minute on. One reading for the
 * whole transaction: a receive's "is it due" and the lease it then writes
 * (and reports) are on the same now, so a lease reported as ending at T is
 * never received again before T, however long its statements took. */
#define TX_NOW "(extract(epoch from now()) * 1000)::bigint"
#define AT(n) "(SELECT " TX_NOW " + " n "::bigint AS now)"
#define CALLER_NOW(n) "(" TX_NOW " + " n "::bigint)"

#define QUEUE_FIGURES \
	"SELECT q.name, q.visibility, q.max_attempts, q.max_depth, q.paused, " \
	"coalesce((SELECT n FROM queue_counts c WHERE c.queue = q.key AND c.state = 0), 0), " \
	"coalesce((SELECT n FROM queue_counts c WHERE c.queue = q.key AND c.state = 2), 0), " \
	"coalesce((SELECT n FROM queue_counts c WHERE c.queue = q.key AND c.state = 3), 0), " \
	"coalesce((SELECT n FROM queue_counts c WHERE c.queue = q.key AND c.state = 4), 0), " \
	"coalesce((SELECT n FROM queue_counts c WHERE c.queue = q.key AND c.state = 5), 0), " \
	"f.ready, f.oldest - t.now, f.leased FROM queues q, " AT(NOW_PARAM) " t, " \
	"LATERAL (SELECT count(*) FILTER (WHERE l.due <= t.now) AS ready, " \
	"min(l.due) FILTER (WHERE l.due <= t.now) AS oldest, " \
	"count(*) FILTER (WHERE l.due > t.now AND l.token <> 0) AS leased " \
	"FROM live l WHERE l.queue = q.key AND l.queue <> 0) f "

/* Whether the message of a live row being changed has a callback. */
#define HAS_CALLBACK "(SELECT (callback IS NOT NULL)::int FROM messages WHERE key = live.key)"
#define BY_RECEIPT \
	"key = (SELECT key FROM messages WHERE id = $1) AND token = $2 AND receipt = $3 " \
	"AND queue <> 0"

const struct pg_statement pg_queue_statements[] = {
	#define NOW_PARAM "$2"
	{ "queue_figures", QUEUE_FIGURES "WHERE q.name = $1" },
#undef NOW_PARAM
#define NOW_PARAM "$1"
	{ "queue_figures_all", QUEUE_FIGURES "ORDER BY q.name" },
#undef NOW_PARAM
	{ "queue_change",
	  "UPDATE queues SET visibility = coalesce($2::integer, visibility), "
	  "max_attempts = coalesce($3::integer, max_attempts), "
	  "max_depth = coalesce($4::bigint, max_depth), paused = coalesce($5::integer, paused) "
	  "WHERE name = $1" },
	/* When the next message is receivable, as ms from the database's
	 * present: NULL when none waits or paused. */
	{ "queue_ready_at",
	  "SELECT CASE WHEN q.paused <> 0 THEN NULL ELSE (SELECT min(l.due) FROM live l "
	  "WHERE l.queue = q.key AND l.queue <> 0) - " PG_NOW " END FROM queues q "
	  "WHERE q.name = $1" },
	/* Receivable rows, locked in the order they are handed out (lowest
	 * priority first, then due time, then creation), skipping those
	 * another receive holds right now. */
	{ "queue_receivable",
	  "WITH c AS MATERIALIZED (SELECT key FROM live WHERE queue = $1 AND queue <> 0 "
	  "AND due <= " CALLER_NOW("$3") " ORDER BY priority, due LIMIT $2 "
	  "FOR UPDATE SKIP LOCKED) "
	  "SELECT l.key, l.token, l.attempts, (l.expires IS NOT NULL AND l.expires <= "
	  CALLER_NOW("$3") ")::int, l.priority, l.due, " PG_MESSAGE_COLUMNS ", p.payload "
	  "FROM c JOIN live l ON l.key = c.key "
	  "JOIN messages m ON m.key = l.key JOIN payloads p ON p.key = l.key " PG_MESSAGE_JOINS },
	{ "queue_lease",
	  "UPDATE live SET token = $3, receipt = $4, due = " CALLER_NOW("$7") " + $5, "
	  "attempts = attempts + 1, spent = $6 WHERE key = $1 AND token = $2 "
	  "RETURNING due" },
	{ "queue_end_live", "DELETE FROM live WHERE key = $1 AND token = $2" },
	{ "queue_end_message",
	  "UPDATE messages SET state = $2, ended = " CALLER_NOW("$6") ", attempts = $3, "
	  "delivered_at = $4, report = $5 WHERE key = $1 AND state = 0" },
	/* The receipt proves the lease, run out or not, until the next receive. */
	{ "queue_ack",
	  "DELETE FROM live WHERE " BY_RECEIPT " RETURNING key, queue, attempts, "
	  "coalesce(expires <= " CALLER_NOW("$4") ", false)::int, " HAS_CALLBACK },
	{ "queue_release",
	  "UPDATE live SET token = 0, receipt = NULL, due = " CALLER_NOW("$5") " + $4 "
	  "WHERE " BY_RECEIPT " AND spent = 0 AND coalesce(expires > " CALLER_NOW("$5") ", true) "
	  "RETURNING due" },
	/* A receipt's message that cannot go back: its last receive, or its
	 * ttl run out. */
	{ "queue_end_received",
	  "DELETE FROM live WHERE " BY_RECEIPT " AND (spent = 1 OR expires <= " CALLER_NOW("$4")
	  ") RETURNING key, queue, attempts, coalesce(expires <= " CALLER_NOW("$4") ", false)::int, "
	  HAS_CALLBACK },
	{ "queue_extend",
	  "UPDATE live SET due = " CALLER_NOW("$5") " + $4 WHERE " BY_RECEIPT
	  " AND coalesce(expires > " CALLER_NOW("$5") ", true) RETURNING due" },
};
const int pg_queue_nstatements =
	(int)(sizeof(pg_queue_statements) / sizeof(pg_queue_statements[0]));

/* How far the caller's now lies from its own clock at the start of the
 * transaction in progress: a front end passes its present (a few ms on),
 * a test a time it asks about. */
static int64_t
caller_ahead(const struct pg_store *s, pd_ms now)
{
	return now - (s->tx_began != 0 ? s->tx_began : time_now());
}

/* ---- figures ---- */

static void
row_to_queue(const PGresult *r, int row, pd_ms now, struct pd_queue *q)
{
	long alive = (long)pg_get_int(r, row, 5);

	memset(q, 0, sizeof(*q));
	snprintf(q->name, sizeof(q->name), "%s", PQgetvalue(r, row, 0));
	q->visibility = (int)pg_get_int(r, row, 1);
	q->max_attempts = (int)pg_get_int(r, row, 2);
	q->max_depth = (long)pg_get_int(r, row, 3);
	q->paused = (int)pg_get_int(r, row, 4);
	q->delivered = (long)pg_get_int(r, row, 6);
	q->failed = (long)pg_get_int(r, row, 7);
	q->cancelled = (long)pg_get_int(r, row, 8);
	q->expired = (long)pg_get_int(r, row, 9);
	q->ready = (long)pg_get_int(r, row, 10);
	/* On the caller's clock: how long ago it fell due, from its now. */
	q->oldest_ready = pg_is_null(r, row, 11) ? 0 : now + pg_get_int(r, row, 11);
	q->delivering = (long)pg_get_int(r, row, 12);
	q->pending = alive - q->delivering;
}

struct queue_read {
	const char *name;          /* NULL: every queue */
	pd_ms now;
	struct pd_queue *q;        /* one queue's */
	struct pd_queue *all;      /* every queue's, n of them */
	int n;
};

static enum store_result
queue_read_body(struct pg_store *s, void *arg)
{
	struct queue_read *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	free(w->all);
	w->all = NULL;
	w->n = 0;
	if (w->name != NULL)
		pg_text(&p, w->name);
	pg_int(&p, caller_ahead(s, w->now));
	r = pg_exec(s, w->name != NULL ? "queue_figures" : "queue_figures_all", &p,
	            "reading a queue", &res);
	if (r == NULL)
		return res;
	if (w->name != NULL) {
		if (PQntuples(r) == 0)
			res = STORE_NOTFOUND;
		else
			row_to_queue(r, 0, w->now, w->q);
	} else if (PQntuples(r) > 0) {
		if ((w->all = calloc((size_t)PQntuples(r), sizeof(*w->all))) == NULL)
			res = STORE_ERROR;
		for (int i = 0; res == STORE_OK && i < PQntuples(r); i++)
			row_to_queue(r, i, w->now, &w->all[w->n++]);
	}
	PQclear(r);
	return res;
}

enum store_result
pg_op_queue_get(struct pd_store *store, const char *name, pd_ms now, struct pd_queue *q)
{
	struct queue_read w = { .name = name, .now = now, .q = q };
	enum store_result res;

	memset(q, 0, sizeof(*q));
	res = pg_read(pg_of(store), "reading a queue", queue_read_body, &w);
	free(w.all);
	return res;
}

enum store_result
pg_op_queue_list(struct pd_store *store, pd_ms now, store_queue_fn fn, void *ctx)
{
	struct queue_read w = { .now = now };
	enum store_result res;

	res = pg_read(pg_of(store), "listing queues", queue_read_body, &w);
	for (int i = 0; res == STORE_OK && i < w.n; i++)
		if (fn(ctx, &w.all[i]) != 0)
			break;
	free(w.all);
	return res;
}

static enum store_result
queue_set_body(struct pg_store *s, void *arg)
{
	const struct pd_queue_change *c = arg;
	struct pg_queue_row row;
	struct pg_params p = { 0 };
	enum store_result res;
	PGresult *r;

	if ((res = pg_find_queue(s, c->name, 1, 0, &row)) != STORE_OK)
		return res;
	pg_text(&p, c->name);
	if (c->visibility > 0)
		pg_int(&p, c->visibility);
	else
		pg_text(&p, NULL);
	if (c->max_attempts > 0)
		pg_int(&p, c->max_attempts);
	else
		pg_text(&p, NULL);
	if (c->max_depth >= 0)
		pg_int(&p, c->max_depth);
	else
		pg_text(&p, NULL);
	if (c->paused >= 0)
		pg_int(&p, c->paused != 0);
	else
		pg_text(&p, NULL);
	if ((r = pg_exec(s, "queue_change", &p, "changing a queue", &res)) == NULL)
		return res;
	PQclear(r);
	return STORE_OK;
}

enum store_result
pg_op_queue_set(struct pd_store *store, const struct pd_queue_change *c, pd_ms now,
                struct pd_queue *q)
{
	enum store_result res;

	res = pg_transaction(pg_of(store), "changing a queue", 0, queue_set_body, (void *)c);
	if (res != STORE_OK)
		return res;
	return pg_op_queue_get(store, c->name, now, q);
}

struct ready_at {
	const char *queue;
	pd_ms at;
};

static enum store_result
ready_at_body(struct pg_store *s, void *arg)
{
	struct ready_at *w = arg;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	w->at = 0;
	pg_text(&p, w->queue);
	if ((r = pg_exec(s, "queue_ready_at", &p, "reading a queue", &res)) == NULL)
		return res;
	/* On the caller's clock, as the waiting receive compares it. */
	if (PQntuples(r) == 1 && !pg_is_null(r, 0, 0))
		w->at = time_now() + pg_get_int(r, 0, 0);
	PQclear(r);
	return STORE_OK;
}

enum store_result
pg_op_queue_ready_at(struct pd_store *store, const char *queue, pd_ms *at)
{
	struct ready_at w = { .queue = queue };
	enum store_result res = pg_read(pg_of(store), "reading a queue", ready_at_body, &w);

	*at = res == STORE_OK ? w.at : 0;
	return res;
}

/* ---- ending a queue message ---- */

/* Ends a queue message whose live row the caller just deleted, in state
 * with its callback report (stored beside it, bypassing max_pending): the
 * counts, the message row. */
static enum store_result
end_queued(struct pg_store *s, const char *id, int64_t key, int64_t queue, int was_leased,
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
	struct pd_message report = { 0 };
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	pg_count(s, was_leased ? PD_DELIVERING : PD_PENDING, -1);
	pg_count(s, state, 1);
	pg_queue_count(s, queue, 0, -1);
	pg_queue_count(s, queue, state, 1);
	pg_total(s, state == PD_DELIVERED ? PG_TOTAL_DELIVERED : state == PD_FAILED ?
	         PG_TOTAL_FAILED : PG_TOTAL_EXPIRED, 1);
	if (wants_report && report_fn != NULL) {
		if (report_fn(ctx, &o, &report) != 0) {
			message_free(&report);
			return STORE_ERROR;
		}
		res = pg_insert_message(s, &report, now, 0);
		if (res != STORE_OK) {
			message_free(&report);
			return res == STORE_EXISTS ? STORE_ERROR : res;
		}
	}
	pg_int(&p, key);
	pg_int(&p, state);
	pg_int(&p, attempts);
	if (o.delivered_at != 0)
		pg_int(&p, o.delivered_at);
	else
		pg_text(&p, NULL);
	pg_text(&p, wants_report && report_fn != NULL ? report.id : NULL);
	pg_int(&p, caller_ahead(s, now));
	r = pg_exec(s, "queue_end_message", &p, "ending a message", &res);
	message_free(&report);
	if (r == NULL)
		return res;
	PQclear(r);
	return STORE_OK;
}

/* Why a receipt did not hold: STORE_NOTFOUND, or STORE_CONFLICT with the
 * message's state (a->state). */
static enum store_result
receipt_refused(struct pg_store *s, struct store_ack *a)
{
	enum store_result res = pg_state_of(s, a->id, &a->state);

	return res == STORE_OK ? STORE_CONFLICT : res;
}

static void
receipt_params(struct pg_params *p, const char *id, const struct receipt *r)
{
	pg_text(p, id);
	pg_int(p, r->token);
	pg_bytes(p, r->bytes, sizeof(r->bytes));
}

/* ---- receive ---- */

/* Most messages a receive ends (ttl run out, last receive run out) on its
 * way to the ones it hands out: the rest are the sweep's. */
#define RECEIVE_MAX_ENDS 100

struct received {
	struct pd_message m;
	int64_t key, old_token;
	int end;                  /* 0: leased; else the state it ends in */
	int priority;             /* the order it is handed out in */
	pd_ms due;
	struct receipt receipt;
	pd_ms until;
};

/* One receive of a batch: what it leased, handed over after the commit. */
struct receive_work {
	struct received *r;
	int total, room;
};

static void
receive_drop(struct receive_work *w)
{
	for (int i = 0; i < w->total; i++)
		message_free(&w->r[i].m);
	free(w->r);
	*w = (struct receive_work){ 0 };
}

static enum store_result
lease_received(struct pg_store *s, struct received *k, int visibility_s, pd_ms now)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	pg_int(&p, k->key);
	pg_int(&p, k->old_token);
	pg_int(&p, k->receipt.token);
	pg_bytes(&p, k->receipt.bytes, sizeof(k->receipt.bytes));
	pg_int(&p, (int64_t)visibility_s * PD_MS_PER_S);
	pg_int(&p, k->m.attempts + 1 >= k->m.max_attempts);
	pg_int(&p, caller_ahead(s, now));
	if ((r = pg_exec(s, "queue_lease", &p, "receiving", &res)) == NULL)
		return res;
	if (PQntuples(r) != 1)
		res = STORE_ERROR;    /* cannot happen: the row is locked */
	else
		k->until = pg_get_int(r, 0, 0);   /* the lease's end as stored */
	PQclear(r);
	return res;
}

static int
by_receive_order(const void *x, const void *y)
{
	const struct received *a = x, *b = y;

	if (a->priority != b->priority)
		return a->priority < b->priority ? -1 : 1;
	if (a->due != b->due)
		return a->due < b->due ? -1 : 1;
	return a->key < b->key ? -1 : a->key > b->key;
}

/* Reads up to room receivable rows (locked) into w after its total. */
static enum store_result
read_receivable(struct pg_store *s, int64_t queue, int room, pd_ms now, struct receive_work *w,
                int *n)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	*n = 0;
	if (w->total + room > w->room) {
		struct received *grown = realloc(w->r, (size_t)(w->total + room) * sizeof(*grown));

		if (grown == NULL)
			return STORE_ERROR;
		w->r = grown;
		w->room = w->total + room;
	}
	pg_int(&p, queue);
	pg_int(&p, room);
	pg_int(&p, caller_ahead(s, now));
	if ((r = pg_exec(s, "queue_receivable", &p, "receiving", &res)) == NULL)
		return res;
	for (int i = 0; i < PQntuples(r) && *n < room; i++) {
		struct received *k = &w->r[w->total];

		memset(k, 0, sizeof(*k));
		if (pg_row_to_message(r, i, 6, &k->m, 0) != 0 ||
		    pg_row_payload(r, i, 6 + PG_MESSAGE_NCOLUMNS, &k->m) != 0) {
			message_free(&k->m);
			res = STORE_ERROR;
			break;
		}
		k->key = pg_get_int(r, i, 0);
		k->old_token = pg_get_int(r, i, 1);
		k->priority = (int)pg_get_int(r, i, 4);
		k->due = pg_get_int(r, i, 5);
		k->m.attempts = (int)pg_get_int(r, i, 2);
		if (pg_get_int(r, i, 3))
			k->end = PD_EXPIRED;
		else if (k->m.attempts >= k->m.max_attempts)
			k->end = PD_FAILED;          /* its last receive ran out */
		w->total++;
		(*n)++;
	}
	PQclear(r);
	/* Handed out in the order they were taken: the join after the
	 * locking CTE keeps none of its own. */
	qsort(w->r + w->total - *n, (size_t)*n, sizeof(*w->r), by_receive_order);
	return res;
}

static enum store_result
receive_in_tx(struct pg_store *s, const struct store_queue_op *op, pd_ms now,
              store_report_fn report_fn, void *report_ctx, struct receive_work *w)
{
	struct pg_queue_row q;
	enum store_result res;
	int got = 0, ends = 0, visibility_s = op->visibility_s;

	receive_drop(w);
	if (op->max <= 0)
		return STORE_OK;
	if ((res = pg_find_queue(s, op->queue, 0, now, &q)) != STORE_OK || q.paused)
		return res;
	if (visibility_s <= 0)
		visibility_s = q.visibility;
	while (got < op->max && ends < RECEIVE_MAX_ENDS) {
		int room = op->max - got, first = w->total, n;

		if ((res = read_receivable(s, q.key, room, now, w, &n)) != STORE_OK)
			return res;
		for (int i = first; i < w->total; i++) {
			struct received *k = &w->r[i];

			if (k->end == 0) {
				if (receipt_new(&k->receipt) != 0)
					return STORE_ERROR;
				if ((res = lease_received(s, k, visibility_s, now)) != STORE_OK)
					return res;
				if (k->old_token == 0) {
					pg_count(s, PD_PENDING, -1);
					pg_count(s, PD_DELIVERING, 1);
				}
				pg_total(s, PG_TOTAL_RECEIVES, 1);
				got++;
			} else if (ends < RECEIVE_MAX_ENDS) {
				struct pg_params p = { 0 };
				PGresult *r;

				pg_int(&p, k->key);
				pg_int(&p, k->old_token);
				if ((r = pg_exec(s, "queue_end_live", &p, "receiving", &res)) == NULL)
					return res;
				PQclear(r);
				res = end_queued(s, k->m.id, k->key, q.key, k->old_token != 0,
				                 (enum pd_state)k->end, k->m.attempts,
				                 k->m.callback != NULL, now, report_fn, report_ctx);
				if (res != STORE_OK)
					return res == STORE_NOTFOUND ? STORE_ERROR : res;
				log_info("%s %s of queue %s: %s", k->end == PD_EXPIRED ? "expired" :
				         "failed", k->m.id, op->queue, k->end == PD_EXPIRED ?
				         "its ttl ran out" : "its last allowed receive ran out");
				ends++;
			} else
				k->end = -1;          /* neither: left for the sweep */
		}
		/* A full read that ended some may leave more behind it. */
		if (n < room)
			break;
	}
	return STORE_OK;
}

static enum store_result
receive_hand_over(struct receive_work *w, store_received_fn fn, void *ctx)
{
	enum store_result res = STORE_OK;

	for (int i = 0; i < w->total && res == STORE_OK; i++) {
		struct received *k = &w->r[i];
		char text[PD_RECEIPT_LEN + 1];

		if (k->end != 0)
			continue;
		receipt_format(&k->receipt, text);
		k->m.attempts++;
		k->m.state = PD_DELIVERING;
		if (fn(ctx, &k->m, text, k->until) != 0)
			res = STORE_ERROR;
		memset(&k->m, 0, sizeof(k->m));   /* fn owns it */
	}
	receive_drop(w);
	return res;
}

/* ---- ack ---- */

static enum store_result
ack_in_tx(struct pg_store *s, struct store_ack *items, size_t n, pd_ms now,
          store_report_fn report_fn, void *ctx)
{
	enum store_result res;

	for (size_t i = 0; i < n; i++) {
		struct store_ack *a = &items[i];
		struct pg_params p = { 0 };
		struct receipt rc;
		PGresult *r;

		if (receipt_parse(a->receipt, &rc) != 0) {
			a->result = receipt_refused(s, a);
			if (a->result != STORE_NOTFOUND && a->result != STORE_CONFLICT)
				return a->result;
			continue;
		}
		receipt_params(&p, a->id, &rc);
		pg_int(&p, caller_ahead(s, now));
		if ((r = pg_exec(s, "queue_ack", &p, "acknowledging", &res)) == NULL)
			return res;
		if (PQntuples(r) == 1) {
			int64_t key = pg_get_int(r, 0, 0), queue = pg_get_int(r, 0, 1);
			int attempts = (int)pg_get_int(r, 0, 2), expired = (int)pg_get_int(r, 0, 3);
			int wants_report = (int)pg_get_int(r, 0, 4);

			PQclear(r);
			a->state = expired ? PD_EXPIRED : PD_DELIVERED;
			a->result = expired ? STORE_CONFLICT : STORE_OK;
			res = end_queued(s, a->id, key, queue, 1, a->state, attempts, wants_report, now,
			                 report_fn, ctx);
			if (res != STORE_OK)
				return res;
		} else {
			PQclear(r);
			a->result = receipt_refused(s, a);
			if (a->result != STORE_NOTFOUND && a->result != STORE_CONFLICT)
				return a->result;
		}
	}
	return STORE_OK;
}

struct batch_work {
	struct store_queue_op *ops;
	size_t n;
	pd_ms now;
	store_report_fn report_fn;
	void *report_ctx;
	struct receive_work *w;
};

static enum store_result
batch_body(struct pg_store *s, void *arg)
{
	struct batch_work *b = arg;

	for (size_t i = 0; i < b->n; i++) {
		struct store_queue_op *op = &b->ops[i];

		if (op->items != NULL)
			op->result = ack_in_tx(s, op->items, op->n, b->now, b->report_fn,
			                       b->report_ctx);
		else
			op->result = receive_in_tx(s, op, b->now, b->report_fn, b->report_ctx,
			                           &b->w[i]);
		/* An unknown queue refuses only its receive. */
		if (op->result != STORE_OK && op->result != STORE_NOTFOUND)
			return op->result;
	}
	return STORE_OK;
}

void
pg_op_queue_batch(struct pd_store *store, struct store_queue_op *ops, size_t n, pd_ms now,
                  store_report_fn report_fn, void *report_ctx)
{
	struct batch_work b = { ops, n, now, report_fn, report_ctx,
	                        calloc(n > 0 ? n : 1, sizeof(struct receive_work)) };
	enum store_result res = b.w != NULL ? STORE_OK : STORE_ERROR;

	if (res == STORE_OK)
		res = pg_transaction(pg_of(store), "queue work", 0, batch_body, &b);
	for (size_t i = 0; i < n; i++) {
		if (res != STORE_OK)
			ops[i].result = res;
		if (b.w == NULL || ops[i].items != NULL)
			continue;
		if (res == STORE_OK && ops[i].result == STORE_OK)
			ops[i].result = receive_hand_over(&b.w[i], ops[i].fn, ops[i].ctx);
		else
			receive_drop(&b.w[i]);
	}
	free(b.w);
}

/* ---- release and extend ---- */

struct give_back {
	struct store_ack *a;
	pd_ms delay_ms;           /* release: how long until receivable; extend: visibility */
	pd_ms now;
	pd_ms at;                 /* out: due (release), until (extend) */
	store_report_fn report_fn;
	void *ctx;
	int refused;              /* the receipt did not hold: nothing to commit */
};

static enum store_result
release_body(struct pg_store *s, void *arg)
{
	struct give_back *g = arg;
	struct store_ack *a = g->a;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	struct receipt rc;
	PGresult *r;

	g->at = 0;
	g->refused = 0;
	if (receipt_parse(a->receipt, &rc) != 0)
		goto refused;
	receipt_params(&p, a->id, &rc);
	pg_int(&p, g->delay_ms);
	pg_int(&p, caller_ahead(s, g->now));
	if ((r = pg_exec(s, "queue_release", &p, "releasing", &res)) == NULL)
		return res;
	if (PQntuples(r) == 1) {
		g->at = pg_get_int(r, 0, 0);
		PQclear(r);
		pg_count(s, PD_DELIVERING, -1);
		pg_count(s, PD_PENDING, 1);
		a->state = PD_PENDING;
		a->result = STORE_OK;
		return STORE_OK;
	}
	PQclear(r);
	/* Its last receive (or its ttl run out): a release ends it. */
	p = (struct pg_params){ 0 };
	receipt_params(&p, a->id, &rc);
	pg_int(&p, caller_ahead(s, g->now));
	if ((r = pg_exec(s, "queue_end_received", &p, "releasing", &res)) == NULL)
		return res;
	if (PQntuples(r) == 1) {
		int64_t key = pg_get_int(r, 0, 0), queue = pg_get_int(r, 0, 1);
		int attempts = (int)pg_get_int(r, 0, 2), expired = (int)pg_get_int(r, 0, 3);
		int wants_report = (int)pg_get_int(r, 0, 4);

		PQclear(r);
		a->state = expired ? PD_EXPIRED : PD_FAILED;
		res = end_queued(s, a->id, key, queue, 1, a->state, attempts, wants_report, g->now,
		                 g->report_fn, g->ctx);
		/* Its last receive: a release ends it failed (an expired one: 409). */
		a->result = a->state == PD_FAILED ? STORE_OK : STORE_CONFLICT;
		return res;
	}
	PQclear(r);
refused:
	g->refused = 1;
	a->result = receipt_refused(s, a);
	return a->result == STORE_NOTFOUND || a->result == STORE_CONFLICT ? STORE_OK : a->result;
}

enum store_result
pg_op_release(struct pd_store *store, struct store_ack *a, pd_ms delay_ms, pd_ms now,
              pd_ms *due, store_report_fn report_fn, void *ctx)
{
	struct give_back g = { a, delay_ms, now, 0, report_fn, ctx, 0 };
	enum store_result res = pg_transaction(pg_of(store), "releasing", 0, release_body, &g);

	*due = res == STORE_OK && !g.refused ? g.at : 0;
	return res;
}

static enum store_result
extend_body(struct pg_store *s, void *arg)
{
	struct give_back *g = arg;
	struct store_ack *a = g->a;
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	struct receipt rc;
	PGresult *r;

	g->at = 0;
	if (receipt_parse(a->receipt, &rc) == 0) {
		receipt_params(&p, a->id, &rc);
		pg_int(&p, g->delay_ms);
		pg_int(&p, caller_ahead(s, g->now));
		if ((r = pg_exec(s, "queue_extend", &p, "extending", &res)) == NULL)
			return res;
		if (PQntuples(r) == 1) {
			g->at = pg_get_int(r, 0, 0);
			PQclear(r);
			a->state = PD_DELIVERING;
			a->result = STORE_OK;
			return STORE_OK;
		}
		PQclear(r);
	}
	a->result = receipt_refused(s, a);
	return a->result == STORE_NOTFOUND || a->result == STORE_CONFLICT ? STORE_OK : a->result;
}

enum store_result
pg_op_extend(struct pd_store *store, struct store_ack *a, pd_ms visibility_ms, pd_ms now,
             pd_ms *until)
{
	struct give_back g = { a, visibility_ms, now, 0, NULL, NULL, 0 };
	enum store_result res = pg_transaction(pg_of(store), "extending", 0, extend_body, &g);

	*until = res == STORE_OK ? g.at : 0;
	return res;
}
