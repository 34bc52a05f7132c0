/* test_form.c: fields.c and form.c, the form body decoder. */
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "request.h"
#include "unit.h"

/* Decodes a NUL-terminated body; returns what form_decode returned. */
static int
decode(const char *body, struct pd_fields *out, const char **why, char *field)
{
	memset(out, 0, sizeof(*out));
	return form_decode(body, strlen(body), out, why, field, PD_MAX_NAME + 1);
}

/* Checks that body is refused with field named as given and nothing kept. */
static void
check_refused(const char *body, const char *want_field)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];
	int before = unit_failed_checks;

	CHECK_INT(decode(body, &f, &why, field), -1);
	CHECK(why != NULL);
	CHECK_STR(field, want_field);
	CHECK_INT(f.n, 0);
	CHECK(f.v == NULL);
	if (unit_failed_checks != before)
		fprintf(stderr, "    (body \"%s\")\n", body);
	fields_free(&f);
}

static void
test_fields_add_copies_and_terminates(void)
{
	struct pd_fields f = { 0 };
	char value[] = { 'a', '\0', 'b' };

	CHECK_INT(fields_add(&f, "name", 4, value, sizeof(value), 1), 0);
	value[0] = 'z';
	CHECK_INT(f.n, 1);
	CHECK_STR(f.v[0].name, "name");
	CHECK_INT(f.v[0].len, 3);
	CHECK(memcmp(f.v[0].value, "a\0b", 4) == 0);
	CHECK_INT(f.v[0].is_json, 1);
	fields_free(&f);
}

static void
test_fields_add_refuses_beyond_limit(void)
{
	struct pd_fields f = { 0 };
	char name[16];
	int i;

	for (i = 0; i < PD_MAX_FIELDS; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		CHECK_INT(fields_add(&f, name, strlen(name), "v", 1, 0), 0);
	}
	CHECK_INT(fields_add(&f, "extra", 5, "v", 1, 0), -1);
	CHECK_INT(f.n, PD_MAX_FIELDS);
	for (i = 0; i < PD_MAX_FIELDS; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		CHECK_STR(f.v[i].name, name);
	}
	fields_free(&f);
}

static void
test_fields_get_and_count(void)
{
	struct pd_fields f = { 0 };

	CHECK(fields_get(&f, "a") == NULL);
	CHECK_INT(fields_count(&f, "a"), 0);
	fields_add(&f, "a", 1, "1", 1, 0);
	fields_add(&f, "b", 1, "2", 1, 0);
	fields_add(&f, "a", 1, "3", 1, 0);
	CHECK_STR(fields_get(&f, "a")->value, "1");
	CHECK_STR(fields_get(&f, "b")->value, "2");
	CHECK(fields_get(&f, "c") == NULL);
	CHECK_INT(fields_count(&f, "a"), 2);
	CHECK_INT(fields_count(&f, "b"), 1);
	CHECK_INT(fields_count(&f, "c"), 0);
	fields_free(&f);
}

static void
test_fields_free_twice_is_safe(void)
{
	struct pd_fields f = { 0 };

	fields_free(&f);
	fields_add(&f, "a", 1, "1", 1, 0);
	fields_free(&f);
	CHECK_INT(f.n, 0);
	CHECK(f.v == NULL);
	fields_free(&f);
	CHECK_INT(fields_add(&f, "b", 1, "2", 1, 0), 0);
	CHECK_STR(fields_get(&f, "b")->value, "2");
	fields_free(&f);
}

static void
test_form_repeated_names_kept_in_order(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("url=a&at=1&url=b&url=c", &f, &why, field), 0);
	CHECK_INT(f.n, 4);
	CHECK_INT(fields_count(&f, "url"), 3);
	CHECK_STR(f.v[0].value, "a");
	CHECK_STR(f.v[1].name, "at");
	CHECK_STR(f.v[2].value, "b");
	CHECK_STR(f.v[3].value, "c");
	CHECK_STR(fields_get(&f, "url")->value, "a");
	CHECK(why == NULL);
	CHECK_STR(field, "");
	fields_free(&f);
}

static void
test_form_plus_decodes_to_space(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("a+b=hello+world+%2B", &f, &why, field), 0);
	CHECK_INT(f.n, 1);
	CHECK_STR(f.v[0].name, "a b");
	CHECK_STR(f.v[0].value, "hello world +");
	fields_free(&f);
}

static void
test_form_hex_escapes_either_case(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("%75rl=%2f%2F%41%c3%A9&x=%26%3d", &f, &why, field), 0);
	CHECK_INT(f.n, 2);
	CHECK_STR(f.v[0].name, "url");
	CHECK_STR(f.v[0].value, "//A\xc3\xa9");
	CHECK_INT(f.v[0].len, 5);
	CHECK_STR(f.v[1].value, "&=");
	fields_free(&f);
}

static void
test_form_double_encoding_decoded_once(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("a=%2541&b=%252B", &f, &why, field), 0);
	CHECK_STR(fields_get(&f, "a")->value, "%41");
	CHECK_STR(fields_get(&f, "b")->value, "%2B");
	fields_free(&f);
}

static void
test_form_malformed_escape_at_end_refused(void)
{
	check_refused("a=%", "a");
	check_refused("a=%4", "a");
	check_refused("a=%zz", "a");
	check_refused("a=1&payload=50%", "payload");
}

static void
test_form_malformed_escape_in_middle_refused(void)
{
	check_refused("a=%zzb&c=1", "a");
	check_refused("a=1&b=x%4&c=3", "b");
	check_refused("a=1&b=x%&c=3", "b");
	check_refused("a=%g1", "a");
	check_refused("a=%1g", "a");
	check_refused("a=100%+sure", "a");
}

static void
test_form_malformed_escape_in_name_refused(void)
{
	check_refused("%zz=1", "");
	check_refused("a=1&b%4=2", "");
	check_refused("%", "");
}

static void
test_form_malformed_escape_why_says_what(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("at=%zz", &f, &why, field), -1);
	CHECK(why != NULL && strstr(why, "%-escape") != NULL);
	CHECK_STR(field, "at");
}

static void
test_form_empty_body(void)
{
	struct pd_fields f = { 0 };
	const char *why = "unset";
	char field[8] = "junk";

	CHECK_INT(form_decode("", 0, &f, &why, field, sizeof(field)), 0);
	CHECK_INT(f.n, 0);
	CHECK(why == NULL);
	CHECK_STR(field, "");
	CHECK_INT(form_decode(NULL, 0, &f, &why, field, sizeof(field)), 0);
	CHECK_INT(f.n, 0);
	fields_free(&f);
}

static void
test_form_empty_segments_skipped(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("&&a=1&", &f, &why, field), 0);
	CHECK_INT(f.n, 1);
	CHECK_STR(f.v[0].name, "a");
	CHECK_STR(f.v[0].value, "1");
	fields_free(&f);
	CHECK_INT(decode("&&&", &f, &why, field), 0);
	CHECK_INT(f.n, 0);
	fields_free(&f);
}

static void
test_form_name_without_equals_is_empty_value(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("flag&a=1&empty=&last", &f, &why, field), 0);
	CHECK_INT(f.n, 4);
	CHECK_STR(f.v[0].name, "flag");
	CHECK_STR(f.v[0].value, "");
	CHECK_INT(f.v[0].len, 0);
	CHECK_STR(f.v[2].name, "empty");
	CHECK_INT(f.v[2].len, 0);
	CHECK_STR(f.v[3].name, "last");
	CHECK_INT(f.v[3].len, 0);
	fields_free(&f);
}

static void
test_form_value_equals_sign_kept(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("a=b=c", &f, &why, field), 0);
	CHECK_STR(f.v[0].name, "a");
	CHECK_STR(f.v[0].value, "b=c");
	fields_free(&f);
}

static void
test_form_value_with_nul_counts_it(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];

	CHECK_INT(decode("payload=x%00y", &f, &why, field), 0);
	CHECK_INT(f.n, 1);
	CHECK_INT(f.v[0].len, 3);
	CHECK(memcmp(f.v[0].value, "x\0y\0", 4) == 0);
	fields_free(&f);
}

static void
test_form_too_many_fields_refused(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1], body[PD_MAX_FIELDS * 4 + 8];
	size_t i;

	body[0] = '\0';
	for (i = 0; i < PD_MAX_FIELDS; i++)
		strcat(body, i ? "&a=1" : "a=1");
	CHECK_INT(decode(body, &f, &why, field), 0);
	CHECK_INT(f.n, PD_MAX_FIELDS);
	fields_free(&f);

	strcat(body, "&a=1");
	CHECK_INT(decode(body, &f, &why, field), -1);
	CHECK_STR(why, "too many fields (at most 64)");
	CHECK_INT(f.n, 0);
	CHECK(f.v == NULL);
}

static void
test_form_name_too_long_refused(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1], body[PD_MAX_NAME + 8];

	memset(body, 'n', PD_MAX_NAME);
	strcpy(body + PD_MAX_NAME, "=1");
	CHECK_INT(decode(body, &f, &why, field), 0);
	CHECK_INT(strlen(f.v[0].name), PD_MAX_NAME);
	fields_free(&f);

	memset(body, 'n', PD_MAX_NAME + 1);
	strcpy(body + PD_MAX_NAME + 1, "=1");
	check_refused(body, "");
}

static void
test_form_bad_names_refused(void)
{
	check_refused("=1", "");
	check_refused("a=1&=2", "");
	check_refused("%00=1", "");
	check_refused("a%0Ab=1", "");
	check_refused("a%7F=1", "");
}

/* Regression: a name that is not UTF-8 was kept, and echoed raw in the
 * error for an unknown field, which made the answer invalid JSON. It is
 * refused, and named with its bad bytes %-escaped. */
static void
test_form_non_utf8_name_refused_and_named_escaped(void)
{
	struct pd_fields f;
	const char *why = NULL;
	char field[3 * PD_MAX_NAME + 1];

	CHECK_INT(decode("url=x&x%FF%FEy=1", &f, &why, field), -1);
	CHECK(why != NULL && strstr(why, "UTF-8") != NULL);
	CHECK_STR(field, "x%FF%FEy");
	CHECK_INT(decode("%C3%A9t%C3=1", &f, &why, field), -1);
	CHECK_STR(field, "\xc3\xa9t%C3");
	/* Well-formed UTF-8 names pass (and are then unknown to schedule). */
	CHECK_INT(decode("%C3%A9t%C3%A9=1", &f, &why, field), 0);
	fields_free(&f);
}

static void
test_form_reads_only_len_bytes(void)
{
	struct pd_fields f = { 0 };
	const char *why;
	char field[PD_MAX_NAME + 1];
	const char *text = "a=1&b=2";
	char *buf;

	/* An exact-size heap copy lets AddressSanitizer catch any over-read. */
	buf = malloc(3);
	memcpy(buf, text, 3);
	CHECK_INT(form_decode(buf, 3, &f, &why, field, sizeof(field)), 0);
	CHECK_INT(f.n, 1);
	CHECK_STR(f.v[0].name, "a");
	CHECK_STR(f.v[0].value, "1");
	CHECK_INT(f.v[0].len, 1);
	fields_free(&f);
	free(buf);

	/* "a=%41" cut after "%4": the escape must not borrow the next byte. */
	buf = malloc(4);
	memcpy(buf, "a=%41", 4);
	CHECK_INT(form_decode(buf, 4, &f, &why, field, sizeof(field)), -1);
	CHECK_STR(field, "a");
	free(buf);

	buf = malloc(2);
	memcpy(buf, "ab=", 2);
	CHECK_INT(form_decode(buf, 2, &f, &why, field, sizeof(field)), 0);
	CHECK_STR(f.v[0].name, "ab");
	CHECK_INT(f.v[0].len, 0);
	fields_free(&f);
	free(buf);
}

static void
test_form_field_truncated_to_fieldlen(void)
{
	struct pd_fields f = { 0 };
	const char *why;
	char field[4];
	const char *body = "abcdef=%zz";

	CHECK_INT(form_decode(body, strlen(body), &f, &why, field, sizeof(field)), -1);
	CHECK_STR(field, "abc");
	CHECK_INT(form_decode(body, strlen(body), &f, &why, NULL, 0), -1);
}

static void
test_form_error_empties_list(void)
{
	struct pd_fields f = { 0 };
	const char *why;
	char field[PD_MAX_NAME + 1];
	const char *body = "a=1&b=2&c=%";

	fields_add(&f, "before", 6, "x", 1, 0);
	CHECK_INT(form_decode(body, strlen(body), &f, &why, field, sizeof(field)), -1);
	CHECK_INT(f.n, 0);
	CHECK(f.v == NULL);
}

static void
test_form_large_body_is_linear(void)
{
	struct pd_fields f;
	const char *why;
	char field[PD_MAX_NAME + 1];
	size_t n = 4 * 1024 * 1024, i;
	char *body;

	/* One 4 MiB value of escapes; quadratic work would take minutes. */
	body = malloc(n + 1);
	memcpy(body, "payload=", 8);
	for (i = 8; i + 3 <= n; i += 3)
		memcpy(body + i, "%41", 3);
	body[i] = '\0';
	CHECK_INT(decode(body, &f, &why, field), 0);
	CHECK_INT(f.v[0].len, (i - 8) / 3);
	fields_free(&f);
	free(body);
}

static const struct unit_test tests[] = {
	UNIT(test_fields_add_copies_and_terminates),
	UNIT(test_fields_add_refuses_beyond_limit),
	UNIT(test_fields_get_and_count),
	UNIT(test_fields_free_twice_is_safe),
	UNIT(test_form_repeated_names_kept_in_order),
	UNIT(test_form_plus_decodes_to_space),
	UNIT(test_form_hex_escapes_either_case),
	UNIT(test_form_double_encoding_decoded_once),
	UNIT(test_form_malformed_escape_at_end_refused),
	UNIT(test_form_malformed_escape_in_middle_refused),
	UNIT(test_form_malformed_escape_in_name_refused),
	UNIT(test_form_malformed_escape_why_says_what),
	UNIT(test_form_empty_body),
	UNIT(test_form_empty_segments_skipped),
	UNIT(test_form_name_without_equals_is_empty_value),
	UNIT(test_form_value_equals_sign_kept),
	UNIT(test_form_value_with_nul_counts_it),
	UNIT(test_form_too_many_fields_refused),
	UNIT(test_form_name_too_long_refused),
	UNIT(test_form_bad_names_refused),
	UNIT(test_form_non_utf8_name_refused_and_named_escaped),
	UNIT(test_form_reads_only_len_bytes),
	UNIT(test_form_field_truncated_to_fieldlen),
	UNIT(test_form_error_empties_list),
	UNIT(test_form_large_body_is_linear),
};

int
main(void)
{
	return unit_run("form", tests, UNIT_COUNT(tests));
}
