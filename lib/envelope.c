/*
 * envelope.c: what a message's HTTP request carries besides its body: the
 * method and the message's own headers (API.md, "More fields of POST
 * /api/schedule": header, headers, method).
 *
 * One stored form serves every reader: the headers as "Name: value" lines
 * joined by '\n' (the value without leading or trailing blanks). Names are
 * HTTP tokens and values hold no CR, LF or NUL, so a line never splits or
 * reads otherwise; delivery sends each line as it is, a receive hands the
 * values to the worker, and status, the list and the page show the names.
 * Values are often credentials: nothing here logs or shows them, and the
 * error sentences never quote them.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"

_Static_assert(PD_MAX_HEADERS == 32 && PD_MAX_HEADER_BYTES == 8192,
    "the error sentences below spell out the limits");

#define WHY_NOT_TOKEN "a header name must be an HTTP token (letters, digits and " \
	"!#$%&'*+-.^_`|~; no spaces, and none before the colon)"

static const char *const method_names[PD_NMETHODS] = {
	"POST", "PUT", "PATCH", "DELETE", "GET"
};

const char *
method_name(enum pd_method m)
{
	return (unsigned)m < PD_NMETHODS ? method_names[m] : "POST";
}

int
method_parse(const char *name, size_t len)
{
	for (int i = 0; i < PD_NMETHODS; i++)
		if (strlen(method_names[i]) == len && memcmp(name, method_names[i], len) == 0)
			return i;
	return -1;
}

/* Whether c may be part of an HTTP token (RFC 9110, 5.6.2: tchar). */
static int
is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/*
 * The names postdate writes itself or that describe the connection or the
 * body's framing: a message setting them would contradict what is sent
 * (Host, Content-Length), smuggle a second request (Transfer-Encoding),
 * speak for a proxy, or forge postdate's own webhook-id and signature.
 * Content-Type has its own field. Expect would make the delivery wait for
 * a 100 that postdate never asks for. A trailing '*' matches any ending.
 */
static const char *const refused_names[] = {
	"Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Upgrade",
	"TE", "Trailer", "Keep-Alive", "Proxy-*", "User-Agent", "webhook-*", "Expect", NULL
};

static int
name_refused(const char *name, size_t len)
{
	for (size_t i = 0; refused_names[i] != NULL; i++) {
		const char *r = refused_names[i];
		size_t n = strlen(r);

		if (r[n - 1] == '*') {
			if (len >= n - 1 && strncasecmp(name, r, n - 1) == 0)
				return 1;
		} else if (len == n && strncasecmp(name, r, n) == 0)
			return 1;
	}
	return 0;
}

/* Whether the value's bytes may go into a header line: anything but
 * control characters, a tab aside (RFC 9110, 5.5: field-vchar, obs-text).
 * CR, LF and NUL above all, which would end the line or the request. */
static int
value_acceptable(const char *value, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

/* The headers being collected, in the stored form. */
struct header_list {
	char *text;               /* "Name: value" lines joined by '\n' */
	size_t len;
	size_t n;
	size_t wire_bytes;        /* as sent: each line and its CRLF */
	size_t name_at[PD_MAX_HEADERS];     /* where each name starts in text, */
	size_t namelens[PD_MAX_HEADERS];    /* for the repeat check */
};

/* Checks one header and appends it. The value's blanks at either end are
 * dropped, as HTTP does when it reads a field. */
static int
header_add(struct header_list *h, const char *name, size_t namelen, const char *value,
           size_t valuelen, const char **why)
{
	size_t at, line;
	char *grown;

	if (namelen == 0) {
		*why = "a header needs a name: give header as \"Name: value\"";
		return -1;
	}
	for (size_t i = 0; i < namelen; i++) {
		if (!is_tchar((unsigned char)name[i])) {
			*why = WHY_NOT_TOKEN;
			return -1;
		}
	}
	if (name_refused(name, namelen)) {
		*why = "this header is postdate's to set, or describes the connection: Host, "
		       "Content-Length, Content-Type (use content_type), Transfer-Encoding, "
		       "Connection, Upgrade, TE, Trailer, Keep-Alive, Proxy-*, User-Agent, "
		       "Expect and webhook-* are refused";
		return -1;
	}
	while (valuelen > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		valuelen--;
	}
	while (valuelen > 0 && (value[valuelen - 1] == ' ' || value[valuelen - 1] == '\t'))
		valuelen--;
	if (!value_acceptable(value, valuelen)) {
		*why = "a header value must not contain control characters (CR, LF, NUL and "
		       "the like); a tab is fine";
		return -1;
	}
	if (h->n == PD_MAX_HEADERS) {
		*why = "at most 32 headers";
		return -1;
	}
	for (size_t i = 0; i < h->n; i++) {
		if (h->namelens[i] == namelen &&
		    strncasecmp(h->text + h->name_at[i], name, namelen) == 0) {
			*why = "a header is given twice (names are compared without case): "
			       "give it once, with the values joined by commas";
			return -1;
		}
	}
	line = namelen + 2 + valuelen;
	if (h->wire_bytes + line + 2 > PD_MAX_HEADER_BYTES) {
		*why = "the headers come to more than 8 KiB (8192 bytes, counted as sent: "
		       "\"Name: value\" and CRLF for each)";
		return -1;
	}
	if ((grown = realloc(h->text, h->len + (h->n > 0) + line + 1)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	h->text = grown;
	at = h->len;
	if (h->n > 0)
		h->text[at++] = '\n';
	memcpy(h->text + at, name, namelen);
	memcpy(h->text + at + namelen, ": ", 2);
	memcpy(h->text + at + namelen + 2, value, valuelen);
	h->len = at + line;
	h->text[h->len] = '\0';
	h->name_at[h->n] = at;
	h->namelens[h->n] = namelen;
	h->n++;
	h->wire_bytes += line + 2;
	return 0;
}

/* How many members the JSON object text has as written: json-c keeps only
 * the last of repeated keys, and a repeat must be refused, not dropped.
 * Sets *nul_in_key when a key holds \u0000, where json-c would cut it
 * short. The text is a valid object (jsonreq.c checked it). */
static size_t
json_members_written(const char *text, int *nul_in_key)
{
	size_t depth = 0, n = 0;
	int expect_key = 0, in_key;

	for (const char *p = text; *p != '\0'; p++) {
		switch (*p) {
		case '{':
		case '[':
			depth++;
			expect_key = *p == '{' && depth == 1;
			break;
		case '}':
		case ']':
			depth--;
			break;
		case ',':
			expect_key = depth == 1;
			break;
		case '"':
			in_key = depth == 1 && expect_key;
			if (in_key) {
				n++;
				expect_key = 0;
			}
			/* Past the string, escapes included. */
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p != '\\' || p[1] == '\0')
					continue;
				if (in_key && strncmp(p + 1, "u0000", 5) == 0)
					*nul_in_key = 1;
				p++;
			}
			if (*p == '\0')
				return n;
			break;
		default:
			break;
		}
	}
	return n;
}

/* The JSON form: an object whose values are strings. */
static int
headers_from_json(struct header_list *h, const struct pd_field *fv, const char **why)
{
	struct json_object *obj;
	int ok = 1, nul_in_key = 0;

	if (!fv->is_json || (obj = json_tokener_parse(fv->value)) == NULL ||
	    !json_object_is_type(obj, json_type_object)) {
		*why = "headers must be a JSON object of strings, {\"Name\": \"value\"} "
		       "(in a form, give header=\"Name: value\" instead)";
		return -1;
	}
	if ((size_t)json_object_object_length(obj) !=
	    json_members_written(fv->value, &nul_in_key)) {
		*why = "a header is given twice: give it once, with the values joined by commas";
		json_object_put(obj);
		return -1;
	}
	if (nul_in_key) {
		*why = WHY_NOT_TOKEN;
		json_object_put(obj);
		return -1;
	}
	json_object_object_foreach(obj, name, value) {
		if (!ok)
			break;
		if (!json_object_is_type(value, json_type_string)) {
			*why = "each value in headers must be a string";
			ok = 0;
		} else if (header_add(h, name, strlen(name), json_object_get_string(value),
		                      (size_t)json_object_get_string_len(value), why) != 0)
			ok = 0;
	}
	json_object_put(obj);
	return ok ? 0 : -1;
}

int
envelope_from_fields(struct pd_envelope *e, const struct pd_fields *f, const char **why,
                     const char **field)
{
	struct header_list h = { 0 };
	const struct pd_field *fv;
	int method;

	memset(e, 0, sizeof(*e));
	e->method = PD_METHOD_POST;
	*field = "method";
	if ((fv = fields_get(f, "method")) != NULL) {
		if (fields_count(f, "method") > 1) {
			*why = "this field may be given only once";
			return -1;
		}
		if (fv->is_json || (method = method_parse(fv->value, fv->len)) < 0) {
			*why = "method must be POST, PUT, PATCH, DELETE or GET (in capitals)";
			return -1;
		}
		e->method = (enum pd_method)method;
	}

	*field = "header";
	if (fields_get(f, "headers") != NULL && fields_get(f, "header") != NULL) {
		*why = "give either header (\"Name: value\", repeatable) or headers (a JSON "
		       "object), not both";
		return -1;
	}
	if ((fv = fields_get(f, "headers")) != NULL) {
		if (fields_count(f, "headers") > 1) {
			*why = "this field may be given only once";
			return -1;
		}
		if (headers_from_json(&h, fv, why) != 0)
			goto bad;
	}
	for (size_t i = 0; i < f->n; i++) {
		const struct pd_field *one = &f->v[i];
		const char *colon;

		if (strcmp(one->name, "header") != 0)
			continue;
		colon = memchr(one->value, ':', one->len);
		if (one->is_json || colon == NULL) {
			*why = "a header must be given as \"Name: value\"";
			goto bad;
		}
		if (header_add(&h, one->value, (size_t)(colon - one->value), colon + 1,
		               one->len - (size_t)(colon - one->value) - 1, why) != 0)
			goto bad;
	}
	e->headers = h.text;
	*field = NULL;
	return 0;
bad:
	free(h.text);
	return -1;
}

int
headers_each(const char *stored, header_fn fn, void *ctx)
{
	const char *p = stored;

	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, "\n");
		const char *colon = memchr(p, ':', len);
		size_t namelen = colon != NULL ? (size_t)(colon - p) : len;
		const char *value = colon != NULL ? colon + 1 : p + len;
		size_t valuelen = (size_t)(p + len - value);

		/* The stored form has one space after the colon. */
		if (valuelen > 0 && *value == ' ') {
			value++;
			valuelen--;
		}
		if (fn(ctx, p, namelen, value, valuelen) != 0)
			return -1;
		p += len + (p[len] == '\n');
	}
	return 0;
}

void
envelope_free(struct pd_envelope *e)
{
	free(e->headers);
	memset(e, 0, sizeof(*e));
}
