/*
 * fuzz_form.c: form_decode() (lib/form.c) on arbitrary bodies.
 *
 * Beyond "no crash": a decoded body never yields more than PD_MAX_FIELDS
 * fields, and every name is 1 to PD_MAX_NAME bytes without control bytes;
 * a refused body leaves nothing behind and says why; and re-encoding the
 * fields (every byte as %XX) decodes to exactly the same fields.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "request.h"

/* Appends s (len bytes) to out as %XX escapes; returns the new end. */
static char *
percent_encode(char *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < len; i++) {
		*out++ = '%';
		*out++ = hex[(unsigned char)s[i] >> 4];
		*out++ = hex[(unsigned char)s[i] & 15];
	}
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pd_fields f = { 0 }, again = { 0 };
	const char *why = NULL;
	char field[PD_MAX_NAME + 1], *enc, *p;
	size_t enclen = 0;

	if (form_decode((const char *)data, size, &f, &why, field, sizeof(field)) != 0) {
		assert(why != NULL);
		assert(f.n == 0 && f.v == NULL);
		assert(strlen(field) <= PD_MAX_NAME);
		return 0;
	}
	assert(f.n <= PD_MAX_FIELDS);
	for (size_t i = 0; i < f.n; i++) {
		size_t namelen = strlen(f.v[i].name);

		assert(namelen >= 1 && namelen <= PD_MAX_NAME);
		for (size_t k = 0; k < namelen; k++)
			assert((unsigned char)f.v[i].name[k] >= 0x20 &&
			       (unsigned char)f.v[i].name[k] != 0x7f);
		assert(f.v[i].len <= size);
		assert(f.v[i].value[f.v[i].len] == '\0');
		assert(!f.v[i].is_json);
		enclen += 3 * (namelen + f.v[i].len) + 2;
	}

	/* The round trip. */
	enc = malloc(enclen + 1);
	assert(enc != NULL);
	p = enc;
	for (size_t i = 0; i < f.n; i++) {
		if (i > 0)
			*p++ = '&';
		p = percent_encode(p, f.v[i].name, strlen(f.v[i].name));
		*p++ = '=';
		p = percent_encode(p, f.v[i].value, f.v[i].len);
	}
	assert(form_decode(enc, (size_t)(p - enc), &again, &why, field, sizeof(field)) == 0);
	assert(again.n == f.n);
	for (size_t i = 0; i < f.n; i++) {
		assert(strcmp(again.v[i].name, f.v[i].name) == 0);
		assert(again.v[i].len == f.v[i].len);
		assert(memcmp(again.v[i].value, f.v[i].value, f.v[i].len) == 0);
	}
	free(enc);
	fields_free(&again);
	fields_free(&f);
	return 0;
}
