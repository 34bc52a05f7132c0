/*
 * jsonreq.c: an application/json request body as a list of fields.
 *
 * json-c checks the structure (brackets, commas, colons, depth) and builds
 * the values. Even in strict mode it lets through what a request must not
 * carry: NaN, Infinity, "1.", raw control bytes and invalid UTF-8 in
 * strings; it turns a lone \u surrogate into U+FFFD, cuts a key at \u0000
 * and keeps only the last of repeated keys. So a second pass over the text
 * (jscan) checks every token strictly and reads the top-level keys as
 * written, and the fields are built in that order from json-c's values.
 * The raw JSON field (the payload) is kept as the client wrote it, since
 * json-c's rewriting would drop repeated keys inside it.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"

_Static_assert(PD_MAX_FIELDS == 64 && PD_MAX_NAME == 64,
    "the error sentences below spell out the limits");

#define WHY_INVALID "the body is not valid JSON"
#define WHY_TOO_MANY "too many fields (at most 64)"
#define WHY_NOMEM "the server ran out of memory"
#define WHY_DEPTH "the JSON is nested too deeply"

struct jscan {
	const unsigned char	*p;
	const unsigned char	*end;
	char			 keys[PD_MAX_FIELDS][PD_MAX_NAME + 1];
	const unsigned char	*value[PD_MAX_FIELDS];	/* each key's value, */
	const unsigned char	*value_end[PD_MAX_FIELDS]; /* as written */
	size_t			 nkeys;
	const char		*why;
	const char		*field;	/* the key being read, or NULL */
	const char		*raw_key; /* the key kept as JSON text, or NULL */
};

/* Whether c is whitespace to JSON (isspace() takes more). */
static int
jscan_isspace(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
jscan_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The four hex digits at p as a number, or -1. */
static long
jscan_hex4(const unsigned char *p, const unsigned char *end)
{
	long	 v = 0;
	int	 i, d;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		if ((d = jscan_hexval(p[i])) < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/*
 * The length of the well-formed UTF-8 sequence of two to four bytes at p,
 * or 0. The second byte's range rules out overlong forms, surrogates and
 * code points above U+10FFFF (RFC 3629, table 3-7 of Unicode).
 */
static size_t
jscan_utf8(const unsigned char *p, const unsigned char *end)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;

	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

int
utf8_valid(const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text, *end = p + len;

	while (p < end) {
		size_t n = *p < 0x80 ? 1 : jscan_utf8(p, end);

		if (n == 0)
			return 0;
		p += n;
	}
	return 1;
}

/*
 * Copies the len bytes at text into out (outlen bytes, NUL-terminated),
 * writing each byte that is not part of well-formed UTF-8 as "%XX", so a
 * name can be shown in an error without making the JSON invalid. Cuts the
 * copy short, at a character boundary, when out is full.
 */
void
utf8_escape_invalid(const char *text, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)text, *end = p + len;
	size_t o = 0;

	if (outlen == 0)
		return;
	while (p < end) {
		size_t n = *p < 0x80 ? 1 : jscan_utf8(p, end);

		if (n == 0) {
			if (o + 3 >= outlen)
				break;
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 0xf];
			p++;
			continue;
		}
		if (o + n >= outlen)
			break;
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = '\0';
}

/* Appends the byte c to out (when not NULL and within cap). */
static void
jscan_byte(char *out, size_t cap, size_t *n, unsigned char c)
{
	if (out != NULL && *n < cap)
		out[*n] = (char)c;
	(*n)++;
}

/* Appends the UTF-8 form of the code point cp to out. */
static void
jscan_put(char *out, size_t cap, size_t *n, unsigned long cp)
{
	if (cp < 0x80)
		jscan_byte(out, cap, n, cp);
	else if (cp < 0x800) {
		jscan_byte(out, cap, n, 0xc0 | cp >> 6);
		jscan_byte(out, cap, n, 0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		jscan_byte(out, cap, n, 0xe0 | cp >> 12);
		jscan_byte(out, cap, n, 0x80 | (cp >> 6 & 0x3f));
		jscan_byte(out, cap, n, 0x80 | (cp & 0x3f));
	} else {
		jscan_byte(out, cap, n, 0xf0 | cp >> 18);
		jscan_byte(out, cap, n, 0x80 | (cp >> 12 & 0x3f));
		jscan_byte(out, cap, n, 0x80 | (cp >> 6 & 0x3f));
		jscan_byte(out, cap, n, 0x80 | (cp & 0x3f));
	}
}

/*
 * Checks the string token whose opening quote is at s->p and moves past
 * it. When out is not NULL, decodes it there (at most cap bytes; *len
 * counts them all). Sets *ctrl when the text holds a control character.
 */
static int
jscan_string(struct jscan *s, char *out, size_t cap, size_t *len, int *ctrl)
{
	const unsigned char	*p = s->p + 1, *end = s->end;
	unsigned long		 cp;
	long			 lo;
	size_t			 n = 0, k;

	*ctrl = 0;
	while (p < end && *p != '"') {
		if (*p < 0x20) {
			s->why = "control characters in JSON strings "
			    "must be escaped";
			return -1;
		}
		if (*p >= 0x80) {
			if ((k = jscan_utf8(p, end)) == 0) {
				s->why = "the JSON contains text that is not "
				    "valid UTF-8";
				return -1;
			}
			for (; k > 0; k--, p++)
				jscan_byte(out, cap, &n, *p);
			continue;
		}
		if (*p != '\\') {
			if (*p == 0x7f)
				*ctrl = 1;
			jscan_byte(out, cap, &n, *p++);
			continue;
		}

		if (end - p < 2) {
			s->why = WHY_INVALID;
			return -1;
		}
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
			cp = p[1];
			break;
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u':
			if ((lo = jscan_hex4(p + 2, end)) < 0) {
				s->why = WHY_INVALID;
				return -1;
			}
			cp = lo;
			p += 4;
			break;
		default:
			s->why = WHY_INVALID;
			return -1;
		}
		p += 2;

		/* A surrogate escape must be a high one, then a low one. */
		if (cp >= 0xd800 && cp <= 0xdfff) {
			if (cp > 0xdbff || end - p < 6 ||
			    p[0] != '\\' || p[1] != 'u' ||
			    (lo = jscan_hex4(p + 2, end)) < 0xdc00 ||
			    lo > 0xdfff) {
				s->why = "the JSON contains an unpaired "
				    "surrogate escape (\\ud800-\\udfff)";
				return -1;
			}
			cp = 0x10000 + ((cp - 0xd800) << 10) +
			    ((unsigned long)lo - 0xdc00);
			p += 6;
		}
		if (cp < 0x20 || cp == 0x7f)
			*ctrl = 1;
		jscan_put(out, cap, &n, cp);
	}
	if (p >= end) {
		s->why = WHY_INVALID;
		return -1;
	}
	s->p = p + 1;
	*len = n;
	return 0;
}

/*
 * Reads a top-level key and records it. The keys are few (a key beyond
 * PD_MAX_FIELDS is refused), so repeats are found by comparing with each.
 */
static int
jscan_key(struct jscan *s)
{
	char	*name;
	size_t	 len, i;
	int	 ctrl;

	s->field = NULL;
	if (s->nkeys == PD_MAX_FIELDS) {
		s->why = WHY_TOO_MANY;
		return -1;
	}
	name = s->keys[s->nkeys];
	if (jscan_string(s, name, PD_MAX_NAME, &len, &ctrl) == -1)
		return -1;
	if (len == 0) {
		s->why = "a field name is empty";
		return -1;
	}
	if (len > PD_MAX_NAME) {
		s->why = "a field name is too long (at most 64 bytes)";
		return -1;
	}
	if (ctrl) {
		s->why = "a field name contains a control character";
		return -1;
	}
	name[len] = '\0';

	for (i = 0; i < s->nkeys; i++) {
		if (strcmp(s->keys[i], name) == 0) {
			s->why = "the field is given more than once";
			s->field = s->keys[i];
			return -1;
		}
	}
	s->nkeys++;
	s->field = name;
	return 0;
}

/* Whether the integer text from p to end fits json-c's 64-bit integers. */
static int
jscan_int_fits(const unsigned char *p, const unsigned char *end)
{
	char	 buf[24];
	size_t	 n = end - p;

	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, p, n);
	buf[n] = '\0';
	errno = 0;
	if (buf[0] == '-')
		(void)strtoll(buf, NULL, 10);
	else
		(void)strtoull(buf, NULL, 10);
	return errno != ERANGE;
}

static int
jscan_digits(const unsigned char **p, const unsigned char *end)
{
	if (*p >= end || **p < '0' || **p > '9')
		return -1;
	while (*p < end && **p >= '0' && **p <= '9')
		(*p)++;
	return 0;
}

/*
 * Checks the number at s->p against the JSON grammar and moves past it.
 * json-c would silently clamp an integer beyond 64 bits, so outside the
 * raw key's value (when in_raw is 0) that is refused rather than read
 * changed. Inside it (the payload) any number is fine: the payload is
 * forwarded as written, never read as numbers.
 */
static int
jscan_number(struct jscan *s, int in_raw)
{
	const unsigned char	*p = s->p, *end = s->end;
	int			 whole = 1;

	if (*p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (jscan_digits(&p, end) == -1)
		goto invalid;
	if (p < end && *p == '.') {
		whole = 0;
		p++;
		if (jscan_digits(&p, end) == -1)
			goto invalid;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		whole = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (jscan_digits(&p, end) == -1)
			goto invalid;
	}
	if (p < end && !jscan_isspace(*p) && *p != ',' && *p != ']' &&
	    *p != '}')
		goto invalid;
	if (whole && !in_raw && !jscan_int_fits(s->p, p)) {
		s->why = "a whole number in the JSON is too large "
		    "(at most 64 bits)";
		return -1;
	}
	s->p = p;
	return 0;
invalid:
	s->why = WHY_INVALID;
	return -1;
}

static int
jscan_literal(struct jscan *s, const char *word)
{
	size_t	 n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
		s->why = WHY_INVALID;
		return -1;
	}
	s->p += n;
	return 0;
}

/*
 * Checks every token of a body that json-c accepted as an object, and
 * that arrays and objects nest at most PD_MAX_JSON_DEPTH deep. The
 * structure is known to be sound, so a string at depth 1 right after '{'
 * or ',' is a top-level key.
 */
static int
jscan_run(struct jscan *s)
{
	size_t	 depth = 0, len;
	int	 expect_key = 0, expect_value = 0, ctrl;

	while (s->p < s->end) {
		if (expect_value && !jscan_isspace(*s->p) && *s->p != ':') {
			s->value[s->nkeys - 1] = s->p;
			expect_value = 0;
		}
		/* A top-level value ends at the ',' or '}' that follows it. */
		if (s->nkeys > 0 && depth == 1 && (*s->p == ',' || *s->p == '}') &&
		    s->value_end[s->nkeys - 1] == NULL) {
			const unsigned char *end = s->p;

			while (end > s->value[s->nkeys - 1] && jscan_isspace(end[-1]))
				end--;
			s->value_end[s->nkeys - 1] = end;
		}
		switch (*s->p) {
		case ' ':
		case '\t':
		case '\n':
		case '\r':
		case ':':
			s->p++;
			break;
		case '{':
		case '[':
			/* No key is named: json-c catches most of these. */
			if (++depth > PD_MAX_JSON_DEPTH) {
				s->why = WHY_DEPTH;
				s->field = NULL;
				return -1;
			}
			expect_key = depth == 1;
			s->p++;
			break;
		case '}':
		case ']':
			depth--;
			s->p++;
			break;
		case ',':
			if (depth == 1)
				expect_key = 1;
			s->p++;
			break;
		case '"':
			if (depth == 1 && expect_key) {
				if (jscan_key(s) == -1)
					return -1;
				expect_key = 0;
				expect_value = 1;
			} else if (jscan_string(s, NULL, 0, &len, &ctrl) == -1)
				return -1;
			break;
		case 't':
			if (jscan_literal(s, "true") == -1)
				return -1;
			break;
		case 'f':
			if (jscan_literal(s, "false") == -1)
				return -1;
			break;
		case 'n':
			if (jscan_literal(s, "null") == -1)
				return -1;
			break;
		default:
			/* Every value after a top-level key is part of that key's. */
			if (jscan_number(s, s->raw_key != NULL && s->nkeys > 0 &&
			    strcmp(s->keys[s->nkeys - 1], s->raw_key) == 0) == -1)
				return -1;
			break;
		}
	}
	return 0;
}

static int
jsonreq_add(struct pd_fields *out, const char *name, const char *value,
    size_t len, int is_json, const char **why)
{
	if (out->n >= PD_MAX_FIELDS) {
		*why = WHY_TOO_MANY;
		return -1;
	}
	if (fields_add(out, name, strlen(name), value, len, is_json) == -1) {
		*why = WHY_NOMEM;
		return -1;
	}
	return 0;
}

/* Adds a string, number or boolean as one field; anything else is refused. */
static int
jsonreq_scalar(struct pd_fields *out, const char *name, struct json_object *v,
    const char **why)
{
	const char	*text;
	size_t		 len;

	switch (json_object_get_type(v)) {
	case json_type_string:
		return jsonreq_add(out, name, json_object_get_string(v),
		    json_object_get_string_len(v), 0, why);
	case json_type_boolean:
		text = json_object_get_boolean(v) ? "true" : "false";
		return jsonreq_add(out, name, text, strlen(text), 0, why);
	case json_type_int:
	case json_type_double:
		/* json-c keeps a double's text; an integer is reprinted. */
		text = json_object_to_json_string_length(v,
		    JSON_C_TO_STRING_PLAIN, &len);
		if (text == NULL) {
			*why = WHY_NOMEM;
			return -1;
		}
		return jsonreq_add(out, name, text, len, 0, why);
	default:
		*why = "the field must be a string, number or boolean, "
		    "or a list of them";
		return -1;
	}
}

/*
 * Adds the fields that the top-level member name: v stands for. raw is its
 * text when it is the raw key's, else NULL; headers is its text in any
 * case, kept when it is the headers object; raw_end ends either.
 */
static int
jsonreq_member(struct pd_fields *out, const char *name, struct json_object *v,
    const unsigned char *raw, const unsigned char *headers,
    const unsigned char *raw_end, const char **why)
{
	size_t		 i, n;

	switch (json_object_get_type(v)) {
	case json_type_null:
		return 0;
	case json_type_string:
		return jsonreq_scalar(out, name, v, why);
	default:
		break;
	}

	if (raw != NULL)
		return jsonreq_add(out, name, (const char *)raw, (size_t)(raw_end - raw), 1, why);

	/* A message's headers, an object of strings: envelope.c reads them
	 * from the text as written, repeated names included. */
	if (json_object_is_type(v, json_type_object) && strcmp(name, PD_HEADERS_KEY) == 0 &&
	    headers != NULL)
		return jsonreq_add(out, name, (const char *)headers,
		    (size_t)(raw_end - headers), 1, why);

	if (!json_object_is_type(v, json_type_array))
		return jsonreq_scalar(out, name, v, why);

	/* A null in a list is refused, not skipped: the list would shift. */
	n = json_object_array_length(v);
	for (i = 0; i < n; i++)
		if (jsonreq_scalar(out, name,
		    json_object_array_get_idx(v, i), why) == -1)
			return -1;
	return 0;
}

/* Copies name into field, cut short at a character boundary if need be. */
static void
jsonreq_set_field(char *field, size_t fieldlen, const char *name)
{
	size_t	 n;

	if (field == NULL || fieldlen == 0)
		return;
	if (name == NULL)
		name = "";
	if ((n = strlen(name)) >= fieldlen) {
		n = fieldlen - 1;
		while (n > 0 && ((unsigned char)name[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(field, name, n);
	field[n] = '\0';
}

/*
 * Decodes a JSON object of len bytes, which need not be NUL-terminated,
 * appending its fields to out in the order of its keys. On failure
 * returns -1 with *why, the key at fault in field ("" if none) and out
 * freed.
 */
int
jsonreq_decode(const char *body, size_t len, const char *raw_json_key,
    struct pd_fields *out, const char **why, char *field, size_t fieldlen)
{
	struct json_tokener	*tok = NULL;
	struct json_object	*top = NULL, *v;
	struct jscan		 s;
	const char		*errfield = NULL;
	size_t			 i;
	int			 raw;

	*why = NULL;
	jsonreq_set_field(field, fieldlen, "");

	/* json-c would end the text at a NUL and leave the rest unread. */
	if (len > 0 && memchr(body, '\0', len) != NULL) {
		*why = "the body contains a NUL byte";
		goto fail;
	}
	for (i = 0; i < len && jscan_isspace(body[i]); i++)
		continue;
	if (i == len || body[i] != '{') {
		*why = "the body must be a JSON object";
		goto fail;
	}
	if (len > INT_MAX) {
		*why = "the body is too large";
		goto fail;
	}

	/*
	 * json-c counts a scalar inside the deepest container as one more
	 * level, hence the + 1; jscan_run counts containers alone.
	 */
	if ((tok = json_tokener_new_ex(PD_MAX_JSON_DEPTH + 1)) == NULL) {
		*why = WHY_NOMEM;
		goto fail;
	}
	json_tokener_set_flags(tok,
	    JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	top = json_tokener_parse_ex(tok, body, (int)len);
	switch (json_tokener_get_error(tok)) {
	case json_tokener_success:
		break;
	case json_tokener_error_depth:
		*why = WHY_DEPTH;
		goto fail;
	case json_tokener_continue:
		*why = "the JSON ends too early";
		goto fail;
	default:
		*why = WHY_INVALID;
		goto fail;
	}
	if (!json_object_is_type(top, json_type_object)) {
		*why = "the body must be a JSON object";
		goto fail;
	}
	for (i = json_tokener_get_parse_end(tok); i < len; i++) {
		if (!jscan_isspace(body[i])) {
			*why = "there is text after the JSON object";
			goto fail;
		}
	}

	memset(&s, 0, sizeof(s));
	s.raw_key = raw_json_key;
	s.p = (const unsigned char *)body;
	s.end = s.p + len;
	if (jscan_run(&s) == -1) {
		*why = s.why;
		errfield = s.field;
		goto fail;
	}

	for (i = 0; i < s.nkeys; i++) {
		if (!json_object_object_get_ex(top, s.keys[i], &v)) {
			*why = WHY_INVALID;
			goto fail;
		}
		raw = raw_json_key != NULL &&
		    strcmp(s.keys[i], raw_json_key) == 0;
		if (jsonreq_member(out, s.keys[i], v, raw ? s.value[i] : NULL,
		    s.value[i], s.value_end[i], why) == -1) {
			errfield = s.keys[i];
			goto fail;
		}
	}

	json_object_put(top);
	json_tokener_free(tok);
	return 0;
fail:
	jsonreq_set_field(field, fieldlen, errfield);
	fields_free(out);
	json_object_put(top);
	if (tok != NULL)
		json_tokener_free(tok);
	return -1;
}
