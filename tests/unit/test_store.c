/* test_store.c: the store of store.h: its statements, checked against
 * SQLite's planner; the batch insert that group commit uses; claims,
 * leases and settlements; promotion across the horizon; cancel against a
 * claim; idempotency keys under concurrency; and the v1 migration. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "postdate.h"
#include "request.h"
#include "store.h"
#include "store_pg.h"      /* store_pg_engine: which operations it has */
#include "unit.h"

/* POSTDATE_TEST_DATABASE set to a postgresql:// URL runs these tests on
 * that database instead of SQLite files, each test from an empty schema
 * (the database is the test's to wipe). A test that reads the SQLite file
 * itself stays SQLite-only, and one whose operations the PostgreSQL
 * engine of this build lacks is skipped; both say so. */
static const char *pg_url;

#define HAS(op) (store_pg_engine.op != NULL)
#define SQLITE_ONLY(why) do { if (pg_url != NULL) { \
	printf("skip store %s on PostgreSQL: %s\n", __func__, why); return; } } while (0)
#define NEEDS(ops_present, ops) do { if (pg_url != NULL && !(ops_present)) { \
	printf("skip store %s on PostgreSQL: %s not in this build\n", __func__, ops); \
	return; } } while (0)

/* Empties the test database: every table, the schema version with them. */
static int
pg_wipe(void)
{
	PGconn *c = PQconnectdb(pg_url);
	PGresult *r = PQstatus(c) == CONNECTION_OK ?
	    PQexec(c, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; "
	              "CREATE SCHEMA public") : NULL;
	int ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		fprintf(stderr, "  wiping %s: %s", pg_url, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* Where a test's database is: a fresh folder with path t.db in it, or the
 * PostgreSQL test database, emptied (dir then ""). */
static int
test_database(char *dir, size_t dirlen, char *path, size_t len)
{
	if (pg_url != NULL) {
		dir[0] = '\0';
		snprintf(path, len, "%s", pg_url);
		return pg_wipe();
	}
	snprintf(dir, dirlen, "/tmp/postdate-store-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, len, "%s/t.db", dir);
	return 0;
}

struct plan_check {
	int lines;
	int bad;
};

/* A full scan, a temporary sort, or a search on the state alone (which
 * walks every message in that state; regression: health's earliest
 * unbuffered due time once did) would make a statement's cost grow
 * with the number of messages; only the five-row counts may be scanned. */
static void
check_plan_line(void *ctx, const char *sql, const char *line)
{
	struct plan_check *c = ctx;
	size_t len = strlen(line);

	c->lines++;
	/* Reading every row is right for the tables that hold one row per
	 * state, per queue, per topic or per counter of the metrics, and for a
	 * VALUES list. */
	if ((strncmp(line, "SCAN ", 5) == 0 && strncmp(line, "SCAN counts", 11) != 0 &&
	     strncmp(line, "SCAN queues", 11) != 0 && strncmp(line, "SCAN topics", 11) != 0 &&
	     strcmp(line, "SCAN totals") != 0 &&
	     strstr(line, "CONSTANT ROWS") == NULL) ||
	    strstr(line, "TEMP B-TREE") != NULL ||
	    (strncmp(line, "SEARCH messages ", 16) == 0 && len > 9 &&
	     strcmp(line + len - 9, "(state=?)") == 0)) {
		fprintf(stderr, "  %s\n    plan: %s\n", sql, line);
		c->bad++;
	}
}

/* The same on PostgreSQL, whose plans are explained with sequential scans
 * and sorts made as dear as the planner allows (store_pg_admin.c): a
 * sequential scan of a table that grows with the messages, or a sort,
 * means no index serves the statement. */
static void
check_pg_plan_line(void *ctx, const char *sql, const char *line)
{
	static const char *const small[] = { "counts", "queues", "topics", "totals",
	                                     "queue_counts", "schema_version" };
	struct plan_check *c = ctx;
	const char *seq = strstr(line, "Seq Scan on ");
	int bad = strstr(line, "Sort  (") != NULL || strstr(line, "Sort Key") != NULL;

	c->lines++;
	if (seq != NULL) {
		const char *table = seq + 12;
		size_t len = strcspn(table, " ");

		bad = 1;
		for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
			if (strlen(small[i]) == len && strncmp(table, small[i], len) == 0)
				bad = 0;
	}
	if (bad) {
		fprintf(stderr, "  %s\n    plan: %s\n", sql, line);
		c->bad++;
	}
}

/* Removes dir/t.db with its WAL files, and dir. */
static void
remove_database(const char *dir)
{
	static const char *const names[] = { "t.db", "t.db-wal", "t.db-shm" };
	char path[64];

	if (dir[0] == '\0')
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void
test_every_statement_uses_an_index(void)
{
	char dir[32], path[256];
	struct pd_config cfg;
	struct pd_store *s;
	struct plan_check c = { 0, 0 };

	CHECK_INT(test_database(dir, sizeof(dir), path, sizeof(path)), 0);
	config_defaults(&cfg);
	cfg.database = path;
	CHECK_INT(store_open(&s, &cfg), 0);
	if (s != NULL) {
		CHECK_INT(store_query_plans(s, pg_url != NULL ? check_pg_plan_line : check_plan_line,
		                            &c), 0);
		store_close(s);
	}
	CHECK(c.lines >= 10);
	CHECK_INT(c.bad, 0);
	remove_database(dir);
}

/* A message as message_from_fields would build it, owned by the caller. */
static void
make_message(struct pd_message *m, const char *key, pd_ms now)
{
	memset(m, 0, sizeof(*m));
	m->due = m->next_attempt = now + 1000;
	m->urls = strdup("https://example.com/hook");
	m->payload = strdup("hello");
	m->payload_len = 5;
	m->content_type = strdup("text/plain");
	m->idempotency_key = key != NULL ? strdup(key) : NULL;
	m->max_attempts = 3;
	m->timeout = 10;
}

/* One transaction, one result per message: a repeated key within the batch
 * finds the batch's own first message, the max_pending check counts the
 * batch's earlier messages, and a refused message does not hold back the
 * ones after it. */
static void
test_a_batch_gives_each_message_its_own_result(void)
{
	char dir[32], path[256];
	static const char *const keys[] = { "a", "a", NULL, NULL, NULL };
	enum { N = 5 };
	struct pd_message m[N], got;
	struct store_insert items[N];
	struct pd_config cfg;
	struct pd_store *s;
	pd_ms now = time_now();

	CHECK_INT(test_database(dir, sizeof(dir), path, sizeof(path)), 0);
	config_defaults(&cfg);
	cfg.database = path;
	cfg.max_pending = 3;
	CHECK_INT(store_open(&s, &cfg), 0);
	if (s == NULL)
		return;
	for (int i = 0; i < N; i++) {
		make_message(&m[i], keys[i], now);
		items[i] = (struct store_insert){ .message = &m[i], .now = now };
	}
	store_insert_batch(s, items, N);
	CHECK_INT(items[0].result, STORE_OK);
	CHECK_INT(items[1].result, STORE_EXISTS);
	CHECK_STR(m[1].id, m[0].id);
	CHECK_INT(items[2].result, STORE_OK);
	CHECK_INT(items[3].result, STORE_OK);
	CHECK_INT(items[4].result, STORE_FULL);
	for (int i = 0; i < 4; i++) {
		enum store_result res = store_get(s, m[i].id, &got, NULL, NULL);

		CHECK_INT(res, STORE_OK);
		if (res == STORE_OK) {
			CHECK_STR(got.urls, "https://example.com/hook");
			message_free(&got);
		}
	}
	CHECK_INT(store_get(s, "aaaaaaaaaaaaaaaaaaaaaaaaaa", &got, NULL, NULL), STORE_NOTFOUND);
	for (int i = 0; i < N; i++)
		message_free(&m[i]);
	store_close(s);
	remove_database(dir);
}

/* ---- a store in a folder of its own ---- */

struct fixture {
	char dir[32];
	char path[256];
	struct pd_config cfg;
	struct pd_store *s;
};

static int
fixture_open(struct fixture *f)
{
	if (test_database(f->dir, sizeof(f->dir), f->path, sizeof(f->path)) != 0)
		return -1;
	config_defaults(&f->cfg);
	f->cfg.database = f->path;
	return store_open(&f->s, &f->cfg);
}

static void
fixture_close(struct fixture *f)
{
	store_close(f->s);
	f->s = NULL;
	remove_database(f->dir);
}

/* How far either side of a moment a test looks to see that something
 * happens there and not before. On SQLite the caller's now decides, to
 * the millisecond. On PostgreSQL the database's clock does, read a round
 * trip after the caller's (the store asks it about its own present moved
 * as far as the caller's now is from the caller's clock), so a boundary
 * moves by that round trip, and by a different one for each call. */
static pd_ms
boundary_margin(const struct fixture *f)
{
	return strncmp(f->cfg.database, "postgres", 8) == 0 ? 1000 : 0;
}

/* Inserts a message due at due (id into id). */
static enum store_result
insert_due(struct fixture *f, pd_ms due, pd_ms now, const char *urls, char id[PD_ID_LEN + 1])
{
	struct pd_message m;
	enum store_result res;

	make_message(&m, NULL, now);
	m.due = m.next_attempt = due;
	if (urls != NULL) {
		free(m.urls);
		m.urls = strdup(urls);
	}
	res = store_insert(f->s, &m, now);
	snprintf(id, PD_ID_LEN + 1, "%s", m.id);
	message_free(&m);
	return res;
}

/* What claims handed over. */
struct claimed {
	int n;
	char id[8][PD_ID_LEN + 1];
	int attempts[8];
	struct store_lease lease[8];
	char payload[8][16];
};

static int
take_claim(void *ctx, struct pd_message *m, const struct store_lease *lease)
{
	struct claimed *c = ctx;

	if (c->n < 8) {
		snprintf(c->id[c->n], PD_ID_LEN + 1, "%s", m->id);
		snprintf(c->payload[c->n], sizeof(c->payload[c->n]), "%s", m->payload);
		c->attempts[c->n] = m->attempts;
		c->lease[c->n] = *lease;
		c->n++;
	}
	message_free(m);
	return 0;
}

static int
claim(struct fixture *f, pd_ms now, struct claimed *c)
{
	memset(c, 0, sizeof(*c));
	return store_claim(f->s, now, 8, 0, take_claim, c) == STORE_OK ? c->n : -1;
}

static enum pd_state
state_of(struct fixture *f, const char *id, int *attempts)
{
	struct pd_message m;
	enum pd_state st;

	if (store_get(f->s, id, &m, NULL, NULL) != STORE_OK)
		return PD_NSTATES;
	st = m.state;
	if (attempts != NULL)
		*attempts = m.attempts;
	message_free(&m);
	return st;
}

static int
count_attempt(void *ctx, const struct pd_attempt *a)
{
	(void)a;
	(*(int *)ctx)++;
	return 0;
}

static int
history_length(struct fixture *f, const char *id)
{
	int n = 0;

	return store_history(f->s, id, count_attempt, &n) == STORE_OK ? n : -1;
}

static struct pd_settlement
settlement(const struct claimed *c, int i, enum pd_state state, pd_ms at)
{
	struct pd_settlement o = {
		.id = c->id[i], .lease = c->lease[i], .state = state,
		.attempts = c->attempts[i], .next_attempt = at,
	};

	o.tried[o.ntried++] = (struct pd_attempt){ .at = at, .url = "https://example.com/hook",
	                                           .status = state == PD_DELIVERED ? 200 : 500,
	                                           .ms = 3 };
	if (state == PD_DELIVERED) {
		o.delivered_to = "https://example.com/hook";
		o.delivered_at = at;
	}
	return o;
}

/* ---- claims and settlements ---- */

static void
test_a_claim_leases_counts_the_round_and_a_settle_ends_it(void)
{
	struct fixture f;
	struct claimed c;
	struct pd_settlement o;
	long counts[PD_NSTATES];
	char id[PD_ID_LEN + 1];
	pd_ms now = time_now();
	int attempts = -1;
	NEEDS(HAS(claim) && HAS(settle),
	      "claim, settle");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_due(&f, now, now, NULL, id), STORE_OK);
	CHECK_INT(claim(&f, now, &c), 1);
	CHECK_STR(c.id[0], id);
	CHECK_STR(c.payload[0], "hello");
	CHECK_INT(c.attempts[0], 1);
	CHECK(c.lease[0].token != 0);
	CHECK(c.lease[0].until >= now + 10000);
	CHECK_INT(state_of(&f, id, &attempts), PD_DELIVERING);
	CHECK_INT(attempts, 1);
	/* Leased: nothing more to claim, however often one looks. */
	CHECK_INT(claim(&f, now + 1, &c), 0);
	CHECK_INT(store_counts(f.s, counts), STORE_OK);
	CHECK_INT(counts[PD_PENDING], 0);
	CHECK_INT(counts[PD_DELIVERING], 1);

	CHECK_INT(claim(&f, now, &c), 0);
	memset(&c, 0, sizeof(c));
	CHECK_INT(store_claim(f.s, now + 60000, 8, 0, take_claim, &c), STORE_OK);
	CHECK_INT(c.n, 1);   /* the lease ran out: claimable again, a new token */
	o = settlement(&c, 0, PD_DELIVERED, now + 60001);
	CHECK_INT(store_settle(f.s, &o, 1, now + 60001, NULL, NULL), STORE_OK);
	CHECK_INT(o.result, STORE_OK);
	CHECK_INT(state_of(&f, id, &attempts), PD_DELIVERED);
	CHECK_INT(attempts, 2);
	CHECK_INT(history_length(&f, id), 1);
	CHECK_INT(store_counts(f.s, counts), STORE_OK);
	CHECK_INT(counts[PD_DELIVERING], 0);
	CHECK_INT(counts[PD_DELIVERED], 1);
	fixture_close(&f);
}

/* A dispatcher whose lease ran out and was taken over cannot overwrite
 * what the new holder decides; the attempts it made are still history. */
static void
test_a_late_settle_is_refused_but_its_attempts_are_kept(void)
{
	struct fixture f;
	struct claimed first, second;
	struct pd_settlement late, now_holder;
	char id[PD_ID_LEN + 1];
	pd_ms now = time_now();
	NEEDS(HAS(claim) && HAS(settle),
	      "claim, settle");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_due(&f, now, now, NULL, id), STORE_OK);
	CHECK_INT(claim(&f, now, &first), 1);
	CHECK_INT(claim(&f, first.lease[0].until + boundary_margin(&f), &second), 1);
	CHECK(second.lease[0].token != first.lease[0].token);
	CHECK_INT(second.attempts[0], 2);

	late = settlement(&first, 0, PD_FAILED, first.lease[0].until + 1);
	CHECK_INT(store_settle(f.s, &late, 1, first.lease[0].until + 1, NULL, NULL), STORE_OK);
	CHECK_INT(late.result, STORE_CONFLICT);
	CHECK_INT(state_of(&f, id, NULL), PD_DELIVERING);
	CHECK_INT(history_length(&f, id), 1);

	now_holder = settlement(&second, 0, PD_DELIVERED, first.lease[0].until + 2);
	CHECK_INT(store_settle(f.s, &now_holder, 1, first.lease[0].until + 2, NULL, NULL), STORE_OK);
	CHECK_INT(now_holder.result, STORE_OK);
	CHECK_INT(state_of(&f, id, NULL), PD_DELIVERED);
	CHECK_INT(history_length(&f, id), 2);
	fixture_close(&f);
}

/* Settles o from a process of its own once go has a byte to read; exits
 * 0 when the settle went through (its result as it was), 1 if not. */
static pid_t
settle_in_child(struct fixture *f, struct pd_settlement *o, int go)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct pd_store *s;
		char byte;

		if (store_open(&s, &f->cfg) != 0 || read(go, &byte, 1) != 1)
			_exit(1);
		_exit(store_settle(s, o, 1, o->tried[0].at, NULL, NULL) == STORE_OK ? 0 : 1);
	}
	return pid;
}

/* The dispatcher whose lease ran out and the one that took over write
 * back at the same moment: both succeed (the late one's result refused),
 * and the history keeps both rounds' attempts, whichever numbered its
 * attempt first. */
static void
test_two_write_backs_of_one_message_at_once_both_keep_their_attempts(void)
{
	enum { ROUNDS = 20 };

	NEEDS(HAS(claim) && HAS(settle), "claim, settle");
	for (int round = 0; round < ROUNDS; round++) {
		struct fixture f;
		struct claimed first, second;
		struct pd_settlement late, holder;
		char id[PD_ID_LEN + 1];
		pd_ms now = time_now();
		int go[2], status, ok = 0;
		pid_t a, b;

		CHECK_INT(fixture_open(&f), 0);
		if (f.s == NULL)
			return;
		CHECK_INT(insert_due(&f, now, now, NULL, id), STORE_OK);
		CHECK_INT(claim(&f, now, &first), 1);
		CHECK_INT(claim(&f, first.lease[0].until + boundary_margin(&f), &second), 1);
		late = settlement(&first, 0, PD_FAILED, now + 1);
		holder = settlement(&second, 0, PD_DELIVERED, now + 2);
		CHECK_INT(pipe(go), 0);
		a = settle_in_child(&f, &late, go[0]);
		b = settle_in_child(&f, &holder, go[0]);
		/* Both connected (or soon): start them together. */
		usleep(100000);
		CHECK_INT(write(go[1], "gg", 2), 2);
		close(go[0]);
		close(go[1]);
		CHECK(waitpid(a, &status, 0) == a);
		ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
		CHECK(waitpid(b, &status, 0) == b);
		ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
		CHECK_INT(ok, 2);
		CHECK_INT(history_length(&f, id), 2);
		CHECK_INT(state_of(&f, id, NULL), PD_DELIVERED);
		fixture_close(&f);
	}
}

/* Claims that never come back (a dispatcher killed while delivering) still
 * count: after max_attempts of them the claim says the rounds are spent. */
static void
test_rounds_cut_short_are_counted_at_the_claim(void)
{
	struct fixture f;
	struct claimed c;
	char id[PD_ID_LEN + 1];
	pd_ms now = time_now(), t = now;
	NEEDS(HAS(claim),
	      "claim");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_due(&f, now, now, NULL, id), STORE_OK);
	for (int round = 1; round <= 4; round++) {
		CHECK_INT(claim(&f, t, &c), 1);
		CHECK_INT(c.attempts[0], round);
		t = c.lease[0].until + boundary_margin(&f);
	}
	/* make_message gives max_attempts 3: the fourth claim is past it. */
	CHECK(c.attempts[0] > 3);
	fixture_close(&f);
}

static void
test_promotion_brings_messages_into_the_buffer_at_the_horizon(void)
{
	struct fixture f;
	struct claimed c;
	char id[PD_ID_LEN + 1];
	pd_ms now = time_now(), later = now + 2 * 3600 * 1000, unbuffered, buffered;
	int promoted = -1;
	NEEDS(HAS(claim) && HAS(next_due) && HAS(promote),
	      "claim, next_due, promote");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_due(&f, later, now, NULL, id), STORE_OK);
	CHECK_INT(store_next_due(f.s, &unbuffered, &buffered), STORE_OK);
	CHECK(unbuffered == later);
	CHECK(buffered == 0);
	/* Due past the horizon: not in the buffer, so not claimable. */
	CHECK_INT(claim(&f, later, &c), 0);
	CHECK_INT(store_promote(f.s, later - 1 - boundary_margin(&f), 100, &promoted), STORE_OK);
	CHECK_INT(promoted, 0);
	CHECK_INT(store_promote(f.s, later, 100, &promoted), STORE_OK);
	CHECK_INT(promoted, 1);
	CHECK_INT(store_next_due(f.s, &unbuffered, &buffered), STORE_OK);
	CHECK(unbuffered == 0);
	CHECK(buffered == later);
	CHECK_INT(claim(&f, later - 1 - boundary_margin(&f), &c), 0);
	CHECK_INT(claim(&f, later, &c), 1);
	fixture_close(&f);
}

/* Promotion runs under an advisory lock on PostgreSQL: while another
 * dispatcher holds it (promoting right now), a promotion does nothing and
 * says so; once it is free, the promotion does its work. */
static void
test_promotion_skips_while_another_dispatcher_holds_its_lock(void)
{
	struct fixture f;
	char id[PD_ID_LEN + 1];
	pd_ms now = time_now(), later = now + 2 * 3600 * 1000;
	PGconn *other;
	PGresult *r;
	int promoted = -1;

	if (pg_url == NULL) {
		printf("skip store %s on SQLite: one writer at a time, no lock to hold\n", __func__);
		return;
	}
	NEEDS(HAS(promote), "promote");
	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_due(&f, later, now, NULL, id), STORE_OK);
	other = PQconnectdb(pg_url);
	CHECK_INT(PQstatus(other), CONNECTION_OK);
	r = PQexec(other, "BEGIN; SELECT pg_advisory_xact_lock(" PG_PROMOTION_LOCK ")");
	CHECK_INT(PQresultStatus(r), PGRES_TUPLES_OK);
	PQclear(r);
	CHECK_INT(store_promote(f.s, later, 100, &promoted), STORE_OK);
	CHECK_INT(promoted, 0);
	PQclear(PQexec(other, "COMMIT"));
	PQfinish(other);
	CHECK_INT(store_promote(f.s, later, 100, &promoted), STORE_OK);
	CHECK_INT(promoted, 1);
	fixture_close(&f);
}

/* A round retried past the horizon leaves the buffer and comes back by
 * promotion, keeping its count and the URLs it dropped. */
static void
test_a_retry_beyond_the_horizon_leaves_the_buffer_until_promoted(void)
{
	struct fixture f;
	struct claimed c;
	struct pd_settlement o;
	char id[PD_ID_LEN + 1];
	pd_ms now = time_now(), retry_at = now + 3 * 3600 * 1000;
	int promoted = 0;
	NEEDS(HAS(claim) && HAS(promote) && HAS(settle),
	      "claim, promote, settle");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_due(&f, now, now, "https://a.example/\nhttps://b.example/", id), STORE_OK);
	CHECK_INT(claim(&f, now, &c), 1);
	o = settlement(&c, 0, PD_PENDING, retry_at);
	o.gone = 2;   /* b answered 410 */
	CHECK_INT(store_settle(f.s, &o, 1, now, NULL, NULL), STORE_OK);
	CHECK_INT(o.result, STORE_OK);
	CHECK_INT(state_of(&f, id, NULL), PD_PENDING);
	CHECK_INT(claim(&f, retry_at, &c), 0);
	CHECK_INT(store_promote(f.s, retry_at, 100, &promoted), STORE_OK);
	CHECK_INT(promoted, 1);
	CHECK_INT(claim(&f, retry_at, &c), 1);
	CHECK_INT(c.attempts[0], 2);
	CHECK_INT(c.lease[0].gone, 2);
	fixture_close(&f);
}

/* Inserts a message due at now with a callback and a ttl (0: none). */
static enum store_result
insert_reported(struct fixture *f, pd_ms now, pd_ms expires, char id[PD_ID_LEN + 1])
{
	struct pd_message m;
	enum store_result res;

	make_message(&m, NULL, now);
	m.due = m.next_attempt = now;
	m.callback = strdup("https://example.com/report");
	m.expires = expires;
	res = store_insert(f->s, &m, now);
	snprintf(id, PD_ID_LEN + 1, "%s", m.id);
	message_free(&m);
	return res;
}

/* The callback report of id: its message, due, reporting on id, with the
 * outcome in its payload. 0 when it is there. */
static int
check_report(struct fixture *f, const char *id, const char *outcome)
{
	struct pd_message m, r;
	int ok;

	if (store_get(f->s, id, &m, NULL, NULL) != STORE_OK)
		return -1;
	ok = m.report != NULL && store_get(f->s, m.report, &r, NULL, NULL) == STORE_OK;
	if (ok) {
		ok = r.state == PD_PENDING && r.report_of != NULL && strcmp(r.report_of, id) == 0 &&
		    strcmp(r.urls, "https://example.com/report") == 0 && r.payload != NULL &&
		    strstr(r.payload, outcome) != NULL;
		message_free(&r);
	}
	message_free(&m);
	return ok ? 0 : -1;
}

/* A write-back that ends a message with a callback stores its report in
 * the same transaction (made from what the store holds, this round's
 * attempt included), and the counts and totals count both. */
static void
test_a_settle_that_ends_a_message_stores_its_callback_report(void)
{
	struct fixture f;
	struct claimed c;
	struct pd_settlement o;
	struct pd_reporter reporter;
	struct store_metrics m;
	char id[PD_ID_LEN + 1];
	pd_ms now = time_now();

	NEEDS(HAS(claim) && HAS(settle), "claim, settle");
	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	reporter = (struct pd_reporter){ .store = f.s, .cfg = &f.cfg };
	CHECK_INT(insert_reported(&f, now, 0, id), STORE_OK);
	CHECK_INT(claim(&f, now, &c), 1);
	o = settlement(&c, 0, PD_DELIVERED, now + 1);
	o.wants_report = 1;
	CHECK_INT(store_settle(f.s, &o, 1, now + 1, report_of_message, &reporter), STORE_OK);
	CHECK_INT(o.result, STORE_OK);
	CHECK_INT(state_of(&f, id, NULL), PD_DELIVERED);
	CHECK_INT(check_report(&f, id, "\"delivered\""), 0);
	CHECK_INT(store_metrics(f.s, now + 1, &m, NULL, NULL), STORE_OK);
	CHECK_INT(m.counts[PD_DELIVERED], 1);
	CHECK_INT(m.counts[PD_PENDING], 1);     /* the report */
	CHECK_INT(m.counts[PD_DELIVERING], 0);
	CHECK_INT(m.made, 2);
	CHECK_INT(m.ended[PD_DELIVERED], 1);
	CHECK_INT(m.attempts[STORE_ATTEMPT_2XX], 1);
	fixture_close(&f);
}

/* A pushed message whose ttl ran out is ended expired by the sweep, with
 * its report, unless a round of it is in flight (that round decides);
 * once the round's lease has run out, the sweep ends it too. */
static void
test_the_sweep_expires_a_pushed_message_unless_its_round_is_in_flight(void)
{
	struct fixture f;
	struct claimed c;
	struct pd_reporter reporter;
	struct store_metrics m;
	char waiting[PD_ID_LEN + 1], flying[PD_ID_LEN + 1];
	pd_ms now = time_now();
	int ended = -1;

	NEEDS(HAS(claim) && HAS(end_overdue), "claim, end_overdue");
	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	reporter = (struct pd_reporter){ .store = f.s, .cfg = &f.cfg };
	CHECK_INT(insert_reported(&f, now, now + 100, flying), STORE_OK);
	CHECK_INT(claim(&f, now, &c), 1);
	CHECK_INT(insert_reported(&f, now, now + 100, waiting), STORE_OK);
	CHECK_INT(store_end_overdue(f.s, now + 50 - boundary_margin(&f), 10, report_of_message,
	                            &reporter, &ended), STORE_OK);
	CHECK_INT(ended, 0);
	CHECK_INT(store_end_overdue(f.s, now + 200, 10, report_of_message, &reporter, &ended),
	          STORE_OK);
	CHECK_INT(ended, 1);
	CHECK_INT(state_of(&f, waiting, NULL), PD_EXPIRED);
	CHECK_INT(check_report(&f, waiting, "\"expired\""), 0);
	CHECK_INT(state_of(&f, flying, NULL), PD_DELIVERING);
	CHECK_INT(store_end_overdue(f.s, c.lease[0].until + boundary_margin(&f), 10,
	                            report_of_message, &reporter, &ended), STORE_OK);
	CHECK_INT(ended, 1);
	CHECK_INT(state_of(&f, flying, NULL), PD_EXPIRED);
	CHECK_INT(check_report(&f, flying, "\"expired\""), 0);
	CHECK_INT(store_metrics(f.s, now + 200, &m, NULL, NULL), STORE_OK);
	CHECK_INT(m.counts[PD_EXPIRED], 2);
	CHECK_INT(m.counts[PD_DELIVERING], 0);
	CHECK_INT(m.counts[PD_PENDING], 2);     /* the reports */
	CHECK_INT(m.ended[PD_EXPIRED], 2);
	fixture_close(&f);
}

/* Dispatchers claiming at once (each its own connection, in a process of
 * its own) take disjoint messages, and between them take every one. */
static void
test_concurrent_claims_take_each_message_once(void)
{
	enum { MESSAGES = 200, CLAIMERS = 4 };
	struct fixture f;
	char id[PD_ID_LEN + 1];
	int fds[CLAIMERS][2], total = 0, seen_twice = 0;
	char (*seen)[PD_ID_LEN + 1] = calloc(MESSAGES * 2, sizeof(*seen));
	pid_t child[CLAIMERS];
	pd_ms now = time_now();

	NEEDS(HAS(claim), "claim");
	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL || seen == NULL) {
		free(seen);
		return;
	}
	for (int i = 0; i < MESSAGES; i++)
		CHECK_INT(insert_due(&f, now, now, NULL, id), STORE_OK);
	store_close(f.s);
	f.s = NULL;
	for (int k = 0; k < CLAIMERS; k++) {
		CHECK_INT(pipe(fds[k]), 0);
		if ((child[k] = fork()) == 0) {
			struct pd_store *s;
			struct claimed c;
			FILE *out = fdopen(fds[k][1], "w");

			close(fds[k][0]);
			if (store_open(&s, &f.cfg) != 0)
				_exit(2);
			/* Small batches, so the claimers meet. */
			for (;;) {
				memset(&c, 0, sizeof(c));
				if (store_claim(s, now, 3, 0, take_claim, &c) != STORE_OK)
					_exit(3);
				if (c.n == 0)
					break;
				for (int i = 0; i < c.n; i++)
					fprintf(out, "%s\n", c.id[i]);
			}
			fclose(out);
			store_close(s);
			_exit(0);
		}
		close(fds[k][1]);
	}
	for (int k = 0; k < CLAIMERS; k++) {
		FILE *in = fdopen(fds[k][0], "r");
		char line[64];
		int status;

		while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			for (int i = 0; i < total; i++)
				seen_twice += strcmp(seen[i], line) == 0;
			if (total < MESSAGES * 2)
				snprintf(seen[total++], PD_ID_LEN + 1, "%.*s", PD_ID_LEN, line);
		}
		if (in != NULL)
			fclose(in);
		CHECK(waitpid(child[k], &status, 0) == child[k]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK_INT(total, MESSAGES);
	CHECK_INT(seen_twice, 0);
	free(seen);
	CHECK_INT(store_open(&f.s, &f.cfg), 0);
	if (f.s != NULL) {
		long counts[PD_NSTATES];

		CHECK_INT(store_counts(f.s, counts), STORE_OK);
		CHECK_INT(counts[PD_DELIVERING], MESSAGES);
		CHECK_INT(counts[PD_PENDING], 0);
	}
	fixture_close(&f);
}

static void
test_cancel_ends_a_pending_message_and_refuses_a_claimed_one(void)
{
	struct fixture f;
	struct claimed c;
	char waiting[PD_ID_LEN + 1], claimed[PD_ID_LEN + 1];
	enum pd_state state = PD_NSTATES;
	long counts[PD_NSTATES];
	pd_ms now = time_now();
	NEEDS(HAS(claim),
	      "claim");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_due(&f, now, now, NULL, claimed), STORE_OK);
	CHECK_INT(claim(&f, now, &c), 1);
	CHECK_INT(insert_due(&f, now, now, NULL, waiting), STORE_OK);

	CHECK_INT(store_cancel(f.s, claimed, &state), STORE_CONFLICT);
	CHECK_INT(state, PD_DELIVERING);
	CHECK_INT(store_cancel(f.s, waiting, &state), STORE_OK);
	CHECK_INT(state, PD_CANCELLED);
	CHECK_INT(store_cancel(f.s, waiting, &state), STORE_OK);
	CHECK_INT(store_cancel(f.s, "aaaaaaaaaaaaaaaaaaaaaaaaaa", &state), STORE_NOTFOUND);
	/* Cancelled means never claimed afterwards. */
	CHECK_INT(claim(&f, now + 1, &c), 0);
	/* Even once the other's lease has run out it is not pending until a
	 * dispatcher has claimed it and given it back. */
	CHECK_INT(store_cancel(f.s, claimed, &state), STORE_CONFLICT);
	CHECK_INT(store_counts(f.s, counts), STORE_OK);
	CHECK_INT(counts[PD_PENDING], 0);
	CHECK_INT(counts[PD_DELIVERING], 1);
	CHECK_INT(counts[PD_CANCELLED], 1);
	fixture_close(&f);
}

static void
test_a_reused_key_with_other_contents_is_a_conflict(void)
{
	struct fixture f;
	struct pd_message a, b, c;

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	make_message(&a, "k", time_now());
	make_message(&b, "k", time_now() + 5000);   /* another due time: the same request */
	make_message(&c, "k", time_now());
	free(c.payload);
	c.payload = strdup("other");
	CHECK_INT(store_insert(f.s, &a, time_now()), STORE_OK);
	CHECK_INT(store_insert(f.s, &b, time_now()), STORE_EXISTS);
	CHECK_STR(b.id, a.id);
	CHECK_INT(store_insert(f.s, &c, time_now()), STORE_CONFLICT);
	message_free(&a);
	message_free(&b);
	message_free(&c);
	fixture_close(&f);
}

/* Processes with connections of their own, all scheduling with one key at
 * once: one message, and every answer names it. */
static void
test_one_idempotency_key_makes_one_message_under_concurrency(void)
{
	enum { WORKERS = 4, TRIES = 25 };
	struct fixture f;
	long counts[PD_NSTATES];
	int fds[2];
	char first[PD_ID_LEN + 1] = "", got[PD_ID_LEN + 1];
	int same = 1;
	NEEDS(HAS(claim) && HAS(promote) && HAS(settle),
	      "claim, promote, settle");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(pipe(fds), 0);
	for (int w = 0; w < WORKERS; w++) {
		if (fork() == 0) {
			struct pd_store *s;

			close(fds[0]);
			if (store_open(&s, &f.cfg) != 0)
				_exit(1);
			for (int i = 0; i < TRIES; i++) {
				struct pd_message m;
				enum store_result res;

				make_message(&m, "one key", time_now());
				res = store_insert(s, &m, time_now());
				if ((res == STORE_OK || res == STORE_EXISTS) &&
				    write(fds[1], m.id, PD_ID_LEN) != PD_ID_LEN)
					_exit(1);
				message_free(&m);
			}
			store_close(s);
			_exit(0);
		}
	}
	close(fds[1]);
	for (int n = 0; read(fds[0], got, PD_ID_LEN) == PD_ID_LEN; n++) {
		got[PD_ID_LEN] = '\0';
		if (first[0] == '\0')
			memcpy(first, got, sizeof(first));
		same &= strcmp(first, got) == 0;
	}
	close(fds[0]);
	for (int w = 0; w < WORKERS; w++) {
		int status = 1;

		wait(&status);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK(first[0] != '\0');
	CHECK(same);
	CHECK_INT(store_counts(f.s, counts), STORE_OK);
	CHECK_INT(counts[PD_PENDING], 1);
	fixture_close(&f);
}

/* ---- the v1 migration ---- */

/* Writes a v1 database at path: sql/001-initial.sql and the rows a v1
 * store had written, one message in each state. */
static int
write_v1_database(const char *path, pd_ms now)
{
	static const char rows[] =
	    "INSERT INTO messages (id, state, due, created, next_attempt, buffered, urls, payload,"
	    " content_type, callback, max_attempts, timeout, attempts, delivered_to, delivered_at,"
	    " idempotency_key, report_of) VALUES"
	    " ('0000000000000000000000000a', 'pending', ?1, ?1, ?1, 1, 'https://a.example/',"
	    "  'soon', 'text/plain', NULL, 8, 10, 0, NULL, NULL, 'key-a', NULL),"
	    " ('0000000000000000000000000b', 'pending', ?2, ?1, ?2, 0,"
	    "  'https://b.example/\nhttps://c.example/', 'later', 'text/plain', NULL, 8, 10, 0,"
	    "  NULL, NULL, NULL, NULL),"
	    " ('0000000000000000000000000c', 'delivering', ?1, ?1, ?1, 1, 'https://a.example/',"
	    "  'busy', 'text/plain', NULL, 8, 10, 1, NULL, NULL, NULL, NULL),"
	    " ('0000000000000000000000000d', 'delivered', ?1, ?1, NULL, 0, 'https://a.example/',"
	    "  'done', 'text/plain', 'https://cb.example/', 8, 10, 2, 'https://a.example/', ?1,"
	    "  NULL, NULL),"
	    " ('0000000000000000000000000e', 'pending', ?1, ?1, ?1, 1, 'https://cb.example/',"
	    "  '{}', 'application/json', NULL, 8, 10, 0, NULL, NULL, NULL,"
	    "  '0000000000000000000000000d'),"
	    " ('0000000000000000000000000f', 'failed', ?1, ?1, NULL, 0, 'https://a.example/',"
	    "  'x', 'text/plain', NULL, 1, 10, 1, NULL, NULL, NULL, NULL),"
	    " ('0000000000000000000000000g', 'cancelled', ?2, ?1, NULL, 0, 'https://a.example/',"
	    "  'x', 'text/plain', NULL, 8, 10, 0, NULL, NULL, NULL, NULL);"
	    "INSERT INTO buffer (message_id, due, lease_until) VALUES"
	    " ('0000000000000000000000000a', ?1, 0), ('0000000000000000000000000c', ?3, ?3),"
	    " ('0000000000000000000000000e', ?1, 0);"
	    "INSERT INTO attempts (message_id, seq, at, url, status, error, ms) VALUES"
	    " ('0000000000000000000000000d', 1, ?1, 'https://a.example/', 500, NULL, 4),"
	    " ('0000000000000000000000000d', 2, ?1, 'https://a.example/', 200, NULL, 3),"
	    " ('0000000000000000000000000f', 1, ?1, 'https://a.example/', NULL, 'refused', 1);"
	    "PRAGMA user_version = 1;";
	FILE *in = fopen("sql/001-initial.sql", "r");
	char schema[16384];
	size_t len;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	const char *tail = rows;
	int ok;

	if (in == NULL)
		return -1;
	len = fread(schema, 1, sizeof(schema) - 1, in);
	fclose(in);
	schema[len] = '\0';
	ok = sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_exec(db, schema, NULL, NULL, NULL) == SQLITE_OK;
	/* One statement at a time, each with the same three times bound. */
	while (ok && *tail != '\0') {
		ok = sqlite3_prepare_v2(db, tail, -1, &st, &tail) == SQLITE_OK;
		if (ok && st != NULL) {
			sqlite3_bind_int64(st, 1, now - 1000);
			sqlite3_bind_int64(st, 2, now + 3 * 3600 * 1000);
			if (sqlite3_bind_parameter_count(st) >= 3)
				sqlite3_bind_int64(st, 3, now - 500);
			ok = sqlite3_step(st) == SQLITE_DONE;
			sqlite3_finalize(st);
			st = NULL;
		}
	}
	sqlite3_close(db);
	return ok ? 0 : -1;
}

static void
test_a_v1_database_migrates_with_nothing_lost(void)
{
	struct fixture f;
	struct claimed c;
	struct pd_message m, again;
	struct store_metrics totals;
	long counts[PD_NSTATES];
	pd_ms now = time_now();
	int attempts = -1, promoted = 0;
	SQLITE_ONLY("a v1 database is an SQLite file");

	snprintf(f.dir, sizeof(f.dir), "/tmp/postdate-store-XXXXXX");
	CHECK(mkdtemp(f.dir) != NULL);
	snprintf(f.path, sizeof(f.path), "%s/t.db", f.dir);
	CHECK_INT(write_v1_database(f.path, now), 0);
	config_defaults(&f.cfg);
	f.cfg.database = f.path;
	CHECK_INT(store_open(&f.s, &f.cfg), 0);
	if (f.s == NULL)
		return;

	CHECK_INT(store_counts(f.s, counts), STORE_OK);
	CHECK_INT(counts[PD_PENDING], 4);   /* a, b, e, and c whose v1 lease is dropped */
	CHECK_INT(counts[PD_DELIVERING], 0);
	CHECK_INT(counts[PD_DELIVERED], 1);
	CHECK_INT(counts[PD_FAILED], 1);
	CHECK_INT(counts[PD_CANCELLED], 1);
	CHECK_INT(state_of(&f, "0000000000000000000000000d", &attempts), PD_DELIVERED);
	CHECK_INT(attempts, 2);
	CHECK_INT(history_length(&f, "0000000000000000000000000d"), 2);
	CHECK_INT(history_length(&f, "0000000000000000000000000f"), 1);
	CHECK_INT(state_of(&f, "0000000000000000000000000g", NULL), PD_CANCELLED);
	if (store_get(f.s, "0000000000000000000000000d", &m, NULL, NULL) == STORE_OK) {
		CHECK_STR(m.report != NULL ? m.report : "", "0000000000000000000000000e");
		/* Migration 006: a message from before it is a POST without
		 * headers of its own. */
		CHECK_INT(m.envelope.method, PD_METHOD_POST);
		CHECK(m.envelope.headers == NULL);
		message_free(&m);
	}
	/* An idempotency key still finds its message. */
	make_message(&again, "key-a", now);
	free(again.payload);
	again.payload = strdup("soon");
	free(again.urls);
	again.urls = strdup("https://a.example/");
	again.max_attempts = 8;
	CHECK_INT(store_insert(f.s, &again, now), STORE_EXISTS);
	CHECK_STR(again.id, "0000000000000000000000000a");
	message_free(&again);

	/* The metrics' totals start from what the old database holds. */
	if (store_metrics(f.s, now, &totals, NULL, NULL) == STORE_OK) {
		long long tried = 0;

		for (int i = 0; i < STORE_ATTEMPT_OUTCOMES; i++)
			tried += totals.attempts[i];
		CHECK_INT(totals.made, 7);
		CHECK_INT(totals.ended[PD_DELIVERED], 1);
		CHECK_INT(totals.ended[PD_FAILED], 1);
		CHECK_INT(totals.ended[PD_CANCELLED], 1);
		CHECK_INT(tried, 3);
	} else
		CHECK(!"store_metrics failed");

	/* What was pending is delivered: the near-term ones at once (c once
	 * its old lease has run out), the far one once promoted. */
	CHECK_INT(claim(&f, now, &c), 3);
	for (int i = 0; i < c.n; i++) {
		struct pd_settlement o = settlement(&c, i, PD_DELIVERED, now);

		CHECK_INT(store_settle(f.s, &o, 1, now, NULL, NULL), STORE_OK);
		CHECK_INT(o.result, STORE_OK);
	}
	CHECK_INT(store_promote(f.s, now + 3 * 3600 * 1000, 100, &promoted), STORE_OK);
	CHECK_INT(promoted, 1);
	CHECK_INT(claim(&f, now + 3 * 3600 * 1000, &c), 1);
	CHECK_STR(c.id[0], "0000000000000000000000000b");
	CHECK_STR(c.payload[0], "later");
	fixture_close(&f);
}

/* Regression: the result of PRAGMA journal_mode = WAL was not checked, so
 * a database that stays in another mode (where readers and the writer
 * block each other) was used as if it were in WAL mode. An in-memory
 * database is one that cannot switch. */
static void
test_a_database_that_cannot_use_wal_is_refused(void)
{
	struct pd_config cfg;
	struct pd_store *s = NULL;
	SQLITE_ONLY("WAL is SQLite's");

	config_defaults(&cfg);
	cfg.database = ":memory:";
	CHECK_INT(store_open(&s, &cfg), -1);
	CHECK(s == NULL);
	store_close(s);
}

/* ---- queues ---- */

/* Inserts a message into queue q, due at due, with priority and expiry. */
static enum store_result
insert_queued(struct fixture *f, const char *q, int priority, pd_ms due, pd_ms expires,
              pd_ms now, char id[PD_ID_LEN + 1])
{
	struct pd_message m;
	enum store_result res;

	make_message(&m, NULL, now);
	free(m.urls);
	m.urls = strdup("");
	m.queue = strdup(q);
	m.priority = priority;
	m.due = m.next_attempt = due;
	m.expires = expires;
	m.max_attempts = 0;
	res = store_insert(f->s, &m, now);
	snprintf(id, PD_ID_LEN + 1, "%s", m.id);
	message_free(&m);
	return res;
}

/* What receives handed over. */
struct got {
	int n;
	char id[8][PD_ID_LEN + 1];
	char receipt[8][PD_RECEIPT_LEN + 1];
	int attempts[8];
};

static int
take_received(void *ctx, struct pd_message *m, const char *receipt, pd_ms until)
{
	struct got *g = ctx;

	(void)until;
	if (g->n < 8) {
		snprintf(g->id[g->n], PD_ID_LEN + 1, "%s", m->id);
		snprintf(g->receipt[g->n], PD_RECEIPT_LEN + 1, "%s", receipt);
		g->attempts[g->n] = m->attempts;
		g->n++;
	}
	message_free(m);
	return 0;
}

static int
receive(struct fixture *f, const char *q, int max, int visibility_s, pd_ms now, struct got *g)
{
	memset(g, 0, sizeof(*g));
	return store_receive(f->s, q, max, visibility_s, now, NULL, NULL, take_received, g) ==
	    STORE_OK ? g->n : -1;
}

/* Lowest priority first, FIFO within one; a delayed message stays out of
 * sight until due; a received one is nobody else's while its lease holds. */
static void
test_a_receive_takes_priority_then_fifo_and_never_what_is_leased(void)
{
	struct fixture f;
	char a[PD_ID_LEN + 1], b[PD_ID_LEN + 1], c[PD_ID_LEN + 1], later[PD_ID_LEN + 1];
	struct got g;
	pd_ms now = time_now();
	NEEDS(HAS(queue_batch),
	      "queue_batch");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_queued(&f, "jobs", 0, now, 0, now, a), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", 0, now, 0, now, b), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", -5, now, 0, now, c), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", -10, now + 60000, 0, now, later), STORE_OK);
	CHECK_INT(receive(&f, "jobs", 2, 30, now, &g), 2);
	CHECK_STR(g.id[0], c);
	CHECK_STR(g.id[1], a);
	CHECK_INT(g.attempts[0], 1);
	CHECK_INT(receive(&f, "jobs", 8, 30, now, &g), 1);
	CHECK_STR(g.id[0], b);
	CHECK_INT(receive(&f, "jobs", 8, 30, now + 1000, &g), 0);
	/* The delayed one when due; the leased ones when their leases end. */
	CHECK_INT(receive(&f, "jobs", 1, 30, now + 60000, &g), 1);
	CHECK_STR(g.id[0], later);
	CHECK_INT(receive(&f, "jobs", 8, 30, now + 31000, &g), 3);
	CHECK_INT(g.attempts[0], 2);
	CHECK_INT(receive(&f, "nothing", 1, 30, now, &g), -1);
	fixture_close(&f);
}

/* A receipt holds until someone else receives the message: after that the
 * late worker's ack, release and extend are refused, the new one's work. */
static void
test_a_stale_receipt_is_refused_and_the_current_one_acks(void)
{
	struct fixture f;
	char id[PD_ID_LEN + 1], first[PD_RECEIPT_LEN + 1];
	struct got g;
	struct store_ack ack;
	struct pd_queue q;
	pd_ms now = time_now(), until, due;
	NEEDS(HAS(queue_batch) && HAS(extend) && HAS(queue_get) &&
	      HAS(release),
	      "queue_batch, extend, queue_get, release");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_queued(&f, "jobs", 0, now, 0, now, id), STORE_OK);
	CHECK_INT(receive(&f, "jobs", 1, 1, now, &g), 1);
	snprintf(first, sizeof(first), "%s", g.receipt[0]);
	/* Its lease ran out, but nobody took it: the receipt still extends it. */
	ack = (struct store_ack){ .id = id, .receipt = first };
	CHECK_INT(store_extend(f.s, &ack, 1000, now + 2000, &until), STORE_OK);
	CHECK_INT(ack.result, STORE_OK);
	CHECK_INT(receive(&f, "jobs", 1, 1, now + 2500, &g), 0);
	CHECK_INT(receive(&f, "jobs", 1, 30, now + 3500, &g), 1);
	CHECK_INT(g.attempts[0], 2);
	ack = (struct store_ack){ .id = id, .receipt = first };
	CHECK_INT(store_ack(f.s, &ack, 1, now + 3600, NULL, NULL), STORE_OK);
	CHECK_INT(ack.result, STORE_CONFLICT);
	CHECK_INT(ack.state, PD_DELIVERING);
	ack = (struct store_ack){ .id = id, .receipt = first };
	CHECK_INT(store_release(f.s, &ack, 0, now + 3600, &due, NULL, NULL), STORE_OK);
	CHECK_INT(ack.result, STORE_CONFLICT);
	ack = (struct store_ack){ .id = id, .receipt = "not a receipt" };
	CHECK_INT(store_ack(f.s, &ack, 1, now + 3600, NULL, NULL), STORE_OK);
	CHECK_INT(ack.result, STORE_CONFLICT);
	ack = (struct store_ack){ .id = id, .receipt = g.receipt[0] };
	CHECK_INT(store_ack(f.s, &ack, 1, now + 3600, NULL, NULL), STORE_OK);
	CHECK_INT(ack.result, STORE_OK);
	CHECK_INT(state_of(&f, id, NULL), PD_DELIVERED);
	CHECK_INT(store_queue_get(f.s, "jobs", now + 3600, &q), STORE_OK);
	CHECK_INT(q.delivered, 1);
	CHECK_INT(q.pending + q.delivering, 0);
	fixture_close(&f);
}

/* Attempts are receives: a release on the last one, or the last one running
 * out, ends the message failed, never handing it out again. */
static void
test_the_last_allowed_receive_ends_the_message_failed(void)
{
	struct fixture f;
	char a[PD_ID_LEN + 1], b[PD_ID_LEN + 1];
	struct pd_queue_change change = { "jobs", -1, 2, -1, -1 };
	struct pd_queue q;
	struct got g;
	struct store_ack ack;
	pd_ms now = time_now(), due;
	int ended;
	NEEDS(HAS(end_overdue) && HAS(queue_get) && HAS(queue_set) &&
	      HAS(queue_batch) && HAS(release),
	      "end_overdue, queue_get, queue_set, queue_batch, release");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(store_queue_set(f.s, &change, now, &q), STORE_OK);
	CHECK_INT(q.max_attempts, 2);
	CHECK_INT(insert_queued(&f, "jobs", 0, now, 0, now, a), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", 1, now, 0, now, b), STORE_OK);
	CHECK_INT(receive(&f, "jobs", 2, 1, now, &g), 2);
	ack = (struct store_ack){ .id = a, .receipt = g.receipt[0] };
	CHECK_INT(store_release(f.s, &ack, 0, now + 10, &due, NULL, NULL), STORE_OK);
	CHECK_INT(ack.result, STORE_OK);
	CHECK_INT(ack.state, PD_PENDING);
	CHECK_INT(receive(&f, "jobs", 2, 1, now + 20, &g), 1);
	CHECK_STR(g.id[0], a);
	ack = (struct store_ack){ .id = a, .receipt = g.receipt[0] };
	CHECK_INT(store_release(f.s, &ack, 0, now + 30, &due, NULL, NULL), STORE_OK);
	CHECK_INT(ack.state, PD_FAILED);
	/* b: received twice, the second lease runs out; the sweep ends it. */
	CHECK_INT(receive(&f, "jobs", 2, 1, now + 1500, &g), 1);
	CHECK_STR(g.id[0], b);
	CHECK_INT(store_end_overdue(f.s, now + 1600, 10, NULL, NULL, &ended), STORE_OK);
	CHECK_INT(ended, 0);
	CHECK_INT(store_end_overdue(f.s, now + 3000, 10, NULL, NULL, &ended), STORE_OK);
	CHECK_INT(ended, 1);
	CHECK_INT(state_of(&f, b, NULL), PD_FAILED);
	CHECK_INT(receive(&f, "jobs", 2, 1, now + 4000, &g), 0);
	CHECK_INT(store_queue_get(f.s, "jobs", now + 4000, &q), STORE_OK);
	CHECK_INT(q.failed, 2);
	fixture_close(&f);
}

/* A ttl ends a message expired: on the receive that meets it, or by the
 * sweep; a full queue refuses more and writes nothing. */
static void
test_a_ttl_expires_and_a_full_queue_refuses(void)
{
	struct fixture f;
	char a[PD_ID_LEN + 1], b[PD_ID_LEN + 1], c[PD_ID_LEN + 1];
	struct pd_queue_change change = { "jobs", -1, -1, 2, -1 };
	struct pd_queue q;
	struct got g;
	long counts[PD_NSTATES];
	pd_ms now = time_now(), earliest;
	int ended;
	NEEDS(HAS(end_overdue) && HAS(queue_get) && HAS(queue_set) &&
	      HAS(queue_batch),
	      "end_overdue, queue_get, queue_set, queue_batch");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(store_queue_set(f.s, &change, now, &q), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", 0, now, now + 100, now, a), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", 0, now, now + 200, now, b), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", 0, now, 0, now, c), STORE_QUEUE_FULL);
	CHECK_INT(receive(&f, "jobs", 1, 30, now + 150, &g), 1);
	CHECK_STR(g.id[0], b);
	CHECK_INT(state_of(&f, a, NULL), PD_EXPIRED);
	CHECK_INT(store_end_overdue(f.s, now + 250, 10, NULL, NULL, &ended), STORE_OK);
	CHECK_INT(ended, 1);
	CHECK_INT(state_of(&f, b, NULL), PD_EXPIRED);
	CHECK_INT(store_health(f.s, counts, &earliest), STORE_OK);
	CHECK_INT(counts[PD_EXPIRED], 2);
	CHECK_INT(counts[PD_PENDING] + counts[PD_DELIVERING], 0);
	CHECK_INT(store_queue_get(f.s, "jobs", now + 250, &q), STORE_OK);
	CHECK_INT(q.expired, 2);
	fixture_close(&f);
}

/* A queue's counts change in memory during a transaction and are written
 * at its commit: inserts of one batch still count against max_depth, and
 * the figures after the batch hold every message it moved. */
static void
test_a_batch_counts_its_own_messages_against_max_depth(void)
{
	enum { N = 3 };
	struct fixture f;
	struct pd_queue_change change = { "jobs", -1, -1, 2, -1 };
	struct pd_message m[N];
	struct store_insert items[N];
	struct store_ack acks[2];
	struct pd_queue q;
	struct got g;
	pd_ms now = time_now();
	NEEDS(HAS(queue_batch) && HAS(queue_get) && HAS(queue_set),
	      "queue_batch, queue_get, queue_set");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(store_queue_set(f.s, &change, now, &q), STORE_OK);
	for (int i = 0; i < N; i++) {
		make_message(&m[i], NULL, now);
		free(m[i].urls);
		m[i].urls = strdup("");
		m[i].queue = strdup("jobs");
		m[i].max_attempts = 0;
		m[i].due = m[i].next_attempt = now;
		items[i] = (struct store_insert){ .message = &m[i], .now = now };
	}
	store_insert_batch(f.s, items, N);
	CHECK_INT(items[0].result, STORE_OK);
	CHECK_INT(items[1].result, STORE_OK);
	CHECK_INT(items[2].result, STORE_QUEUE_FULL);
	CHECK_INT(store_queue_get(f.s, "jobs", now, &q), STORE_OK);
	CHECK_INT(q.pending, 2);
	CHECK_INT(receive(&f, "jobs", 2, 30, now, &g), 2);
	for (int i = 0; i < 2; i++)
		acks[i] = (struct store_ack){ .id = g.id[i], .receipt = g.receipt[i] };
	CHECK_INT(store_ack(f.s, acks, 2, now, NULL, NULL), STORE_OK);
	CHECK_INT(store_queue_get(f.s, "jobs", now, &q), STORE_OK);
	CHECK_INT(q.pending + q.delivering, 0);
	CHECK_INT(q.delivered, 2);
	for (int i = 0; i < N; i++)
		message_free(&m[i]);
	fixture_close(&f);
}

/* Group commit of queue work: receives and acks of several requests in
 * one transaction, each with its own result; an unknown queue refuses only
 * its own receive. */
static void
test_a_batch_of_queue_work_gives_each_request_its_result(void)
{
	struct fixture f;
	char a[PD_ID_LEN + 1], b[PD_ID_LEN + 1];
	struct got first, second, third;
	struct store_ack ack;
	struct store_queue_op ops[3];
	pd_ms now = time_now();
	NEEDS(HAS(queue_batch),
	      "queue_batch");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_queued(&f, "jobs", 0, now, 0, now, a), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", 0, now, 0, now, b), STORE_OK);
	CHECK_INT(receive(&f, "jobs", 1, 30, now, &first), 1);
	CHECK_STR(first.id[0], a);
	ack = (struct store_ack){ .id = a, .receipt = first.receipt[0] };
	memset(&second, 0, sizeof(second));
	memset(&third, 0, sizeof(third));
	ops[0] = (struct store_queue_op){ .items = &ack, .n = 1 };
	ops[1] = (struct store_queue_op){ .queue = "jobs", .max = 5, .visibility_s = 30,
	                                  .fn = take_received, .ctx = &second };
	ops[2] = (struct store_queue_op){ .queue = "nothing", .max = 5, .visibility_s = 30,
	                                  .fn = take_received, .ctx = &third };
	store_queue_batch(f.s, ops, 3, now + 10, NULL, NULL);
	CHECK_INT(ops[0].result, STORE_OK);
	CHECK_INT(ack.result, STORE_OK);
	CHECK_INT(ops[1].result, STORE_OK);
	CHECK_INT(second.n, 1);
	CHECK_STR(second.id[0], b);
	CHECK_INT(ops[2].result, STORE_NOTFOUND);
	CHECK_INT(third.n, 0);
	CHECK_INT(state_of(&f, a, NULL), PD_DELIVERED);
	CHECK_INT(state_of(&f, b, NULL), PD_DELIVERING);
	fixture_close(&f);
}

/* More due than a claim takes: lower priority values first. */
static void
test_a_claim_takes_lower_priority_values_first(void)
{
	struct fixture f;
	char ids[4][PD_ID_LEN + 1];
	static const int priority[4] = { 5, -3, 0, -3 };
	struct claimed c;
	pd_ms now = time_now();
	NEEDS(HAS(claim),
	      "claim");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	for (int i = 0; i < 4; i++) {
		struct pd_message m;

		make_message(&m, NULL, now);
		m.due = m.next_attempt = now - 10 + i;
		m.priority = priority[i];
		CHECK_INT(store_insert(f.s, &m, now), STORE_OK);
		snprintf(ids[i], sizeof(ids[i]), "%s", m.id);
		message_free(&m);
	}
	memset(&c, 0, sizeof(c));
	CHECK_INT(store_claim(f.s, now, 3, 0, take_claim, &c), STORE_OK);
	CHECK_INT(c.n, 3);
	CHECK_STR(c.id[0], ids[1]);
	CHECK_STR(c.id[1], ids[3]);
	CHECK_STR(c.id[2], ids[2]);
	fixture_close(&f);
}


/* ---- metrics ---- */

/* A status as the attempt counters class it. */
static void
test_an_attempt_is_classed_by_its_status(void)
{
	CHECK_INT(store_attempt_outcome_of(0), STORE_ATTEMPT_NO_ANSWER);
	CHECK_INT(store_attempt_outcome_of(101), STORE_ATTEMPT_OTHER);
	CHECK_INT(store_attempt_outcome_of(199), STORE_ATTEMPT_OTHER);
	CHECK_INT(store_attempt_outcome_of(200), STORE_ATTEMPT_2XX);
	CHECK_INT(store_attempt_outcome_of(299), STORE_ATTEMPT_2XX);
	CHECK_INT(store_attempt_outcome_of(302), STORE_ATTEMPT_3XX);
	CHECK_INT(store_attempt_outcome_of(410), STORE_ATTEMPT_4XX);
	CHECK_INT(store_attempt_outcome_of(503), STORE_ATTEMPT_5XX);
	CHECK_INT(store_attempt_outcome_of(599), STORE_ATTEMPT_5XX);
	CHECK_INT(store_attempt_outcome_of(600), STORE_ATTEMPT_OTHER);
	CHECK_INT(store_attempt_outcome_of(999), STORE_ATTEMPT_OTHER);
}

static int
take_queue(void *ctx, const struct pd_queue *q)
{
	if (strcmp(q->name, "jobs") == 0)
		*(struct pd_queue *)ctx = *q;
	return 0;
}

/* The totals count what each transaction made, tried and ended, by how;
 * attempts of a lease lost to another dispatcher count too (they were
 * made); and they outlive the connection that counted them. */
static void
test_the_totals_count_what_was_made_tried_and_ended(void)
{
	struct fixture f;
	struct claimed c;
	struct got g;
	struct pd_settlement o[3];
	struct store_ack a = { 0 };
	struct store_metrics m;
	struct pd_queue q = { 0 };
	char ids[3][PD_ID_LEN + 1], queued[PD_ID_LEN + 1];
	enum pd_state state;
	pd_ms now = time_now();
	NEEDS(HAS(queue_batch) && HAS(claim) && HAS(settle),
	      "queue_batch, claim, settle");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(store_metrics(f.s, now, &m, NULL, NULL), STORE_OK);
	CHECK_INT(m.made, 0);
	CHECK_INT(m.attempts[STORE_ATTEMPT_2XX], 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT(insert_due(&f, now, now, NULL, ids[i]), STORE_OK);
	CHECK_INT(insert_queued(&f, "jobs", 0, now, 0, now, queued), STORE_OK);
	CHECK_INT(claim(&f, now, &c), 3);
	for (int i = 0; i < 3; i++) {
		int k;

		for (k = 0; k < 3 && strcmp(c.id[k], ids[i]) != 0; k++)
			;
		CHECK(k < 3);
		o[i] = settlement(&c, k < 3 ? k : 0, i == 0 ? PD_DELIVERED : i == 1 ? PD_FAILED :
		                  PD_PENDING, now + 1);
		o[i].ntried = 0;
	}
	/* The first: a 503, then a 200; the second: no answer; the third a
	 * 404, then another round later. */
	o[0].tried[o[0].ntried++] = (struct pd_attempt){ .at = now, .url = "https://a/", .status = 503 };
	o[0].tried[o[0].ntried++] = (struct pd_attempt){ .at = now, .url = "https://b/", .status = 200 };
	o[1].tried[o[1].ntried++] = (struct pd_attempt){ .at = now, .url = "https://a/",
	                                                 .error = "timed out" };
	o[2].tried[o[2].ntried++] = (struct pd_attempt){ .at = now, .url = "https://a/", .status = 404 };
	CHECK_INT(store_settle(f.s, o, 3, now + 1, NULL, NULL), STORE_OK);
	CHECK_INT(store_cancel(f.s, ids[2], &state), STORE_OK);
	/* A settle of a lease run out and taken over: refused, its attempt kept. */
	CHECK_INT(store_settle(f.s, &o[0], 1, now + 2, NULL, NULL), STORE_OK);
	CHECK_INT(o[0].result, STORE_CONFLICT);
	/* A receive and its ack. */
	CHECK_INT(receive(&f, "jobs", 1, 30, now, &g), 1);
	a.id = g.id[0];
	a.receipt = g.receipt[0];
	CHECK_INT(store_ack(f.s, &a, 1, now, NULL, NULL), STORE_OK);
	CHECK_INT(a.result, STORE_OK);

	/* Counted in the database: a new connection reads the same. */
	store_close(f.s);
	f.s = NULL;
	CHECK_INT(store_open(&f.s, &f.cfg), 0);
	if (f.s == NULL) {
		remove_database(f.dir);
		return;
	}
	CHECK_INT(store_metrics(f.s, now, &m, take_queue, &q), STORE_OK);
	CHECK_INT(m.made, 4);
	CHECK_INT(m.ended[PD_DELIVERED], 2);
	CHECK_INT(m.ended[PD_FAILED], 1);
	CHECK_INT(m.ended[PD_CANCELLED], 1);
	CHECK_INT(m.ended[PD_EXPIRED], 0);
	CHECK_INT(m.receives, 1);
	CHECK_INT(m.attempts[STORE_ATTEMPT_2XX], 2);
	CHECK_INT(m.attempts[STORE_ATTEMPT_5XX], 2);
	CHECK_INT(m.attempts[STORE_ATTEMPT_NO_ANSWER], 1);
	CHECK_INT(m.attempts[STORE_ATTEMPT_4XX], 1);
	CHECK_INT(m.attempts[STORE_ATTEMPT_3XX], 0);
	CHECK_INT(m.attempts[STORE_ATTEMPT_OTHER], 0);
	CHECK_INT(m.counts[PD_DELIVERED], 2);
	CHECK_INT(m.counts[PD_PENDING], 0);
	CHECK_STR(q.name, "jobs");
	CHECK_INT(q.delivered, 1);
	fixture_close(&f);
}

/* ---- recurring definitions: occurrences made at times the test chooses ---- */

#define MINUTE_MS (60 * PD_MS_PER_S)

/* A definition of cron in tz to a URL, stored at now (id into r->id). */
static enum store_result
define_recurring(struct fixture *f, const char *cron, const char *tz, pd_ms now,
                 struct pd_recurring *r)
{
	enum store_result res;

	memset(r, 0, sizeof(*r));
	make_message(&r->message, NULL, now);
	r->cron = strdup(cron);
	r->tz = strdup(tz);
	res = store_recurring_add(f->s, r, now);
	return res;
}

/* The state and due time of message id. */
static enum pd_state
occurrence_state(struct fixture *f, const char *id, pd_ms *due)
{
	struct pd_message m;
	enum pd_state state;

	if (store_get(f->s, id, &m, NULL, NULL) != STORE_OK)
		return PD_NSTATES;
	state = m.state;
	if (due != NULL)
		*due = m.due;
	message_free(&m);
	return state;
}

/* The next occurrence is made once the one before it has fallen due, at
 * most one waits, and making again at the same time makes nothing. */
static void
test_occurrences_are_made_one_ahead_and_once(void)
{
	struct fixture f;
	struct pd_recurring r, got;
	/* 12:00:20 on some day: the first occurrence is 12:01. */
	pd_ms t0 = 1796126420000LL, m1 = t0 - 20000 + MINUTE_MS, due = 0, at = 0;
	int made = -1, late = -1;
	NEEDS(HAS(recurring_add) && HAS(recurring_get) && HAS(recurring_make) &&
	      HAS(recurring_make_at),
	      "recurring_add, recurring_get, recurring_make, recurring_make_at");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(define_recurring(&f, "* * * * *", "UTC", t0, &r), STORE_OK);
	CHECK(r.next == m1);
	CHECK_INT(store_recurring_make_at(f.s, &at), STORE_OK);
	CHECK(at == t0);
	CHECK_INT(store_recurring_make(f.s, t0, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 1);
	/* The next one waits for this one to fall due. */
	CHECK_INT(store_recurring_make_at(f.s, &at), STORE_OK);
	CHECK(at == m1);
	CHECK_INT(store_recurring_make(f.s, t0 + 1000, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 0);
	CHECK_INT(store_recurring_make(f.s, m1, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 1);
	CHECK_INT(late, 0);
	CHECK_INT(store_recurring_make(f.s, m1, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 0);
	CHECK_INT(store_recurring_get(f.s, r.id, &got), STORE_OK);
	CHECK_INT(got.nlatest, 2);
	CHECK(got.last == m1 + MINUTE_MS && got.next == m1 + 2 * MINUTE_MS);
	CHECK_INT(occurrence_state(&f, got.latest[0], &due), PD_PENDING);
	CHECK(due == m1 + MINUTE_MS);
	CHECK_INT(occurrence_state(&f, got.latest[1], &due), PD_PENDING);
	CHECK(due == m1);
	recurring_free(&got);
	recurring_free(&r);
	fixture_close(&f);
}

/* After a gap, only the latest missed occurrence is made, and the one made
 * before the gap (never tried) is cancelled: one late delivery, not one
 * per missed minute. */
static void
test_after_a_gap_only_the_latest_missed_occurrence_is_made(void)
{
	struct fixture f;
	struct pd_recurring r, got;
	pd_ms t0 = 1796126420000LL, m1 = t0 - 20000 + MINUTE_MS, due = 0;
	pd_ms back = m1 + 7 * MINUTE_MS + 25000;   /* seven and a half minutes later */
	int made = -1, late = -1;
	NEEDS(HAS(recurring_add) && HAS(recurring_get) && HAS(recurring_make),
	      "recurring_add, recurring_get, recurring_make");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(define_recurring(&f, "* * * * *", "UTC", t0, &r), STORE_OK);
	CHECK_INT(store_recurring_make(f.s, t0, 100, &made, &late), STORE_OK);
	CHECK_INT(store_recurring_make(f.s, m1, 100, &made, &late), STORE_OK);   /* m1 + 1 min waits */
	CHECK_INT(store_recurring_make(f.s, back, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 1);
	CHECK_INT(late, 1);
	CHECK_INT(store_recurring_get(f.s, r.id, &got), STORE_OK);
	CHECK_INT(got.nlatest, 3);
	CHECK_INT(occurrence_state(&f, got.latest[0], &due), PD_PENDING);
	CHECK(due == m1 + 7 * MINUTE_MS);
	CHECK_INT(occurrence_state(&f, got.latest[1], &due), PD_CANCELLED);
	CHECK(due == m1 + MINUTE_MS);
	CHECK(got.last == m1 + 7 * MINUTE_MS && got.next == m1 + 8 * MINUTE_MS);
	recurring_free(&got);
	/* A long gap (a year of minutes) is found as fast. */
	CHECK_INT(store_recurring_make(f.s, back + 366LL * 24 * 60 * MINUTE_MS, 100, &made, &late),
	          STORE_OK);
	CHECK_INT(made, 1);
	CHECK_INT(store_recurring_get(f.s, r.id, &got), STORE_OK);
	CHECK(got.last == m1 + 7 * MINUTE_MS + 366LL * 24 * 60 * MINUTE_MS);
	recurring_free(&got);
	recurring_free(&r);
	fixture_close(&f);
}

/* A definition to a topic makes each occurrence a publish: one message per
 * subscription, each with its recurring id, made once however often the
 * dispatcher makes; after a gap the waiting copies are cancelled, all. */
static void
test_an_occurrence_to_a_topic_is_one_publish_made_once(void)
{
	struct fixture f;
	struct pd_recurring r, got;
	struct pd_message dest;
	pd_ms t0 = 1796126420000LL, m1 = t0 - 20000 + MINUTE_MS, due = 0;
	int made = -1, late = -1, created;
	NEEDS(HAS(recurring_add) && HAS(recurring_get) && HAS(recurring_make) &&
	      HAS(subscribe),
	      "recurring_add, recurring_get, recurring_make, subscribe");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		make_message(&dest, NULL, t0);
		CHECK_INT(store_subscribe(f.s, "ticks", i == 0 ? "a" : "b", &dest, t0, &created),
		          STORE_OK);
		message_free(&dest);
	}
	memset(&r, 0, sizeof(r));
	make_message(&r.message, NULL, t0);
	free(r.message.urls);
	r.message.urls = strdup("");
	r.message.topic = strdup("ticks");
	r.cron = strdup("* * * * *");
	r.tz = strdup("UTC");
	CHECK_INT(store_recurring_add(f.s, &r, t0), STORE_OK);
	CHECK_INT(store_recurring_make(f.s, t0, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 1);
	CHECK_INT(store_recurring_make(f.s, t0 + 1000, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 0);
	CHECK_INT(store_recurring_get(f.s, r.id, &got), STORE_OK);
	CHECK_INT(got.nlatest, 2);
	CHECK_STR(got.message.topic, "ticks");
	for (int i = 0; i < 2; i++) {
		struct pd_message m;

		CHECK_INT(store_get(f.s, got.latest[i], &m, NULL, NULL), STORE_OK);
		CHECK_STR(m.recurring, r.id);
		CHECK_STR(m.topic, "ticks");
		CHECK(m.due == m1);
		message_free(&m);
	}
	recurring_free(&got);
	/* Back after a gap: the latest missed minute, and both copies of the
	 * one made before it cancelled. */
	CHECK_INT(store_recurring_make(f.s, m1 + 5 * MINUTE_MS + 3000, 100, &made, &late),
	          STORE_OK);
	CHECK_INT(made, 1);
	CHECK_INT(store_recurring_get(f.s, r.id, &got), STORE_OK);
	CHECK_INT(got.nlatest, 4);
	for (int i = 0; i < 4; i++) {
		CHECK_INT(occurrence_state(&f, got.latest[i], &due), i < 2 ? PD_PENDING : PD_CANCELLED);
		CHECK(due == (i < 2 ? m1 + 5 * MINUTE_MS : m1));
	}
	recurring_free(&got);
	recurring_free(&r);
	fixture_close(&f);
}

static int
count_subscription(void *ctx, const char *topic, const struct pd_message *sub)
{
	(void)topic;
	if (sub != NULL)
		(*(int *)ctx)++;
	return 0;
}

/* Regression: a topic took a 1001st subscription, which every publish then
 * left out in silence (it reads at most PD_MAX_SUBSCRIPTIONS). A topic
 * holds at most that many; replacing one of them is still allowed. */
static void
test_a_topic_refuses_a_subscription_past_its_limit(void)
{
	struct fixture f;
	struct pd_message dest;
	char name[32];
	int created, n = 0;
	pd_ms now = time_now();
	NEEDS(HAS(subscribe) && HAS(topics),
	      "subscribe, topics");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	make_message(&dest, NULL, now);
	for (int i = 0; i < PD_MAX_SUBSCRIPTIONS; i++) {
		snprintf(name, sizeof(name), "s%04d", i);
		CHECK_INT(store_subscribe(f.s, "wide", name, &dest, now, &created), STORE_OK);
	}
	CHECK_INT(store_subscribe(f.s, "wide", "one-too-many", &dest, now, &created), STORE_FULL);
	CHECK_INT(store_subscribe(f.s, "wide", "s0007", &dest, now, &created), STORE_OK);
	CHECK_INT(created, 0);
	CHECK_INT(store_topics(f.s, "wide", count_subscription, &n), STORE_OK);
	CHECK_INT(n, PD_MAX_SUBSCRIPTIONS);
	message_free(&dest);
	fixture_close(&f);
}

/* Pause cancels the waiting occurrence and makes nothing; resume starts
 * from the first occurrence after its own time, with none of the minutes
 * paused (no burst). */
static void
test_pause_cancels_the_waiting_occurrence_and_resume_makes_no_burst(void)
{
	struct fixture f;
	struct pd_recurring r, got;
	pd_ms t0 = 1796126420000LL, m1 = t0 - 20000 + MINUTE_MS, due = 0;
	pd_ms resumed = m1 + 10 * MINUTE_MS + 5000;
	int made = -1, late = -1;
	char waiting[PD_ID_LEN + 1];
	NEEDS(HAS(recurring_add) && HAS(recurring_delete) && HAS(recurring_get) &&
	      HAS(recurring_make) && HAS(recurring_pause) && HAS(recurring_resume),
	      "recurring_add, recurring_delete, recurring_get, recurring_make, "
	      "recurring_pause, recurring_resume");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(define_recurring(&f, "* * * * *", "UTC", t0, &r), STORE_OK);
	CHECK_INT(store_recurring_make(f.s, t0, 100, &made, &late), STORE_OK);
	CHECK_INT(store_recurring_get(f.s, r.id, &got), STORE_OK);
	snprintf(waiting, sizeof(waiting), "%s", got.latest[0]);
	recurring_free(&got);
	CHECK_INT(store_recurring_pause(f.s, r.id, t0 + 1000, &got), STORE_OK);
	CHECK(got.paused && got.next == 0);
	recurring_free(&got);
	CHECK_INT(occurrence_state(&f, waiting, NULL), PD_CANCELLED);
	CHECK_INT(store_recurring_make(f.s, m1 + 5 * MINUTE_MS, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 0);
	CHECK_INT(store_recurring_resume(f.s, r.id, resumed, &got), STORE_OK);
	CHECK(!got.paused && got.next == m1 + 11 * MINUTE_MS);
	recurring_free(&got);
	CHECK_INT(store_recurring_make(f.s, resumed, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 1);
	CHECK_INT(store_recurring_get(f.s, r.id, &got), STORE_OK);
	CHECK_INT(got.nlatest, 2);
	CHECK_INT(occurrence_state(&f, got.latest[0], &due), PD_PENDING);
	CHECK(due == m1 + 11 * MINUTE_MS);
	recurring_free(&got);
	/* Deleted: gone from reads, its messages kept, nothing made after. */
	CHECK_INT(store_recurring_delete(f.s, r.id, resumed + 1000), STORE_OK);
	CHECK_INT(store_recurring_get(f.s, r.id, &got), STORE_NOTFOUND);
	CHECK_INT(store_recurring_delete(f.s, r.id, resumed + 1000), STORE_NOTFOUND);
	CHECK_INT(occurrence_state(&f, waiting, NULL), PD_CANCELLED);
	CHECK_INT(store_recurring_make(f.s, resumed + 60 * MINUTE_MS, 100, &made, &late), STORE_OK);
	CHECK_INT(made, 0);
	recurring_free(&r);
	fixture_close(&f);
}

/* Two processes making the same occurrences at the same moment, over and
 * over: each occurrence exists once (the unique index, not luck). */
static void
test_two_makers_at_once_make_each_occurrence_once(void)
{
	struct fixture f;
	struct pd_recurring r;
	pd_ms t0 = 1796126420000LL, m1 = t0 - 20000 + MINUTE_MS;
	pid_t child;
	int status = 0, total = 0, made, late;
	SQLITE_ONLY("it counts rows in the SQLite file");

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	for (int i = 0; i < 20; i++) {
		CHECK_INT(define_recurring(&f, "* * * * *", "UTC", t0, &r), STORE_OK);
		recurring_free(&r);
	}
	store_close(f.s);
	f.s = NULL;
	child = fork();
	if (child == 0) {
		struct pd_store *s;
		int sum = 0;

		if (store_open(&s, &f.cfg) != 0)
			_exit(255);
		for (int k = 0; k <= 10; k++)
			if (store_recurring_make(s, k == 0 ? t0 : m1 + (k - 1) * MINUTE_MS, 100, &made, &late) ==
			    STORE_OK)
				sum += made;
		store_close(s);
		_exit(sum);
	}
	CHECK_INT(store_open(&f.s, &f.cfg), 0);
	for (int k = 0; k <= 10; k++)
		if (store_recurring_make(f.s, k == 0 ? t0 : m1 + (k - 1) * MINUTE_MS, 100, &made, &late) ==
		    STORE_OK)
			total += made;
	CHECK(waitpid(child, &status, 0) == child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 255);
	total += WEXITSTATUS(status);
	/* 20 definitions, occurrences m1 .. m1 + 10 min: 11 each. */
	CHECK_INT(total, 20 * 11);
	{
		sqlite3 *db;
		sqlite3_stmt *st;

		CHECK_INT(sqlite3_open(f.path, &db), SQLITE_OK);
		CHECK_INT(sqlite3_prepare_v2(db, "SELECT count(*), count(DISTINCT recurring || '.' "
		                             "|| due) FROM messages WHERE recurring IS NOT NULL", -1,
		                             &st, NULL), SQLITE_OK);
		CHECK_INT(sqlite3_step(st), SQLITE_ROW);
		CHECK_INT(sqlite3_column_int(st, 0), 20 * 11);
		CHECK_INT(sqlite3_column_int(st, 1), 20 * 11);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	fixture_close(&f);
}

/* The occurrences of 0 9 * * 1-5 in Berlin across both changes of 2027,
 * and of 30 2 * * * on the days the clocks skip and repeat 02:30. */
static void
test_recurring_next_after_follows_the_zone_across_its_changes(void)
{
	const char *why;
	pd_ms t;

	/* Thu 25 March 2027 12:00Z: Friday 08:00Z (CET), Monday 07:00Z (CEST). */
	CHECK_INT(recurring_next_after("0 9 * * 1-5", "Europe/Berlin", 1805976000000LL, &t, &why), 0);
	CHECK(t == 1806048000000LL);
	CHECK_INT(recurring_next_after("0 9 * * 1-5", "Europe/Berlin", t, &t, &why), 0);
	CHECK(t == 1806303600000LL);
	/* Sat 27 March 12:00Z: 02:30 does not exist on the 28th: 03:00 CEST = 01:00Z. */
	CHECK_INT(recurring_next_after("30 2 * * *", "Europe/Berlin", 1806148800000LL, &t, &why), 0);
	CHECK(t == 1806195600000LL);
	/* Sat 30 October 12:00Z: 02:30 twice on the 31st, once: 00:30Z (CEST). */
	CHECK_INT(recurring_next_after("30 2 * * *", "Europe/Berlin", 1824897600000LL, &t, &why), 0);
	CHECK(t == 1824942600000LL);
	CHECK_INT(recurring_next_after("30 2 * * *", "Europe/Berlin", t, &t, &why), 0);
	CHECK(t == 1825032600000LL);
	CHECK_INT(recurring_next_after("bad", "UTC", 0, &t, &why), -1);
	CHECK_INT(recurring_next_after("* * * * *", "Nowhere/Town", 0, &t, &why), -1);
}

/* ---- what every engine answers alike: a message's life seen from the
 * API's side (the PostgreSQL engine's own operations, on SQLite too) ---- */

struct listed {
	int n;
	char id[8][PD_ID_LEN + 1];
	enum pd_state state[8];
};

static int
take_listed(void *ctx, const struct pd_message *m)
{
	struct listed *l = ctx;

	if (l->n < 8) {
		snprintf(l->id[l->n], PD_ID_LEN + 1, "%s", m->id);
		l->state[l->n] = m->state;
		l->n++;
	}
	return 0;
}

static void
count_problem(void *ctx, const char *problem)
{
	fprintf(stderr, "  inspect: %s\n", problem);
	(*(long *)ctx)++;
}

/* Three messages made, one cancelled: the list by state and in all, the
 * counts, health's earliest due time, status with its payload, the totals,
 * a second cancel (200 again) and retention of the cancelled one, and the
 * kept counts still agreeing with the rows. */
static void
test_cancel_list_counts_totals_and_purge_agree(void)
{
	struct fixture f;
	char id[3][PD_ID_LEN + 1];
	struct listed l;
	struct pd_message m;
	struct store_metrics totals;
	enum pd_state state = PD_PENDING;
	long counts[PD_NSTATES], problems = -1, seen = 0;
	pd_ms now = time_now(), earliest = 0;
	int purged = -1, version = 0;

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	for (int i = 0; i < 3; i++)
		CHECK_INT(insert_due(&f, now + (i + 1) * 60000, now, NULL, id[i]), STORE_OK);
	CHECK_INT(store_cancel(f.s, id[1], &state), STORE_OK);
	CHECK_INT(state, PD_CANCELLED);
	state = PD_PENDING;
	CHECK_INT(store_cancel(f.s, id[1], &state), STORE_OK);   /* already: the same answer */
	CHECK_INT(state, PD_CANCELLED);
	CHECK_INT(store_cancel(f.s, "00000000000000000000000000", &state), STORE_NOTFOUND);

	memset(&l, 0, sizeof(l));
	CHECK_INT(store_list(f.s, PD_PENDING, NULL, 0, NULL, 10, take_listed, &l, counts),
	          STORE_OK);
	CHECK_INT(l.n, 2);
	CHECK_STR(l.id[0], id[0]);
	CHECK_STR(l.id[1], id[2]);
	CHECK_INT(counts[PD_PENDING], 2);
	CHECK_INT(counts[PD_CANCELLED], 1);
	memset(&l, 0, sizeof(l));
	CHECK_INT(store_list(f.s, -1, NULL, 0, NULL, 2, take_listed, &l, NULL), STORE_OK);
	CHECK_INT(l.n, 2);                                        /* the limit */
	CHECK_STR(l.id[1], id[1]);
	CHECK_INT(l.state[1], PD_CANCELLED);
	memset(&l, 0, sizeof(l));
	/* The next page starts after the last one shown. */
	CHECK_INT(store_list(f.s, -1, NULL, now + 2 * 60000, id[1], 10, take_listed, &l, NULL),
	          STORE_OK);
	CHECK_INT(l.n, 1);
	CHECK_STR(l.id[0], id[2]);

	CHECK_INT(store_health(f.s, counts, &earliest), STORE_OK);
	CHECK_INT(counts[PD_PENDING], 2);
	CHECK_INT(earliest, now + 60000);
	CHECK_INT(store_get(f.s, id[0], &m, NULL, NULL), STORE_OK);
	CHECK_STR(m.payload, "hello");
	CHECK_INT(m.payload_len, 5);
	CHECK_INT(m.state, PD_PENDING);
	CHECK_INT(m.due, now + 60000);
	CHECK(m.created >= now - 60000 && m.created <= now + 60000);
	message_free(&m);
	CHECK_INT(store_get(f.s, "00000000000000000000000000", &m, NULL, NULL), STORE_NOTFOUND);

	CHECK_INT(store_metrics(f.s, now, &totals, NULL, NULL), STORE_OK);
	CHECK_INT(totals.made, 3);
	CHECK_INT(totals.ended[PD_CANCELLED], 1);
	CHECK_INT(totals.counts[PD_PENDING], 2);

	CHECK_INT(store_purge(f.s, time_now() + 60000, 100, &purged), STORE_OK);
	CHECK_INT(purged, 1);
	CHECK_INT(store_get(f.s, id[1], &m, NULL, NULL), STORE_NOTFOUND);
	CHECK_INT(store_counts(f.s, counts), STORE_OK);
	CHECK_INT(counts[PD_CANCELLED], 0);
	CHECK_INT(counts[PD_PENDING], 2);
	CHECK_INT(store_inspect(f.path, &version, count_problem, &seen, &problems), STORE_OK);
	CHECK_INT(version, store_schema_version());
	CHECK_INT(problems, 0);
	CHECK_INT(seen, 0);
	fixture_close(&f);
}

/* A retry of what did not fail is refused, saying what it is. */
static void
test_a_retry_of_a_pending_or_cancelled_message_is_refused(void)
{
	struct fixture f;
	char id[2][PD_ID_LEN + 1];
	enum pd_state state = PD_FAILED;
	pd_ms now = time_now();
	int retried = -1;

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	CHECK_INT(insert_due(&f, now + 60000, now, NULL, id[0]), STORE_OK);
	CHECK_INT(insert_due(&f, now + 60000, now, NULL, id[1]), STORE_OK);
	CHECK_INT(store_cancel(f.s, id[1], &state), STORE_OK);
	CHECK_INT(store_retry(f.s, id[0], now, &state), STORE_CONFLICT);
	CHECK_INT(state, PD_PENDING);
	CHECK_INT(store_retry(f.s, id[1], now, &state), STORE_CONFLICT);
	CHECK_INT(state, PD_CANCELLED);
	CHECK_INT(store_retry(f.s, "00000000000000000000000000", now, &state), STORE_NOTFOUND);
	CHECK_INT(store_retry_state(f.s, PD_FAILED, now + 3600000, now, 100, &retried), STORE_OK);
	CHECK_INT(retried, 0);
	CHECK_INT(store_retry_state(f.s, PD_CANCELLED, now, now, 100, &retried), STORE_CONFLICT);
	fixture_close(&f);
}

/* Several processes scheduling and cancelling at once, half of it into a
 * queue made on first use by whichever comes first: every insert and
 * cancel answers, and the kept counts (overall and the queue's) agree with
 * the rows afterwards, as the list and inspect read them. */
static void
test_concurrent_writers_keep_the_counts_equal_to_the_rows(void)
{
	enum { WRITERS = 4, EACH = 40 };
	struct fixture f;
	struct listed l;
	long counts[PD_NSTATES], problems = -1, seen = 0;
	int version = 0, ok = 1;

	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	for (int w = 0; w < WRITERS; w++) {
		if (fork() != 0)
			continue;
		struct pd_store *s;
		int bad = 0;

		if (store_open(&s, &f.cfg) != 0)
			_exit(255);
		for (int i = 0; i < EACH; i++) {
			struct pd_message m;
			enum pd_state state;
			pd_ms now = time_now();

			make_message(&m, NULL, now);
			if (i % 2 == 1) {
				free(m.urls);
				m.urls = strdup("");
				m.queue = strdup("jobs");
				m.max_attempts = 0;
			}
			if (store_insert(s, &m, now) != STORE_OK)
				bad++;
			else if (i % 4 < 2 && store_cancel(s, m.id, &state) != STORE_OK)
				bad++;
			message_free(&m);
		}
		store_close(s);
		_exit(bad);
	}
	for (int w = 0; w < WRITERS; w++) {
		int status = -1;

		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			ok = 0;
	}
	CHECK(ok);
	CHECK_INT(store_counts(f.s, counts), STORE_OK);
	CHECK_INT(counts[PD_PENDING], WRITERS * EACH / 2);
	CHECK_INT(counts[PD_CANCELLED], WRITERS * EACH / 2);
	memset(&l, 0, sizeof(l));
	CHECK_INT(store_list(f.s, -1, "jobs", 0, NULL, 1, take_listed, &l, counts), STORE_OK);
	CHECK_INT(l.n, 1);
	CHECK_INT(counts[PD_PENDING], WRITERS * EACH / 4);
	CHECK_INT(counts[PD_CANCELLED], WRITERS * EACH / 4);
	CHECK_INT(store_inspect(f.path, &version, count_problem, &seen, &problems), STORE_OK);
	CHECK_INT(problems, 0);
	fixture_close(&f);
}

/* What a database setting shows in logs and the command line. */
static void
test_a_database_url_is_shown_without_its_passwords(void)
{
	static const struct { const char *setting, *shown; } cases[] = {
		{ "/var/lib/postdate/postdate.db", "/var/lib/postdate/postdate.db" },
		{ "postgresql://pd:secret@db:5432/postdate", "postgresql://pd:***@db:5432/postdate" },
		{ "postgres://db/postdate?password=secret&sslmode=require",
		  "postgres://db/postdate?password=***&sslmode=require" },
		{ "postgresql://pd:a@db/p?sslmode=disable&password=b",
		  "postgresql://pd:***@db/p?sslmode=disable&password=***" },
		{ "postgresql://db/p?xpassword=kept", "postgresql://db/p?xpassword=kept" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_STR(DATABASE_SHOWN(cases[i].setting), cases[i].shown);
}

/* ---- PostgreSQL only: the connection ---- */

/* One statement on its own connection to the test database; its single
 * value (malloc'd), or NULL. */
static char *
pg_value(const char *sql)
{
	PGconn *c = PQconnectdb(pg_url);
	PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
	char *v = NULL;

	if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = strdup(PQgetvalue(r, 0, 0));
	else
		fprintf(stderr, "  %s: %s", sql, r != NULL ? PQresultErrorMessage(r) :
		        PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return v;
}

/* The store's connection names the program and carries our timeouts;
 * when the server ends it (a restart, a failover, an idle timeout), the
 * next operation resets it once, prepares its statements again and
 * succeeds, instead of failing every call until the program restarts. */
static void
test_a_broken_connection_is_reset_and_the_operation_run_again(void)
{
	struct fixture f;
	char id[PD_ID_LEN + 1], *v;
	long counts[PD_NSTATES];
	pd_ms now = time_now();

	if (pg_url == NULL) {
		printf("skip store %s: PostgreSQL only\n", __func__);
		return;
	}
	CHECK_INT(fixture_open(&f), 0);
	if (f.s == NULL)
		return;
	v = pg_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'test_store' "
	             "AND datname = current_database()");
	CHECK_STR(v, "1");
	free(v);
	CHECK_INT(insert_due(&f, now + 60000, now, NULL, id), STORE_OK);
	v = pg_value("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
	             "WHERE application_name = 'test_store' AND datname = current_database() "
	             "AND pid <> pg_backend_pid()");
	CHECK_STR(v, "1");
	free(v);
	CHECK_INT(insert_due(&f, now + 60000, now, NULL, id), STORE_OK);
	CHECK_INT(store_counts(f.s, counts), STORE_OK);
	CHECK_INT(counts[PD_PENDING], 2);
	fixture_close(&f);
}

/* What the URL says wins over the defaults the store adds (libpq keeps
 * the last value of a repeated key, and the URL comes last). */
static void
test_the_urls_own_connection_settings_win_over_the_defaults(void)
{
	struct fixture f;
	char url[512], *v;

	if (pg_url == NULL) {
		printf("skip store %s: PostgreSQL only\n", __func__);
		return;
	}
	CHECK_INT(test_database(f.dir, sizeof(f.dir), f.path, sizeof(f.path)), 0);
	snprintf(url, sizeof(url), "%s%capplication_name=from_the_url", pg_url,
	         strchr(pg_url, '?') != NULL ? '&' : '?');
	config_defaults(&f.cfg);
	f.cfg.database = url;
	CHECK_INT(store_open(&f.s, &f.cfg), 0);
	v = pg_value("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
	             "'from_the_url' AND datname = current_database()");
	CHECK_STR(v, "1");
	free(v);
	fixture_close(&f);
}

/* Two programs opening a new database at once: the advisory lock makes
 * one of them run the migration, and both open it. */
static void
test_two_openers_of_a_new_database_migrate_it_once(void)
{
	struct fixture f;
	pid_t child;
	int status = -1;
	char *v;

	if (pg_url == NULL) {
		printf("skip store %s: PostgreSQL only\n", __func__);
		return;
	}
	CHECK_INT(test_database(f.dir, sizeof(f.dir), f.path, sizeof(f.path)), 0);
	config_defaults(&f.cfg);
	f.cfg.database = f.path;
	child = fork();
	if (child == 0) {
		struct pd_store *s;
		int rc = store_open(&s, &f.cfg);

		store_close(s);
		_exit(rc == 0 ? 0 : 1);
	}
	CHECK_INT(store_open(&f.s, &f.cfg), 0);
	CHECK(waitpid(child, &status, 0) == child);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	v = pg_value("SELECT count(*) || ' ' || max(version) FROM schema_version");
	CHECK(v != NULL && atoi(v) == 1 && atoi(strchr(v, ' ') + 1) == store_schema_version());
	free(v);
	fixture_close(&f);
}

static const struct unit_test tests[] = {
	UNIT(test_every_statement_uses_an_index),
	UNIT(test_an_attempt_is_classed_by_its_status),
	UNIT(test_the_totals_count_what_was_made_tried_and_ended),
	UNIT(test_a_receive_takes_priority_then_fifo_and_never_what_is_leased),
	UNIT(test_a_stale_receipt_is_refused_and_the_current_one_acks),
	UNIT(test_the_last_allowed_receive_ends_the_message_failed),
	UNIT(test_a_ttl_expires_and_a_full_queue_refuses),
	UNIT(test_a_batch_counts_its_own_messages_against_max_depth),
	UNIT(test_a_batch_of_queue_work_gives_each_request_its_result),
	UNIT(test_a_claim_takes_lower_priority_values_first),
	UNIT(test_a_batch_gives_each_message_its_own_result),
	UNIT(test_a_claim_leases_counts_the_round_and_a_settle_ends_it),
	UNIT(test_a_late_settle_is_refused_but_its_attempts_are_kept),
	UNIT(test_two_write_backs_of_one_message_at_once_both_keep_their_attempts),
	UNIT(test_rounds_cut_short_are_counted_at_the_claim),
	UNIT(test_promotion_brings_messages_into_the_buffer_at_the_horizon),
	UNIT(test_promotion_skips_while_another_dispatcher_holds_its_lock),
	UNIT(test_a_retry_beyond_the_horizon_leaves_the_buffer_until_promoted),
	UNIT(test_a_settle_that_ends_a_message_stores_its_callback_report),
	UNIT(test_the_sweep_expires_a_pushed_message_unless_its_round_is_in_flight),
	UNIT(test_concurrent_claims_take_each_message_once),
	UNIT(test_cancel_ends_a_pending_message_and_refuses_a_claimed_one),
	UNIT(test_a_reused_key_with_other_contents_is_a_conflict),
	UNIT(test_one_idempotency_key_makes_one_message_under_concurrency),
	UNIT(test_a_v1_database_migrates_with_nothing_lost),
	UNIT(test_a_database_that_cannot_use_wal_is_refused),
	UNIT(test_occurrences_are_made_one_ahead_and_once),
	UNIT(test_after_a_gap_only_the_latest_missed_occurrence_is_made),
	UNIT(test_pause_cancels_the_waiting_occurrence_and_resume_makes_no_burst),
	UNIT(test_two_makers_at_once_make_each_occurrence_once),
	UNIT(test_an_occurrence_to_a_topic_is_one_publish_made_once),
	UNIT(test_a_topic_refuses_a_subscription_past_its_limit),
	UNIT(test_recurring_next_after_follows_the_zone_across_its_changes),
	UNIT(test_cancel_list_counts_totals_and_purge_agree),
	UNIT(test_a_retry_of_a_pending_or_cancelled_message_is_refused),
	UNIT(test_concurrent_writers_keep_the_counts_equal_to_the_rows),
	UNIT(test_a_database_url_is_shown_without_its_passwords),
	UNIT(test_a_broken_connection_is_reset_and_the_operation_run_again),
	UNIT(test_two_openers_of_a_new_database_migrate_it_once),
	UNIT(test_the_urls_own_connection_settings_win_over_the_defaults),
};

int
main(void)
{
	const char *url = getenv("POSTDATE_TEST_DATABASE");

	if (url != NULL && (strncmp(url, "postgresql://", 13) == 0 ||
	                    strncmp(url, "postgres://", 11) == 0))
		pg_url = url;
	return unit_run(pg_url != NULL ? "store-pg" : "store", tests, UNIT_COUNT(tests));
}
