/*
 * store_pg_dispatch.c: the dispatcher's side of the store on PostgreSQL:
 * when work is next due, promotion into the buffer, claims, write-backs
 * (settle) and the sweep of what ends by itself. The same operations as
 * store_sqlite.c's, with the same results, counts and reports.
 *
 * Many dispatchers on many hosts share the tables, so:
 * - every due, lease and expiry comparison, every lease end and every
 *   `ended` stamp is taken on the database's clock (PG_NOW), never on the
 *   caller's, so a host whose clock is off neither delivers early nor
 *   takes over a lease that still holds. A caller passes its own `now`;
 *   what the database is asked about is its own clock moved by how far
 *   that `now` lies from the caller's present (pg_ahead): a dispatcher
 *   passes its present, so the offset is a few ms at most and the
 *   database's clock decides; a test that asks about a minute later gets
 *   the database's clock a minute on. The skew of the caller's clock
 *   cancels out either way.
 * - a claim takes its rows with FOR UPDATE SKIP LOCKED in a MATERIALIZED
 *   CTE, so concurrent claimers take disjoint rows without waiting, and
 *   leases them with a new token in the same statement;
 * - every write-back is a compare-and-set on that token: a dispatcher
 *   whose lease ran out and was taken over gets STORE_CONFLICT, and its
 *   attempts are recorded all the same (the dispatcher logs it);
 * - promotion runs under pg_try_advisory_xact_lock: one dispatcher at a
 *   time does it, the others skip it;
 * - each operation is one transaction (pg_transaction), run again as a
 *   whole on a serialization failure or a deadlock, so a body only
 *   collects and hands over to the caller's callback after the commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "store_pg.h"

/* Clocks closer than this (ms) are taken as one by next_due. */
#define PG_CLOCKS_AGREE_MS 1000

/* The first priority level below every real one. */
#define FIRST_LEVEL (PD_MIN_PRIORITY - 1)

/* The database's clock moved by $1 ms: "now" as the caller asks it. */
#define AT PG_NOW " + $1"

const struct pg_statement pg_dispatch_statements[] = {
	/* Promotion's next work (one index end of live_to_promote) and the
	 * claims' (the buffer is in (priority, due) order: the earliest of
	 * each priority level's earliest, stepping through the levels), and
	 * the database's clock, to tell them on the caller's. */
	{ "dispatch_next_due",
	  "WITH RECURSIVE levels (priority) AS ("
	  "SELECT min(priority) FROM live WHERE buffered = 1 "
	  "UNION ALL SELECT (SELECT min(b.priority) FROM live b WHERE b.buffered = 1 "
	  "AND b.priority > levels.priority) FROM levels WHERE levels.priority IS NOT NULL) "
	  "SELECT (SELECT min(due) FROM live WHERE buffered = 0 AND queue = 0), "
	  "(SELECT min((SELECT min(b.due) FROM live b WHERE b.buffered = 1 "
	  "AND b.priority = levels.priority)) FROM levels WHERE levels.priority IS NOT NULL), "
	  PG_NOW },
	{ "dispatch_promote_lock", "SELECT pg_try_advisory_xact_lock(" PG_PROMOTION_LOCK ")" },
	/* $1: how far the horizon lies ahead of the database's now. */
	{ "dispatch_promote",
	  "WITH due AS MATERIALIZED (SELECT key FROM live "
	  "WHERE buffered = 0 AND queue = 0 AND due <= " AT " ORDER BY due LIMIT $2 "
	  "FOR UPDATE SKIP LOCKED) "
	  "UPDATE live SET buffered = 1 FROM due WHERE live.key = due.key" },
	{ "dispatch_level_after",
	  "SELECT min(priority) FROM live WHERE buffered = 1 AND priority > $1" },
	/* The due rows of one priority level, expired leases (a dispatcher
	 * that died) included: a claim moves a row's due time to its lease's
	 * end, so this index range never holds rows leased right now. Rows
	 * another claimer holds are skipped, not waited for. The lease ends
	 * on the database's clock. What the outer SELECT reads of the message
	 * is immutable while it lives; what changes comes from RETURNING (the
	 * row as locked, after any concurrent write-back). The rows come in
	 * no order: claim_level puts them in due order. */
	{ "dispatch_claim",
	  "WITH picked AS MATERIALIZED (SELECT key, token, due FROM live "
	  "WHERE buffered = 1 AND priority = $2 AND due <= " AT " ORDER BY due LIMIT $3 "
	  "FOR UPDATE SKIP LOCKED), "
	  "leased AS (UPDATE live l SET token = $4, due = " AT " + l.lease_ms + $5, "
	  "attempts = l.attempts + 1 FROM picked WHERE l.key = picked.key "
	  "RETURNING l.key, picked.token AS was, picked.due AS was_due, l.token, l.due, "
	  "l.next_round, l.attempts, l.gone, l.lease_ms) "
	  "SELECT l.key, l.was, l.attempts, l.gone, l.lease_ms, l.next_round, l.was_due, "
	  PG_MESSAGE_COLUMNS ", p.payload FROM leased l JOIN messages m ON m.key = l.key "
	  "JOIN payloads p ON p.key = l.key " PG_MESSAGE_JOINS },
	/* The HTTP attempts of a write-back ($1..$7, one element per attempt,
	 * in key and then attempt order; $7 is the attempt's place among its
	 * message's in this write-back, 1, 2, ...), numbered after what each
	 * message's history holds. The arrays come sorted, and are inserted
	 * in their order: no plan sorts. Two write-backs of one message at
	 * once (a lease taken over) may pick the same numbers: the later
	 * finds them taken and inserts fewer rows than it was given, and its
	 * transaction runs again with the earlier's rows in sight. */
	{ "dispatch_add_attempts",
	  "INSERT INTO history (key, seq, at, url, status, error, ms) "
	  "SELECT a.key, coalesce((SELECT max(h.seq) FROM history h WHERE h.key = a.key), 0) + "
	  "a.k, a.at, a.url, a.status, a.error, a.ms FROM unnest($1::bigint[], $2::bigint[], "
	  "$3::text[], $4::integer[], $5::text[], $6::bigint[], $7::integer[]) "
	  "AS a (key, at, url, status, error, ms, k) ON CONFLICT DO NOTHING" },
	/* The live rows of a write-back ($2..$6: key, token, the next round's
	 * due time or NULL for an end, attempts, gone) whose lease still holds:
	 * locked as the arrays come, in key order (each row found by its key),
	 * then ended (deleted) or given back for another round (buffered when
	 * due within the horizon, $1 ahead of the database's now). The keys
	 * that held come back, in no order. */
	{ "dispatch_settle_live",
	  "WITH s AS (SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], "
	  "$5::integer[], $6::bigint[]) AS s (key, token, due, attempts, gone)), "
	  "held AS MATERIALIZED (SELECT l.key, s.due, s.attempts, s.gone FROM s "
	  "JOIN live l ON l.key = s.key AND l.token = s.token FOR UPDATE OF l), "
	  "ended AS (DELETE FROM live l USING held h WHERE l.key = h.key AND h.due IS NULL "
	  "RETURNING l.key), "
	  "again AS (UPDATE live l SET token = 0, due = h.due, next_round = h.due, "
	  "buffered = (h.due <= " PG_NOW " + $1)::integer, attempts = h.attempts, gone = h.gone "
	  "FROM held h WHERE l.key = h.key AND h.due IS NOT NULL RETURNING l.key) "
	  "SELECT key FROM ended UNION ALL SELECT key FROM again" },
	/* The second and last write of the rows of messages that ended ($2..$8:
	 * key, state, attempts, gone, delivered_to, delivered_at, report). */
	{ "dispatch_end_messages",
	  "UPDATE messages m SET state = e.state, ended = " PG_NOW " + $1, attempts = e.attempts, "
	  "gone = e.gone, delivered_to = e.delivered_to, delivered_at = e.delivered_at, "
	  "report = e.report FROM unnest($2::bigint[], $3::integer[], $4::integer[], "
	  "$5::bigint[], $6::text[], $7::bigint[], $8::text[]) "
	  "AS e (key, state, attempts, gone, delivered_to, delivered_at, report) "
	  "WHERE m.key = e.key AND m.state = 0" },
	/* Ends by itself: the ttl ran out, unless a dispatcher's round on it
	 * is in flight right now (that round decides)... */
	{ "dispatch_expired",
	  "WITH ending AS MATERIALIZED (SELECT key FROM live WHERE expires <= " AT " "
	  "AND (queue <> 0 OR token = 0 OR due <= " AT ") ORDER BY expires LIMIT $2 "
	  "FOR UPDATE SKIP LOCKED) "
	  "DELETE FROM live l USING ending e, messages m WHERE l.key = e.key AND m.key = l.key "
	  "RETURNING l.key, l.token, l.queue, l.attempts, l.gone, m.id, m.callback IS NOT NULL" },
	/* ... or a queue message's last allowed receive ran out unacknowledged. */
	{ "dispatch_spent",
	  "WITH ending AS MATERIALIZED (SELECT key FROM live WHERE spent = 1 AND due <= " AT " "
	  "ORDER BY due LIMIT $2 FOR UPDATE SKIP LOCKED) "
	  "DELETE FROM live l USING ending e, messages m WHERE l.key = e.key AND m.key = l.key "
	  "RETURNING l.key, l.token, l.queue, l.attempts, l.gone, m.id, m.callback IS NOT NULL" },
};

const int pg_dispatch_nstatements =
    (int)(sizeof(pg_dispatch_statements) / sizeof(pg_dispatch_statements[0]));

int64_t
pg_ahead(pd_ms now)
{
	return now - time_now();
}

/* The number of rows a write changed. */
static long
changed(const PGresult *r)
{
	return strtol(PQcmdTuples((PGresult *)r), NULL, 10);
}

int
pg_op_sync_normal(struct pd_store *store)
{
	pg_of(store)->sync_off = 1;
	return 0;
}

/* ---- when the next work is due ---- */

struct next_due {
	pd_ms unbuffered, buffered;
};

/*
 * The times are the database's: what is due falls due on its clock. The
 * caller waits for them on its own, so they are told on the caller's: a
 * dispatcher whose clock is 30 s behind the database's would otherwise
 * sleep 30 s past what falls due (and one 30 s ahead ask for it over and
 * over until it is). The offset between the clocks is read around the
 * statement, good to a round trip; clocks closer than PG_CLOCKS_AGREE_MS
 * are taken as one, so that a host kept in time reads the due times as
 * they are stored.
 */
static enum store_result
next_due_body(struct pg_store *s, void *arg)
{
	struct next_due *d = arg;
	enum store_result res;
	pd_ms before = time_now(), offset;
	PGresult *r = pg_exec(s, "dispatch_next_due", NULL, "reading the next due time", &res);

	if (r == NULL)
		return res;
	d->unbuffered = PQntuples(r) > 0 ? pg_get_int(r, 0, 0) : 0;
	d->buffered = PQntuples(r) > 0 ? pg_get_int(r, 0, 1) : 0;
	offset = PQntuples(r) > 0 ? before + (time_now() - before) / 2 - pg_get_int(r, 0, 2) : 0;
	PQclear(r);
	if (offset > -PG_CLOCKS_AGREE_MS && offset < PG_CLOCKS_AGREE_MS)
		offset = 0;
	if (d->unbuffered != 0)
		d->unbuffered += offset;
	if (d->buffered != 0)
		d->buffered += offset;
	return STORE_OK;
}

enum store_result
pg_op_next_due(struct pd_store *store, pd_ms *unbuffered, pd_ms *buffered)
{
	struct next_due d = { 0, 0 };
	enum store_result res = pg_read(pg_of(store), "reading the next due time", next_due_body,
	                                &d);

	*unbuffered = res == STORE_OK ? d.unbuffered : 0;
	*buffered = res == STORE_OK ? d.buffered : 0;
	return res;
}

/* ---- promotion ---- */

struct promotion {
	pd_ms until;
	int limit;
	int promoted;
};

static enum store_result
promote_body(struct pg_store *s, void *arg)
{
	struct promotion *w = arg;
	struct pg_params p = { 0 };
	enum store_result res;
	PGresult *r;
	int ours;

	w->promoted = 0;
	/* Another dispatcher promoting right now is doing this very work. */
	if ((r = pg_exec(s, "dispatch_promote_lock", NULL, "promoting", &res)) == NULL)
		return res;
	ours = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!ours)
		return STORE_OK;
	pg_int(&p, pg_ahead(w->until));
	pg_int(&p, w->limit);
	if ((r = pg_exec(s, "dispatch_promote", &p, "promoting", &res)) == NULL)
		return res;
	w->promoted = (int)changed(r);
	PQclear(r);
	return STORE_OK;
}

enum store_result
pg_op_promote(struct pd_store *store, pd_ms until, int limit, int *promoted)
{
	struct pg_store *s = pg_of(store);
	struct promotion w = { until, limit, 0 };
	enum store_result res;

	*promoted = 0;
	if (limit <= 0)
		return STORE_OK;
	res = pg_transaction(s, "promoting", s->sync_off, promote_body, &w);
	if (res == STORE_OK)
		*promoted = w.promoted;
	return res;
}

/* ---- claims ---- */

struct claim {
	struct pd_message m;
	struct store_lease lease;
	pd_ms due;                /* when it fell due (or its last lease ran out) */
};

struct claiming {
	pd_ms now;
	int limit;
	int lease_slack_s;
	int64_t token;
	struct claim *c;
	int n;
};

static void
claims_free(struct claiming *w)
{
	for (int i = 0; i < w->n; i++)
		message_free(&w->c[i].m);
	w->n = 0;
}

/* The next priority level of the buffer above after: 1 with *level, 0
 * when there is none. */
static enum store_result
level_after(struct pg_store *s, int after, int *level, int *found)
{
	struct pg_params p = { 0 };
	enum store_result res;
	PGresult *r;

	pg_int(&p, after);
	if ((r = pg_exec(s, "dispatch_level_after", &p, "claiming", &res)) == NULL)
		return res;
	*found = PQntuples(r) == 1 && !pg_is_null(r, 0, 0);
	if (*found)
		*level = (int)pg_get_int(r, 0, 0);
	PQclear(r);
	return STORE_OK;
}

/* Leases what is due at one priority level, up to the room left. */
static enum store_result
claim_level(struct pg_store *s, struct claiming *w, int level)
{
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	int first = w->n;
	PGresult *r;

	pg_int(&p, pg_ahead(w->now));
	pg_int(&p, level);
	pg_int(&p, w->limit - w->n);
	pg_int(&p, w->token);
	pg_int(&p, (int64_t)w->lease_slack_s * PD_MS_PER_S);
	if ((r = pg_exec(s, "dispatch_claim", &p, "claiming", &res)) == NULL)
		return res;
	for (int row = 0; row < PQntuples(r) && w->n < w->limit; row++) {
		struct claim *k = &w->c[w->n];

		if (pg_row_to_message(r, row, 7, &k->m, 1) != 0) {
			res = STORE_ERROR;
			break;
		}
		if (pg_row_payload(r, row, 7 + PG_MESSAGE_NCOLUMNS, &k->m) != 0) {
			message_free(&k->m);
			res = STORE_ERROR;
			break;
		}
		k->lease.key = pg_get_int(r, row, 0);
		k->lease.token = w->token;
		/* What it was: delivering when an earlier lease ran out unsettled. */
		k->m.state = pg_get_int(r, row, 1) != 0 ? PD_DELIVERING : PD_PENDING;
		k->m.attempts = (int)pg_get_int(r, row, 2);
		k->lease.gone = (unsigned)pg_get_int(r, row, 3);
		/* On the caller's clock, as its now is: the database keeps its own. */
		k->lease.until = w->now + pg_get_int(r, row, 4) + (pd_ms)w->lease_slack_s * PD_MS_PER_S;
		k->m.next_attempt = pg_get_int(r, row, 5);
		k->due = pg_get_int(r, row, 6);
		/* An expired lease taken over was counted as delivering already. */
		if (k->m.state == PD_PENDING) {
			pg_count(s, PD_PENDING, -1);
			pg_count(s, PD_DELIVERING, 1);
		}
		w->n++;
	}
	PQclear(r);
	if (res != STORE_OK) {
		log_error("store: claiming: a row that cannot be read");
		return res;
	}
	/* This level's claims in due order (then key), as SQLite hands them
	 * over: a few dozen at most, and the sort of a statement's result
	 * would be a plan step of its own. */
	for (int i = first + 1; i < w->n; i++) {
		struct claim v = w->c[i];
		int j = i;

		for (; j > first && (w->c[j - 1].due > v.due ||
		       (w->c[j - 1].due == v.due && w->c[j - 1].lease.key > v.lease.key)); j--)
			w->c[j] = w->c[j - 1];
		w->c[j] = v;
	}
	return STORE_OK;
}

static enum store_result
claim_body(struct pg_store *s, void *arg)
{
	struct claiming *w = arg;
	enum store_result res = STORE_OK;
	int level = FIRST_LEVEL, found = 1;

	claims_free(w);
	/* Lower priority values first, a level at a time, each an index range
	 * in due order. */
	while (w->n < w->limit && res == STORE_OK) {
		if ((res = level_after(s, level, &level, &found)) != STORE_OK || !found)
			break;
		res = claim_level(s, w, level);
	}
	return res;
}

enum store_result
pg_op_claim(struct pd_store *store, pd_ms now, int limit, int lease_slack_s, store_claim_fn fn,
            void *ctx)
{
	struct pg_store *s = pg_of(store);
	struct claiming w = { .now = now, .limit = limit, .lease_slack_s = lease_slack_s };
	enum store_result res;

	if (limit <= 0)
		return STORE_OK;
	if ((w.token = new_token()) == 0) {
		log_error("store: no randomness for a lease token");
		return STORE_ERROR;
	}
	if ((w.c = calloc((size_t)limit, sizeof(*w.c))) == NULL)
		return STORE_ERROR;
	res = pg_transaction(s, "claiming", s->sync_off, claim_body, &w);
	/* Only what is committed is handed on. */
	for (int i = 0; i < w.n; i++) {
		if (res == STORE_OK && fn(ctx, &w.c[i].m, &w.c[i].lease) != 0)
			res = STORE_ERROR;
		message_free(&w.c[i].m);
	}
	free(w.c);
	return res;
}

/* ---- write-backs ---- */

struct settling {
	struct pd_settlement *items;
	size_t *order;            /* items by message key: rows locked in key order */
	struct pd_settlement **ended; /* room for n: the items whose messages end */
	size_t n;
	pd_ms now;
	store_report_fn report_fn;
	void *ctx;
};

/* Appends every HTTP attempt of the write-back to its message's history,
 * in one statement. */
static enum store_result
add_attempts(struct pg_store *s, const struct settling *w)
{
	struct pg_array col[7] = { 0 };
	struct pg_params p = { 0 };
	enum store_result res;
	long given = 0;
	PGresult *r;

	for (size_t i = 0; i < w->n; i++) {
		const struct pd_settlement *o = &w->items[w->order[i]];

		for (size_t k = 0; k < o->ntried; k++) {
			const struct pd_attempt *a = &o->tried[k];

			pg_array_int(&col[0], o->lease.key);
			pg_array_int(&col[1], a->at);
			pg_array_text(&col[2], a->url);
			if (a->status != 0)
				pg_array_int(&col[3], a->status);
			else
				pg_array_text(&col[3], NULL);
			pg_array_text(&col[4], a->error);
			pg_array_int(&col[5], a->ms);
			pg_array_int(&col[6], (int64_t)k + 1);
			pg_total(s, PG_TOTAL_ATTEMPTS + store_attempt_outcome_of(a->status), 1);
			given++;
		}
	}
	if (given == 0) {
		for (int i = 0; i < 7; i++)
			pg_array_free(&col[i]);
		return STORE_OK;
	}
	if ((r = pg_exec_arrays(s, "dispatch_add_attempts", &p, col, 7, "recording attempts",
	                        &res)) == NULL)
		return res;
	res = changed(r) == given ? STORE_OK : pg_run_again(s);
	PQclear(r);
	return res;
}

/* The item of message key: a binary search of the items in key order. */
static struct pd_settlement *
item_of_key(const struct settling *w, int64_t key)
{
	size_t lo = 0, hi = w->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int64_t k = w->items[w->order[mid]].lease.key;

		if (k == key)
			return &w->items[w->order[mid]];
		if (k < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Moves on the messages whose leases still hold, in one statement: ends
 * their live rows or gives them back for another round. Only the holder
 * of the lease moves a message on: if it ran out and another dispatcher
 * claimed the message, that one decides, and this item is marked
 * STORE_CONFLICT. */
static enum store_result
move_on(struct pg_store *s, struct settling *w, size_t *nended)
{
	struct pg_array col[5] = { 0 };
	struct pg_params p = { 0 };
	enum store_result res;
	PGresult *r;
	int rows;

	for (size_t i = 0; i < w->n; i++) {
		const struct pd_settlement *o = &w->items[w->order[i]];

		pg_array_int(&col[0], o->lease.key);
		pg_array_int(&col[1], o->lease.token);
		if (o->state == PD_PENDING)
			pg_array_int(&col[2], o->next_attempt);
		else
			pg_array_text(&col[2], NULL);
		pg_array_int(&col[3], o->attempts);
		pg_array_int(&col[4], (int64_t)o->gone);
	}
	pg_int(&p, pg_ahead(w->now) + (int64_t)s->cfg->buffer_horizon * PD_MS_PER_S);
	if ((r = pg_exec_arrays(s, "dispatch_settle_live", &p, col, 5, "settling messages",
	                        &res)) == NULL)
		return res;
	rows = PQntuples(r);
	*nended = 0;
	for (size_t i = 0; i < w->n; i++)
		w->items[i].result = STORE_CONFLICT;
	for (int row = 0; row < rows; row++) {
		struct pd_settlement *o = item_of_key(w, pg_get_int(r, row, 0));

		if (o != NULL)
			o->result = STORE_OK;
	}
	PQclear(r);
	/* In key order, as the messages' rows are written. */
	for (size_t i = 0; i < w->n; i++) {
		struct pd_settlement *o = &w->items[w->order[i]];

		if (o->result != STORE_OK)
			continue;
		pg_count(s, PD_DELIVERING, -1);
		pg_count(s, o->state, 1);
		if (o->state != PD_PENDING)
			w->ended[(*nended)++] = o;
	}
	return STORE_OK;
}

/* Counts the end of message o and, when it wants one, stores its callback
 * report made by report_fn (bypassing max_pending, so no outcome goes
 * unreported); id receives the report's id, or "" for none. */
static enum store_result
report_end(struct pg_store *s, struct pd_settlement *o, pd_ms now, store_report_fn report_fn,
           void *ctx, char id[PD_ID_LEN + 1])
{
	struct pd_message report = { 0 };
	enum store_result res;

	id[0] = '\0';
	/* Every end passes here but a cancel (store_cancel counts its own). */
	pg_total(s, o->state == PD_DELIVERED ? PG_TOTAL_DELIVERED : o->state == PD_FAILED ?
	         PG_TOTAL_FAILED : o->state == PD_CANCELLED ? PG_TOTAL_CANCELLED :
	         PG_TOTAL_EXPIRED, 1);
	if (!o->wants_report || report_fn == NULL)
		return STORE_OK;
	if (report_fn(ctx, o, &report) != 0) {
		message_free(&report);
		return STORE_ERROR;
	}
	res = pg_insert_message(s, &report, now, 0);
	if (res == STORE_OK)
		snprintf(id, PD_ID_LEN + 1, "%s", report.id);
	message_free(&report);
	return res;
}

/* Writes the end of the messages ended[0..n-1], whose live rows are gone
 * (each one's state and outcome, and its report), in one statement. */
static enum store_result
end_messages(struct pg_store *s, struct pd_settlement **ended, size_t n, pd_ms now,
             store_report_fn report_fn, void *ctx)
{
	struct pg_array col[7] = { 0 };
	struct pg_params p = { 0 };
	enum store_result res = STORE_OK;
	PGresult *r;

	for (size_t i = 0; i < n && res == STORE_OK; i++) {
		struct pd_settlement *o = ended[i];
		char report[PD_ID_LEN + 1];

		if ((res = report_end(s, o, now, report_fn, ctx, report)) != STORE_OK)
			break;
		pg_array_int(&col[0], o->lease.key);
		pg_array_int(&col[1], o->state);
		pg_array_int(&col[2], o->attempts);
		pg_array_int(&col[3], (int64_t)o->gone);
		pg_array_text(&col[4], o->delivered_to);
		if (o->delivered_at != 0)
			pg_array_int(&col[5], o->delivered_at);
		else
			pg_array_text(&col[5], NULL);
		pg_array_text(&col[6], report[0] != '\0' ? report : NULL);
	}
	if (res != STORE_OK || n == 0) {
		for (int i = 0; i < 7; i++)
			pg_array_free(&col[i]);
		return res;
	}
	pg_int(&p, pg_ahead(now));
	if ((r = pg_exec_arrays(s, "dispatch_end_messages", &p, col, 7, "ending messages",
	                        &res)) == NULL)
		return res;
	PQclear(r);
	return STORE_OK;
}

/* A write-back is three statements whatever its size: the attempts, the
 * live rows, the ended messages (and a report per message that wants one). */
static enum store_result
settle_body(struct pg_store *s, void *arg)
{
	struct settling *w = arg;
	enum store_result res;
	size_t nended;

	if ((res = add_attempts(s, w)) != STORE_OK || (res = move_on(s, w, &nended)) != STORE_OK)
		return res;
	return end_messages(s, w->ended, nended, w->now, w->report_fn, w->ctx);
}

/* Sorts order[] (0..n-1) by the key of items[order[i]]: an insertion
 * sort, for a write-back holds a few dozen items, and qsort would need
 * them in a global to compare indexes. */
static void
order_by_key(const struct pd_settlement *items, size_t *order, size_t n)
{
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = 1; i < n; i++) {
		size_t v = order[i], j = i;

		while (j > 0 && items[order[j - 1]].lease.key > items[v].lease.key) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = v;
	}
}

enum store_result
pg_op_settle(struct pd_store *store, struct pd_settlement *items, size_t n, pd_ms now,
             store_report_fn report_fn, void *ctx)
{
	struct pg_store *s = pg_of(store);
	struct settling w = { items, NULL, NULL, n, now, report_fn, ctx };
	enum store_result res = STORE_ERROR;

	if (n == 0)
		return STORE_OK;
	w.order = calloc(n, sizeof(*w.order));
	w.ended = calloc(n, sizeof(*w.ended));
	if (w.order != NULL && w.ended != NULL) {
		order_by_key(items, w.order, n);
		res = pg_transaction(s, "writing back", s->sync_off, settle_body, &w);
	}
	free(w.order);
	free(w.ended);
	return res;
}

/* ---- what ends by itself ---- */

/* A live row that ended by itself, as the sweep deleted it. */
struct overdue {
	int64_t key, token, queue;
	int attempts;
	unsigned gone;
	char id[PD_ID_LEN + 1];
	int wants_report;
	enum pd_state state;
};

struct sweeping {
	pd_ms now;
	int limit;
	store_report_fn report_fn;
	void *ctx;
	struct overdue *o;            /* room for limit of each */
	struct pd_settlement *e, **ended;
	int n;
};

/* Deletes up to the room left of the live rows statement name finds,
 * ending them in state. */
static enum store_result
take_overdue(struct pg_store *s, struct sweeping *w, const char *name, enum pd_state state)
{
	struct pg_params p = { 0 };
	enum store_result res;
	PGresult *r;

	if (w->n >= w->limit)
		return STORE_OK;
	pg_int(&p, pg_ahead(w->now));
	pg_int(&p, w->limit - w->n);
	if ((r = pg_exec(s, name, &p, "reading what ends", &res)) == NULL)
		return res;
	for (int row = 0; row < PQntuples(r) && w->n < w->limit; row++) {
		struct overdue *k = &w->o[w->n++];

		k->key = pg_get_int(r, row, 0);
		k->token = pg_get_int(r, row, 1);
		k->queue = pg_get_int(r, row, 2);
		k->attempts = (int)pg_get_int(r, row, 3);
		k->gone = (unsigned)pg_get_int(r, row, 4);
		snprintf(k->id, sizeof(k->id), "%s", PQgetvalue(r, row, 5));
		k->wants_report = strcmp(PQgetvalue(r, row, 6), "t") == 0;
		k->state = state;
	}
	PQclear(r);
	return STORE_OK;
}

static enum store_result
sweep_body(struct pg_store *s, void *arg)
{
	struct sweeping *w = arg;
	enum store_result res;

	w->n = 0;
	/* The second statement does not see what the first deleted: a row
	 * both spent and expired ends once, expired. */
	if ((res = take_overdue(s, w, "dispatch_expired", PD_EXPIRED)) != STORE_OK ||
	    (res = take_overdue(s, w, "dispatch_spent", PD_FAILED)) != STORE_OK)
		return res;
	for (int i = 0; i < w->n; i++) {
		struct overdue *k = &w->o[i];

		w->e[i] = (struct pd_settlement){
			.id = k->id,
			.lease = { .key = k->key, .token = k->token },
			.state = k->state,
			.attempts = k->attempts,
			.gone = k->gone,
			.wants_report = k->wants_report,
		};
		w->ended[i] = &w->e[i];
		pg_count(s, k->token != 0 ? PD_DELIVERING : PD_PENDING, -1);
		pg_count(s, k->state, 1);
		pg_queue_count(s, k->queue, 0, -1);
		pg_queue_count(s, k->queue, k->state, 1);
	}
	return end_messages(s, w->ended, (size_t)w->n, w->now, w->report_fn, w->ctx);
}

enum store_result
pg_op_end_overdue(struct pd_store *store, pd_ms now, int limit, store_report_fn report_fn,
                  void *ctx, int *ended)
{
	struct pg_store *s = pg_of(store);
	struct sweeping w = { now, limit, report_fn, ctx, NULL, NULL, NULL, 0 };
	enum store_result res = STORE_ERROR;

	*ended = 0;
	if (limit <= 0)
		return STORE_OK;
	w.o = calloc((size_t)limit, sizeof(*w.o));
	w.e = calloc((size_t)limit, sizeof(*w.e));
	w.ended = calloc((size_t)limit, sizeof(*w.ended));
	if (w.o != NULL && w.e != NULL && w.ended != NULL)
		res = pg_transaction(s, "sweeping", s->sync_off, sweep_body, &w);
	if (res == STORE_OK) {
		/* Logged once committed: a body may run more than once. */
		for (int i = 0; i < w.n; i++)
			log_info("%s %s: %s", w.o[i].state == PD_EXPIRED ? "expired" : "failed",
			         w.o[i].id, w.o[i].state == PD_EXPIRED ? "its ttl ran out" :
			         "its last allowed receive ran out unacknowledged");
		*ended = w.n;
	}
	free(w.o);
	free(w.e);
	free(w.ended);
	return res;
}
