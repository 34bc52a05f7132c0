/*
 * longpoll.c: receives that wait for work (`wait` > 0) inside request
 * threads, without a process per waiter.
 *
 * A waiter claims only when there is work: a claim is a write transaction,
 * and a waiter that claimed on every look would hold the write lock against
 * producers and other workers. Between looks it sleeps until its deadline,
 * the next time a message of its queue falls due (or a lease runs out), or
 * a commit by any connection. Commits are seen by one watcher thread per
 * process, which reads PRAGMA data_version (no disk I/O) every few
 * milliseconds while anyone waits and wakes every waiter when it changes:
 * one poll for all the waiters of a process, not one each, and none at all
 * while nobody waits. A waiter sets its store connection aside while it
 * sleeps (longpoll_store), so many waiters share a few connections.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* How often a waiter that lost a race looks again, and the watcher reads
 * the data version before it has a store (after that, as often as the
 * store says: store_watch_interval_ms, 3 ms on SQLite, a few microseconds
 * per read; longer on PostgreSQL, where each read is a round trip). */
#define LONGPOLL_POLL_MS 3

/* The longest sleep between looks even when nothing changes: ready times
 * are wall-clock times and the sleep is on the monotonic clock, so a step
 * of the wall clock is noticed within this; so is a watcher that cannot
 * read the database. */
#define LONGPOLL_MAX_SLEEP_MS 5000

struct longpoll {
	const struct pd_config *cfg;
	int (*stopping)(void);
	pthread_mutex_t lock;
	pthread_cond_t changed;        /* broadcast when generation moves */
	pthread_cond_t wanted;         /* signalled when the first waiter comes */
	unsigned long generation;      /* moves on each commit seen, and on stop */
	int waiters;
	int closing;
	pthread_t watcher;
};

static void
sleep_ms(pd_ms ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

static struct timespec
monotonic_timespec(pd_ms ms)
{
	return (struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
}

/* The watcher: idle while nobody waits; otherwise reads the data version
 * on a connection of its own every store_watch_interval_ms and wakes the waiters
 * when it changed, or when the process is asked to stop. */
static void *
watch_commits(void *arg)
{
	struct longpoll *lp = arg;
	struct pd_store *store = NULL;
	long long last = -1, version;
	pd_ms last_open = 0;

	for (;;) {
		int wake;

		pthread_mutex_lock(&lp->lock);
		while (lp->waiters == 0 && !lp->closing)
			pthread_cond_wait(&lp->wanted, &lp->lock);
		if (lp->closing) {
			pthread_mutex_unlock(&lp->lock);
			break;
		}
		pthread_mutex_unlock(&lp->lock);

		sleep_ms(store != NULL ? store_watch_interval_ms(store) : LONGPOLL_POLL_MS);
		if (store == NULL && clock_monotonic() - last_open >= 1000) {
			last_open = clock_monotonic();
			if (store_open(&store, lp->cfg) != 0)
				log_error("longpoll: cannot open the database to watch for commits; "
				          "waiting receives look again every %d s",
				          LONGPOLL_MAX_SLEEP_MS / 1000);
		}
		/* The version from before a pause is kept: a commit made while
		 * nobody waited then wakes the next waiters once, needlessly but
		 * harmlessly, and one made between a waiter's look and the first
		 * read after it is never missed. */
		wake = lp->stopping();
		if (store != NULL) {
			if (store_data_version(store, &version) != STORE_OK) {
				store_close(store);
				store = NULL;
			} else {
				wake = wake || version != last;
				last = version;
			}
		}
		if (wake) {
			pthread_mutex_lock(&lp->lock);
			lp->generation++;
			pthread_cond_broadcast(&lp->changed);
			pthread_mutex_unlock(&lp->lock);
		}
	}
	store_close(store);
	return NULL;
}

int
longpoll_open(struct longpoll **out, const struct pd_config *cfg, int (*stopping)(void))
{
	struct longpoll *lp = calloc(1, sizeof(*lp));
	pthread_condattr_t attr;

	*out = NULL;
	if (lp == NULL)
		return -1;
	lp->cfg = cfg;
	lp->stopping = stopping;
	pthread_mutex_init(&lp->lock, NULL);
	/* Waits end on the monotonic clock, as every local deadline here. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&lp->changed, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&lp->wanted, NULL);
	if (pthread_create(&lp->watcher, NULL, watch_commits, lp) != 0) {
		log_error("longpoll: cannot start the thread that watches for commits");
		pthread_cond_destroy(&lp->changed);
		pthread_cond_destroy(&lp->wanted);
		pthread_mutex_destroy(&lp->lock);
		free(lp);
		return -1;
	}
	*out = lp;
	return 0;
}

void
longpoll_close(struct longpoll *lp)
{
	if (lp == NULL)
		return;
	pthread_mutex_lock(&lp->lock);
	lp->closing = 1;
	pthread_cond_signal(&lp->wanted);
	pthread_mutex_unlock(&lp->lock);
	pthread_join(lp->watcher, NULL);
	pthread_cond_destroy(&lp->changed);
	pthread_cond_destroy(&lp->wanted);
	pthread_mutex_destroy(&lp->lock);
	free(lp);
}

static unsigned long
generation_now(struct longpoll *lp)
{
	unsigned long g;

	pthread_mutex_lock(&lp->lock);
	g = lp->generation;
	pthread_mutex_unlock(&lp->lock);
	return g;
}

/* Sleeps until the monotonic time wake, a commit seen after generation
 * seen, or a request to stop. */
static void
wait_for_change(struct longpoll *lp, unsigned long seen, pd_ms wake)
{
	struct timespec until = monotonic_timespec(wake);

	pthread_mutex_lock(&lp->lock);
	if (lp->waiters++ == 0)
		pthread_cond_signal(&lp->wanted);
	while (lp->generation == seen && !lp->stopping() && clock_monotonic() < wake)
		pthread_cond_timedwait(&lp->changed, &lp->lock, &until);
	lp->waiters--;
	pthread_mutex_unlock(&lp->lock);
}

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

enum store_result
longpoll_receive(struct longpoll *lp, const struct longpoll_store *held, const char *queue,
                 int max, int visibility_s, pd_ms wait_ms, store_report_fn report_fn,
                 void *report_ctx, store_received_fn fn, void *ctx, int *received)
{
	struct counted counted = { .fn = fn, .ctx = ctx };
	pd_ms deadline = clock_monotonic() + wait_ms;
	enum store_result res = STORE_OK;
	int first = 1;

	for (;;) {
		/* Read before the look, so that a commit between the look and
		 * the sleep still wakes it. */
		unsigned long seen = generation_now(lp);
		struct pd_store *s = held->take(held->ctx);
		pd_ms ready_at, now, wake;
		struct pd_queue q;

		if (s == NULL) {
			res = STORE_UNAVAILABLE;
			break;
		}
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
		if (lp->stopping() || clock_monotonic() >= deadline)
			break;
		if (wake - clock_monotonic() > LONGPOLL_MAX_SLEEP_MS)
			wake = clock_monotonic() + LONGPOLL_MAX_SLEEP_MS;
		held->set_aside(held->ctx);
		wait_for_change(lp, seen, wake);
	}
	*received = counted.received;
	return res;
}
