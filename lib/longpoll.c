/*
 * longpoll.c: a receive that waits for work (`wait` > 0) inside a request
 * thread, without a process per waiter. It claims only when there is work:
 * a claim is a write transaction, and a waiter that claimed on every look
 * would hold the write lock against producers and other workers. Between
 * looks it sleeps until the deadline, the next time a message of its queue
 * falls due (or a lease runs out), or a commit by any connection, which
 * PRAGMA data_version shows without reading the database file.
 */
#include <time.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* How often a waiter looks at the data version: the wake-up latency a
 * publish sees, against a few microseconds of CPU per look. */
#define LONGPOLL_POLL_MS 3

/* The longest sleep between looks even when nothing changes: ready times
 * are wall-clock times and the sleep is on the monotonic clock, so a step
 * of the wall clock is noticed within this. */
#define LONGPOLL_MAX_SLEEP_MS 5000

/* What longpoll_receive puts between store_receive and the caller's fn:
 * it counts what was handed out. */
struct counted {
	store_received_fn fn;
	void *ctx;
	int received;
};

static int
count_received(void *ctx, struct pd_message *m, const char *receipt, pd_ms visible_until)
{
	struct counted *c = ctx;

	c->received++;
	return c->fn(c->ctx, m, receipt, visible_until);
}

static void
sleep_ms(pd_ms ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Sleeps until the monotonic time wake, a change of the data version from
 * version, or stopping(); STORE_OK or the store's failure to read it. */
static enum store_result
wait_for_change(struct pd_store *s, long long version, pd_ms wake, int (*stopping)(void))
{
	long long now_version;
	enum store_result res;
	pd_ms left;

	while (!stopping() && (left = wake - clock_monotonic()) > 0) {
		sleep_ms(left < LONGPOLL_POLL_MS ? left : LONGPOLL_POLL_MS);
		if ((res = store_data_version(s, &now_version)) != STORE_OK)
			return res;
		if (now_version != version)
			break;
	}
	return STORE_OK;
}

enum store_result
longpoll_receive(struct pd_store *s, const char *queue, int max, int visibility_s,
                 pd_ms wait_ms, int (*stopping)(void), store_report_fn report_fn,
                 void *report_ctx, store_received_fn fn, void *ctx, int *received)
{
	struct counted counted = { .fn = fn, .ctx = ctx };
	pd_ms deadline = clock_monotonic() + wait_ms;
	enum store_result res = STORE_OK;
	int first = 1;

	for (;;) {
		long long version;
		pd_ms ready_at, now, wake;
		struct pd_queue q;

		/* The version is read before the look, so that a commit between
		 * the look and the sleep still wakes it. */
		if ((res = store_data_version(s, &version)) != STORE_OK)
			break;
		if ((res = store_queue_ready_at(s, queue, &ready_at)) != STORE_OK)
			break;
		now = time_now();
		/* Nothing waits: an unknown queue is told now, not after the wait. */
		if (first && ready_at == 0 &&
		    (res = store_queue_get(s, queue, now, &q)) != STORE_OK)
			break;
		first = 0;
		wake = deadline;
		if (ready_at != 0 && ready_at <= now) {
			res = store_receive(s, queue, max, visibility_s, now, report_fn, report_ctx,
			                    count_received, &counted);
			if (res != STORE_OK || counted.received > 0)
				break;
			/* Another worker was quicker: look again after the next
			 * commit, or shortly, never in a tight loop. */
			if (clock_monotonic() + LONGPOLL_POLL_MS < wake)
				wake = clock_monotonic() + LONGPOLL_POLL_MS;
		} else if (ready_at != 0 && clock_monotonic() + (ready_at - now) < wake)
			wake = clock_monotonic() + (ready_at - now);
		if (stopping() || clock_monotonic() >= deadline)
			break;
		if (wake - clock_monotonic() > LONGPOLL_MAX_SLEEP_MS)
			wake = clock_monotonic() + LONGPOLL_MAX_SLEEP_MS;
		if ((res = wait_for_change(s, version, wake, stopping)) != STORE_OK)
			break;
	}
	*received = counted.received;
	return res;
}
