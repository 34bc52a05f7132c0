/*
 * dispatch: delivers the messages that fall due. cron runs it every minute
 * with --for 60 (or systemd keeps it running with --watch).
 *
 * The loop, after beanstalkd's: work out the next deadline (a message
 * falling due, results waiting to be written, the end of the run, a cut of
 * what is still in flight), wait until then or until a transfer moves,
 * act. Talking to the store is batched into a "sync" on the store's own
 * thread: write back the rounds that ended (one transaction), make the
 * recurring occurrences due to be made (once a second, at most a batch),
 * then claim due messages for the free slots (another), then promote at
 * most one batch into the buffer (a third).
 *
 * Every local deadline and wait is on clock_monotonic(): a step of the
 * wall clock (NTP) must not stretch or cut a run. Wall-clock time
 * (time_now) is only what is stored or sent.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "postdate.h"
#include "store.h"
#include "delivery.h"

/* How often an idle dispatcher looks for new due messages: a message
 * scheduled "now" waits half of this on average (API.md's ASAP goal is
 * 20 ms). One indexed read each time. */
#define POLL_MS 10
/* Results wait at most this long to be written back in one batch. */
#define FLUSH_MS 5
/* A lease outlives a round's timeouts by this much (s): time to write the
 * result back. Past it the message may be delivered twice, never lost. */
#define LEASE_SLACK_S 10
/* On SIGTERM, how long transfers in flight may finish before they are cut
 * and their messages given back. */
#define STOP_GRACE_MS 10000
/* At the end of a --for run, how long transfers in flight may finish
 * before they are cut and given back: a healthy target has answered by
 * then, and the next run (which a timer starts when this one has exited)
 * must not wait for a slow one. */
#define FINISH_MS 1000
/* Messages promoted into the buffer per sync: one bounded transaction,
 * so that a crowd entering the horizon together cannot hold up the
 * write-backs and claims beside it. */
#define PROMOTE_BATCH 250
/* How often to look whether promotion has anything to do: the horizon is
 * an hour ahead, so once a second is plenty. Recurring occurrences are
 * made at the same look, the next one once the one before it has fallen
 * due (at least a minute ahead) or, for a new or resumed definition, at
 * most this long after it was stored. */
#define PROMOTE_CHECK_MS 1000
/* Recurring definitions whose next occurrence is made per look: one
 * bounded transaction, like promotion's. */
#define RECURRING_BATCH 100
/* Messages ended per sweep of those that end by themselves (a ttl run
 * out, a queue message's last receive run out), and how often to sweep:
 * status shows such a message ended within about this long of its time.
 * Nothing is sent after a ttl however late the sweep: the claim and each
 * attempt check it. */
#define SWEEP_BATCH 250
#define SWEEP_CHECK_MS 250
/* Retention: messages that ended longer ago than `retention` are deleted
 * at most this many per transaction (with their history and payloads), so
 * the write lock is never held long; looked for once a second along with
 * the sweep, and batch after batch while there are full ones. */
#define RETENTION_BATCH 500
#define RETENTION_CHECK_MS 1000
/* After a failed sync (database busy), wait this long; give up after
 * SYNC_GIVE_UP failures in a row. */
#define SYNC_RETRY_MS 100
#define SYNC_GIVE_UP 100

enum mode { MODE_NONE, MODE_ONCE, MODE_FOR, MODE_WATCH };

struct dispatcher {
	struct pd_config cfg;
	struct pd_store *store;
	struct pd_engine *engine;
	struct pd_signer signer;
	int verbose;
	enum mode mode;
	/* Local deadlines, all on clock_monotonic(). */
	pd_ms started, end;

	int held;                  /* jobs claimed and not yet written back */
	struct pd_job *done;       /* rounds ended, waiting to be written back */
	struct pd_job **done_tail;
	int ndone;
	pd_ms oldest_done;

	pd_ms next_check;          /* when to look for due messages again */
	pd_ms next_promote_check;  /* when to look for messages to promote */
	pd_ms next_sweep;          /* when to end what has run out by itself */
	pd_ms next_purge;          /* when to delete what ended before retention */
	int backlog;               /* the last claim filled every free slot */
	int nothing_due;           /* --once: the last look found nothing due */
	int sync_failures;
	pd_ms sync_retry_at;

	struct syncer *syncer;     /* the store's thread */

	int stopping;              /* no new claims: a signal, the end of the run */
	int signalled;
	pd_ms cut_at;              /* then give back what is in flight; 0: never */

	long delivered, retried, failed, released, lost, attempts, expired, swept, purged;
};

static volatile sig_atomic_t stop_requested;

static void
on_stop(int sig)
{
	(void)sig;
	stop_requested++;
}

static void
usage_exit(int status)
{
	FILE *out = status == 0 ? stdout : stderr;

	fputs("usage: dispatch [-c FILE] (--once | --for SECONDS | --watch) [-v]\n"
	      "\n"
	      "Delivers the postdate messages that are due: sends each to its targets\n"
	      "(the pool in random order until one answers 2xx) with its method (POST\n"
	      "unless the message gives PUT, PATCH, DELETE or GET) and its own headers,\n"
	      "whose values are never logged, -v included; records every attempt,\n"
	      "retries failed rounds with backoff and schedules callback reports.\n"
	      "Several dispatchers may run at once: each message is leased to one.\n"
	      "On PostgreSQL they may run on many hosts: the database's clock decides\n"
	      "what is due and when a lease ends.\n"
	      "At most `concurrency` requests are in flight; a quarter of those slots\n"
	      "go only to hosts that answer, so hosts that hang cannot take them all.\n"
	      "A round counts when it is claimed: a message whose delivery kills the\n"
	      "dispatcher fails after max_attempts claims, spaced by backoff.\n"
	      "When more is due than there are free slots, lower `priority` values\n"
	      "are claimed first, then earlier due times (FIFO within a priority).\n"
	      "A message whose ttl (`ttl`/`expires`) has run out is never sent again:\n"
	      "no attempt starts after it, and it ends `expired` with its callback\n"
	      "report. Every 250 ms the dispatcher also ends the messages whose ttl\n"
	      "ran out while they waited (a retry due after it, a queue message\n"
	      "nobody received) and queue messages whose last receive ran out\n"
	      "unacknowledged (failed), at most 250 per transaction.\n"
	      "Once a second it deletes the messages that ended (delivered, failed,\n"
	      "cancelled, expired) longer ago than `retention` (default 7d; 0 keeps them\n"
	      "all), with their history and payloads, at most 500 per transaction and\n"
	      "batch after batch while there are more.\n"
	      "Once a second, before promoting messages into the buffer, it makes the\n"
	      "next occurrence of each recurring definition whose previous one has\n"
	      "fallen due (at most 100 per transaction) as an ordinary message; an\n"
	      "occurrence is made once however many dispatchers run (a unique index).\n"
	      "After a time with no dispatcher only the latest missed occurrence is\n"
	      "made, late; an earlier one still waiting untried is then cancelled.\n"
	      "\n"
	      "  --once             deliver what is due now, wait for it, exit\n"
	      "  --for SECONDS      keep delivering messages as they fall due for\n"
	      "                     SECONDS, then give what is in flight up to 1 s\n"
	      "                     to finish, give back the rest and exit (what\n"
	      "                     cron runs each minute: --for 60)\n"
	      "  --watch            run until SIGTERM or SIGINT (a systemd service)\n"
	      "  -c, --config FILE  configuration file (default: $POSTDATE_CONF, else\n"
	      "                     /etc/postdate.conf)\n"
	      "  -v, --verbose      also log every HTTP attempt\n"
	      "  -h, --help         show this text\n"
	      "  -V, --version      show the version\n"
	      "\n"
	      "On SIGTERM or SIGINT, no new message is started; requests in flight get\n"
	      "up to 10 s to finish, and any round left unfinished is given back to be\n"
	      "delivered again at once by the next dispatcher. A second signal gives\n"
	      "them back at once. A request cut this way is recorded in the history\n"
	      "(\"the dispatcher stopped before an answer came\") and its round counts.\n"
	      "\n"
	      "Logs one line per outcome on stderr, and a summary when it exits.\n"
	      "Exit status: 0 on success, 1 on a failure (configuration, database;\n"
	      "the reason is logged), 2 on bad usage.\n"
	      "\n"
	      "Example (crontab): * * * * * /usr/local/bin/dispatch -c /etc/postdate.conf --for 60\n",
	      out);
	exit(status);
}

/* ---- writing rounds back ---- */

/* Collects a message's history for its report. */
static int
history_add(void *ctx, const struct pd_attempt *a)
{
	json_object_array_add(ctx, render_attempt(a));
	return 0;
}

/* The rounds of one write-back, for report_build to find each one's job. */
struct write_back {
	struct dispatcher *d;
	struct pd_job **jobs;
	struct pd_settlement *items;
	pd_ms wall;
};

/* Builds the callback report of a message that reached delivered, failed
 * or expired (a store_report_fn), inside the write-back's transaction:
 * its history, this round included, is in the store by then. */
static int
report_build(void *ctx, struct pd_settlement *o, struct pd_message *report)
{
	struct write_back *wb = ctx;
	struct pd_job *job = wb->jobs[o - wb->items];
	struct pd_message reported = job->m;
	struct pd_response response = {
		.status = job->status, .content_type = job->content_type,
		.body = job->body != NULL ? job->body : "", .len = job->body_len,
	};
	json_object *history = json_object_new_array(), *json;
	const char *text;

	if (store_history(wb->d->store, job->m.id, history_add, history) != STORE_OK) {
		json_object_put(history);
		return -1;
	}
	/* The message as it is now, after this round. */
	reported.state = o->state;
	reported.attempts = o->attempts;
	reported.delivered_at = o->delivered_at;
	json = render_report(&reported, job->accepted >= 0 ? job->pool[job->accepted] : NULL,
	                  job->status != 0 ? &response : NULL, history);
	text = json_object_to_json_string_ext(json,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	report->urls = strdup(job->m.callback);
	report->payload = strdup(text);
	report->payload_len = strlen(text);
	report->content_type = strdup("application/json");
	report->report_of = strdup(job->m.id);
	json_object_put(json);
	if (report->urls == NULL || report->payload == NULL || report->content_type == NULL ||
	    report->report_of == NULL)
		return -1;
	report->due = report->next_attempt = wb->wall;
	report->max_attempts = wb->d->cfg.default_max_attempts;
	report->timeout = wb->d->cfg.default_timeout;
	return 0;
}

/* What an ended round makes of its message. */
static void
job_settlement(const struct pd_job *job, pd_ms now, struct pd_settlement *o)
{
	memset(o, 0, sizeof(*o));
	o->id = job->m.id;
	o->lease = job->lease;
	o->gone = job_gone(job);
	/* The claim counted this round; it stays counted only if a request
	 * went out (an orphaned round or one given back unsent does not). */
	o->attempts = job->m.attempts - (job->nattempts == 0);
	for (size_t i = 0; i < job->nattempts; i++)
		o->tried[o->ntried++] = job->attempts[i].a;
	switch (job->outcome) {
	case PD_OUTCOME_DELIVERED:
		o->state = PD_DELIVERED;
		o->delivered_to = job->pool[job->accepted];
		o->delivered_at = job->finished;
		break;
	case PD_OUTCOME_RETRY:
		o->state = PD_PENDING;
		o->next_attempt = job->next_attempt;
		break;
	case PD_OUTCOME_FAILED:
		o->state = PD_FAILED;
		break;
	case PD_OUTCOME_EXPIRED:
		o->state = PD_EXPIRED;
		break;
	case PD_OUTCOME_RELEASED:
		o->state = PD_PENDING;
		o->next_attempt = now;
		break;
	}
	o->wants_report = job->m.callback != NULL &&
	    (o->state == PD_DELIVERED || o->state == PD_FAILED || o->state == PD_EXPIRED);
}

/* Writes the ended rounds done (n of them) back in one transaction; marks
 * each whose lease was lost. */
static enum store_result
write_back(struct dispatcher *d, struct pd_job *done, int n, pd_ms wall)
{
	struct write_back wb = { .d = d, .wall = wall };
	enum store_result res = STORE_ERROR;
	int i = 0;

	wb.jobs = calloc((size_t)n, sizeof(*wb.jobs));
	wb.items = calloc((size_t)n, sizeof(*wb.items));
	if (wb.jobs != NULL && wb.items != NULL) {
		for (struct pd_job *job = done; job != NULL && i < n; job = job->next, i++) {
			wb.jobs[i] = job;
			job_settlement(job, wall, &wb.items[i]);
		}
		res = store_settle(d->store, wb.items, (size_t)i, wall, report_build, &wb);
		for (int k = 0; res == STORE_OK && k < i; k++)
			wb.jobs[k]->lease_lost = wb.items[k].result == STORE_CONFLICT;
	}
	free(wb.jobs);
	free(wb.items);
	return res;
}

/* A short reason for a failed round: its last attempt's status or error. */
static void
last_failure(const struct pd_job *job, char *buf, size_t len)
{
	const struct pd_attempt *a;

	if (job->orphaned) {
		snprintf(buf, len, "round %d was never written back: the dispatcher "
		         "delivering it stopped or crashed", job->m.attempts - 1);
		return;
	}
	if (job->nattempts == 0) {
		snprintf(buf, len, "no target left in the pool");
		return;
	}
	a = &job->attempts[job->nattempts - 1].a;
	if (a->status != 0)
		snprintf(buf, len, "%s: status %d", URL_SHOWN(a->url), a->status);
	else
		snprintf(buf, len, "%s: %s", URL_SHOWN(a->url),
		         a->error != NULL ? a->error : "no answer");
}

/* The log line of a round that has been written back. */
static void
job_log(struct dispatcher *d, const struct pd_job *job)
{
	char why[512], when[PD_TIME_BUF];
	int round = job->m.attempts - (job->nattempts == 0);

	d->attempts += (long)job->nattempts;
	if (job->lease_lost) {
		d->lost++;
		log_warn("lost the lease of %s before its round ended; another dispatcher "
		         "has it", job->m.id);
		return;
	}
	switch (job->outcome) {
	case PD_OUTCOME_DELIVERED: {
		const struct pd_attempt *a = &job->attempts[job->nattempts - 1].a;

		d->delivered++;
		log_info("delivered %s to %s (status %d, round %d, %d ms)", job->m.id,
		         URL_SHOWN(a->url), a->status, round, a->ms);
		break;
	}
	case PD_OUTCOME_RETRY:
		d->retried++;
		last_failure(job, why, sizeof(why));
		log_info("retry %s: round %d of %d failed (%s); next round at %s", job->m.id,
		         round, job->m.max_attempts, why, time_format(job->next_attempt, when));
		break;
	case PD_OUTCOME_FAILED:
		d->failed++;
		last_failure(job, why, sizeof(why));
		log_info("failed %s after round %d of %d (%s)", job->m.id, round,
		         job->m.max_attempts, why);
		break;
	case PD_OUTCOME_EXPIRED:
		d->expired++;
		log_info("expired %s: its ttl ran out at %s, after %d round%s; nothing is "
		         "sent after it", job->m.id, time_format(job->m.expires, when), round,
		         round == 1 ? "" : "s");
		break;
	case PD_OUTCOME_RELEASED:
		d->released++;
		/* Unsent: its host had no slot free in time (the host's own
		 * time-outs are logged), or a stop came first. */
		if (job->nattempts == 0 && d->verbose)
			log_info("released %s unsent: no free slot for its host", job->m.id);
		else if (job->nattempts > 0)
			log_info("released %s: stopping before its round ended", job->m.id);
		break;
	}
}

/* ---- claiming ---- */

struct claimed {
	struct pd_job *head, **tail;
	int n;
};

static int
on_claim(void *ctx, struct pd_message *m, const struct store_lease *lease)
{
	struct claimed *c = ctx;
	struct pd_job *job = job_new(m, lease);

	if (job == NULL)
		return -1;
	*c->tail = job;
	c->tail = &job->next;
	c->n++;
	return 0;
}

static void
jobs_free(struct pd_job *job)
{
	while (job != NULL) {
		struct pd_job *next = job->next;

		job_free(job);
		job = next;
	}
}

/* Makes the next occurrences of at most one batch of recurring
 * definitions (one transaction), when the time to make any has come: a
 * cheap index read otherwise. *more says whether another batch may be
 * waiting, *late how many occurrences were made late (after a gap). */
static enum store_result
make_occurrences(struct dispatcher *d, pd_ms wall, int *more, int *late)
{
	enum store_result res;
	pd_ms at;
	int made;

	*more = *late = 0;
	if ((res = store_recurring_make_at(d->store, &at)) != STORE_OK)
		return res;
	if (at == 0 || at > wall)
		return STORE_OK;
	if ((res = store_recurring_make(d->store, wall, RECURRING_BATCH, &made, late)) !=
	    STORE_OK)
		return res;
	if (d->verbose)
		log_info("made %d occurrences of recurring definitions", made);
	*more = made == RECURRING_BATCH;
	return STORE_OK;
}

/* Gives at most one batch of near-term messages their buffer rows (its
 * own transaction); *more says whether another batch may be waiting. */
static enum store_result
promote(struct dispatcher *d, pd_ms wall, int *more)
{
	pd_ms until = wall + (pd_ms)d->cfg.buffer_horizon * PD_MS_PER_S, next, buffered;
	enum store_result res;
	int n;

	*more = 0;
	if ((res = store_next_due(d->store, &next, &buffered)) != STORE_OK)
		return res;
	if (next == 0 || next > until)
		return STORE_OK;
	if ((res = store_promote(d->store, until, PROMOTE_BATCH, &n)) != STORE_OK)
		return res;
	if (d->verbose)
		log_info("promoted %d messages into the buffer", n);
	*more = n == PROMOTE_BATCH;
	return STORE_OK;
}

/*
 * Whether a claimed round is to be settled at once, unsent: when the
 * message's ttl has run out (expired), when it has used up its rounds, or when an earlier claim's lease ran
 * out unsettled (its dispatcher stopped or crashed mid-round, perhaps
 * killed by this very message). That lost round counts (its claim
 * counted it) and the next is spaced by backoff like any failed round,
 * so a message that kills dispatchers fails after max_attempts claims.
 */
static int
round_not_started(struct dispatcher *d, struct pd_job *job, pd_ms wall)
{
	int rounds_before = job->m.attempts - 1;

	/* A ttl run out ends it whatever else holds: it is never sent after. */
	if (job->m.expires != 0 && job->m.expires <= wall) {
		job->outcome = PD_OUTCOME_EXPIRED;
		job->finished = wall;
		return 1;
	}
	if (job->m.state != PD_DELIVERING && rounds_before < job->m.max_attempts)
		return 0;
	job->orphaned = job->m.state == PD_DELIVERING;
	job->finished = wall;
	if (rounds_before >= job->m.max_attempts)
		job->outcome = PD_OUTCOME_FAILED;
	else {
		job->outcome = PD_OUTCOME_RETRY;
		job->next_attempt = wall + retry_delay(&d->cfg, rounds_before, 0, arc4random());
	}
	return 1;
}

/* ---- what ends by itself ---- */

/* Ends, in one transaction, up to SWEEP_BATCH messages whose ttl ran out
 * while no round of theirs was in flight, and queue messages whose last
 * receive ran out, each with its callback report made from what the store
 * holds (report.c); the store logs each. *ended says how many. On the
 * store thread. */
static enum store_result
sweep(struct dispatcher *d, pd_ms wall, int *ended)
{
	struct pd_reporter reporter = { .store = d->store, .cfg = &d->cfg };

	return store_end_overdue(d->store, wall, SWEEP_BATCH, report_of_message, &reporter,
	                         ended);
}

/* Deletes, in one transaction, up to RETENTION_BATCH messages that ended
 * longer ago than the configured retention, with their history and
 * payloads. On the store thread. */
static enum store_result
purge(struct dispatcher *d, pd_ms wall, int *purged)
{
	char before[PD_TIME_BUF];
	enum store_result res;

	res = store_purge(d->store, wall - d->cfg.retention, RETENTION_BATCH, purged);
	if (res == STORE_OK && *purged > 0)
		log_info("deleted %d messages that ended before %s (retention)", *purged,
		         time_format(wall - d->cfg.retention, before));
	return res;
}

/* Queues ended rounds for the next write-back. */
static void
take_done(struct dispatcher *d, struct pd_job *job, pd_ms now)
{
	while (job != NULL) {
		struct pd_job *next = job->next;

		job->next = NULL;
		if (d->ndone++ == 0)
			d->oldest_done = now;
		*d->done_tail = job;
		d->done_tail = &job->next;
		job = next;
	}
}

/* ---- the store's thread ----
 *
 * SQL takes most of a busy dispatcher's time, and libcurl the rest: the
 * store has a thread of its own, so that transfers move while a sync
 * runs. The main thread hands it an order (the rounds to write back, how
 * many messages to claim) and goes on with libcurl; the store thread runs
 * the order (sync_run: write-back, claim, one promotion batch), fills in the
 * result and wakes the main thread's curl_multi_poll. One order at a
 * time; nothing else is shared. Only the store thread touches the store.
 */

struct sync_order {
	/* Filled by the main thread. */
	struct pd_job *done;        /* rounds to write back; the order's while it runs */
	int ndone;
	int claim;                  /* messages to claim (0: write back only) */
	int promote;                /* also one batch of promotion */
	int sweep;                  /* also one sweep of what ran out */
	int purge;                  /* also one batch of retention */
	pd_ms wall;                 /* time_now() when ordered */
	/* Filled by the store thread. */
	int written;                /* the rounds were written back (each its own
	                               transaction: the claim may fail after) */
	struct claimed claimed;
	int claim_looked;           /* a claim was tried: something was due */
	pd_ms next_due;             /* the earliest due time in the buffer, or 0 */
	int more;                   /* promotion has another batch waiting */
	int swept;                  /* messages the sweep ended */
	int purged;                 /* messages retention deleted */
	enum store_result res;
};

enum sync_state { SYNC_IDLE, SYNC_ORDERED, SYNC_DONE };

struct syncer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t ordered;
	enum sync_state state;
	int quit;
	struct sync_order order;
};

/*
 * Writes back every ended round (one transaction), then claims up to
 * o->claim due messages (another). If the write-back fails, the rounds
 * stay to be written next time; if the claim fails, the claims never were.
 * Then, if asked, one batch of promotion in its own transaction. On the
 * store thread.
 */
static void
sync_run(struct dispatcher *d, struct sync_order *o)
{
	struct claimed *c = &o->claimed;
	enum store_result res = STORE_OK;
	int claim = o->claim, more_to_make = 0, made_late = 0;
	pd_ms unbuffered;

	c->head = NULL;
	c->tail = &c->head;
	c->n = 0;
	o->next_due = 0;
	o->more = 0;
	o->swept = 0;
	o->purged = 0;
	o->written = 0;
	if (o->done != NULL && (res = write_back(d, o->done, o->ndone, o->wall)) != STORE_OK)
		goto fail;
	o->written = 1;
	/*
	 * Recurring occurrences are made with promotion's look, but before the
	 * claim: after a gap without a dispatcher, the occurrence made before
	 * it must be superseded (cancelled, untried) by the latest missed one
	 * before a claim could start delivering it (regression: a gap gave two
	 * late deliveries). While late ones are being made, batch after
	 * batch, nothing is claimed, so that no definition's superseded
	 * occurrence goes out before its turn comes. An occurrence made
	 * within the horizon enters the buffer as it is made, so the claim
	 * below may take it.
	 */
	if (o->promote &&
	    (res = make_occurrences(d, o->wall, &more_to_make, &made_late)) != STORE_OK) {
		log_warn("could not make recurring occurrences (%s); trying again in %d ms",
		         res == STORE_BUSY ? "busy" : "error", PROMOTE_CHECK_MS);
		more_to_make = made_late = 0;
	}
	if (more_to_make && made_late > 0)
		claim = 0;
	/* Reads first: an idle look costs two index probes, no write lock. */
	if (claim > 0) {
		if ((res = store_next_due(d->store, &unbuffered, &o->next_due)) != STORE_OK)
			goto fail;
		if (o->next_due == 0 || o->next_due > o->wall)
			claim = 0;
	}
	o->claim_looked = claim > 0;
	if (claim > 0) {
		if ((res = store_claim(d->store, o->wall, claim, LEASE_SLACK_S, on_claim, c)) !=
		    STORE_OK)
			goto fail;
		/* What was claimed is committed: deliver it whatever this read
		 * says (0 only means looking again soon). */
		if (store_next_due(d->store, &unbuffered, &o->next_due) != STORE_OK)
			o->next_due = 0;
	}
	/* After the write-back and the claim, never before: one batch. */
	if (o->promote && (res = promote(d, o->wall, &o->more)) != STORE_OK) {
		log_warn("could not promote messages into the buffer (%s); trying again in %d ms",
		         res == STORE_BUSY ? "busy" : "error", PROMOTE_CHECK_MS);
		o->more = 0;
	}
	o->more = o->more || more_to_make;
	/* Last, as bounded as promotion: a crowd of messages running out at
	 * once cannot hold up the write-backs and claims. */
	if (o->sweep && (res = sweep(d, o->wall, &o->swept)) != STORE_OK)
		log_warn("could not end the messages that ran out (%s); trying again in %d ms",
		         res == STORE_BUSY ? "busy" : "error", SWEEP_CHECK_MS);
	if (o->purge && (res = purge(d, o->wall, &o->purged)) != STORE_OK)
		log_warn("could not delete the messages past retention (%s); trying again in %d ms",
		         res == STORE_BUSY ? "busy" : "error", RETENTION_CHECK_MS);
	o->res = STORE_OK;
	return;
fail:
	jobs_free(c->head);
	c->head = NULL;
	c->n = 0;
	o->res = res;
}

static void *
syncer_main(void *arg)
{
	struct dispatcher *d = arg;
	struct syncer *sy = d->syncer;

	pthread_mutex_lock(&sy->lock);
	for (;;) {
		while (sy->state != SYNC_ORDERED && !sy->quit)
			pthread_cond_wait(&sy->ordered, &sy->lock);
		if (sy->quit)
			break;
		pthread_mutex_unlock(&sy->lock);
		sync_run(d, &sy->order);
		pthread_mutex_lock(&sy->lock);
		sy->state = SYNC_DONE;
		engine_wakeup(d->engine);
	}
	pthread_mutex_unlock(&sy->lock);
	return NULL;
}

/* Hands the store thread an order: the rounds ended so far, up to claim
 * messages to claim, and a sweep when one is due. now is
 * clock_monotonic(). */
static void
sync_order(struct dispatcher *d, pd_ms now, int claim)
{
	struct syncer *sy = d->syncer;
	struct sync_order *o = &sy->order;

	o->done = d->done;
	o->ndone = d->ndone;
	d->done = NULL;
	d->done_tail = &d->done;
	d->ndone = 0;
	o->claim = claim;
	o->promote = claim > 0 && now >= d->next_promote_check;
	if (o->promote)
		d->next_promote_check = now + PROMOTE_CHECK_MS;
	o->sweep = !d->stopping && now >= d->next_sweep;
	if (o->sweep)
		d->next_sweep = now + SWEEP_CHECK_MS;
	o->purge = o->sweep && d->cfg.retention > 0 && now >= d->next_purge;
	if (o->purge)
		d->next_purge = now + RETENTION_CHECK_MS;
	o->wall = time_now();
	pthread_mutex_lock(&sy->lock);
	sy->state = SYNC_ORDERED;
	pthread_cond_signal(&sy->ordered);
	pthread_mutex_unlock(&sy->lock);
}

/* Whether the store thread is on an order (SYNC_ORDERED) or has finished
 * one (SYNC_DONE) or neither. */
static enum sync_state
sync_state(struct dispatcher *d)
{
	enum sync_state state;

	pthread_mutex_lock(&d->syncer->lock);
	state = d->syncer->state;
	pthread_mutex_unlock(&d->syncer->lock);
	return state;
}

/*
 * Takes in a finished order: logs and forgets the rounds written back and
 * starts the claimed messages; or, if it failed, keeps the rounds to be
 * written next time. Returns 0, or -1 when the order failed.
 */
static int
sync_finish(struct dispatcher *d, pd_ms now)
{
	struct sync_order *o = &d->syncer->order;
	struct pd_job *job;

	pthread_mutex_lock(&d->syncer->lock);
	d->syncer->state = SYNC_IDLE;
	pthread_mutex_unlock(&d->syncer->lock);
	if (o->res != STORE_OK && !o->written) {
		/* The rounds go back in front of those that ended since. */
		struct pd_job *later = d->done;

		if (o->done != NULL) {
			d->done = o->done;
			for (job = o->done; job->next != NULL; job = job->next)
				continue;
			job->next = later;
			if (later == NULL)
				d->done_tail = &job->next;
			if (d->ndone == 0)
				d->oldest_done = now;
			d->ndone += o->ndone;
		}
		o->done = NULL;
	}
	/* Written back (also when the claim after it failed): done with. */
	while ((job = o->done) != NULL) {
		o->done = job->next;
		job_log(d, job);
		job_free(job);
		d->held--;
	}
	if (o->res != STORE_OK) {
		d->sync_failures++;
		d->sync_retry_at = now + SYNC_RETRY_MS;
		log_warn("could not write to the database (%s); trying again in %d ms",
		         o->res == STORE_BUSY ? "busy" : o->res == STORE_NOSPACE ? "disk full" :
		         "error", SYNC_RETRY_MS);
		return -1;
	}
	d->sync_failures = 0;
	if (o->sweep) {
		d->swept += o->swept;
		/* A full batch: more may have run out. */
		if (o->swept == SWEEP_BATCH)
			d->next_sweep = now;
		/* What it ended may have made callback reports due now. */
		if (o->swept > 0)
			d->next_check = now;
	}
	if (o->purge) {
		d->purged += o->purged;
		/* A full batch: more is past retention; the next one soon after. */
		if (o->purged == RETENTION_BATCH)
			d->next_sweep = d->next_purge = now;
	}
	while ((job = o->claimed.head) != NULL) {
		o->claimed.head = job->next;
		job->next = NULL;
		d->held++;
		if (d->stopping) {
			/* Claimed as a stop came: given back unsent. */
			job->outcome = PD_OUTCOME_RELEASED;
			job->finished = o->wall;
			take_done(d, job, now);
		} else if (round_not_started(d, job, o->wall))
			take_done(d, job, now);
		else
			engine_start(d->engine, job);
	}
	if (o->claim > 0) {
		pd_ms wall = o->wall, next_due = o->next_due;
		int claimed = o->claimed.n;

		if (o->more)
			d->next_promote_check = now;
		d->backlog = o->claim_looked && claimed == o->claim;
		/* --once is done when nothing is due and nothing in flight: a
		 * round that ends may yet make something due now (its report). */
		d->nothing_due = claimed == 0 && (next_due == 0 || next_due > wall) && !o->more &&
		    d->held == 0 && o->swept == 0;
		/* Sleep until the next due time, but look again soon anyway: a
		 * message may be scheduled for right now at any moment (or a
		 * report the sweep made is due). */
		d->next_check = d->backlog || o->more || o->swept > 0 ? now : now + POLL_MS;
		if (!d->backlog && next_due > wall && now + (next_due - wall) < d->next_check)
			d->next_check = now + (next_due - wall);
	}
	return 0;
}

static int
syncer_start(struct dispatcher *d)
{
	struct syncer *sy = calloc(1, sizeof(*sy));

	if (sy == NULL)
		return -1;
	sigset_t all, old;
	int rc;

	pthread_mutex_init(&sy->lock, NULL);
	pthread_cond_init(&sy->ordered, NULL);
	d->syncer = sy;
	/* Signals are the main thread's: the thread starts with them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&sy->thread, NULL, syncer_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		free(sy);
		d->syncer = NULL;
		return -1;
	}
	return 0;
}

/* Waits for an order in progress, then ends the thread. */
static void
syncer_stop(struct dispatcher *d)
{
	struct syncer *sy = d->syncer;

	if (sy == NULL)
		return;
	pthread_mutex_lock(&sy->lock);
	sy->quit = 1;
	pthread_cond_signal(&sy->ordered);
	pthread_mutex_unlock(&sy->lock);
	pthread_join(sy->thread, NULL);
	pthread_mutex_destroy(&sy->lock);
	pthread_cond_destroy(&sy->ordered);
	free(sy);
	d->syncer = NULL;
}

/* ---- the loop ---- */

static pd_ms
earliest(pd_ms a, pd_ms b)
{
	return a < b ? a : b;
}

static pd_ms
latest(pd_ms a, pd_ms b)
{
	return a > b ? a : b;
}

/* Starts stopping: no new claims; what is in flight may finish until
 * cut_at, then is given back. */
static void
stop_begin(struct dispatcher *d, pd_ms cut_at, const char *why)
{
	if (!d->stopping) {
		d->stopping = 1;
		engine_finish_rounds(d->engine);
		log_info("%s: no new messages; %d in flight", why, engine_active(d->engine));
	}
	if (d->cut_at == 0 || cut_at < d->cut_at)
		d->cut_at = cut_at;
}

/* What signals, the end of the run and --once's "nothing left" mean now. */
static void
stop_update(struct dispatcher *d, pd_ms now)
{
	if (stop_requested && !d->signalled) {
		d->signalled = 1;
		stop_begin(d, now + STOP_GRACE_MS, "stopping");
	}
	if (stop_requested > 1)
		d->cut_at = now;
	if (d->mode == MODE_FOR && now >= d->end)
		stop_begin(d, d->end + FINISH_MS, "the run is over");
	if (d->mode == MODE_ONCE && d->nothing_due && !d->stopping) {
		/* --once waits for what it started, however long it takes. */
		d->stopping = 1;
	}
	if (d->cut_at != 0 && now >= d->cut_at && engine_jobs(d->engine) > 0)
		take_done(d, engine_abort(d->engine), now);
}

/*
 * The next deadline, from the state alone (beanstalkd's prottick): the
 * next look for due messages if a slot is free for it, the next sweep,
 * the next write-back (neither while the store thread is on an order: its end
 * wakes the wait by itself), the end of the run, the cut of what is in
 * flight, a parked job's wait. Never sooner than a failed sync may be
 * retried. At most POLL_MS ahead, so a signal is seen promptly.
 */
static pd_ms
next_deadline(const struct dispatcher *d, pd_ms now, int room, int claim_batch, int syncing)
{
	pd_ms wake = now + POLL_MS, engine_at = engine_next_deadline(d->engine);

	if (!syncing && !d->stopping && room >= (d->backlog ? claim_batch : 1))
		wake = earliest(wake, latest(d->next_check, d->sync_retry_at));
	if (!syncing && !d->stopping)
		wake = earliest(wake, latest(d->next_sweep, d->sync_retry_at));
	if (!syncing && d->ndone > 0) {
		pd_ms flush_at = d->stopping || d->ndone >= claim_batch ?
		    now : d->oldest_done + FLUSH_MS;

		wake = earliest(wake, latest(flush_at, d->sync_retry_at));
	}
	if (d->mode == MODE_FOR && !d->stopping)
		wake = earliest(wake, d->end);
	if (d->cut_at != 0 && engine_jobs(d->engine) > 0)
		wake = earliest(wake, d->cut_at);
	if (engine_at != 0)
		wake = earliest(wake, engine_at);
	return wake;
}

static int
run(struct dispatcher *d)
{
	int claim_batch = d->cfg.concurrency / 4;

	if (claim_batch < 1)
		claim_batch = 1;
	d->next_check = d->next_promote_check = d->next_sweep = d->next_purge = d->started;
	for (;;) {
		pd_ms now = clock_monotonic(), wake;
		enum sync_state syncing = sync_state(d);
		int room, want_claim, want_flush, want_sweep;

		if (syncing == SYNC_DONE) {
			if (sync_finish(d, now) != 0 && d->sync_failures >= SYNC_GIVE_UP) {
				log_error("giving up after %d failed writes; unfinished messages "
				          "are delivered again when their leases expire", SYNC_GIVE_UP);
				return 1;
			}
			syncing = SYNC_IDLE;
		}
		stop_update(d, now);
		/* A slot is free when its round has ended, written back or not. */
		room = engine_room(d->engine);
		if (syncing == SYNC_IDLE) {
			/* A backlog is claimed in batches; otherwise any free slot
			 * counts, so that a message scheduled for now is not kept
			 * waiting. */
			want_claim = !d->stopping && now >= d->next_check &&
			    room >= (d->backlog ? claim_batch : 1);
			want_flush = d->ndone > 0 && (d->stopping || d->ndone >= claim_batch ||
			    now - d->oldest_done >= FLUSH_MS);
			/* Even with every slot busy, what runs out is ended. */
			want_sweep = !d->stopping && now >= d->next_sweep;
			if ((want_claim || want_flush || want_sweep) && now >= d->sync_retry_at) {
				sync_order(d, now, want_claim ? room : 0);
				syncing = SYNC_ORDERED;
			} else if (d->stopping && d->held == 0)
				return 0;
		}

		wake = next_deadline(d, now, room, claim_batch, syncing != SYNC_IDLE);
		take_done(d, engine_run(d->engine, wake > now ? (int)(wake - now) : 0),
		          clock_monotonic());
	}
}

/* Strict whole seconds, 1 to a year. */
static int
parse_seconds(const char *text, long *out)
{
	char *end;

	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	*out = strtol(text, &end, 10);
	return errno == 0 && *end == '\0' && *out >= 1 && *out <= 366L * 86400 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "once", no_argument, NULL, 'o' },
		{ "for", required_argument, NULL, 'f' },
		{ "watch", no_argument, NULL, 'w' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static struct dispatcher d;
	struct sigaction sa = { .sa_handler = on_stop };
	const char *conf = NULL;
	long seconds = 0;
	char err[512];
	int ch, status;

	while ((ch = getopt_long(argc, argv, "c:vhV", options, NULL)) != -1) {
		enum mode m = MODE_NONE;

		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'o':
			m = MODE_ONCE;
			break;
		case 'f':
			if (parse_seconds(optarg, &seconds) != 0) {
				fprintf(stderr, "dispatch: --for takes whole seconds from 1 to 31622400\n");
				return 2;
			}
			m = MODE_FOR;
			break;
		case 'w':
			m = MODE_WATCH;
			break;
		case 'v':
			d.verbose = 1;
			break;
		case 'h':
			usage_exit(0);
			break;
		case 'V':
			printf("postdate dispatch %s\n", PD_VERSION);
			return 0;
		default:
			usage_exit(2);
		}
		if (m != MODE_NONE) {
			if (d.mode != MODE_NONE) {
				fprintf(stderr, "dispatch: give one of --once, --for and --watch\n");
				return 2;
			}
			d.mode = m;
		}
	}
	if (optind != argc || d.mode == MODE_NONE)
		usage_exit(2);

	log_init("dispatch");
	setvbuf(stderr, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (config_load(&d.cfg, config_path(conf), err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	if (d.cfg.host_concurrency > d.cfg.concurrency)
		d.cfg.host_concurrency = d.cfg.concurrency;
	if (sign_init(&d.signer, d.cfg.signing_secret) != 0) {
		log_error("%s: signing_secret cannot be decoded", d.cfg.path);
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		return 1;
	}
	if (store_open(&d.store, &d.cfg) != 0 || store_sync_normal(d.store) != 0) {
		log_error("cannot open the database %s", DATABASE_SHOWN(d.cfg.database));
		return 1;
	}
	if ((d.engine = engine_new(&d.cfg, &d.signer, d.verbose)) == NULL) {
		log_error("cannot initialise the delivery engine");
		return 1;
	}
	d.done_tail = &d.done;
	d.started = clock_monotonic();
	d.end = d.started + seconds * PD_MS_PER_S;

	if (syncer_start(&d) != 0) {
		log_error("cannot start the store's thread");
		return 1;
	}
	status = run(&d);
	syncer_stop(&d);

	log_info("exiting: %ld delivered, %ld retried, %ld failed, %ld expired, %ld given back, "
	         "%ld lost to another dispatcher, %ld ended by the sweep, %ld deleted past "
	         "retention, %ld HTTP attempts in %.1f s", d.delivered, d.retried, d.failed,
	         d.expired, d.released, d.lost, d.swept, d.purged, d.attempts,
	         (double)(clock_monotonic() - d.started) / 1000.0);
	engine_free(d.engine);
	store_close(d.store);
	config_free(&d.cfg);
	curl_global_cleanup();
	return status;
}
