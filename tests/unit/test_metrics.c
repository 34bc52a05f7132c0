/* test_metrics: the Prometheus text format of a scrape (lib/metrics.c):
 * escaping of label values and HELP texts, every family with its HELP and
 * TYPE lines before its samples, and the figures where they belong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "request.h"
#include "store.h"
#include "unit.h"

/* What metrics_escape writes for text. */
static char *
escaped(const char *text, int is_label_value)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);

	if (f == NULL)
		return NULL;
	metrics_escape(f, text, is_label_value);
	fclose(f);
	return out;
}

static void
test_label_values_escape_backslash_quote_and_newline(void)
{
	char *a = escaped("a\\b\"c\nd", 1), *b = escaped("a\\b\"c\nd", 0);

	CHECK_STR(a, "a\\\\b\\\"c\\nd");
	/* In a HELP text a double quote stays as it is. */
	CHECK_STR(b, "a\\\\b\"c\\nd");
	free(a);
	free(b);
}

/* Whether line is a whole line of text. */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

static void
test_a_scrape_has_each_family_typed_before_its_samples(void)
{
	struct store_metrics m = { 0 };
	struct pd_queue q[2] = { { .name = "jobs" }, { .name = "mail" } };
	pd_ms now = 1800000000000;
	size_t len = 0;
	char *text;

	m.counts[PD_PENDING] = 7;
	m.counts[PD_EXPIRED] = 2;
	m.earliest = now - 12345;
	m.made = 40;
	m.ended[PD_DELIVERED] = 30;
	m.ended[PD_CANCELLED] = 1;
	m.attempts[STORE_ATTEMPT_5XX] = 9;
	m.attempts[STORE_ATTEMPT_NO_ANSWER] = 3;
	m.receives = 11;
	q[0].pending = 5;
	q[0].ready = 4;
	q[0].delivering = 2;
	q[0].failed = 1;
	q[0].oldest_ready = now - 2500;
	text = metrics_render(&m, q, 2, now, &len);
	CHECK(text != NULL);
	if (text == NULL)
		return;
	CHECK_INT(strlen(text), len);
	CHECK(len > 0 && text[len - 1] == '\n');
	CHECK(has_line(text, "# TYPE postdate_messages gauge"));
	CHECK(has_line(text, "postdate_messages{state=\"pending\"} 7"));
	CHECK(has_line(text, "postdate_messages{state=\"expired\"} 2"));
	CHECK(has_line(text, "postdate_messages{state=\"delivering\"} 0"));
	CHECK(has_line(text, "postdate_oldest_overdue_seconds 12.345"));
	CHECK(has_line(text, "# TYPE postdate_messages_made_total counter"));
	CHECK(has_line(text, "postdate_messages_made_total 40"));
	CHECK(has_line(text, "postdate_deliveries_total{outcome=\"delivered\"} 30"));
	CHECK(has_line(text, "postdate_deliveries_total{outcome=\"cancelled\"} 1"));
	CHECK(has_line(text, "postdate_deliveries_total{outcome=\"failed\"} 0"));
	CHECK(has_line(text, "postdate_attempts_total{outcome=\"5xx\"} 9"));
	CHECK(has_line(text, "postdate_attempts_total{outcome=\"no_answer\"} 3"));
	CHECK(has_line(text, "postdate_receives_total 11"));
	CHECK(has_line(text, "postdate_queue_pending{queue=\"jobs\"} 5"));
	CHECK(has_line(text, "postdate_queue_ready{queue=\"jobs\"} 4"));
	CHECK(has_line(text, "postdate_queue_delivering{queue=\"jobs\"} 2"));
	CHECK(has_line(text, "postdate_queue_failed{queue=\"jobs\"} 1"));
	CHECK(has_line(text, "postdate_queue_oldest_ready_seconds{queue=\"jobs\"} 2.500"));
	CHECK(has_line(text, "postdate_queue_oldest_ready_seconds{queue=\"mail\"} 0.000"));
	CHECK(has_line(text, "postdate_build_info{version=\"" PD_VERSION "\"} 1"));
	/* A family's HELP and TYPE come before its first sample, and its
	 * samples together: the mail queue's pending sits before the ready family. */
	CHECK(strstr(text, "# TYPE postdate_queue_pending gauge") <
	      strstr(text, "postdate_queue_pending{queue=\"jobs\"}"));
	CHECK(strstr(text, "postdate_queue_pending{queue=\"mail\"}") <
	      strstr(text, "# HELP postdate_queue_ready "));
	free(text);
}

/* Nothing is overdue when the earliest due time is now or later, or none. */
static void
test_nothing_overdue_reads_zero(void)
{
	struct store_metrics m = { 0 };
	pd_ms now = 1800000000000;
	size_t len;
	char *text;

	m.earliest = now + 5000;
	text = metrics_render(&m, NULL, 0, now, &len);
	CHECK(text != NULL && has_line(text, "postdate_oldest_overdue_seconds 0.000"));
	free(text);
	m.earliest = 0;
	text = metrics_render(&m, NULL, 0, now, &len);
	CHECK(text != NULL && has_line(text, "postdate_oldest_overdue_seconds 0.000"));
	/* With no queue, the queue families are there, with no samples. */
	CHECK(text != NULL && has_line(text, "# TYPE postdate_queue_ready gauge"));
	CHECK(text != NULL && strstr(text, "postdate_queue_ready{") == NULL);
	free(text);
}

static const struct unit_test tests[] = {
	UNIT(test_label_values_escape_backslash_quote_and_newline),
	UNIT(test_a_scrape_has_each_family_typed_before_its_samples),
	UNIT(test_nothing_overdue_reads_zero),
};

int
main(void)
{
	return unit_run("metrics", tests, UNIT_COUNT(tests));
}
