/* test_message.c: how schedule fields become a message, and message ids. */
#include <stdarg.h>
#include <stdio.h>

#include "postdate.h"
#include "request.h"
#include "unit.h"

#define NOW 1795000000000LL  /* 2026-11-19T09:46:40Z */

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
};

int
main(void)
{
	return unit_run("message", tests, UNIT_COUNT(tests));
}
