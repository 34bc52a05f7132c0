/* test_store.c: the store's statements, checked against SQLite's planner,
 * and the batch insert that group commit uses. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "postdate.h"
#include "request.h"
#include "store.h"
#include "unit.h"

struct plan_check {
	int lines;
	int bad;
};

/* A full scan, a temporary sort, or a search on the state alone (which
 * walks every message in that state; regression: health's earliest
 * unbuffered due time once did) would make a statement's cost grow
 * with the number of messages; only the five-row state_counts may be
 * scanned. */
static void
check_plan_line(void *ctx, const char *sql, const char *line)
{
	struct plan_check *c = ctx;
	size_t len = strlen(line);

	c->lines++;
	if ((strncmp(line, "SCAN ", 5) == 0 && strncmp(line, "SCAN state_counts", 17) != 0) ||
	    strstr(line, "TEMP B-TREE") != NULL ||
	    (strncmp(line, "SEARCH messages ", 16) == 0 && len > 9 &&
	     strcmp(line + len - 9, "(state=?)") == 0)) {
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

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void
test_every_statement_uses_an_index(void)
{
	char dir[] = "/tmp/postdate-store-XXXXXX", path[64];
	struct pd_config cfg;
	struct pd_store *s;
	struct plan_check c = { 0, 0 };

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/t.db", dir);
	config_defaults(&cfg);
	cfg.database = path;
	CHECK_INT(store_open(&s, &cfg), 0);
	if (s != NULL) {
		CHECK_INT(store_query_plans(s, check_plan_line, &c), 0);
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
	char dir[] = "/tmp/postdate-store-XXXXXX", path[64];
	static const char *const keys[] = { "a", "a", NULL, NULL, NULL };
	enum { N = 5 };
	struct pd_message m[N], got;
	struct store_insert items[N];
	struct pd_config cfg;
	struct pd_store *s;
	pd_ms now = time_now();

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/t.db", dir);
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
		enum store_result res = store_get(s, m[i].id, &got);

		CHECK_INT(res, STORE_OK);
		if (res == STORE_OK) {
			CHECK_STR(got.urls, "https://example.com/hook");
			message_free(&got);
		}
	}
	CHECK_INT(store_get(s, "aaaaaaaaaaaaaaaaaaaaaaaaaa", &got), STORE_NOTFOUND);
	for (int i = 0; i < N; i++)
		message_free(&m[i]);
	store_close(s);
	remove_database(dir);
}

static const struct unit_test tests[] = {
	UNIT(test_every_statement_uses_an_index),
	UNIT(test_a_batch_gives_each_message_its_own_result),
};

int
main(void)
{
	return unit_run("store", tests, UNIT_COUNT(tests));
}
