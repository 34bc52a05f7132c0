/*
 * form.c: application/x-www-form-urlencoded bodies and query strings.
 */
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "request.h"

_Static_assert(PD_MAX_FIELDS == 64 && PD_MAX_NAME == 64,
    "the error sentences below spell out the limits");

/* The value of the hex digit c, or -1. */
static int
form_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes the n bytes at s ('+' and %XX) into dst, which has room for n
 * bytes, and sets *dstlen. Returns -1 on a '%' without two hex digits.
 */
static int
form_unescape(const char *s, size_t n, char *dst, size_t *dstlen)
{
	size_t	 i, o = 0;
	int	 hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			dst[o++] = ' ';
		else if (s[i] != '%')
			dst[o++] = s[i];
		else {
			if (n - i < 3 ||
			    (hi = form_hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = form_hexval((unsigned char)s[i + 2])) < 0)
				return -1;
			dst[o++] = (char)(hi << 4 | lo);
			i += 2;
		}
	}
	*dstlen = o;
	return 0;
}

/* Copies name into field, cut short at a character boundary if need be. */
static void
form_set_field(char *field, size_t fieldlen, const char *name, size_t namelen)
{
	if (field == NULL || fieldlen == 0)
		return;
	if (namelen >= fieldlen) {
		namelen = fieldlen - 1;
		while (namelen > 0 &&
		    ((unsigned char)name[namelen] & 0xc0) == 0x80)
			namelen--;
	}
	if (namelen > 0)
		memcpy(field, name, namelen);
	field[namelen] = '\0';
}

/*
 * Decodes a form body (or query string) of len bytes, which need not be
 * NUL-terminated, appending its fields to out in order. On failure returns
 * -1 with *why, the offending name in field ("" if none is known) and out
 * freed, so that nothing half-decoded is left.
 */
int
form_decode(const char *body, size_t len, struct pd_fields *out,
    const char **why, char *field, size_t fieldlen)
{
	const char	*p, *end, *seg, *seg_end, *amp, *eq;
	char		*buf = NULL;
	char		 name[PD_MAX_NAME + 1];
	size_t		 namelen, vallen, i;

	*why = NULL;
	form_set_field(field, fieldlen, "", 0);
	if (len == 0)
		return 0;

	/* One scratch buffer for every segment: decoding never grows text. */
	if ((buf = malloc(len)) == NULL) {
		*why = "the server ran out of memory";
		goto fail;
	}

	p = body;
	end = body + len;
	while (p < end) {
		seg = p;
		amp = memchr(seg, '&', end - seg);
		seg_end = amp != NULL ? amp : end;
		p = amp != NULL ? amp + 1 : end;
		if (seg_end == seg)
			continue;
		eq = memchr(seg, '=', seg_end - seg);

		if (form_unescape(seg, (eq != NULL ? eq : seg_end) - seg,
		    buf, &namelen) == -1) {
			*why = "a field name has a malformed %-escape "
			    "(a % must be followed by two hex digits)";
			goto fail;
		}
		if (namelen == 0) {
			*why = "a field name is empty";
			goto fail;
		}
		if (namelen > PD_MAX_NAME) {
			*why = "a field name is too long (at most 64 bytes)";
			goto fail;
		}
		for (i = 0; i < namelen; i++) {
			if ((unsigned char)buf[i] < 0x20 ||
			    (unsigned char)buf[i] == 0x7f) {
				*why = "a field name contains a control "
				    "character";
				goto fail;
			}
		}
		/* Shown %-escaped: the raw bytes would make the error invalid JSON. */
		if (!utf8_valid(buf, namelen)) {
			*why = "a field name is not valid UTF-8";
			if (field != NULL && fieldlen > 0)
				utf8_escape_invalid(buf, namelen, field, fieldlen);
			goto fail;
		}
		memcpy(name, buf, namelen);
		name[namelen] = '\0';

		vallen = 0;
		if (eq != NULL && form_unescape(eq + 1, seg_end - (eq + 1),
		    buf, &vallen) == -1) {
			*why = "the field has a malformed %-escape "
			    "(a % must be followed by two hex digits)";
			form_set_field(field, fieldlen, name, namelen);
			goto fail;
		}

		if (out->n >= PD_MAX_FIELDS) {
			*why = "too many fields (at most 64)";
			goto fail;
		}
		if (fields_add(out, name, namelen, buf, vallen, 0) == -1) {
			*why = "the server ran out of memory";
			goto fail;
		}
	}

	free(buf);
	return 0;
fail:
	free(buf);
	fields_free(out);
	return -1;
}
