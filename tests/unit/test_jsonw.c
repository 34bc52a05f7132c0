/* test_jsonw.c: JSON text written as it goes (jsonw.c), read back by
 * json-c as a client would. */
#include <limits.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "unit.h"

/* The text w wrote, parsed; NULL when it is not one JSON value. */
static json_object *
parsed(const struct jsonw *w)
{
	size_t len;
	const char *text = jsonw_text(w, &len);

	return text != NULL && strlen(text) == len ? json_tokener_parse(text) : NULL;
}

static void
test_commas_separate_keys_values_and_nested_containers(void)
{
	struct jsonw w;

	jsonw_init(&w);
	jsonw_open(&w, '{');
	jsonw_key(&w, "a");
	jsonw_int(&w, -12);
	jsonw_key(&w, "list");
	jsonw_open(&w, '[');
	jsonw_open(&w, '{');
	jsonw_close(&w, '}');
	jsonw_string(&w, "x");
	jsonw_null(&w);
	jsonw_open(&w, '[');
	jsonw_close(&w, ']');
	jsonw_close(&w, ']');
	jsonw_key(&w, "none");
	jsonw_string(&w, NULL);
	jsonw_key(&w, "ends");
	jsonw_open(&w, '[');
	jsonw_int(&w, LLONG_MIN);
	jsonw_int(&w, 0);
	jsonw_int(&w, LLONG_MAX);
	jsonw_close(&w, ']');
	jsonw_close(&w, '}');
	CHECK_STR(jsonw_text(&w, &(size_t){ 0 }),
	          "{\"a\":-12,\"list\":[{},\"x\",null,[]],\"none\":null,"
	          "\"ends\":[-9223372036854775808,0,9223372036854775807]}");
	jsonw_free(&w);
}

static void
test_quotes_backslashes_and_control_bytes_are_escaped_and_utf8_kept(void)
{
	/* Every byte below 0x20, then what must be escaped, then UTF-8. */
	char text[64];
	size_t n = 0;
	struct jsonw w;
	json_object *o, *v;

	for (int c = 1; c < 0x20; c++)
		text[n++] = (char)c;
	memcpy(text + n, "\"\\/\x7f caf\xc3\xa9 \xe2\x82\xac", 15);
	n += 15;
	jsonw_init(&w);
	jsonw_open(&w, '{');
	jsonw_key(&w, "k\"ey");
	jsonw_string_len(&w, text, n);
	jsonw_key(&w, "nul");
	jsonw_string_len(&w, "a\0b", 3);
	jsonw_close(&w, '}');
	o = parsed(&w);
	CHECK(o != NULL);
	CHECK(json_object_object_get_ex(o, "k\"ey", &v));
	CHECK_INT(json_object_get_string_len(v), n);
	CHECK(memcmp(json_object_get_string(v), text, n) == 0);
	CHECK(json_object_object_get_ex(o, "nul", &v));
	CHECK_INT(json_object_get_string_len(v), 3);
	CHECK(memcmp(json_object_get_string(v), "a\0b", 3) == 0);
	CHECK(strstr(jsonw_text(&w, &(size_t){ 0 }), "\\n\\u000b\\f\\r") != NULL);
	json_object_put(o);
	jsonw_free(&w);
}

static void
test_a_long_text_grows_the_buffer(void)
{
	struct jsonw w;
	json_object *o;

	jsonw_init(&w);
	jsonw_open(&w, '[');
	for (int i = 0; i < 5000; i++)
		jsonw_int(&w, i);
	jsonw_close(&w, ']');
	o = parsed(&w);
	CHECK(o != NULL && json_object_array_length(o) == 5000);
	CHECK(o != NULL && json_object_get_int(json_object_array_get_idx(o, 4999)) == 4999);
	json_object_put(o);
	jsonw_free(&w);
}

static void
test_an_unclosed_or_overclosed_text_gives_no_text(void)
{
	struct jsonw w;
	size_t len;

	jsonw_init(&w);
	jsonw_open(&w, '{');
	CHECK(jsonw_text(&w, &len) == NULL);
	jsonw_close(&w, '}');
	CHECK(jsonw_text(&w, &len) != NULL);
	jsonw_close(&w, '}');
	CHECK(jsonw_text(&w, &len) == NULL);
	jsonw_free(&w);

	jsonw_init(&w);
	for (int i = 0; i < JSONW_MAX_DEPTH + 1; i++)
		jsonw_open(&w, '[');
	for (int i = 0; i < JSONW_MAX_DEPTH + 1; i++)
		jsonw_close(&w, ']');
	CHECK(jsonw_text(&w, &len) == NULL);
	jsonw_free(&w);
}

static const struct unit_test tests[] = {
	UNIT(test_commas_separate_keys_values_and_nested_containers),
	UNIT(test_quotes_backslashes_and_control_bytes_are_escaped_and_utf8_kept),
	UNIT(test_a_long_text_grows_the_buffer),
	UNIT(test_an_unclosed_or_overclosed_text_gives_no_text),
};

int
main(void)
{
	return unit_run("jsonw", tests, UNIT_COUNT(tests));
}
