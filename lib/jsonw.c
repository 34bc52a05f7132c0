/*
 * jsonw.c: JSON text written straight into a growing buffer, for the
 * answers that carry many objects (a receive's messages, an ack's
 * results). Building those as json-c objects and then printing them cost
 * the queue program a fifth of its instructions (callgrind), most of it
 * allocating and freeing a hash table per object.
 *
 * The writer puts the commas itself: a value or key after another in the
 * same object or array is preceded by one. A failed allocation marks the
 * text failed and stops writing; jsonw_text then gives NULL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

void
jsonw_init(struct jsonw *w)
{
	memset(w, 0, sizeof(*w));
}

void
jsonw_free(struct jsonw *w)
{
	free(w->buf);
	jsonw_init(w);
}

/* Room for more bytes after the text (and a NUL); 0, or -1 once failed. */
static int
reserve(struct jsonw *w, size_t more)
{
	size_t want = w->len + more + 1, room;
	char *grown;

	if (w->failed)
		return -1;
	if (want <= w->room)
		return 0;
	room = w->room != 0 ? w->room : 1024;
	while (room < want)
		room *= 2;
	if ((grown = realloc(w->buf, room)) == NULL) {
		w->failed = 1;
		return -1;
	}
	w->buf = grown;
	w->room = room;
	return 0;
}

static void
put(struct jsonw *w, const char *bytes, size_t n)
{
	if (reserve(w, n) != 0)
		return;
	memcpy(w->buf + w->len, bytes, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

/* The comma before a key, or before a value that has no key (in an array,
 * or the top level). */
static void
separate(struct jsonw *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->depth > 0 && w->has_item[w->depth - 1])
		put(w, ",", 1);
	if (w->depth > 0)
		w->has_item[w->depth - 1] = 1;
}

void
jsonw_open(struct jsonw *w, char bracket)
{
	separate(w);
	if (w->depth >= JSONW_MAX_DEPTH) {
		w->failed = 1;            /* a caller's mistake, not input's */
		return;
	}
	put(w, &bracket, 1);
	w->has_item[w->depth++] = 0;
}

void
jsonw_close(struct jsonw *w, char bracket)
{
	if (w->depth == 0) {
		w->failed = 1;
		return;
	}
	w->depth--;
	put(w, &bracket, 1);
}

/* The bytes a JSON string cannot hold as they are: those below 0x20, the
 * quote and the backslash. */
static int
needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

/* A JSON string of n bytes (UTF-8: the bytes at or above 0x80 pass as they
 * are), escaped as RFC 8259 asks, followed by tail (a NUL-terminated
 * piece of JSON such as ":", or ""). Written in place: room for the
 * longest escaping is made first. */
static void
put_string(struct jsonw *w, const char *s, size_t n, const char *tail)
{
	static const char hex[] = "0123456789abcdef";
	size_t tail_len = strlen(tail);
	char *out;

	if (n > (SIZE_MAX - 16) / 6 || reserve(w, 6 * n + 2 + tail_len) != 0) {
		w->failed = 1;
		return;
	}
	out = w->buf + w->len;
	*out++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!needs_escape(c)) {
			*out++ = (char)c;
			continue;
		}
		*out++ = '\\';
		switch (c) {
		case '"': *out++ = '"'; break;
		case '\\': *out++ = '\\'; break;
		case '\b': *out++ = 'b'; break;
		case '\f': *out++ = 'f'; break;
		case '\n': *out++ = 'n'; break;
		case '\r': *out++ = 'r'; break;
		case '\t': *out++ = 't'; break;
		default:
			memcpy(out, "u00", 3);
			out[3] = hex[c >> 4];
			out[4] = hex[c & 15];
			out += 5;
		}
	}
	*out++ = '"';
	memcpy(out, tail, tail_len + 1);
	w->len = (size_t)(out - w->buf) + tail_len;
}

void
jsonw_key_len(struct jsonw *w, const char *key, size_t n)
{
	separate(w);
	put_string(w, key, n, ":");
	w->after_key = 1;
}

void
jsonw_key(struct jsonw *w, const char *key)
{
	jsonw_key_len(w, key, strlen(key));
}

void
jsonw_string_len(struct jsonw *w, const char *s, size_t n)
{
	separate(w);
	put_string(w, s, n, "");
}

void
jsonw_string(struct jsonw *w, const char *s)
{
	if (s == NULL)
		jsonw_null(w);
	else
		jsonw_string_len(w, s, strlen(s));
}

void
jsonw_int(struct jsonw *w, long long v)
{
	char text[24], *p = text + sizeof(text);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	/* Digits from the right: snprintf cost more than the rest of a
	 * number's writing. */
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	separate(w);
	put(w, p, (size_t)(text + sizeof(text) - p));
}

void
jsonw_null(struct jsonw *w)
{
	separate(w);
	put(w, "null", 4);
}

const char *
jsonw_text(const struct jsonw *w, size_t *len)
{
	if (w->failed || w->depth != 0 || w->buf == NULL)
		return NULL;
	*len = w->len;
	return w->buf;
}
