/*
 * report.c: a callback report as a message of its own, POSTed to the
 * callback URL and so delivered durably, with retries, like any other.
 */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "postdate.h"
#include "store.h"

int
report_message(const struct pd_config *cfg, const struct pd_message *reported, const char *url,
               const struct pd_response *r, struct json_object *history, pd_ms now,
               struct pd_message *report)
{
	json_object *json = render_report(reported, url, r, history);
	const char *text = json_object_to_json_string_ext(json,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	memset(report, 0, sizeof(*report));
	report->urls = strdup(reported->callback);
	report->payload = strdup(text);
	report->payload_len = strlen(text);
	report->content_type = strdup("application/json");
	report->report_of = strdup(reported->id);
	json_object_put(json);
	if (report->urls == NULL || report->payload == NULL || report->content_type == NULL ||
	    report->report_of == NULL)
		return -1;
	report->due = report->next_attempt = now;
	report->max_attempts = cfg->default_max_attempts;
	report->timeout = cfg->default_timeout;
	return 0;
}

static int
history_add(void *ctx, const struct pd_attempt *a)
{
	json_object_array_add(ctx, render_attempt(a));
	return 0;
}

int
report_of_message(void *reporter, struct pd_settlement *o, struct pd_message *report)
{
	struct pd_reporter *rp = reporter;
	json_object *history = json_object_new_array();
	struct pd_message m;
	int rc;

	if (history == NULL)
		return -1;
	if (store_get(rp->store, o->id, &m, history_add, history) != STORE_OK) {
		json_object_put(history);
		return -1;
	}
	/* The message as it is about to end. */
	m.state = o->state;
	m.attempts = o->attempts;
	m.delivered_at = o->delivered_at;
	rc = m.callback != NULL ? report_message(rp->cfg, &m, o->delivered_to, NULL, history,
	                                         time_now(), report) : -1;
	if (m.callback == NULL)
		json_object_put(history);
	message_free(&m);
	return rc;
}
