/*
 * fuzz_jsonreq.c: jsonreq_decode() (lib/jsonreq.c) on arbitrary bodies,
 * with "payload" as the key kept as JSON text (as cgi-bin/schedule has it).
 *
 * Beyond "no crash": never more than PD_MAX_FIELDS fields; names are 1 to
 * PD_MAX_NAME bytes without control bytes; values are valid UTF-8; only
 * "payload" (and a "headers" object) is ever kept as JSON, and then as
 * JSON that parses, byte for byte as the body had it; a refused body
 * leaves nothing behind; and the fields, written back as a JSON object
 * (repeated names as an array), decode to the same fields (the payload to
 * the same JSON). The headers that envelope_from_fields accepts from them
 * are at most PD_MAX_HEADERS lines of a token, ": " and a value without
 * CR, LF or other control bytes but tabs, PD_MAX_HEADER_BYTES in all.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"

/* The fields as a JSON object: json-c parses the payload's text again. */
static struct json_object *
fields_to_json(const struct pd_fields *f)
{
	struct json_object *top = json_object_new_object(), *list = NULL;

	assert(top != NULL);
	for (size_t i = 0; i < f->n; i++) {
		const struct pd_field *v = &f->v[i];
		struct json_object *value;

		if (v->is_json)
			value = json_tokener_parse(v->value);
		else
			value = json_object_new_string_len(v->value, (int)v->len);
		assert(value != NULL);
		/* The fields of one array are next to each other. */
		if (i > 0 && strcmp(f->v[i - 1].name, v->name) == 0) {
			if (list == NULL) {
				struct json_object *first = NULL;

				list = json_object_new_array();
				assert(list != NULL);
				json_object_object_get_ex(top, v->name, &first);
				json_object_array_add(list, json_object_get(first));
				json_object_object_add(top, v->name, list);
			}
			json_object_array_add(list, value);
			continue;
		}
		list = NULL;
		json_object_object_add(top, v->name, value);
	}
	return top;
}

/* Whether two JSON texts parse to values that json-c writes out alike. */
static int
same_json(const char *a, const char *b)
{
	struct json_object *ja = json_tokener_parse(a), *jb = json_tokener_parse(b);
	int same = ja != NULL && jb != NULL &&
	    strcmp(json_object_to_json_string_ext(ja, JSON_C_TO_STRING_PLAIN),
	           json_object_to_json_string_ext(jb, JSON_C_TO_STRING_PLAIN)) == 0;

	json_object_put(ja);
	json_object_put(jb);
	return same;
}

static int
check_header(void *ctx, const char *name, size_t namelen, const char *value, size_t valuelen)
{
	size_t *wire = ctx;

	assert(namelen >= 1);
	for (size_t i = 0; i < namelen; i++)
		assert(name[i] > 0x20 && name[i] < 0x7f && name[i] != ':');
	for (size_t i = 0; i < valuelen; i++)
		assert((unsigned char)value[i] >= 0x20 || value[i] == '\t');
	assert(valuelen == 0 || (value[0] != ' ' && value[valuelen - 1] != ' '));
	*wire += namelen + 2 + valuelen + 2;
	return 0;
}

/* What envelope_from_fields makes of the fields, when it accepts them. */
static void
check_envelope(const struct pd_fields *f)
{
	struct pd_envelope e;
	const char *why = NULL, *field = NULL;
	size_t wire = 0, lines = 0;

	if (envelope_from_fields(&e, f, &why, &field) != 0) {
		assert(why != NULL && field != NULL);
		assert(strcmp(field, "header") == 0 || strcmp(field, "method") == 0);
		return;
	}
	assert((unsigned)e.method < PD_NMETHODS);
	if (e.headers != NULL) {
		assert(strchr(e.headers, '\r') == NULL);
		lines = 1;
		for (const char *p = e.headers; (p = strchr(p, '\n')) != NULL; p++)
			lines++;
	}
	assert(headers_each(e.headers, check_header, &wire) == 0);
	assert(lines <= PD_MAX_HEADERS && wire <= PD_MAX_HEADER_BYTES);
	envelope_free(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pd_fields f = { 0 }, again = { 0 };
	struct json_object *back;
	const char *why = NULL, *text;
	char field[PD_MAX_NAME + 1];
	size_t len;

	if (jsonreq_decode((const char *)data, size, "payload", &f, &why, field,
	                   sizeof(field)) != 0) {
		assert(why != NULL);
		assert(f.n == 0 && f.v == NULL);
		assert(strlen(field) <= PD_MAX_NAME);
		return 0;
	}
	assert(f.n <= PD_MAX_FIELDS);
	for (size_t i = 0; i < f.n; i++) {
		const struct pd_field *v = &f.v[i];
		size_t namelen = strlen(v->name);

		assert(namelen >= 1 && namelen <= PD_MAX_NAME);
		for (size_t k = 0; k < namelen; k++)
			assert((unsigned char)v->name[k] >= 0x20 && (unsigned char)v->name[k] != 0x7f);
		assert(v->value[v->len] == '\0');
		assert(utf8_valid(v->value, v->len));
		if (v->is_json) {
			struct json_object *parsed = json_tokener_parse(v->value);

			/* The payload, or a headers object (envelope.c reads it). */
			assert(strcmp(v->name, "payload") == 0 || strcmp(v->name, PD_HEADERS_KEY) == 0);
			assert(parsed != NULL);
			json_object_put(parsed);
			/* Kept exactly as the client wrote it. */
			assert(memmem(data, size, v->value, v->len) != NULL);
		}
	}

	check_envelope(&f);

	/* The round trip. */
	back = fields_to_json(&f);
	text = json_object_to_json_string_length(back, JSON_C_TO_STRING_PLAIN, &len);
	assert(text != NULL);
	assert(jsonreq_decode(text, len, "payload", &again, &why, field, sizeof(field)) == 0);
	assert(again.n == f.n);
	for (size_t i = 0; i < f.n; i++) {
		assert(strcmp(again.v[i].name, f.v[i].name) == 0);
		assert(again.v[i].is_json == f.v[i].is_json);
		if (f.v[i].is_json) {
			/* Written out again by json-c: the same JSON, compacted. */
			assert(same_json(again.v[i].value, f.v[i].value));
			continue;
		}
		assert(again.v[i].len == f.v[i].len);
		assert(memcmp(again.v[i].value, f.v[i].value, f.v[i].len) == 0);
	}
	json_object_put(back);
	fields_free(&again);
	fields_free(&f);
	return 0;
}
