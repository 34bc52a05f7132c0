/*
 * commit.c: group commit for schedule. With synchronous=FULL every commit
 * waits for the disk, so one commit per request caps a worker at the
 * disk's sync rate. Here the request threads of one schedule process hand
 * their validated messages to a single committer thread, which writes
 * everything that is waiting in one transaction (store_insert_batch) and
 * then wakes each request with its own result. Nothing is acknowledged
 * before its commit; a request waits at most one commit in progress plus
 * its own. Batches form by themselves: while one commit syncs, the next
 * requests queue up, so a lone request waits for no timer.
 */
#include <pthread.h>
#include <stdlib.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* A transaction stays short enough that a reader or a dispatcher waiting
 * for the write lock is not held up for long. */
#define COMMIT_MAX_BATCH 256

/* A waiting request, on its thread's stack until its result is in. */
struct waiter {
	struct store_insert item;
	int done;
	pthread_cond_t wake;          /* done; one per waiter, so a batch wakes
	                                 only its own requests */
	struct waiter *next;
};

struct pd_committer {
	struct pd_app *app;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;          /* the queue got a waiter, or stop was asked */
	int idle;                     /* the committer waits on work */
	struct waiter *head, **tail;  /* the queue, oldest first */
	int stopping;
	pd_ms last_open_try;
};

/* The store as the committer thread uses it: opened again, at most once a
 * second, when it could not be opened before (so a database that comes
 * back is served without a restart). NULL while it stays unavailable. */
static struct pd_store *
committer_store(struct pd_committer *c)
{
	pd_ms now = time_now();

	if (c->app->store == NULL && now - c->last_open_try >= 1000) {
		c->last_open_try = now;
		store_open(&c->app->store, &c->app->cfg);
	}
	return c->app->store;
}

/* Takes up to COMMIT_MAX_BATCH waiters off the queue, under c->lock. */
static struct waiter *
take_batch(struct pd_committer *c, size_t *n)
{
	struct waiter *batch = c->head, *last = NULL, *w;

	*n = 0;
	for (w = batch; w != NULL && *n < COMMIT_MAX_BATCH; w = w->next) {
		last = w;
		(*n)++;
	}
	c->head = w;
	if (c->head == NULL)
		c->tail = &c->head;
	if (last != NULL)
		last->next = NULL;
	return batch;
}

static void *
committer_run(void *arg)
{
	struct pd_committer *c = arg;
	struct store_insert items[COMMIT_MAX_BATCH];

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct waiter *batch, *w;
		struct pd_store *store;
		size_t n, i;

		while (c->head == NULL && !c->stopping) {
			c->idle = 1;
			pthread_cond_wait(&c->work, &c->lock);
			c->idle = 0;
		}
		if (c->head == NULL)
			break;
		batch = take_batch(c, &n);
		pthread_mutex_unlock(&c->lock);

		for (w = batch, i = 0; w != NULL; w = w->next, i++)
			items[i] = w->item;
		store = committer_store(c);
		if (store != NULL)
			store_insert_batch(store, items, n);
		else
			for (i = 0; i < n; i++)
				items[i].result = STORE_UNAVAILABLE;

		pthread_mutex_lock(&c->lock);
		for (w = batch, i = 0; w != NULL; i++) {
			/* Read before done is set: once the lock is released, the
			 * waiter returns and its frame is gone. */
			struct waiter *next = w->next;

			w->item.result = items[i].result;
			w->done = 1;
			pthread_cond_signal(&w->wake);
			w = next;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int
committer_start(struct pd_committer **out, struct pd_app *app)
{
	struct pd_committer *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (c == NULL)
		return -1;
	c->app = app;
	c->tail = &c->head;
	c->last_open_try = time_now();
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->work, NULL);
	if (pthread_create(&c->thread, NULL, committer_run, c) != 0) {
		log_error("cannot start the commit thread");
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

enum store_result
committer_insert(struct pd_committer *c, struct pd_message *m, pd_ms now)
{
	struct waiter w = { .item = { .message = m, .now = now } };

	pthread_cond_init(&w.wake, NULL);
	pthread_mutex_lock(&c->lock);
	*c->tail = &w;
	c->tail = &w.next;
	if (c->idle)
		pthread_cond_signal(&c->work);
	while (!w.done)
		pthread_cond_wait(&w.wake, &c->lock);
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&w.wake);
	return w.item.result;
}

void
committer_stop(struct pd_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->work);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
