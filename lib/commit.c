/*
 * commit.c: group commit for schedule. With synchronous=FULL every commit
 * waits for the disk, so one commit per request caps a worker at the
 * disk's sync rate. Here the request threads of one schedule process queue
 * their validated messages, and one of them at a time, the leader, writes
 * everything that is waiting in one transaction (store_insert_batch), then
 * wakes each request with its own result and hands the lead to the first
 * request that queued meanwhile. Nothing is acknowledged before its
 * commit; a request waits at most one commit in progress plus its own.
 * Batches form by themselves: while one commit syncs, the next requests
 * queue up. A request that finds nobody committing commits at once on its
 * own thread, so a lone request costs no hand-over to another thread.
 *
 * The queue program's receives and acks commit the same way (a committer
 * serves one program, so a batch is all inserts or all queue work).
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
	struct store_insert item;     /* schedule's message */
	struct store_queue_op *op;    /* or a piece of the queue program's work */
	int done;
	int leads;                    /* it is this request's turn to commit the queue */
	pthread_cond_t wake;          /* done or leads; one per waiter, so a batch
	                                 wakes only its own requests */
	struct waiter *next;
};

struct pd_committer {
	struct pd_app *app;
	pthread_mutex_t lock;
	int committing;               /* a leader is committing or about to */
	struct waiter *head, **tail;  /* the queue, oldest first */
	pd_ms last_open_try;
};

/* The store as the leader uses it: opened again, at most once a second,
 * when it could not be opened before (so a database that comes back is
 * served without a restart). NULL while it stays unavailable. */
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

/* The leader's turn, entered and left with c->lock held: commits the
 * batch at the head of the queue (its own request among it), wakes its
 * requests, and passes the lead on to the next request waiting, if any. */
static void
lead_one_batch(struct pd_committer *c)
{
	struct store_insert items[COMMIT_MAX_BATCH];
	struct store_queue_op ops[COMMIT_MAX_BATCH];
	struct waiter *batch, *w;
	struct pd_store *store;
	size_t n, i;

	batch = take_batch(c, &n);
	pthread_mutex_unlock(&c->lock);

	for (w = batch, i = 0; w != NULL; w = w->next, i++) {
		items[i] = w->item;
		if (w->op != NULL)
			ops[i] = *w->op;
	}
	store = committer_store(c);
	if (store == NULL)
		for (i = 0; i < n; i++)
			items[i].result = ops[i].result = STORE_UNAVAILABLE;
	else if (batch->op != NULL) {
		struct pd_reporter reporter = { store, &c->app->cfg };

		store_queue_batch(store, ops, n, time_now(), report_of_message, &reporter);
	} else
		store_insert_batch(store, items, n);

	pthread_mutex_lock(&c->lock);
	for (w = batch, i = 0; w != NULL; i++) {
		/* Read before done is set: once the lock is released, the
		 * waiter returns and its frame is gone. */
		struct waiter *next = w->next;

		w->item.result = items[i].result;
		if (w->op != NULL)
			w->op->result = ops[i].result;
		w->done = 1;
		pthread_cond_signal(&w->wake);
		w = next;
	}
	if (c->head != NULL) {
		c->head->leads = 1;
		pthread_cond_signal(&c->head->wake);
	} else
		c->committing = 0;
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
	*out = c;
	return 0;
}

/* Queues w and returns once the transaction holding it has committed (or
 * failed), committing it, and whatever queued with it, when it is w's turn. */
static void
commit_waiter(struct pd_committer *c, struct waiter *w)
{
	pthread_cond_init(&w->wake, NULL);
	pthread_mutex_lock(&c->lock);
	*c->tail = w;
	c->tail = &w->next;
	if (!c->committing) {
		/* Nobody commits: the queue holds only this request. */
		c->committing = 1;
		w->leads = 1;
	}
	for (;;) {
		while (!w->done && !w->leads)
			pthread_cond_wait(&w->wake, &c->lock);
		if (w->done)
			break;
		/* Its turn: its own request is at the head of the queue, so the
		 * batch it commits includes it. */
		w->leads = 0;
		lead_one_batch(c);
	}
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&w->wake);
}

enum store_result
committer_insert(struct pd_committer *c, struct pd_message *m, pd_ms now)
{
	struct waiter w = { .item = { .message = m, .now = now } };

	commit_waiter(c, &w);
	return w.item.result;
}

enum store_result
committer_queue(struct pd_committer *c, struct store_queue_op *op)
{
	struct waiter w = { .op = op };

	commit_waiter(c, &w);
	return op->result;
}

void
committer_stop(struct pd_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
}
