/* test_envelope.c: a request's method and headers (envelope.c), from form
 * fields and from a JSON body, and their stored form read back. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "postdate.h"
#include "request.h"
#include "unit.h"

#define SECRET "Bearer s3cr3t"

static void
add(struct pd_fields *f, const char *name, const char *value)
{
	fields_add(f, name, strlen(name), value, strlen(value), 0);
}

/* envelope_from_fields over the header fields given (NULL ends them). */
static int
from_headers(struct pd_envelope *e, const char **why, const char **field, ...)
{
	struct pd_fields f = { 0 };
	const char *value;
	va_list ap;
	int rc;

	va_start(ap, field);
	while ((value = va_arg(ap, const char *)) != NULL)
		add(&f, "header", value);
	va_end(ap);
	rc = envelope_from_fields(e, &f, why, field);
	fields_free(&f);
	return rc;
}

/* envelope_from_fields over a JSON body, decoded as schedule decodes it. */
static int
from_json(struct pd_envelope *e, const char *body, const char **why, const char **field)
{
	struct pd_fields f = { 0 };
	char jfield[PD_MAX_NAME + 1];
	int rc;

	if (jsonreq_decode(body, strlen(body), "payload", &f, why, jfield, sizeof(jfield)) != 0)
		return -2;
	rc = envelope_from_fields(e, &f, why, field);
	fields_free(&f);
	return rc;
}

struct seen {
	char text[1024];
};

static int
collect(void *ctx, const char *name, size_t namelen, const char *value, size_t valuelen)
{
	struct seen *s = ctx;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "[%.*s=%.*s]", (int)namelen, name,
	         (int)valuelen, value);
	return 0;
}

static const char *
read_back(const char *stored)
{
	static struct seen s;

	s.text[0] = '\0';
	CHECK_INT(headers_each(stored, collect, &s), 0);
	return s.text;
}

static void
test_no_fields_is_a_post_without_headers(void)
{
	struct pd_envelope e;
	const char *why, *field;

	CHECK_INT(from_headers(&e, &why, &field, NULL), 0);
	CHECK_INT(e.method, PD_METHOD_POST);
	CHECK(e.headers == NULL);
	CHECK_STR(read_back(e.headers), "");
}

static void
test_form_headers_are_stored_trimmed_in_order(void)
{
	struct pd_envelope e;
	const char *why, *field;

	CHECK_INT(from_headers(&e, &why, &field, "Authorization:" SECRET, "X-Trace: \t a b \t",
	                       "X-Empty:", "X-Colon: a: b", NULL), 0);
	CHECK_STR(e.headers, "Authorization: " SECRET "\nX-Trace: a b\nX-Empty: \nX-Colon: a: b");
	CHECK_STR(read_back(e.headers),
	          "[Authorization=" SECRET "][X-Trace=a b][X-Empty=][X-Colon=a: b]");
	envelope_free(&e);
}

static void
test_json_headers_object_is_read_in_order(void)
{
	struct pd_envelope e;
	const char *why, *field;

	CHECK_INT(from_json(&e, "{\"url\": \"http://e.com/\", \"headers\": "
	                        "{\"X-B\": \"2\", \"X-A\": \"1\\t\\u00e9\"}, \"method\": \"PATCH\"}",
	                    &why, &field), 0);
	CHECK_INT(e.method, PD_METHOD_PATCH);
	CHECK_STR(e.headers, "X-B: 2\nX-A: 1\t\xc3\xa9");
	envelope_free(&e);
}

static void
test_methods(void)
{
	static const char *const good[] = { "POST", "PUT", "PATCH", "DELETE", "GET" };
	static const char *const bad[] = { "HEAD", "put", "Post", "POST ", "", "OPTIONS", "GETS" };

	for (size_t i = 0; i < UNIT_COUNT(good); i++) {
		CHECK_INT(method_parse(good[i], strlen(good[i])), (int)i);
		CHECK_STR(method_name((enum pd_method)i), good[i]);
	}
	for (size_t i = 0; i < UNIT_COUNT(bad); i++) {
		struct pd_fields f = { 0 };
		struct pd_envelope e;
		const char *why = NULL, *field = NULL;

		CHECK_INT(method_parse(bad[i], strlen(bad[i])), -1);
		add(&f, "method", bad[i]);
		CHECK_INT(envelope_from_fields(&e, &f, &why, &field), -1);
		CHECK_STR(field, "method");
		fields_free(&f);
	}
	CHECK_STR(method_name(PD_NMETHODS), "POST");
}

static void
test_refused_names_and_bad_values_name_header_and_never_quote_the_value(void)
{
	static const char *const cases[] = {
		"Host: " SECRET, "content-length: " SECRET, "CONTENT-TYPE: " SECRET,
		"Transfer-Encoding: " SECRET, "Connection: " SECRET, "Upgrade: " SECRET,
		"te: " SECRET, "Trailer: " SECRET, "Keep-Alive: " SECRET, "Proxy-Authorization: " SECRET,
		"proxy-x: " SECRET, "User-Agent: " SECRET, "webhook-id: " SECRET, "Webhook-X: " SECRET,
		"Expect: " SECRET, "Bad Name: " SECRET, "X(y): " SECRET, ": " SECRET, SECRET,
		"X-A : " SECRET, "X-\xc3\xa9: " SECRET, "X-A: " SECRET "\r\nX-B: 1", "X-A: a\nb",
		"X-A: a\rb", "X-A: \x01", "X-A: \x7f",
	};

	for (size_t i = 0; i < UNIT_COUNT(cases); i++) {
		struct pd_envelope e;
		const char *why = NULL, *field = NULL;

		if (from_headers(&e, &why, &field, cases[i], NULL) != -1 || field == NULL ||
		    strcmp(field, "header") != 0 || why == NULL || strstr(why, "s3cr3t") != NULL) {
			fprintf(stderr, "  case %zu: field %s, why %s\n", i, field ? field : "(null)",
			        why ? why : "(null)");
			unit_failed_checks++;
		}
	}
}

static void
test_a_nul_in_a_value_is_refused(void)
{
	struct pd_fields f = { 0 };
	struct pd_envelope e;
	const char *why, *field;

	fields_add(&f, "header", 6, "X-A: a\0b", 8, 0);
	CHECK_INT(envelope_from_fields(&e, &f, &why, &field), -1);
	CHECK_STR(field, "header");
	fields_free(&f);
}

static void
test_repeated_names_are_refused_whatever_their_case(void)
{
	struct pd_envelope e;
	const char *why, *field;

	CHECK_INT(from_headers(&e, &why, &field, "X-A: 1", "x-a: 2", NULL), -1);
	CHECK_STR(field, "header");
	/* json-c would keep only the last of two equal keys. */
	CHECK_INT(from_json(&e, "{\"headers\": {\"X-A\": \"1\", \"X-A\": \"2\"}}", &why, &field), -1);
	CHECK_STR(field, "header");
	CHECK_INT(from_json(&e, "{\"headers\": {\"X-A\": \"1\", \"X-a\": \"2\"}}", &why, &field), -1);
	/* ... and cut a key at \u0000. */
	CHECK_INT(from_json(&e, "{\"headers\": {\"X-A\\u0000B\": \"1\"}}", &why, &field), -1);
	CHECK_STR(field, "header");
	/* An escaped backslash before u0000 is no NUL. */
	CHECK_INT(from_json(&e, "{\"headers\": {\"X-A\": \"\\\\u0000\"}}", &why, &field), 0);
	CHECK_STR(e.headers, "X-A: \\u0000");
	envelope_free(&e);
}

static void
test_json_headers_must_be_an_object_of_strings(void)
{
	static const char *const bodies[] = {
		"{\"headers\": {\"X-A\": 1}}", "{\"headers\": {\"X-A\": true}}",
		"{\"headers\": {\"X-A\": {\"b\": \"c\"}}}", "{\"headers\": {\"X-A\": [\"b\"]}}",
		"{\"headers\": \"X-A: 1\"}", "{\"headers\": [\"X-A: 1\"]}",
		"{\"headers\": {\"X-A\": \"a\\r\\nHost: evil\"}}", "{\"headers\": {\"\": \"a\"}}",
		"{\"header\": \"X-A: 1\", \"headers\": {\"X-B\": \"2\"}}",
	};

	for (size_t i = 0; i < UNIT_COUNT(bodies); i++) {
		struct pd_envelope e;
		const char *why = NULL, *field = NULL;
		int rc = from_json(&e, bodies[i], &why, &field);

		if (rc != -1 || field == NULL || strcmp(field, "header") != 0) {
			fprintf(stderr, "  case %zu (%s): rc %d, field %s\n", i, bodies[i], rc,
			        field ? field : "(null)");
			unit_failed_checks++;
		}
	}
}

static void
test_at_most_32_headers_and_8_kib(void)
{
	struct pd_fields f = { 0 };
	struct pd_envelope e;
	const char *why, *field;
	char line[PD_MAX_HEADER_BYTES + 16];

	for (int i = 0; i < PD_MAX_HEADERS; i++) {
		snprintf(line, sizeof(line), "X-H%d: %d", i, i);
		add(&f, "header", line);
	}
	CHECK_INT(envelope_from_fields(&e, &f, &why, &field), 0);
	envelope_free(&e);
	add(&f, "header", "X-One-More: 1");
	CHECK_INT(envelope_from_fields(&e, &f, &why, &field), -1);
	CHECK_STR(field, "header");
	fields_free(&f);

	/* "X-Big: " + value + CRLF is exactly 8192 bytes, then one more. */
	memcpy(line, "X-Big: ", 7);
	memset(line + 7, 'a', PD_MAX_HEADER_BYTES - 9);
	line[PD_MAX_HEADER_BYTES - 2] = '\0';
	add(&f, "header", line);
	CHECK_INT(envelope_from_fields(&e, &f, &why, &field), 0);
	CHECK_INT(strlen(e.headers) + 2, PD_MAX_HEADER_BYTES);
	envelope_free(&e);
	fields_free(&f);
	line[PD_MAX_HEADER_BYTES - 2] = 'a';
	line[PD_MAX_HEADER_BYTES - 1] = '\0';
	add(&f, "header", line);
	CHECK_INT(envelope_from_fields(&e, &f, &why, &field), -1);
	CHECK_STR(field, "header");
	fields_free(&f);
}

static const struct unit_test tests[] = {
	UNIT(test_no_fields_is_a_post_without_headers),
	UNIT(test_form_headers_are_stored_trimmed_in_order),
	UNIT(test_json_headers_object_is_read_in_order),
	UNIT(test_methods),
	UNIT(test_refused_names_and_bad_values_name_header_and_never_quote_the_value),
	UNIT(test_a_nul_in_a_value_is_refused),
	UNIT(test_repeated_names_are_refused_whatever_their_case),
	UNIT(test_json_headers_must_be_an_object_of_strings),
	UNIT(test_at_most_32_headers_and_8_kib),
};

int
main(void)
{
	return unit_run("envelope", tests, UNIT_COUNT(tests));
}
