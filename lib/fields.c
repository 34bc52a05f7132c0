/*
 * fields.c: the list of name/value fields that a request body decodes to.
 *
 * The list has no capacity member: the array always holds room for the
 * smallest power of two (at least FIELDS_MIN) not below n, so it is full
 * exactly when n is zero or such a power, and doubles then.
 */
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "request.h"

#define FIELDS_MIN 4

/* Returns a malloc'd NUL-terminated copy of the len bytes at p. */
static char *
fields_copy(const char *p, size_t len)
{
	char	*s;

	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	if (len > 0)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/*
 * Appends a copy of name and value (len bytes, NUL-terminated in the copy).
 * Returns -1 when PD_MAX_FIELDS are already taken or memory runs out; the
 * list is unchanged then.
 */
int
fields_add(struct pd_fields *f, const char *name, size_t namelen,
    const char *value, size_t len, int is_json)
{
	struct pd_field	*v;
	char		*n, *val;
	size_t		 cap;

	if (f->n >= PD_MAX_FIELDS)
		return -1;

	if (f->n == 0 || (f->n >= FIELDS_MIN && (f->n & (f->n - 1)) == 0)) {
		cap = f->n == 0 ? FIELDS_MIN : f->n * 2;
		if ((v = realloc(f->v, cap * sizeof(*v))) == NULL)
			return -1;
		f->v = v;
	}

	if ((n = fields_copy(name, namelen)) == NULL)
		return -1;
	if ((val = fields_copy(value, len)) == NULL) {
		free(n);
		return -1;
	}
	f->v[f->n].name = n;
	f->v[f->n].value = val;
	f->v[f->n].len = len;
	f->v[f->n].is_json = is_json;
	f->n++;
	return 0;
}

/* The first field called name, or NULL. */
const struct pd_field *
fields_get(const struct pd_fields *f, const char *name)
{
	size_t	 i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->v[i].name, name) == 0)
			return &f->v[i];
	return NULL;
}

/* How many fields are called name. */
size_t
fields_count(const struct pd_fields *f, const char *name)
{
	size_t	 i, count = 0;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->v[i].name, name) == 0)
			count++;
	return count;
}

/* Frees every field and leaves f empty; f may already be empty. */
void
fields_free(struct pd_fields *f)
{
	size_t	 i;

	if (f == NULL)
		return;
	for (i = 0; i < f->n; i++) {
		free(f->v[i].name);
		free(f->v[i].value);
	}
	free(f->v);
	f->v = NULL;
	f->n = 0;
}
