/*
 * message.c: a message, and how the fields of a schedule request become
 * one. Every field is checked here, before anything reaches the store, so
 * a bad request writes nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "postdate.h"
#include "request.h"

static const char *const state_names[PD_NSTATES] = {
	"pending", "delivering", "delivered", "failed", "cancelled", "expired"
};

const char *
state_name(enum pd_state s)
{
	return (unsigned)s < PD_NSTATES ? state_names[s] : "unknown";
}

int
state_parse(const char *name)
{
	for (int i = 0; i < PD_NSTATES; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

/* Whether text (len bytes of UTF-8) is free of control characters: C0,
 * DEL, and C1 (U+0080-U+009F, encoded as 0xC2 0x80-0x9F). */
static int
text_printable(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
		if (c == 0xc2 && i + 1 < len && (unsigned char)text[i + 1] <= 0x9f)
			return 0;
	}
	return 1;
}

/* Whether text is len bytes of visible ASCII or spaces, what a header value
 * such as Content-Type may safely carry. */
static int
text_header_safe(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c < 0x20 || c > 0x7e)
			return 0;
	}
	return 1;
}

int
url_acceptable(const struct pd_config *cfg, const char *url, size_t len, const char **why)
{
	CURLU *u;
	char *scheme = NULL, *host = NULL;
	int ok = 0;

	if (len == 0) {
		*why = "the URL is empty";
		return -1;
	}
	if (len > PD_MAX_URL) {
		*why = "the URL is longer than 2048 bytes";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];

		if (c <= 0x20 || c >= 0x7f) {
			*why = "the URL contains spaces, control or non-ASCII bytes "
			       "(percent-encode them)";
			return -1;
		}
	}
	u = curl_url();
	if (u == NULL) {
		*why = "out of memory";
		return -1;
	}
	/* libcurl's own parser, so what is accepted here is what it will fetch. */
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		*why = "not a valid absolute http or https URL";
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		*why = "only http and https URLs are allowed";
		goto out;
	}
	if (*host == '\0') {
		*why = "the URL has no host";
		goto out;
	}
	if (target_host_allowed(cfg, host, why) != 0)
		goto out;
	ok = 1;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok ? 0 : -1;
}

/* Strict whole number within [min, max]: digits only. */
static int
parse_int_field(const struct pd_field *f, int min, int max, int *out)
{
	long v = 0;

	if (f->len == 0 || f->len > 9)
		return -1;
	for (size_t i = 0; i < f->len; i++) {
		if (f->value[i] < '0' || f->value[i] > '9')
			return -1;
		v = v * 10 + (f->value[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static const char *const schedule_fields[] = {
	"url", "at", "delay", "tz", "payload", "content_type", "callback",
	"max_attempts", "timeout", "idempotency_key", NULL
};

/* Unknown and repeated fields are errors, so a typo is never ignored. */
static int
check_field_names(const struct pd_fields *f, const char **why, const char **field)
{
	for (size_t i = 0; i < f->n; i++) {
		const char *name = f->v[i].name;
		size_t k;

		for (k = 0; schedule_fields[k] != NULL; k++)
			if (strcmp(name, schedule_fields[k]) == 0)
				break;
		if (schedule_fields[k] == NULL) {
			*why = "unknown field";
			*field = name;
			return -1;
		}
		if (strcmp(name, "url") != 0 && fields_count(f, name) > 1) {
			*why = "this field may be given only once";
			*field = name;
			return -1;
		}
		if (f->v[i].is_json && strcmp(name, "payload") != 0) {
			*why = "this field must be a string";
			*field = name;
			return -1;
		}
		/* The payload is forwarded as it is and may be any bytes; every
		 * other field is text that status and the list show as JSON. */
		if (strcmp(name, "payload") != 0 && !utf8_valid(f->v[i].value, f->v[i].len)) {
			*why = "this field must be UTF-8 text";
			*field = name;
			return -1;
		}
	}
	return 0;
}

/* The pool: every url field, checked, joined one per line. */
static int
collect_urls(struct pd_message *m, const struct pd_fields *f, const struct pd_config *cfg,
             const char **why)
{
	size_t n = fields_count(f, "url"), total = 0;
	char *p;

	if (n == 0) {
		*why = "url is required: the target to deliver to";
		return -1;
	}
	if (n > PD_MAX_URLS) {
		*why = "at most 16 target URLs";
		return -1;
	}
	for (size_t i = 0; i < f->n; i++) {
		if (strcmp(f->v[i].name, "url") != 0)
			continue;
		if (url_acceptable(cfg, f->v[i].value, f->v[i].len, why) != 0)
			return -1;
		total += f->v[i].len + 1;
	}
	m->urls = p = malloc(total);
	if (p == NULL) {
		*why = "out of memory";
		return -1;
	}
	for (size_t i = 0; i < f->n; i++) {
		if (strcmp(f->v[i].name, "url") != 0)
			continue;
		if (p != m->urls)
			*p++ = '\n';
		memcpy(p, f->v[i].value, f->v[i].len);
		p += f->v[i].len;
	}
	*p = '\0';
	return 0;
}

/* When: `at` (with `tz`), or `delay`, or now. A time in the past means now. */
static int
resolve_due(struct pd_message *m, const struct pd_fields *f, pd_ms now,
            const char **why, const char **field)
{
	const struct pd_field *at = fields_get(f, "at");
	const struct pd_field *delay = fields_get(f, "delay");
	const struct pd_field *tz = fields_get(f, "tz");
	pd_ms t;

	m->due = now;
	if (at != NULL && delay != NULL) {
		*why = "give either at or delay, not both";
		*field = "delay";
		return -1;
	}
	if (tz != NULL && at == NULL) {
		*why = "tz applies only together with at";
		*field = "tz";
		return -1;
	}
	if (tz != NULL && (tz->len == 0 || strlen(tz->value) != tz->len ||
	    !timezone_exists(tz->value))) {
		*why = "not a time zone known to this system (use an IANA name such as Europe/Berlin)";
		*field = "tz";
		return -1;
	}
	if (at != NULL) {
		if (strlen(at->value) != at->len) {
			*why = "not a valid time";
			*field = "at";
			return -1;
		}
		if (timeparse_at(at->value, tz != NULL ? tz->value : NULL, &t, why) != 0) {
			*field = "at";
			return -1;
		}
		if (t > now)
			m->due = t;
	}
	if (delay != NULL) {
		if (strlen(delay->value) != delay->len ||
		    timeparse_duration(delay->value, &t, why) != 0) {
			if (strlen(delay->value) != delay->len)
				*why = "not a valid duration";
			*field = "delay";
			return -1;
		}
		m->due = now + t;
	}
	return 0;
}

static int
copy_text(char **slot, const struct pd_field *fv)
{
	*slot = malloc(fv->len + 1);
	if (*slot == NULL)
		return -1;
	memcpy(*slot, fv->value, fv->len + 1);
	return 0;
}

int
message_from_fields(struct pd_message *m, const struct pd_fields *f,
                    const struct pd_config *cfg, pd_ms now,
                    const char **why, const char **field)
{
	const struct pd_field *fv;

	memset(m, 0, sizeof(*m));
	m->state = PD_PENDING;
	m->max_attempts = cfg->default_max_attempts;
	m->timeout = cfg->default_timeout;

	if (check_field_names(f, why, field) != 0)
		goto bad;
	*field = "url";
	if (collect_urls(m, f, cfg, why) != 0)
		goto bad;
	if (resolve_due(m, f, now, why, field) != 0)
		goto bad;
	m->next_attempt = m->due;

	*field = "payload";
	fv = fields_get(f, "payload");
	m->payload = malloc(fv != NULL ? fv->len + 1 : 1);
	if (m->payload == NULL) {
		*why = "out of memory";
		goto bad;
	}
	if (fv != NULL) {
		memcpy(m->payload, fv->value, fv->len + 1);
		m->payload_len = fv->len;
	} else
		m->payload[0] = '\0';

	*field = "content_type";
	if ((fv = fields_get(f, "content_type")) != NULL) {
		/* It becomes a request header: printable ASCII only. */
		if (fv->len == 0 || fv->len > PD_MAX_CONTENT_TYPE ||
		    !text_header_safe(fv->value, fv->len)) {
			*why = "content_type must be 1 to 255 printable ASCII characters";
			goto bad;
		}
		if (copy_text(&m->content_type, fv) != 0)
			goto oom;
	} else {
		const struct pd_field *payload = fields_get(f, "payload");
		const char *type = payload != NULL && payload->is_json ?
		    "application/json" : "text/plain; charset=utf-8";

		if ((m->content_type = strdup(type)) == NULL)
			goto oom;
	}

	*field = "callback";
	if ((fv = fields_get(f, "callback")) != NULL) {
		if (url_acceptable(cfg, fv->value, fv->len, why) != 0)
			goto bad;
		if (copy_text(&m->callback, fv) != 0)
			goto oom;
	}

	*field = "max_attempts";
	if ((fv = fields_get(f, "max_attempts")) != NULL &&
	    parse_int_field(fv, 1, 100, &m->max_attempts) != 0) {
		*why = "max_attempts must be a whole number from 1 to 100";
		goto bad;
	}
	*field = "timeout";
	if ((fv = fields_get(f, "timeout")) != NULL &&
	    parse_int_field(fv, 1, 300, &m->timeout) != 0) {
		*why = "timeout must be a whole number of seconds from 1 to 300";
		goto bad;
	}

	*field = "idempotency_key";
	if ((fv = fields_get(f, "idempotency_key")) != NULL) {
		if (fv->len == 0 || fv->len > PD_MAX_IDEMPOTENCY_KEY ||
		    !text_printable(fv->value, fv->len)) {
			*why = "idempotency_key must be 1 to 200 bytes without control characters";
			goto bad;
		}
		if (copy_text(&m->idempotency_key, fv) != 0)
			goto oom;
	}
	*field = NULL;
	return 0;
oom:
	*why = "out of memory";
bad:
	message_free(m);
	return -1;
}

void
message_free(struct pd_message *m)
{
	free(m->urls);
	free(m->payload);
	free(m->content_type);
	free(m->callback);
	free(m->queue);
	free(m->idempotency_key);
	free(m->delivered_to);
	free(m->report_of);
	free(m->report);
	memset(m, 0, sizeof(*m));
}
