/* test_message.c: how schedule fields become a message, and message ids. */
#include <stdarg.h>
#include <stdio.h>

#include "postdate.h"
#include "request.h"
#include "unit.h"

#define NOW 1795000000000LL  /* 2026-11-18T11:06:40Z */

static struct pd_config cfg;

static void
add(struct pd_fields *f, const char *name, const char *value)
{
	fields_add(f, name, strlen(name), value, strlen(value), 0);
}

/* Builds a message from name/value pairs; NULL ends the list. Returns the
 * result, with the error's field in *field. */
static int
build(struct pd_message *m, const char **why, const char **field, ...)
{
	struct pd_fields f = { 0 };
	va_list ap;
	const char *name;
	int rc;

	va_start(ap, field);
	while ((name = va_arg(ap, const char *)) != NULL)
		add(&f, name, va_arg(ap, const char *));
	va_end(ap);
	config_defaults(&cfg);
	rc = message_from_fields(m, &f, &cfg, NOW, why, field);
	/* The error's field name must outlive the fields for this test. */
	if (rc != 0 && *field != NULL) {
		static char saved[64];

		snprintf(saved, sizeof(saved), "%s", *field);
		*field = saved;
	}
	fields_free(&f);
	return rc;
}

static void
test_minimal_message_gets_defaults(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "url", "http://example.com/hook", NULL), 0);
	CHECK_STR(m.urls, "http://example.com/hook");
	CHECK_INT(m.due, NOW);
	CHECK_INT(m.next_attempt, NOW);
	CHECK_INT(m.payload_len, 0);
	CHECK_STR(m.content_type, "text/plain; charset=utf-8");
	CHECK_INT(m.max_attempts, 8);
	CHECK_INT(m.timeout, 10);
	CHECK(m.callback == NULL);
	CHECK(m.state == PD_PENDING);
	message_free(&m);
}

static void
test_pool_keeps_order_and_caps_at_16(void)
{
	struct pd_fields f = { 0 };
	struct pd_message m;
	const char *why, *field;
	char url[64];

	config_defaults(&cfg);
	for (int i = 0; i < 16; i++) {
		snprintf(url, sizeof(url), "https://h%d.example/x", i);
		add(&f, "url", url);
	}
	CHECK_INT(message_from_fields(&m, &f, &cfg, NOW, &why, &field), 0);
	CHECK(strncmp(m.urls, "https://h0.example/x\nhttps://h1.example/x\n", 42) == 0);
	message_free(&m);
	add(&f, "url", "https://h16.example/x");
	CHECK_INT(message_from_fields(&m, &f, &cfg, NOW, &why, &field), -1);
	CHECK_STR(field, "url");
	fields_free(&f);
}

static void
test_bad_fields_are_named(void)
{
	static const struct {
		const char *name, *value, *field;
	} cases[] = {
		{ "url", "ftp://example.com/", "url" },
		{ "url", "example.com", "url" },
		{ "url", "http://exa mple.com/", "url" },
		{ "url", "http://", "url" },
		{ "callback", "gopher://x/", "callback" },
		{ "max_attempts", "0", "max_attempts" },
		{ "max_attempts", "101", "max_attempts" },
		{ "max_attempts", "3.5", "max_attempts" },
		{ "timeout", "301", "timeout" },
		{ "timeout", "", "timeout" },
		{ "at", "tomorrow", "at" },
		{ "at", "2026-02-30 10:00", "at" },
		{ "delay", "5 minutes", "delay" },
		{ "tz", "Europe/Berlin", "tz" },
		{ "content_type", "", "content_type" },
		{ "content_type", "text/plain\r\nX-Evil: 1", "content_type" },
		{ "idempotency_key", "", "idempotency_key" },
		{ "nonsense", "1", "nonsense" },
		/* Regression: bytes that are not UTF-8 were stored and shown raw
		 * (invalid JSON in the list) and sent in the Content-Type header. */
		{ "idempotency_key", "\xff\xfekey", "idempotency_key" },
		{ "content_type", "text/plain; x=\xff", "content_type" },
		{ "content_type", "text/plain; x=\xc3\xa9", "content_type" },  /* not ASCII */
		{ "content_type", "text/plain\xc2\x85", "content_type" },     /* C1 NEL */
		{ "idempotency_key", "a\xc2\x85" "b", "idempotency_key" },
		{ "at", "2030-01-01 10:00\xff", "at" },
		{ "delay", "\xff", "delay" },
		{ "max_attempts", "3\xff", "max_attempts" },
	};

	for (size_t i = 0; i < UNIT_COUNT(cases); i++) {
		struct pd_message m;
		const char *why = NULL, *field = NULL;

		if (build(&m, &why, &field, "url", "http://example.com/", cases[i].name,
		          cases[i].value, NULL) != -1 || field == NULL ||
		    strcmp(field, cases[i].field) != 0 || why == NULL) {
			fprintf(stderr, "  case %zu (%s=%s): field %s\n", i, cases[i].name,
			        cases[i].value, field ? field : "(null)");
			unit_failed_checks++;
		}
	}
}

static void
test_url_is_required(void)
{
	struct pd_message m;
	const char *why, *field;

	CHECK_INT(build(&m, &why, &field, "payload", "x", NULL), -1);
	CHECK_STR(field, "url");
}

static void
test_at_and_delay_together_is_an_error(void)
{
	struct pd_message m;
	const char *why, *field;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "at", "2030-01-01T00:00:00Z",
	                "delay", "5m", NULL), -1);
	CHECK_STR(field, "delay");
}

static void
test_repeated_single_field_is_an_error(void)
{
	struct pd_message m;
	const char *why, *field;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "payload", "a",
	                "payload", "b", NULL), -1);
	CHECK_STR(field, "payload");
}

static void
test_past_at_means_now_and_future_is_kept(void)
{
	struct pd_message m;
	const char *why, *field;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "at", "2001-01-01T00:00:00Z",
	                NULL), 0);
	CHECK_INT(m.due, NOW);
	message_free(&m);
	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "at", "2030-01-01 00:00",
	                "tz", "Europe/Berlin", NULL), 0);
	CHECK_INT(m.due, 1893452400000LL);  /* 2029-12-31T23:00:00Z */
	message_free(&m);
}

static void
test_delay_adds_to_now(void)
{
	struct pd_message m;
	const char *why, *field;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "delay", "1h30m", NULL), 0);
	CHECK_INT(m.due, NOW + 5400000);
	message_free(&m);
}

static void
test_json_payload_defaults_to_json_content_type(void)
{
	struct pd_fields f = { 0 };
	struct pd_message m;
	const char *why, *field;

	config_defaults(&cfg);
	add(&f, "url", "http://e.com/");
	fields_add(&f, "payload", 7, "{\"a\":1}", 7, 1);
	CHECK_INT(message_from_fields(&m, &f, &cfg, NOW, &why, &field), 0);
	CHECK_STR(m.content_type, "application/json");
	CHECK_INT(m.payload_len, 7);
	message_free(&m);
	fields_free(&f);
}

static void
test_payload_keeps_nul_bytes(void)
{
	struct pd_fields f = { 0 };
	struct pd_message m;
	const char *why, *field;

	config_defaults(&cfg);
	add(&f, "url", "http://e.com/");
	fields_add(&f, "payload", 7, "a\0b", 3, 0);
	CHECK_INT(message_from_fields(&m, &f, &cfg, NOW, &why, &field), 0);
	CHECK_INT(m.payload_len, 3);
	CHECK(memcmp(m.payload, "a\0b", 3) == 0);
	message_free(&m);
	fields_free(&f);
}

/* ---- v2 destinations: a queue instead of a URL pool ---- */

/* A v2 field's bad value is refused for what it holds, not because the
 * field is unknown (which would make these tests pass without v2). */
static int
known_field_refused(const char *why)
{
	return why != NULL && strcmp(why, "unknown field") != 0;
}

static void
test_queue_message_has_no_urls_and_takes_the_queues_attempts(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "queue", "jobs.resize_v2-x", "payload", "p", NULL), 0);
	CHECK_STR(m.queue, "jobs.resize_v2-x");
	CHECK_STR(m.urls, "");
	/* 0: the store gives it the queue's max_attempts. */
	CHECK_INT(m.max_attempts, 0);
	CHECK_INT(m.priority, 0);
	CHECK_INT(m.expires, 0);
	CHECK_INT(m.due, NOW);
	message_free(&m);
	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "max_attempts", "3", NULL), 0);
	CHECK_INT(m.max_attempts, 3);
	message_free(&m);
}

static void
test_pushed_message_has_no_queue(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", NULL), 0);
	CHECK(m.queue == NULL);
	CHECK_INT(m.max_attempts, 8);
	message_free(&m);
}

static void
test_exactly_one_destination_is_required(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "queue", "jobs", NULL), -1);
	CHECK_STR(field, "queue");
	CHECK(why != NULL && strstr(why, "url") != NULL && strstr(why, "queue") != NULL);
	why = NULL;
	CHECK_INT(build(&m, &why, &field, "payload", "x", NULL), -1);
	CHECK_STR(field, "url");
	CHECK(why != NULL && strstr(why, "queue") != NULL);
}

/* A topic is a destination of its own: its copies take url or queue,
 * callback, max_attempts and timeout from their subscriptions. */
static void
test_a_topic_message_has_no_destination_of_its_own(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;
	static const char *const theirs[] = { "callback", "max_attempts", "timeout" };

	CHECK_INT(build(&m, &why, &field, "topic", "news", "payload", "hi", NULL), 0);
	CHECK_STR(m.topic, "news");
	CHECK_STR(m.urls, "");
	CHECK(m.queue == NULL);
	message_free(&m);
	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "topic", "news", NULL), -1);
	CHECK_STR(field, "url");
	CHECK_STR(why, "give one destination: url, queue or topic");
	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "topic", "news", NULL), -1);
	CHECK_STR(field, "queue");
	CHECK_INT(build(&m, &why, &field, "topic", "a b", NULL), -1);
	CHECK_STR(field, "topic");
	for (size_t i = 0; i < UNIT_COUNT(theirs); i++) {
		CHECK_INT(build(&m, &why, &field, "topic", "news", theirs[i], "3", NULL), -1);
		CHECK_STR(field, theirs[i]);
	}
}

/* Builds a subscription from name/value pairs, as build does a message. */
static int
build_subscription(struct pd_message *dest, char topic[], char name[], const char **field, ...)
{
	struct pd_fields f = { 0 };
	const char *why, *key;
	va_list ap;
	int rc;

	va_start(ap, field);
	while ((key = va_arg(ap, const char *)) != NULL)
		add(&f, key, va_arg(ap, const char *));
	va_end(ap);
	config_defaults(&cfg);
	rc = subscription_from_fields(dest, topic, name, &f, &cfg, &why, field);
	if (rc != 0 && *field != NULL) {
		static char saved[64];

		snprintf(saved, sizeof(saved), "%s", *field);
		*field = saved;
	}
	fields_free(&f);
	return rc;
}

static void
test_a_subscription_is_a_named_destination_with_options(void)
{
	struct pd_message d;
	char topic[PD_MAX_QUEUE_NAME + 1], name[PD_MAX_QUEUE_NAME + 1];
	const char *field = NULL;

	CHECK_INT(build_subscription(&d, topic, name, &field, "topic", "orders", "name", "billing",
	                             "url", "http://a.example/", "url", "http://b.example/",
	                             "max_attempts", "3", "callback", "http://c.example/", NULL), 0);
	CHECK_STR(topic, "orders");
	CHECK_STR(name, "billing");
	CHECK_STR(d.urls, "http://a.example/\nhttp://b.example/");
	CHECK_INT(d.max_attempts, 3);
	CHECK_STR(d.callback, "http://c.example/");
	message_free(&d);
	CHECK_INT(build_subscription(&d, topic, name, &field, "topic", "orders", "name", "work",
	                             "queue", "jobs", NULL), 0);
	CHECK_STR(d.queue, "jobs");
	CHECK_INT(d.max_attempts, 0);
	message_free(&d);
	CHECK_INT(build_subscription(&d, topic, name, &field, "topic", "orders",
	                             "url", "http://a.example/", NULL), -1);
	CHECK_STR(field, "name");
	CHECK_INT(build_subscription(&d, topic, name, &field, "name", "x",
	                             "url", "http://a.example/", NULL), -1);
	CHECK_STR(field, "topic");
	CHECK_INT(build_subscription(&d, topic, name, &field, "topic", "t", "name", "x", NULL), -1);
	CHECK_STR(field, "url");
	CHECK_INT(build_subscription(&d, topic, name, &field, "topic", "t", "name", "x",
	                             "queue", "jobs", "timeout", "5", NULL), -1);
	CHECK_STR(field, "timeout");
	CHECK_INT(build_subscription(&d, topic, name, &field, "topic", "t", "name", "x",
	                             "url", "http://a.example/", "payload", "p", NULL), -1);
	CHECK_STR(field, "payload");
}

static void
test_queue_names(void)
{
	static const char *const good[] = {
		"a", "Z", "0", "_", ".", "-", "jobs.resize_v2-x",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  /* 64 */
	};
	static const char *const bad[] = {
		"", "a b", "a/b", "a\tb", "jobs\n", "caf\xc3\xa9", "<b>x</b>", "a:b", "a+b",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  /* 65 */
	};

	for (size_t i = 0; i < UNIT_COUNT(good); i++) {
		struct pd_message m;
		const char *why = NULL, *field = NULL;

		if (build(&m, &why, &field, "queue", good[i], NULL) != 0 ||
		    strcmp(m.queue, good[i]) != 0) {
			fprintf(stderr, "  good queue name %zu (%s) refused: %s\n", i, good[i],
			        why ? why : "");
			unit_failed_checks++;
			continue;
		}
		message_free(&m);
	}
	for (size_t i = 0; i < UNIT_COUNT(bad); i++) {
		struct pd_message m;
		const char *why = NULL, *field = NULL;

		if (build(&m, &why, &field, "queue", bad[i], NULL) != -1 || field == NULL ||
		    strcmp(field, "queue") != 0 || !known_field_refused(why)) {
			fprintf(stderr, "  bad queue name %zu (%s): field %s\n", i, bad[i],
			        field ? field : "(null)");
			unit_failed_checks++;
		}
	}
}

/* A queue name with a NUL inside is not the name it looks like. */
static void
test_queue_name_with_nul_is_refused(void)
{
	struct pd_fields f = { 0 };
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	config_defaults(&cfg);
	fields_add(&f, "queue", 5, "jo\0bs", 5, 0);
	CHECK_INT(message_from_fields(&m, &f, &cfg, NOW, &why, &field), -1);
	CHECK_STR(field, "queue");
	CHECK(known_field_refused(why));
	fields_free(&f);
}

/* timeout is the time per HTTP attempt: a pulled message has none, and
 * silently ignoring it would hide a mistake. */
static void
test_timeout_with_a_queue_is_an_error(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "timeout", "5", NULL), -1);
	CHECK_STR(field, "timeout");
	CHECK(known_field_refused(why));
}

/* ---- priority ---- */

static void
test_priority_values(void)
{
	static const struct {
		const char *text;
		int value;
	} good[] = {
		{ "0", 0 }, { "-0", 0 }, { "1", 1 }, { "-1", -1 }, { "42", 42 },
		{ "1000", 1000 }, { "-1000", -1000 }, { "007", 7 },
	};
	static const char *const bad[] = {
		"", "-", "+1", "1001", "-1001", "1.5", "1e3", " 1", "1 ", "--1", "0x10",
		"99999999999999999999", "-99999999999999999999", "one", "1\xff",
	};

	for (size_t i = 0; i < UNIT_COUNT(good); i++) {
		struct pd_message m;
		const char *why = NULL, *field = NULL;

		if (build(&m, &why, &field, "url", "http://e.com/", "priority", good[i].text,
		          NULL) != 0) {
			fprintf(stderr, "  good priority %s refused: %s\n", good[i].text, why ? why : "");
			unit_failed_checks++;
			continue;
		}
		if (m.priority != good[i].value) {
			fprintf(stderr, "  priority %s is %d, want %d\n", good[i].text, m.priority,
			        good[i].value);
			unit_failed_checks++;
		}
		message_free(&m);
	}
	for (size_t i = 0; i < UNIT_COUNT(bad); i++) {
		struct pd_message m;
		const char *why = NULL, *field = NULL;

		if (build(&m, &why, &field, "queue", "jobs", "priority", bad[i], NULL) != -1 ||
		    field == NULL || strcmp(field, "priority") != 0 || !known_field_refused(why)) {
			fprintf(stderr, "  bad priority %zu (%s): field %s\n", i, bad[i],
			        field ? field : "(null)");
			unit_failed_checks++;
		}
	}
}

/* ---- ttl and expires ---- */

/* ttl counts from the due time: "deliver at nine, and not after a quarter
 * past" is what a delayed message with a ttl means. */
static void
test_ttl_counts_from_the_due_time(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "ttl", "30s", NULL), 0);
	CHECK_INT(m.expires, NOW + 30000);
	message_free(&m);
	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "delay", "1h", "ttl", "15m", NULL), 0);
	CHECK_INT(m.due, NOW + 3600000);
	CHECK_INT(m.expires, NOW + 3600000 + 900000);
	message_free(&m);
	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "ttl", "90", NULL), 0);
	CHECK_INT(m.expires, NOW + 90000);
	message_free(&m);
}

static void
test_expires_is_a_time_read_as_at_is(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "expires",
	                "2030-01-01T00:00:00Z", NULL), 0);
	CHECK_INT(m.expires, 1893456000000LL);
	message_free(&m);
	/* tz applies to expires as to at, and may come with expires alone. */
	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "expires", "2030-01-01 00:00",
	                "tz", "Europe/Berlin", NULL), 0);
	CHECK_INT(m.expires, 1893452400000LL);  /* 2029-12-31T23:00:00Z */
	message_free(&m);
	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "at", "2029-12-31 10:00",
	                "expires", "2029-12-31 11:00", "tz", "Europe/Berlin", NULL), 0);
	CHECK_INT(m.due, 1893402000000LL);      /* 2029-12-31T09:00:00Z */
	CHECK_INT(m.expires, 1893405600000LL);  /* 2029-12-31T10:00:00Z */
	message_free(&m);
	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "expires", "1893456000", NULL), 0);
	CHECK_INT(m.expires, 1893456000000LL);
	message_free(&m);
	/* One millisecond after the due time is after it. */
	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "at", "2030-01-01T00:00:00Z",
	                "expires", "2030-01-01T00:00:00.001Z", NULL), 0);
	CHECK_INT(m.expires, 1893456000001LL);
	message_free(&m);
}

static void
test_ttl_and_expires_together_is_an_error(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "url", "http://e.com/", "ttl", "5m",
	                "expires", "2030-01-01T00:00:00Z", NULL), -1);
	CHECK_STR(field, "expires");
	CHECK(known_field_refused(why));
}

static void
test_expiry_not_after_the_due_time_is_an_error(void)
{
	static const struct {
		const char *n1, *v1, *n2, *v2, *field;
	} cases[] = {
		{ "ttl", "0", NULL, NULL, "ttl" },
		{ "ttl", "0s", "delay", "1h", "ttl" },
		/* An expiry in the past, or at the due time, could never be met. */
		{ "expires", "2001-01-01T00:00:00Z", NULL, NULL, "expires" },
		{ "expires", "2026-11-18T11:06:40Z", NULL, NULL, "expires" },  /* NOW */
		{ "expires", "2030-01-01T00:00:00Z", "at", "2030-01-01T00:00:00Z", "expires" },
		{ "expires", "2029-12-31T23:59:59Z", "at", "2030-01-01T00:00:00Z", "expires" },
		{ "expires", "2026-11-18T11:36:40Z", "delay", "1h", "expires" },  /* NOW + 30m */
		/* ten years after the end of 9999 cannot be written in RFC 3339 */
		{ "ttl", "3650d", "at", "9999-12-31T00:00:00Z", "ttl" },
	};

	for (size_t i = 0; i < UNIT_COUNT(cases); i++) {
		struct pd_message m;
		const char *why = NULL, *field = NULL;
		int rc = cases[i].n2 != NULL ?
		    build(&m, &why, &field, "url", "http://e.com/", cases[i].n1, cases[i].v1,
		          cases[i].n2, cases[i].v2, NULL) :
		    build(&m, &why, &field, "url", "http://e.com/", cases[i].n1, cases[i].v1, NULL);

		if (rc != -1 || field == NULL || strcmp(field, cases[i].field) != 0 ||
		    !known_field_refused(why)) {
			fprintf(stderr, "  case %zu (%s=%s): rc %d, field %s\n", i, cases[i].n1,
			        cases[i].v1, rc, field ? field : "(null)");
			unit_failed_checks++;
			if (rc == 0)
				message_free(&m);
		}
	}
}

static void
test_bad_v2_fields_are_named(void)
{
	static const struct {
		const char *name, *value, *field;
	} cases[] = {
		{ "ttl", "", "ttl" },
		{ "ttl", "5 minutes", "ttl" },
		{ "ttl", "-5s", "ttl" },
		{ "ttl", "1.5h", "ttl" },
		{ "ttl", "\xff", "ttl" },
		{ "expires", "", "expires" },
		{ "expires", "tomorrow", "expires" },
		{ "expires", "2030-02-30 10:00", "expires" },
		{ "expires", "999999999999", "expires" },
		{ "queue", "", "queue" },
	};

	for (size_t i = 0; i < UNIT_COUNT(cases); i++) {
		struct pd_message m;
		const char *why = NULL, *field = NULL;

		if (build(&m, &why, &field, "url", "http://example.com/", cases[i].name,
		          cases[i].value, NULL) != -1 || field == NULL ||
		    strcmp(field, cases[i].field) != 0 || !known_field_refused(why)) {
			fprintf(stderr, "  case %zu (%s=%s): field %s\n", i, cases[i].name,
			        cases[i].value, field ? field : "(null)");
			unit_failed_checks++;
		}
	}
}

/* Regression: a skipped local time in tz is refused for expires as for at. */
static void
test_expires_in_a_dst_gap_is_an_error(void)
{
	struct pd_message m;
	const char *why = NULL, *field = NULL;

	CHECK_INT(build(&m, &why, &field, "queue", "jobs", "expires", "2030-03-31 02:30",
	                "tz", "Europe/Berlin", NULL), -1);
	CHECK_STR(field, "expires");
	CHECK(known_field_refused(why));
}

static void
test_ids_are_26_base32_and_distinct(void)
{
	char a[PD_ID_LEN + 1], b[PD_ID_LEN + 1];

	CHECK_INT(id_generate(a), 0);
	CHECK_INT(id_generate(b), 0);
	CHECK_INT(strlen(a), 26);
	CHECK(id_valid(a));
	CHECK(strcmp(a, b) != 0);
	CHECK(!id_valid("abc"));
	CHECK(!id_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
	CHECK(!id_valid("abcdefghijklmnopqrstuvwxy1"));
	CHECK(!id_valid(NULL));
}

static const struct unit_test tests[] = {
	UNIT(test_minimal_message_gets_defaults),
	UNIT(test_pool_keeps_order_and_caps_at_16),
	UNIT(test_bad_fields_are_named),
	UNIT(test_url_is_required),
	UNIT(test_at_and_delay_together_is_an_error),
	UNIT(test_repeated_single_field_is_an_error),
	UNIT(test_past_at_means_now_and_future_is_kept),
	UNIT(test_delay_adds_to_now),
	UNIT(test_json_payload_defaults_to_json_content_type),
	UNIT(test_payload_keeps_nul_bytes),
	UNIT(test_ids_are_26_base32_and_distinct),
	UNIT(test_queue_message_has_no_urls_and_takes_the_queues_attempts),
	UNIT(test_pushed_message_has_no_queue),
	UNIT(test_exactly_one_destination_is_required),
	UNIT(test_a_topic_message_has_no_destination_of_its_own),
	UNIT(test_a_subscription_is_a_named_destination_with_options),
	UNIT(test_queue_names),
	UNIT(test_queue_name_with_nul_is_refused),
	UNIT(test_timeout_with_a_queue_is_an_error),
	UNIT(test_priority_values),
	UNIT(test_ttl_counts_from_the_due_time),
	UNIT(test_expires_is_a_time_read_as_at_is),
	UNIT(test_ttl_and_expires_together_is_an_error),
	UNIT(test_expiry_not_after_the_due_time_is_an_error),
	UNIT(test_bad_v2_fields_are_named),
	UNIT(test_expires_in_a_dst_gap_is_an_error),
};

int
main(void)
{
	return unit_run("message", tests, UNIT_COUNT(tests));
}
