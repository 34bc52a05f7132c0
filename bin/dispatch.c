/*
 * dispatch: delivers the messages that fall due. cron runs it every minute
 * with --for 60 (or systemd keeps it running with --watch).
 *
 * The loop, after beanstalkd's: work out the next deadline (a message
 * falling due, a transfer's timeout, results waiting to be written, the end
 * of the run), wait until then or until a transfer moves, act. Talking to
 * the store is batched into one transaction per "sync": write back the
 * rounds that ended, then claim due buffer rows for the free slots.
 */
#include <errno.h>
#include <getopt.h>
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
/* Messages promoted into the buffer per transaction. */
#define PROMOTE_BATCH 1000
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
	pd_ms started, end;
	pd_ms now;                 /* the time of the write-back in progress */

	int held;                  /* jobs claimed and not yet written back */
	struct pd_job *done;       /* rounds ended, waiting to be written back */
	struct pd_job **done_tail;
	int ndone;
	pd_ms oldest_done;

	pd_ms next_check;          /* when to look for due messages again */
	int backlog;               /* the last claim filled every free slot */
	int nothing_due;           /* --once: the last look found nothing due */
	int sync_failures;
	pd_ms sync_retry_at;

	long delivered, retried, failed, released, lost, attempts;
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
	      "Delivers the postdate messages that are due: POSTs each to its targets\n"
	      "(the pool in random order until one answers 2xx), records every attempt,\n"
	      "retries failed rounds with backoff and schedules callback reports.\n"
	      "Several dispatchers may run at once: each message is leased to one.\n"
	      "\n"
	      "  --once             deliver what is due now, wait for it, exit\n"
	      "  --for SECONDS      keep delivering messages as they fall due for\n"
	      "                     SECONDS, then finish what is in flight and exit\n"
	      "                     (what cron runs each minute: --for 60)\n"
	      "  --watch            run until SIGTERM or SIGINT (a systemd service)\n"
	      "  -c, --config FILE  configuration file (default: $POSTDATE_CONF, else\n"
	      "                     /etc/postdate.conf)\n"
	      "  -v, --verbose      also log every HTTP attempt\n"
	      "  -h, --help         show this text\n"
	      "  -V, --version      show the version\n"
	      "\n"
	      "On SIGTERM or SIGINT, no new message is started; requests in flight get\n"
	      "up to 10 s to finish, and any round left unfinished is given back to be\n"
	      "delivered later. A second signal gives them back at once.\n"
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

/* The rounds of one write-back, and what the store makes of them. */
struct write_back {
	struct dispatcher *d;
	struct pd_job **jobs;
	struct pd_settlement *items;
};

/* Collects a message's history for its report. */
static int
history_add(void *ctx, const struct pd_attempt *a)
{
	json_object_array_add(ctx, render_attempt(a));
	return 0;
}

/* Builds the callback report of a message that reached delivered or
 * failed (store_report_fn), inside the write-back's transaction: its
 * history, this round included, is in the store by then. */
static int
report_build(void *ctx, struct pd_settlement *o, struct pd_message *report)
{
	struct dispatcher *d = ((struct write_back *)ctx)->d;
	struct pd_job *job = ((struct write_back *)ctx)->jobs[o - ((struct write_back *)ctx)->items];
	struct pd_message reported = job->m;
	struct pd_response response = {
		.status = job->status, .content_type = job->content_type,
		.body = job->body != NULL ? job->body : "", .len = job->body_len,
	};
	json_object *history = json_object_new_array(), *json;
	const char *text;

	if (store_history(d->store, job->m.id, history_add, history) != STORE_OK) {
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
	report->due = report->next_attempt = d->now;
	report->max_attempts = d->cfg.default_max_attempts;
	report->timeout = d->cfg.default_timeout;
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
	o->attempts = job->m.attempts;
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
	case PD_OUTCOME_RELEASED:
		/* Given back before anything was sent: the round did not happen. */
		o->state = PD_PENDING;
		o->next_attempt = now;
		if (job->nattempts == 0)
			o->attempts--;
		break;
	}
	o->wants_report = job->m.callback != NULL &&
	    (o->state == PD_DELIVERED || o->state == PD_FAILED);
}

/* A short reason for a failed round: its last attempt's status or error. */
static void
last_failure(const struct pd_job *job, char *buf, size_t len)
{
	const struct pd_attempt *a;

	if (job->nattempts == 0) {
		snprintf(buf, len, "no target left in the pool");
		return;
	}
	a = &job->attempts[job->nattempts - 1].a;
	if (a->status != 0)
		snprintf(buf, len, "%s: status %d", URL_SHOWN(a->url), a->status);
	else
		snprintf(buf, len, "%s: %s", URL_SHOWN(a->url), a->error != NULL ? a->error : "no answer");
}

/* The log line of a round that has been written back. */
static void
job_log(struct dispatcher *d, const struct pd_job *job)
{
	char why[512], when[PD_TIME_BUF];
	int round = job->m.attempts;

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
	case PD_OUTCOME_RELEASED:
		d->released++;
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

/* Gives near-term messages their buffer rows (own transactions). */
static enum store_result
promote(struct dispatcher *d, pd_ms now)
{
	pd_ms until = now + (pd_ms)d->cfg.buffer_horizon * PD_MS_PER_S, next, buffered;
	enum store_result res;
	int n;

	do {
		if ((res = store_next_due(d->store, &next, &buffered)) != STORE_OK)
			return res;
		if (next == 0 || next > until)
			return STORE_OK;
		if ((res = store_promote(d->store, until, PROMOTE_BATCH, &n)) != STORE_OK)
			return res;
		if (d->verbose)
			log_info("promoted %d messages into the buffer", n);
	} while (n == PROMOTE_BATCH);
	return STORE_OK;
}

/* Writes every ended round back in one transaction, then logs and forgets
 * them; if it fails, they stay to be written next time. */
static enum store_result
write_back(struct dispatcher *d, pd_ms now)
{
	struct write_back wb = { .d = d };
	enum store_result res;
	int n = 0;

	if (d->done == NULL)
		return STORE_OK;
	wb.jobs = calloc((size_t)d->ndone, sizeof(*wb.jobs));
	wb.items = calloc((size_t)d->ndone, sizeof(*wb.items));
	if (wb.jobs == NULL || wb.items == NULL) {
		res = STORE_ERROR;
		goto out;
	}
	for (struct pd_job *job = d->done; job != NULL; job = job->next) {
		wb.jobs[n] = job;
		job_settlement(job, now, &wb.items[n++]);
	}
	d->now = now;
	res = store_settle(d->store, wb.items, (size_t)n, now, report_build, &wb);
	if (res != STORE_OK)
		goto out;
	for (int i = 0; i < n; i++) {
		struct pd_job *job = wb.jobs[i];

		job->lease_lost = wb.items[i].result == STORE_CONFLICT;
		job_log(d, job);
		job_free(job);
		d->held--;
	}
	d->done = NULL;
	d->done_tail = &d->done;
	d->ndone = 0;
out:
	free(wb.jobs);
	free(wb.items);
	return res;
}

/*
 * Writes back the rounds that ended, then (when claim > 0) promotes and
 * claims up to `claim` due messages, each its own transaction. Only after
 * a claim commits are its messages started.
 */
static int
sync_store(struct dispatcher *d, pd_ms now, int claim)
{
	struct claimed c = { NULL, &c.head, 0 };
	enum store_result res;
	pd_ms next_due = 0, unbuffered;
	int looked = claim > 0;

	if ((res = write_back(d, now)) != STORE_OK)
		goto fail;
	/* Reads first: an idle look costs two index probes, no write lock. */
	if (looked) {
		if ((res = promote(d, now)) != STORE_OK ||
		    (res = store_next_due(d->store, &unbuffered, &next_due)) != STORE_OK)
			goto fail;
		if (next_due == 0 || next_due > now)
			claim = 0;
	}
	if (claim > 0 &&
	    ((res = store_claim(d->store, now, claim, LEASE_SLACK_S, on_claim, &c)) != STORE_OK ||
	     (res = store_next_due(d->store, &unbuffered, &next_due)) != STORE_OK))
		goto fail;

	d->sync_failures = 0;
	if (looked) {
		d->backlog = claim > 0 && c.n == claim;
		d->nothing_due = c.n == 0 && (next_due == 0 || next_due > now);
		/* Sleep until the next due time, but look again soon anyway: a
		 * message may be scheduled for right now at any moment. */
		d->next_check = d->backlog ? now : now + POLL_MS;
		if (!d->backlog && next_due > now && next_due < d->next_check)
			d->next_check = next_due;
	}
	while (c.head != NULL) {
		struct pd_job *job = c.head;

		c.head = job->next;
		job->next = NULL;
		d->held++;
		engine_start(d->engine, job);
	}
	return 0;
fail:
	jobs_free(c.head);
	d->sync_failures++;
	d->sync_retry_at = now + SYNC_RETRY_MS;
	log_warn("could not write to the database (%s); trying again in %d ms",
	         res == STORE_BUSY ? "busy" : res == STORE_NOSPACE ? "disk full" : "error",
	         SYNC_RETRY_MS);
	return -1;
}

/* ---- the loop ---- */

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

static pd_ms
earliest(pd_ms a, pd_ms b)
{
	return a < b ? a : b;
}

static int
run(struct dispatcher *d)
{
	int stopping = 0, signalled = 0, claim_batch = d->cfg.concurrency / 4;
	pd_ms grace_end = 0;

	if (claim_batch < 1)
		claim_batch = 1;
	d->next_check = d->started;
	for (;;) {
		pd_ms now = time_now(), wake;
		int free_slots = d->cfg.concurrency - d->held, want_claim, want_flush;

		if (stop_requested && !signalled) {
			signalled = stopping = 1;
			grace_end = now + STOP_GRACE_MS;
			engine_finish_rounds(d->engine);
			log_info("stopping: no new messages; %d in flight", engine_active(d->engine));
		}
		if (signalled && (stop_requested > 1 || now >= grace_end) &&
		    engine_active(d->engine) > 0)
			take_done(d, engine_abort(d->engine), now);
		if (d->mode == MODE_FOR && now >= d->end)
			stopping = 1;
		if (d->mode == MODE_ONCE && d->nothing_due)
			stopping = 1;

		/* A backlog is claimed in batches; otherwise any free slot counts,
		 * so that a message scheduled for now is not kept waiting. */
		want_claim = !stopping && now >= d->next_check &&
		    free_slots >= (d->backlog ? claim_batch : 1);
		want_flush = d->ndone > 0 && (stopping || d->ndone >= claim_batch ||
		    now - d->oldest_done >= FLUSH_MS);
		if ((want_claim || want_flush) && now >= d->sync_retry_at) {
			if (sync_store(d, now, want_claim ? free_slots : 0) != 0 &&
			    d->sync_failures >= SYNC_GIVE_UP) {
				log_error("giving up after %d failed writes; unfinished messages "
				          "are delivered again when their leases expire", SYNC_GIVE_UP);
				return 1;
			}
			continue;
		}
		if (stopping && d->held == 0)
			return 0;

		wake = now + POLL_MS;
		if (!stopping)
			wake = earliest(wake, d->next_check);
		if (d->sync_retry_at > now)
			wake = earliest(wake, d->sync_retry_at);
		if (d->ndone > 0)
			wake = earliest(wake, d->oldest_done + FLUSH_MS);
		if (d->mode == MODE_FOR && !stopping)
			wake = earliest(wake, d->end);
		if (signalled)
			wake = earliest(wake, grace_end);
		take_done(d, engine_run(d->engine, wake > now ? (int)(wake - now) : 0), time_now());
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
		log_error("cannot open the database %s", d.cfg.database);
		return 1;
	}
	if ((d.engine = engine_new(&d.cfg, &d.signer, d.verbose)) == NULL) {
		log_error("cannot initialise the delivery engine");
		return 1;
	}
	d.done_tail = &d.done;
	d.started = time_now();
	d.end = d.started + seconds * PD_MS_PER_S;

	status = run(&d);

	log_info("exiting: %ld delivered, %ld retried, %ld failed, %ld given back, "
	         "%ld lost to another dispatcher, %ld HTTP attempts in %.1f s",
	         d.delivered, d.retried, d.failed, d.released, d.lost, d.attempts,
	         (double)(time_now() - d.started) / 1000.0);
	engine_free(d.engine);
	store_close(d.store);
	config_free(&d.cfg);
	curl_global_cleanup();
	return status;
}
