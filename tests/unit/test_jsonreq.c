/* test_jsonreq.c: jsonreq.c, the JSON body decoder. */
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "request.h"
#include "unit.h"

/* Decodes a NUL-terminated body with "payload" as the raw JSON key. */
static int
decode(const char *body, struct pd_fields *out, const char **why, char *field)
{
	memset(out, 0, sizeof(*out));
	return jsonreq_decode(body, strlen(body), "payload", out, why, field,
	    PD_MAX_NAME + 1);
}

/* Checks that body is refused naming want_field (and want_why if given). */
static void
check_refused(const char *body, size_t len, const char *want_why,
    const char *want_field)
{
	struct pd_fields f = { 0 };
	const char *why = NULL;
	char field[PD_MAX_NAME + 1];
	int before = unit_failed_checks;

	CHECK_INT(jsonreq_decode(body, len, "payload", &f, &why, field,
	    sizeof(field)), -1);
	CHECK(why != NULL);
	if (want_why != NULL)
		CHECK_STR(why, want_why);
	CHECK_STR(field, want_field);
	CHECK_INT(f.n, 0);
	CHECK(f.v == NULL);
	if (unit_failed_checks != before)
		fprintf(stderr, "    (body '%.*s', why \"%s\")\n", (int)len, body,
		    why ? why : "(null)");
	fields_free(&f);
}

#define REFUSED(body, why, field) check_refused(body, strlen(body), why, field)

/*
 * A body holding {"payload": ...} with depth arrays and objects nested in
 * all, counting inner when it is one.
 */
static char *
nested(int depth, const char *inner)
{
	char *s = malloc(2 * depth + strlen(inner) + 32), *p = s;
	int i;

	if (inner[0] == '[' || inner[0] == '{')
		depth--;
	p += sprintf(p, "{\"payload\":");
	for (i = 1; i < depth; i++)
		*p++ = '[';
	p += sprintf(p, "%s", inner);
	for (i = 1; i < depth; i++)
		*p++ = ']';
	strcpy(p, "}");
	return s;
}

static void
test_jsonreq_scalars_mapped(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("{\"s\":\"text\",\"i\":42,\"neg\":-7,\"d\":1.50,"
	    "\"e\":1E+2,\"t\":true,\"F\":false,\"z\":null,\"empty\":\"\"}",
	    &f, &why, field), 0);
	CHECK_INT(f.n, 8);
	CHECK_STR(fields_get(&f, "s")->value, "text");
	CHECK_STR(fields_get(&f, "i")->value, "42");
	CHECK_STR(fields_get(&f, "neg")->value, "-7");
	CHECK_STR(fields_get(&f, "d")->value, "1.50");
	CHECK_STR(fields_get(&f, "e")->value, "1E+2");
	CHECK_STR(fields_get(&f, "t")->value, "true");
	CHECK_STR(fields_get(&f, "F")->value, "false");
	CHECK(fields_get(&f, "z") == NULL);
	CHECK_STR(fields_get(&f, "empty")->value, "");
	CHECK_INT(fields_get(&f, "empty")->len, 0);
	CHECK_INT(fields_get(&f, "i")->is_json, 0);
	CHECK_INT(fields_get(&f, "t")->is_json, 0);
	CHECK_INT(fields_get(&f, "s")->len, 4);
	fields_free(&f);
}

static void
test_jsonreq_keys_kept_in_order(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode(" {\"z\":\"1\", \"a\":\"2\",\n\"m\":\"3\"} \r\n\t",
	    &f, &why, field), 0);
	CHECK_INT(f.n, 3);
	CHECK_STR(f.v[0].name, "z");
	CHECK_STR(f.v[1].name, "a");
	CHECK_STR(f.v[2].name, "m");
	fields_free(&f);
}

static void
test_jsonreq_empty_object(void)
{
	struct pd_fields f;
	const char *why = "unset";
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("{}", &f, &why, field), 0);
	CHECK_INT(f.n, 0);
	CHECK(why == NULL);
	fields_free(&f);
}

static void
test_jsonreq_url_array_repeats_field(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("{\"url\":[\"https://a.example\",\"https://b.example\"],"
	    "\"tags\":[1,true,\"x\"],\"none\":[]}", &f, &why, field), 0);
	CHECK_INT(fields_count(&f, "url"), 2);
	CHECK_STR(f.v[0].value, "https://a.example");
	CHECK_STR(f.v[1].value, "https://b.example");
	CHECK_INT(fields_count(&f, "tags"), 3);
	CHECK_STR(f.v[2].value, "1");
	CHECK_STR(f.v[3].value, "true");
	CHECK_STR(f.v[4].value, "x");
	CHECK_INT(fields_count(&f, "none"), 0);
	CHECK_INT(f.n, 5);
	fields_free(&f);
}

static void
test_jsonreq_payload_object_kept_as_written(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];
	const struct pd_field *p;

	CHECK_INT(decode("{\"url\":\"https://a.example\",\"payload\": "
	    "{ \"a\" : [1, 2.50, \"x/y\"], \"b\": null, \"c\": {\"d\": true} }}",
	    &f, &why, field), 0);
	p = fields_get(&f, "payload");
	CHECK(p != NULL);
	if (p != NULL) {
		CHECK_STR(p->value,
		    "{ \"a\" : [1, 2.50, \"x/y\"], \"b\": null, \"c\": {\"d\": true} }");
		CHECK_INT(p->len, strlen(p->value));
		CHECK_INT(p->is_json, 1);
	}
	fields_free(&f);
}

/* json-c keeps the last of repeated keys and cuts keys at \u0000: the
 * payload must reach the target as the client wrote it all the same. */
static void
test_jsonreq_payload_keeps_repeated_and_escaped_keys(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("{\"payload\": {\"k\":1,\"k\":2,\"a\\u0000b\":3}\n, \"url\":\"https://a.example\"}",
	    &f, &why, field), 0);
	CHECK_STR(fields_get(&f, "payload")->value, "{\"k\":1,\"k\":2,\"a\\u0000b\":3}");
	fields_free(&f);
}

static void
test_jsonreq_payload_array_number_bool_kept_as_written(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("{\"payload\":[1, {\"k\":\"v\"}, null, [] ]}",
	    &f, &why, field), 0);
	CHECK_STR(f.v[0].value, "[1, {\"k\":\"v\"}, null, [] ]");
	CHECK_INT(f.v[0].is_json, 1);
	fields_free(&f);

	CHECK_INT(decode("{\"payload\":12.0}", &f, &why, field), 0);
	CHECK_STR(f.v[0].value, "12.0");
	CHECK_INT(f.v[0].is_json, 1);
	fields_free(&f);

	CHECK_INT(decode("{\"payload\":false}", &f, &why, field), 0);
	CHECK_STR(f.v[0].value, "false");
	CHECK_INT(f.v[0].is_json, 1);
	fields_free(&f);

	CHECK_INT(decode("{\"payload\":[]}", &f, &why, field), 0);
	CHECK_STR(f.v[0].value, "[]");
	CHECK_INT(f.v[0].is_json, 1);
	fields_free(&f);
}

static void
test_jsonreq_payload_string_kept_as_is(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("{\"payload\":\"{\\\"a\\\": 1}\\n\"}", &f, &why, field), 0);
	CHECK_STR(f.v[0].value, "{\"a\": 1}\n");
	CHECK_INT(f.v[0].is_json, 0);
	fields_free(&f);

	CHECK_INT(decode("{\"payload\":null}", &f, &why, field), 0);
	CHECK_INT(f.n, 0);
	fields_free(&f);
}

static void
test_jsonreq_payload_nested_in_without_raw_key_refused(void)
{
	struct pd_fields f = { 0 };
	const char *why;
	char field[PD_MAX_NAME + 1];
	const char *body = "{\"payload\":{\"a\":1}}";

	CHECK_INT(jsonreq_decode(body, strlen(body), NULL, &f, &why, field,
	    sizeof(field)), -1);
	CHECK_STR(field, "payload");
	CHECK_INT(f.n, 0);
}

static void
test_jsonreq_nested_object_refused_naming_key(void)
{
	REFUSED("{\"url\":\"https://a.example\",\"meta\":{\"a\":1}}", NULL, "meta");
	REFUSED("{\"meta\":{}}", NULL, "meta");
}

static void
test_jsonreq_array_with_null_or_container_refused(void)
{
	REFUSED("{\"url\":[\"a\",null]}", NULL, "url");
	REFUSED("{\"url\":[\"a\",{\"b\":1}]}", NULL, "url");
	REFUSED("{\"url\":[[\"a\"]]}", NULL, "url");
	REFUSED("{\"at\":\"x\",\"url\":[\"a\",[]]}", NULL, "url");
}

static void
test_jsonreq_top_level_not_object_refused(void)
{
	const char *why = "the body must be a JSON object";

	REFUSED("[{\"a\":1}]", why, "");
	REFUSED("\"text\"", why, "");
	REFUSED("1", why, "");
	REFUSED("null", why, "");
	REFUSED("true", why, "");
	REFUSED("", why, "");
	REFUSED("  \n", why, "");
	REFUSED("a=1&b=2", why, "");
}

static void
test_jsonreq_trailing_garbage_refused(void)
{
	REFUSED("{\"a\":1} x", NULL, "");
	REFUSED("{\"a\":1}{}", NULL, "");
	REFUSED("{\"a\":1},", NULL, "");
	REFUSED("{\"a\":1}\f", NULL, "");
}

static void
test_jsonreq_truncated_refused(void)
{
	const char *why = "the JSON ends too early";

	REFUSED("{", why, "");
	REFUSED("{\"a\"", why, "");
	REFUSED("{\"a\":", why, "");
	REFUSED("{\"a\":\"text", why, "");
	REFUSED("{\"a\":[1,2", why, "");
	REFUSED("{\"a\":1", why, "");
}

static void
test_jsonreq_not_json_refused(void)
{
	REFUSED("{'a':'b'}", NULL, "");
	REFUSED("{\"a\":1,}", NULL, "");
	REFUSED("{\"a\" 1}", NULL, "");
	REFUSED("{a:1}", NULL, "");
	REFUSED("/* c */{\"a\":1}", NULL, "");
	REFUSED("{\"a\":True}", NULL, "");
	REFUSED("{\"a\":[1,]}", NULL, "");
}

static void
test_jsonreq_non_json_tokens_refused(void)
{
	REFUSED("{\"a\":NaN}", NULL, "a");
	REFUSED("{\"a\":Infinity}", NULL, "a");
	REFUSED("{\"a\":-Infinity}", NULL, "a");
	REFUSED("{\"a\":1.}", NULL, "a");
	REFUSED("{\"a\":01}", NULL, "");
	REFUSED("{\"a\":.5}", NULL, "");
	REFUSED("{\"a\":\"tab\there\"}", "control characters in JSON strings "
	    "must be escaped", "a");
	REFUSED("{\"payload\":{\"b\":[NaN]}}", NULL, "payload");
}

static void
test_jsonreq_integer_beyond_64_bits_refused(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	REFUSED("{\"a\":12345678901234567890123}", NULL, "a");
	REFUSED("{\"a\":18446744073709551616}", NULL, "a");
	REFUSED("{\"a\":-9223372036854775809}", NULL, "a");

	CHECK_INT(decode("{\"a\":18446744073709551615,\"b\":-9223372036854775808,"
	    "\"c\":1e400}", &f, &why, field), 0);
	CHECK_STR(fields_get(&f, "a")->value, "18446744073709551615");
	CHECK_STR(fields_get(&f, "b")->value, "-9223372036854775808");
	CHECK_STR(fields_get(&f, "c")->value, "1e400");
	fields_free(&f);
}

/* Regression: a payload holding an integer beyond 64 bits was refused
 * although payloads are forwarded byte for byte (and 1e400 was let
 * through). A payload's numbers are not ours to read. */
static void
test_jsonreq_payload_numbers_of_any_size_kept_as_written(void)
{
	static const char *const payloads[] = {
		"{\"big\": 12345678901234567890123}",
		"[-99999999999999999999999, 1e400, 1.5e-400, 18446744073709551616]",
		"12345678901234567890123",
		"{\"a\": {\"b\": [99999999999999999999]}}",
	};

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		struct pd_fields f;
		const char *why = NULL;
		char field[PD_MAX_NAME + 1], body[256];

		snprintf(body, sizeof(body), "{\"url\": \"http://a.example/\", \"payload\": %s, "
		         "\"delay\": \"1h\"}", payloads[i]);
		CHECK_INT(decode(body, &f, &why, field), 0);
		if (fields_get(&f, "payload") != NULL) {
			CHECK_STR(fields_get(&f, "payload")->value, payloads[i]);
			CHECK_INT(fields_get(&f, "payload")->is_json, 1);
		} else
			CHECK(!"payload missing");
		fields_free(&f);
	}
	/* Other fields are still read as numbers, and still refused. */
	REFUSED("{\"payload\": 1, \"max_attempts\": 12345678901234567890123}", NULL,
	        "max_attempts");
}

static void
test_jsonreq_invalid_utf8_in_value_refused(void)
{
	const char *why = "the JSON contains text that is not valid UTF-8";

	REFUSED("{\"a\":\"\xff\"}", why, "a");
	REFUSED("{\"a\":\"x\xc0\xaf\"}", why, "a");
	REFUSED("{\"a\":\"\xed\xa0\x80\"}", why, "a");
	REFUSED("{\"a\":\"\xf4\x90\x80\x80\"}", why, "a");
	REFUSED("{\"a\":\"\xe0\x80\xaf\"}", why, "a");
	REFUSED("{\"a\":\"\xf0\x80\x80\xaf\"}", why, "a");
	REFUSED("{\"a\":\"\xe2\x82\"}", why, "a");
	REFUSED("{\"a\":\"\x80\"}", why, "a");
	REFUSED("{\"a\":\"ok\",\"url\":[\"ok\",\"\xfe\"]}", why, "url");
	REFUSED("{\"payload\":{\"k\":[\"\xc3\"]}}", why, "payload");
	REFUSED("{\"payload\":{\"\xc3\":1}}", why, "payload");
}

static void
test_jsonreq_invalid_utf8_in_key_refused(void)
{
	const char *why = "the JSON contains text that is not valid UTF-8";

	REFUSED("{\"\xff\":\"x\"}", why, "");
	REFUSED("{\"a\":1,\"\xc0\xaf\":\"x\"}", why, "");
	REFUSED("{\"\xed\xa0\x80\":\"x\"}", why, "");
}

static void
test_jsonreq_valid_utf8_kept(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("{\"\xc3\xa9t\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80 "
	    "\xef\xbf\xbf \xf4\x8f\xbf\xbf \x7f\"}", &f, &why, field), 0);
	CHECK_STR(f.v[0].name, "\xc3\xa9t\xc3\xa9");
	CHECK_STR(f.v[0].value, "\xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf "
	    "\xf4\x8f\xbf\xbf \x7f");
	fields_free(&f);
}

static void
test_jsonreq_unicode_escapes_decoded(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("{\"\\u0061\":\"caf\\u00e9 \\uD83D\\ude00 \\u20AC "
	    "\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"n\":\"x\\u0000y\"}", &f, &why, field), 0);
	CHECK_STR(f.v[0].name, "a");
	CHECK_STR(f.v[0].value, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac "
	    "\"\\/\b\f\n\r\t");
	CHECK_STR(f.v[1].name, "n");
	CHECK_INT(f.v[1].len, 3);
	CHECK(memcmp(f.v[1].value, "x\0y\0", 4) == 0);
	fields_free(&f);
}

static void
test_jsonreq_unpaired_surrogate_escape_refused(void)
{
	REFUSED("{\"a\":\"\\ud800\"}", NULL, "a");
	REFUSED("{\"a\":\"\\udc00\"}", NULL, "a");
	REFUSED("{\"a\":\"\\ud800\\u0041\"}", NULL, "a");
	REFUSED("{\"a\":\"\\ud800\\ud800\"}", NULL, "a");
	REFUSED("{\"\\ude00\":1}", NULL, "");
	REFUSED("{\"payload\":[\"\\udbff\"]}", NULL, "payload");
}

/* Depth counts arrays and objects, the body's own object included. */
static void
test_jsonreq_depth_within_limit_accepted(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1], *body;
	const char *inner[] = { "", "1", "\"s\"", "[]", "{}", "{\"k\":true}" };
	size_t i;

	for (i = 0; i < UNIT_COUNT(inner); i++) {
		body = nested(PD_MAX_JSON_DEPTH, inner[i]);
		CHECK_INT(decode(body, &f, &why, field), 0);
		CHECK_INT(f.n, 1);
		CHECK_INT(f.v[0].is_json, 1);
		CHECK(f.v[0].value[0] == '[');
		fields_free(&f);
		free(body);
	}
}

static void
test_jsonreq_depth_beyond_limit_refused(void)
{
	const char *inner[] = { "", "1", "\"s\"", "[]", "{\"k\":1}" };
	char *body;
	size_t i;

	for (i = 0; i < UNIT_COUNT(inner); i++) {
		body = nested(PD_MAX_JSON_DEPTH + 1, inner[i]);
		REFUSED(body, "the JSON is nested too deeply", "");
		free(body);
	}
	body = nested(1000, "1");
	REFUSED(body, "the JSON is nested too deeply", "");
	free(body);
}

static void
test_jsonreq_embedded_nul_refused(void)
{
	check_refused("{\"a\":\"x\0y\"}", 11, "the body contains a NUL byte", "");
	check_refused("{\"a\":1}\0", 8, "the body contains a NUL byte", "");
}

static void
test_jsonreq_duplicate_key_refused(void)
{
	const char *why = "the field is given more than once";

	REFUSED("{\"a\":1,\"a\":2}", why, "a");
	REFUSED("{\"url\":\"x\",\"at\":\"1\",\"u\\u0072l\":\"y\"}", why, "url");
	REFUSED("{\"payload\":null,\"payload\":\"x\"}", why, "payload");
}

static void
test_jsonreq_duplicate_key_inside_payload_allowed(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	/* Only the request's own keys are fields; the payload is the sender's. */
	CHECK_INT(decode("{\"payload\":{\"a\":1,\"a\":2},\"a\":\"x\"}",
	    &f, &why, field), 0);
	CHECK_INT(f.n, 2);
	CHECK_STR(fields_get(&f, "a")->value, "x");
	fields_free(&f);
}

static void
test_jsonreq_bad_keys_refused(void)
{
	char body[PD_MAX_NAME + 16];
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	REFUSED("{\"\":1}", "a field name is empty", "");
	REFUSED("{\"a\\u0000b\":1}", "a field name contains a control character", "");
	REFUSED("{\"a\\nb\":1}", "a field name contains a control character", "");
	REFUSED("{\"a\x7f\":1}", "a field name contains a control character", "");

	memset(body, 0, sizeof(body));
	body[0] = '{';
	body[1] = '"';
	memset(body + 2, 'k', PD_MAX_NAME);
	strcpy(body + 2 + PD_MAX_NAME, "\":1}");
	CHECK_INT(decode(body, &f, &why, field), 0);
	CHECK_INT(strlen(f.v[0].name), PD_MAX_NAME);
	fields_free(&f);

	body[2 + PD_MAX_NAME] = 'k';
	strcpy(body + 3 + PD_MAX_NAME, "\":1}");
	REFUSED(body, "a field name is too long (at most 64 bytes)", "");
}

static void
test_jsonreq_too_many_fields_via_array_refused(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1], body[16 + PD_MAX_FIELDS * 5 + 32];
	int i;

	strcpy(body, "{\"url\":[");
	for (i = 0; i < PD_MAX_FIELDS; i++)
		strcat(body, i ? ",\"x\"" : "\"x\"");
	strcat(body, "]}");
	CHECK_INT(decode(body, &f, &why, field), 0);
	CHECK_INT(f.n, PD_MAX_FIELDS);
	fields_free(&f);

	strcpy(body + strlen(body) - 2, ",\"x\"]}");
	REFUSED(body, "too many fields (at most 64)", "url");
}

static void
test_jsonreq_too_many_keys_refused(void)
{
	char body[PD_MAX_FIELDS * 16 + 16];
	char *p = body;
	int i;

	p += sprintf(p, "{");
	for (i = 0; i <= PD_MAX_FIELDS; i++)
		p += sprintf(p, "%s\"k%d\":null", i ? "," : "", i);
	strcpy(p, "}");
	REFUSED(body, "too many fields (at most 64)", "");
}

static void
test_jsonreq_reads_only_len_bytes(void)
{
	struct pd_fields f = { 0 };
	const char *why;
	char field[PD_MAX_NAME + 1];
	const char *text = "{\"a\":\"1\"}{\"b\":2}";
	char *buf;

	/* An exact-size heap copy lets AddressSanitizer catch any over-read. */
	buf = malloc(9);
	memcpy(buf, text, 9);
	CHECK_INT(jsonreq_decode(buf, 9, "payload", &f, &why, field,
	    sizeof(field)), 0);
	CHECK_INT(f.n, 1);
	CHECK_STR(f.v[0].value, "1");
	fields_free(&f);
	free(buf);

	buf = malloc(8);
	memcpy(buf, text, 8);
	CHECK_INT(jsonreq_decode(buf, 8, "payload", &f, &why, field,
	    sizeof(field)), -1);
	CHECK_STR(why, "the JSON ends too early");
	free(buf);

	/* Cut inside an escape and inside a UTF-8 sequence. */
	buf = malloc(9);
	memcpy(buf, "{\"a\":\"\\u00e9\"}", 9);
	CHECK_INT(jsonreq_decode(buf, 9, NULL, &f, &why, field, sizeof(field)), -1);
	memcpy(buf, "{\"a\":\"\xe2\x82\xac\"}", 8);
	CHECK_INT(jsonreq_decode(buf, 8, NULL, &f, &why, field, sizeof(field)), -1);
	free(buf);
}

static void
test_jsonreq_field_truncated_to_fieldlen(void)
{
	struct pd_fields f = { 0 };
	const char *why;
	char field[4];
	const char *body = "{\"abcdef\":{}}", *utf8 = "{\"a\xc3\xa9z\":{}}";

	CHECK_INT(jsonreq_decode(body, strlen(body), NULL, &f, &why, field,
	    sizeof(field)), -1);
	CHECK_STR(field, "abc");
	/* The cut falls inside "é" (two bytes), so it goes before it. */
	CHECK_INT(jsonreq_decode(utf8, strlen(utf8), NULL, &f, &why, field, 3), -1);
	CHECK_STR(field, "a");
	CHECK_INT(jsonreq_decode(body, strlen(body), NULL, &f, &why, NULL, 0), -1);
}

static void
test_jsonreq_error_empties_list(void)
{
	struct pd_fields f = { 0 };
	const char *why;
	char field[PD_MAX_NAME + 1];
	const char *body = "{\"a\":\"1\",\"b\":[\"2\",\"3\"],\"c\":{}}";

	fields_add(&f, "before", 6, "x", 1, 0);
	CHECK_INT(jsonreq_decode(body, strlen(body), NULL, &f, &why, field,
	    sizeof(field)), -1);
	CHECK_STR(field, "c");
	CHECK_INT(f.n, 0);
	CHECK(f.v == NULL);
}

static const struct unit_test tests[] = {
	UNIT(test_jsonreq_scalars_mapped),
	UNIT(test_jsonreq_keys_kept_in_order),
	UNIT(test_jsonreq_empty_object),
	UNIT(test_jsonreq_url_array_repeats_field),
	UNIT(test_jsonreq_payload_object_kept_as_written),
	UNIT(test_jsonreq_payload_keeps_repeated_and_escaped_keys),
	UNIT(test_jsonreq_payload_array_number_bool_kept_as_written),
	UNIT(test_jsonreq_payload_string_kept_as_is),
	UNIT(test_jsonreq_payload_nested_in_without_raw_key_refused),
	UNIT(test_jsonreq_nested_object_refused_naming_key),
	UNIT(test_jsonreq_array_with_null_or_container_refused),
	UNIT(test_jsonreq_top_level_not_object_refused),
	UNIT(test_jsonreq_trailing_garbage_refused),
	UNIT(test_jsonreq_truncated_refused),
	UNIT(test_jsonreq_not_json_refused),
	UNIT(test_jsonreq_non_json_tokens_refused),
	UNIT(test_jsonreq_integer_beyond_64_bits_refused),
	UNIT(test_jsonreq_payload_numbers_of_any_size_kept_as_written),
	UNIT(test_jsonreq_invalid_utf8_in_value_refused),
	UNIT(test_jsonreq_invalid_utf8_in_key_refused),
	UNIT(test_jsonreq_valid_utf8_kept),
	UNIT(test_jsonreq_unicode_escapes_decoded),
	UNIT(test_jsonreq_unpaired_surrogate_escape_refused),
	UNIT(test_jsonreq_depth_within_limit_accepted),
	UNIT(test_jsonreq_depth_beyond_limit_refused),
	UNIT(test_jsonreq_embedded_nul_refused),
	UNIT(test_jsonreq_duplicate_key_refused),
	UNIT(test_jsonreq_duplicate_key_inside_payload_allowed),
	UNIT(test_jsonreq_bad_keys_refused),
	UNIT(test_jsonreq_too_many_fields_via_array_refused),
	UNIT(test_jsonreq_too_many_keys_refused),
	UNIT(test_jsonreq_reads_only_len_bytes),
	UNIT(test_jsonreq_field_truncated_to_fieldlen),
	UNIT(test_jsonreq_error_empties_list),
};

int
main(void)
{
	return unit_run("jsonreq", tests, UNIT_COUNT(tests));
}
