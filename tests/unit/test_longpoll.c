/* test_longpoll.c: longpoll_receive on a real store: it tells an unknown
 * queue at once, waits out its time when nothing comes, wakes when another
 * connection commits a message or when a delayed one falls due, and answers
 * at once when asked to stop; while it sleeps it holds no connection.
 * Times are bounded from below exactly (it
 * cannot answer early) and from above generously (the machine is shared). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "postdate.h"
#include "request.h"
#include "store.h"
#include "unit.h"

struct fixture {
	char dir[32];
	char path[64];
	struct pd_config cfg;
	struct pd_store *s;
	/* How the waiter held f->s: takes and set-asides, and a take while
	 * it already held the connection (never expected). */
	int held, takes, asides, taken_twice;
};

static struct pd_store *
take(void *fixture)
{
	struct fixture *f = fixture;

	f->taken_twice += f->held;
	f->held = 1;
	f->takes++;
	return f->s;
}

static void
set_aside(void *fixture)
{
	struct fixture *f = fixture;

	f->held = 0;
	f->asides++;
}

static int
fixture_open(struct fixture *f)
{
	struct pd_queue_change c = { "jobs", -1, -1, -1, -1 };
	struct pd_queue q;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/postdate-longpoll-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	config_defaults(&f->cfg);
	f->cfg.database = f->path;
	if (store_open(&f->s, &f->cfg) != 0)
		return -1;
	return store_queue_set(f->s, &c, time_now(), &q) == STORE_OK ? 0 : -1;
}

static void
fixture_close(struct fixture *f)
{
	static const char *const names[] = { "t.db", "t.db-wal", "t.db-shm" };
	char path[64];

	store_close(f->s);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, names[i]);
		unlink(path);
	}
	rmdir(f->dir);
}

/* Schedules a job into queue "jobs" due at due, through connection s. */
static enum store_result
enqueue(struct pd_store *s, pd_ms due)
{
	struct pd_message m;
	enum store_result res;

	memset(&m, 0, sizeof(m));
	m.due = m.next_attempt = due;
	m.urls = strdup("");
	m.queue = strdup("jobs");
	m.payload = strdup("job");
	m.payload_len = 3;
	m.content_type = strdup("text/plain");
	m.timeout = 10;
	res = store_insert(s, &m, time_now());
	message_free(&m);
	return res;
}

static int
count_only(void *ctx, struct pd_message *m, const char *receipt, pd_ms until)
{
	(void)ctx;
	(void)receipt;
	(void)until;
	message_free(m);
	return 0;
}

static int
never_stop(void)
{
	return 0;
}

static int
stop_now(void)
{
	return 1;
}

static enum store_result
wait_on(struct fixture *f, const char *queue, pd_ms wait_ms, int (*stopping)(void),
        int *received, pd_ms *took)
{
	struct longpoll_store holder = { take, set_aside, f };
	struct longpoll *lp = NULL;
	pd_ms t0;
	enum store_result res = STORE_ERROR;

	*received = -1;
	*took = 0;
	CHECK_INT(longpoll_open(&lp, &f->cfg, stopping), 0);
	if (lp == NULL)
		return res;
	t0 = clock_monotonic();
	res = longpoll_receive(lp, &holder, queue, 10, 30, wait_ms, NULL, NULL, count_only,
	                       NULL, received);
	*took = clock_monotonic() - t0;
	longpoll_close(lp);
	return res;
}

static void
test_an_unknown_queue_is_told_at_once(void)
{
	struct fixture f;
	int received;
	pd_ms took;

	CHECK_INT(fixture_open(&f), 0);
	CHECK_INT(wait_on(&f, "nobody", 5000, never_stop, &received, &took), STORE_NOTFOUND);
	CHECK(took < 2500);
	fixture_close(&f);
}

static void
test_nothing_published_means_an_empty_answer_after_the_wait(void)
{
	struct fixture f;
	int received;
	pd_ms took;

	CHECK_INT(fixture_open(&f), 0);
	CHECK_INT(wait_on(&f, "jobs", 300, never_stop, &received, &took), STORE_OK);
	CHECK_INT(received, 0);
	CHECK(took >= 300);
	CHECK(took < 3000);
	/* It slept with its connection set aside, and took it for each look. */
	CHECK(f.asides >= 1);
	CHECK_INT(f.takes, f.asides + 1);
	CHECK_INT(f.taken_twice, 0);
	fixture_close(&f);
}

static void
test_a_stop_request_answers_at_once(void)
{
	struct fixture f;
	int received;
	pd_ms took;

	CHECK_INT(fixture_open(&f), 0);
	CHECK_INT(wait_on(&f, "jobs", 10000, stop_now, &received, &took), STORE_OK);
	CHECK_INT(received, 0);
	CHECK(took < 5000);
	fixture_close(&f);
}

struct producer {
	struct fixture *f;
	enum store_result res;
};

/* Another connection, as another process's schedule: publishes one job
 * after 200 ms. */
static void *
publish_later(void *arg)
{
	struct producer *p = arg;
	struct pd_store *other = NULL;
	struct timespec ts = { 0, 200 * 1000000L };

	nanosleep(&ts, NULL);
	p->res = STORE_ERROR;
	if (store_open(&other, &p->f->cfg) == 0)
		p->res = enqueue(other, time_now());
	store_close(other);
	return NULL;
}

static void
test_a_job_published_by_another_connection_wakes_the_waiter(void)
{
	struct fixture f;
	struct producer p = { &f, STORE_ERROR };
	pthread_t t;
	int received;
	pd_ms took;

	CHECK_INT(fixture_open(&f), 0);
	CHECK_INT(pthread_create(&t, NULL, publish_later, &p), 0);
	CHECK_INT(wait_on(&f, "jobs", 15000, never_stop, &received, &took), STORE_OK);
	pthread_join(t, NULL);
	CHECK_INT(p.res, STORE_OK);
	CHECK_INT(received, 1);
	CHECK(took >= 150);
	/* Woken by the commit, not by the look it takes every 5 s anyway. */
	CHECK(took < 4000);
	fixture_close(&f);
}

static void
test_a_delayed_job_is_received_when_due_and_not_before(void)
{
	struct fixture f;
	pd_ms due = time_now() + 400, took;
	int received;

	CHECK_INT(fixture_open(&f), 0);
	CHECK_INT(enqueue(f.s, due), STORE_OK);
	CHECK_INT(wait_on(&f, "jobs", 15000, never_stop, &received, &took), STORE_OK);
	CHECK_INT(received, 1);
	CHECK(time_now() >= due);
	/* Woken by the due time, not by the look it takes every 5 s anyway. */
	CHECK(took < 4000);
	fixture_close(&f);
}

static const struct unit_test tests[] = {
	UNIT(test_an_unknown_queue_is_told_at_once),
	UNIT(test_nothing_published_means_an_empty_answer_after_the_wait),
	UNIT(test_a_stop_request_answers_at_once),
	UNIT(test_a_job_published_by_another_connection_wakes_the_waiter),
	UNIT(test_a_delayed_job_is_received_when_due_and_not_before),
};

int
main(void)
{
	return unit_run("longpoll", tests, UNIT_COUNT(tests));
}
