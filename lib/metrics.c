/*
 * metrics.c: a scrape of GET /api/metrics in the Prometheus text exposition
 * format, version 0.0.4: each metric family with its HELP and TYPE lines,
 * then its samples, one per line, all of a family together. Label values
 * and HELP texts are escaped as the format asks, so whatever a name holds
 * cannot break a line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

void
metrics_escape(FILE *out, const char *text, int is_label_value)
{
	for (const char *p = text; *p != '\0'; p++) {
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p == '"' && is_label_value)
			fputs("\\\"", out);
		else
			fputc(*p, out);
	}
}

static void
family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s ", name);
	metrics_escape(out, help, 0);
	fprintf(out, "\n# TYPE %s %s\n", name, type);
}

/* name{label="value"} (no braces without a label), then a space. */
static void
sample_name(FILE *out, const char *name, const char *label, const char *value)
{
	fputs(name, out);
	if (label != NULL) {
		fprintf(out, "{%s=\"", label);
		metrics_escape(out, value, 1);
		fputs("\"}", out);
	}
	fputc(' ', out);
}

static void
sample(FILE *out, const char *name, const char *label, const char *value, long long n)
{
	sample_name(out, name, label, value);
	fprintf(out, "%lld\n", n);
}

/* Milliseconds written as seconds, exactly (12.345, not 12.3449999). */
static void
sample_seconds(FILE *out, const char *name, const char *label, const char *value, pd_ms ms)
{
	if (ms < 0)
		ms = 0;
	sample_name(out, name, label, value);
	fprintf(out, "%lld.%03lld\n", (long long)(ms / 1000), (long long)(ms % 1000));
}

/* The labels of the attempt outcomes, in enum store_attempt_outcome order. */
static const char *const attempt_outcomes[STORE_ATTEMPT_OUTCOMES] = {
	[STORE_ATTEMPT_NO_ANSWER] = "no_answer",
	[STORE_ATTEMPT_OTHER] = "other",
	[STORE_ATTEMPT_2XX] = "2xx",
	[STORE_ATTEMPT_3XX] = "3xx",
	[STORE_ATTEMPT_4XX] = "4xx",
	[STORE_ATTEMPT_5XX] = "5xx",
};

/* What each per-queue family shows. */
enum queue_figure { QUEUE_PENDING, QUEUE_READY, QUEUE_DELIVERING, QUEUE_FAILED, QUEUE_OLDEST };

static const struct {
	const char *name, *help;
} queue_families[] = {
	[QUEUE_PENDING] = { "postdate_queue_pending",
	    "Messages of the queue waiting to be received, due or not (ready included)." },
	[QUEUE_READY] = { "postdate_queue_ready",
	    "Messages of the queue that are due now and receivable (a part of pending)." },
	[QUEUE_DELIVERING] = { "postdate_queue_delivering",
	    "Messages of the queue leased to a worker right now." },
	[QUEUE_FAILED] = { "postdate_queue_failed",
	    "Messages of the queue that ended failed (its dead letters) and are still kept." },
	[QUEUE_OLDEST] = { "postdate_queue_oldest_ready_seconds",
	    "How long the queue's longest-waiting ready message has been receivable (0 if none)." },
};

char *
metrics_render(const struct store_metrics *m, const struct pd_queue *queues, size_t nqueues,
               pd_ms now, size_t *len)
{
	static const enum pd_state ends[] = { PD_DELIVERED, PD_FAILED, PD_EXPIRED, PD_CANCELLED };
	char *text = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&text, &size);

	if (out == NULL)
		return NULL;
	family(out, "postdate_build_info", "gauge", "The postdate version answering the scrape.");
	sample(out, "postdate_build_info", "version", PD_VERSION, 1);

	family(out, "postdate_messages", "gauge",
	       "Messages in the store now, by state (ended ones until retention deletes them).");
	for (int i = 0; i < PD_NSTATES; i++)
		sample(out, "postdate_messages", "state", state_name((enum pd_state)i), m->counts[i]);

	family(out, "postdate_oldest_overdue_seconds", "gauge",
	       "How late the most overdue pushed message is: due and not held by a dispatcher "
	       "(0 if none). Growing means no dispatcher runs, or they cannot keep up.");
	sample_seconds(out, "postdate_oldest_overdue_seconds", NULL, NULL,
	               m->earliest != 0 && m->earliest < now ? now - m->earliest : 0);

	family(out, "postdate_messages_made_total", "counter",
	       "Messages made since the database was made: every message scheduled, and every "
	       "callback report.");
	sample(out, "postdate_messages_made_total", NULL, NULL, m->made);

	family(out, "postdate_deliveries_total", "counter",
	       "Messages whose delivery ended since the database was made, by how it ended.");
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		sample(out, "postdate_deliveries_total", "outcome", state_name(ends[i]),
		       m->ended[ends[i]]);

	family(out, "postdate_attempts_total", "counter",
	       "HTTP attempts to targets and callbacks since the database was made (one per "
	       "entry of a message's history), by the class of the answer's status; no_answer: "
	       "a timeout, a refused connection or another transport error.");
	for (int i = 0; i < STORE_ATTEMPT_OUTCOMES; i++)
		sample(out, "postdate_attempts_total", "outcome", attempt_outcomes[i],
		       m->attempts[i]);

	family(out, "postdate_receives_total", "counter",
	       "Receives of queue messages by workers since the database was made (a queue "
	       "message's attempts).");
	sample(out, "postdate_receives_total", NULL, NULL, m->receives);

	/* Every queue in each family, as the format wants a family's samples
	 * together. */
	for (size_t f = 0; f < sizeof(queue_families) / sizeof(queue_families[0]); f++) {
		family(out, queue_families[f].name, "gauge", queue_families[f].help);
		for (size_t i = 0; i < nqueues; i++) {
			const struct pd_queue *q = &queues[i];
			const char *name = queue_families[f].name;

			switch ((enum queue_figure)f) {
			case QUEUE_PENDING: sample(out, name, "queue", q->name, q->pending); break;
			case QUEUE_READY: sample(out, name, "queue", q->name, q->ready); break;
			case QUEUE_DELIVERING: sample(out, name, "queue", q->name, q->delivering); break;
			case QUEUE_FAILED: sample(out, name, "queue", q->name, q->failed); break;
			case QUEUE_OLDEST:
				sample_seconds(out, name, "queue", q->name,
				               q->oldest_ready != 0 ? now - q->oldest_ready : 0);
				break;
			}
		}
	}
	if (ferror(out)) {
		fclose(out);
		free(text);
		return NULL;
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	*len = size;
	return text;
}
