/*
 * metrics: GET /api/metrics, the figures of postdate for Prometheus, in its
 * text format (version 0.0.4), behind the same token as the other routes.
 * Every figure comes from what the store keeps (counts per state, the
 * totals, each queue's counts and index ranges): no statement reads every
 * message.
 */
#include <stdlib.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* For --help; http_main adds the usage line, the options and the exit status. */
static const char description[] =
"The FastCGI responder for GET /api/metrics (needs the token, as every route\n"
"but /api/health): the figures of postdate in the Prometheus text format,\n"
"version 0.0.4. Gauges: postdate_messages{state} (messages in the store by\n"
"state), postdate_oldest_overdue_seconds (as /api/health's oldest_overdue_s),\n"
"postdate_queue_pending, _ready, _delivering, _failed{queue} and\n"
"postdate_queue_oldest_ready_seconds{queue}, postdate_build_info{version}.\n"
"Counters, counted since the database was made (so they only go up, whichever\n"
"process answers the scrape): postdate_messages_made_total,\n"
"postdate_deliveries_total{outcome=delivered|failed|expired|cancelled},\n"
"postdate_attempts_total{outcome=2xx|3xx|4xx|5xx|other|no_answer} (HTTP\n"
"attempts) and postdate_receives_total (receives of queue messages).\n"
"Each scrape reads only counters and index ranges, never every message.\n"
"Run it under a FastCGI server behind nginx or Apache; started without one\n"
"it answers a single plain-CGI request.\n";

static const char example[] =
"curl -s http://127.0.0.1:8080/api/metrics -H \"Authorization: Bearer $TOKEN\"";

/* The queues of a scrape, gathered first: each per-queue family lists them
 * all, one family after another. */
struct queue_list {
	struct pd_queue *v;
	size_t n, room;
	int out_of_memory;
};

static int
gather_queue(void *ctx, const struct pd_queue *q)
{
	struct queue_list *l = ctx;

	if (l->n == l->room) {
		size_t room = l->room ? 2 * l->room : 16;
		void *more = realloc(l->v, room * sizeof(*l->v));

		if (more == NULL) {
			l->out_of_memory = 1;
			return -1;
		}
		l->v = more;
		l->room = room;
	}
	l->v[l->n++] = *q;
	return 0;
}

static void
handle_metrics(struct pd_request *r)
{
	struct store_metrics m;
	struct queue_list queues = { 0 };
	enum store_result res;
	pd_ms now = time_now();
	size_t len = 0;
	char *text;

	if (http_fields(r)->n != 0) {
		http_error(r, 400, "unknown field", http_fields(r)->v[0].name);
		return;
	}
	res = store_metrics(http_app(r)->store, now, &m, gather_queue, &queues);
	if (res == STORE_OK && queues.out_of_memory)
		res = STORE_ERROR;
	if (res != STORE_OK) {
		free(queues.v);
		if (res == STORE_BUSY)
			http_error(r, 503, "the database is busy; try again", NULL);
		else
			http_error(r, 500, "the database could not be read", NULL);
		return;
	}
	text = metrics_render(&m, queues.v, queues.n, now, &len);
	free(queues.v);
	if (text == NULL) {
		http_error(r, 500, "out of memory", NULL);
		return;
	}
	http_reply_text(r, 200, METRICS_CONTENT_TYPE, text, len);
	free(text);
}

static const struct pd_route route = {
	.name = "metrics",
	.method = "GET",
	.needs_auth = 1,
	.description = description,
	.example = example,
	.handle = handle_metrics,
};

int
main(int argc, char **argv)
{
	return http_main(argc, argv, &route);
}
