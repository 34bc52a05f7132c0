/* test_store.c: the store's statements, checked against SQLite's planner. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "postdate.h"
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
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-shm", dir);
	unlink(path);
	rmdir(dir);
}

static const struct unit_test tests[] = {
	UNIT(test_every_statement_uses_an_index),
};

int
main(void)
{
	return unit_run("store", tests, UNIT_COUNT(tests));
}
