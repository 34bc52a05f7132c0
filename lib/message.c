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
	char *scheme = NULL, *host = NULL, *port = NULL;
	unsigned long port_number;
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
	/* The port as it will be connected to: the scheme's when none is written. */
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    (port_number = strtoul(port, NULL, 10)) == 0) {
		*why = "not a valid absolute http or https URL";
		goto out;
	}
	if (target_port_refused(cfg, (unsigned)port_number) != NULL) {
		/* Per thread: schedule serves requests in several. */
		static _Thread_local char sentence[160];

		snprintf(sentence, sizeof(sentence), "the port %lu is one postdate refuses unless "
		         "allow_ports includes it (by default 80, 443 and 1024-65535)", port_number);
		*why = sentence;
		goto out;
	}
	ok = 1;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return ok ? 0 : -1;
}

/* Strict whole number within [min, max]: digits only, after a '-' when
 * min is negative; at most nine digits, so it cannot overflow. */
static int
parse_int_field(const struct pd_field *f, int min, int max, int *out)
{
	const char *p = f->value;
	size_t ndigits = f->len;
	long v = 0;
	int negative = 0;

	if (min < 0 && ndigits > 0 && *p == '-') {
		negative = 1;
		p++;
		ndigits--;
	}
	if (ndigits == 0 || ndigits > 9)
		return -1;
	for (size_t i = 0; i < ndigits; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	if (negative)
		v = -v;
	if (v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static const char *const schedule_fields[] = {
	"url", "queue", "topic", "at", "delay", "tz", "ttl", "expires", "priority", "payload",
	"content_type", "callback", "max_attempts", "timeout", "idempotency_key", "method",
	"header", "headers", NULL
};

static const char *const subscribe_fields[] = {
	"topic", "name", "url", "queue", "callback", "max_attempts", "timeout", "method", "header",
	"headers", NULL
};

/* Unknown and repeated fields are errors, so a typo is never ignored. */
static int
check_field_names(const struct pd_fields *f, const char *const known[], const char **why,
                  const char **field)
{
	for (size_t i = 0; i < f->n; i++) {
		const char *name = f->v[i].name;
		size_t k;

		for (k = 0; known[k] != NULL; k++)
			if (strcmp(name, known[k]) == 0)
				break;
		if (known[k] == NULL) {
			*why = "unknown field";
			*field = name;
			return -1;
		}
		if (strcmp(name, "url") != 0 && strcmp(name, "header") != 0 &&
		    fields_count(f, name) > 1) {
			*why = "this field may be given only once";
			*field = name;
			return -1;
		}
		/* The headers object is JSON text too: envelope.c reads it. */
		if (f->v[i].is_json && strcmp(name, "payload") != 0 &&
		    strcmp(name, PD_HEADERS_KEY) != 0) {
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
		*why = "a destination is required: url (a target to deliver to) or queue";
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

/* A queue name as API.md writes it: [A-Za-z0-9_.-]{1,64}. It appears in
 * URLs and on the page, so nothing else is let through. */
int
queue_name_acceptable(const char *name, size_t len)
{
	if (len == 0 || len > PD_MAX_QUEUE_NAME)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

/* Copies a name field ([A-Za-z0-9_.-]{1,64}) into out. */
static int
copy_name(char out[PD_MAX_QUEUE_NAME + 1], const struct pd_field *fv, const char **why)
{
	if (fv == NULL) {
		*why = "this field is required";
		return -1;
	}
	if (!queue_name_acceptable(fv->value, fv->len)) {
		*why = "a name must be 1 to 64 of the characters A-Z, a-z, 0-9, '_', '.' and '-'";
		return -1;
	}
	memcpy(out, fv->value, fv->len + 1);
	return 0;
}

/* A topic's message: no destination of its own (urls ""), its copies take
 * their subscriptions'. What only a destination decides is refused. */
static int
resolve_topic(struct pd_message *m, const struct pd_fields *f, const char **why,
              const char **field)
{
	static const char *const theirs[] = { "url", "queue", "callback", "max_attempts",
	                                      "timeout", "method", "header", "headers", NULL };
	char name[PD_MAX_QUEUE_NAME + 1];

	*field = "topic";
	if (copy_name(name, fields_get(f, "topic"), why) != 0)
		return -1;
	for (int i = 0; theirs[i] != NULL; i++) {
		if (fields_get(f, theirs[i]) != NULL) {
			*why = fields_count(f, "url") > 0 || fields_get(f, "queue") != NULL ?
			    "give one destination: url, queue or topic" :
			    "a topic's copies take this from their subscription";
			*field = theirs[i];
			return -1;
		}
	}
	if ((m->topic = strdup(name)) == NULL || (m->urls = strdup("")) == NULL) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* Where to: a URL pool, or a queue that workers pull from; exactly one.
 * A queue's message has no URLs ("") and takes the queue's max_attempts
 * unless it gives its own (the store fills in 0). */
static int
resolve_destination(struct pd_message *m, const struct pd_fields *f,
                    const struct pd_config *cfg, const char **why, const char **field)
{
	const struct pd_field *queue = fields_get(f, "queue");

	if (queue == NULL) {
		*field = "url";
		return collect_urls(m, f, cfg, why);
	}
	*field = "queue";
	if (fields_count(f, "url") > 0) {
		*why = "give either url or queue as the destination, not both";
		return -1;
	}
	if (!queue_name_acceptable(queue->value, queue->len)) {
		*why = "queue must be 1 to 64 of the characters A-Z, a-z, 0-9, '_', '.' and '-'";
		return -1;
	}
	if ((m->queue = strdup(queue->value)) == NULL || (m->urls = strdup("")) == NULL) {
		*why = "out of memory";
		return -1;
	}
	m->max_attempts = 0;
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
	if (tz != NULL && at == NULL && fields_get(f, "expires") == NULL) {
		*why = "tz applies only together with at or expires";
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

/* The latest time RFC 3339 can write: the end of the year 9999 (UTC). */
#define EXPIRY_MAX_MS 253402300799999LL

/* Until when it may be delivered: `ttl`, a duration counted from the due
 * time (a message delayed to nine with ttl=15m may go out until a quarter
 * past), or `expires`, a time read as `at` is (with `tz`); never by
 * default. An expiry not after the due time could never be met. */
static int
resolve_expiry(struct pd_message *m, const struct pd_fields *f, const char **why,
               const char **field)
{
	const struct pd_field *ttl = fields_get(f, "ttl");
	const struct pd_field *expires = fields_get(f, "expires");
	const struct pd_field *tz = fields_get(f, "tz");
	pd_ms t;

	m->expires = 0;
	if (ttl != NULL && expires != NULL) {
		*why = "give either ttl or expires, not both";
		*field = "expires";
		return -1;
	}
	if (ttl != NULL) {
		*field = "ttl";
		if (strlen(ttl->value) != ttl->len) {
			*why = "not a valid duration";
			return -1;
		}
		if (timeparse_duration(ttl->value, &t, why) != 0)
			return -1;
		if (t <= 0) {
			*why = "ttl must be longer than 0: the message would expire when it falls due";
			return -1;
		}
		if (m->due > EXPIRY_MAX_MS - t) {
			*why = "the expiry would fall after the year 9999 (UTC)";
			return -1;
		}
		m->expires = m->due + t;
	}
	if (expires != NULL) {
		*field = "expires";
		if (strlen(expires->value) != expires->len) {
			*why = "not a valid time";
			return -1;
		}
		if (timeparse_at(expires->value, tz != NULL ? tz->value : NULL, &t, why) != 0)
			return -1;
		if (t <= m->due) {
			*why = "expires must be after the time the message is due";
			return -1;
		}
		m->expires = t;
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

/* How each delivery goes: callback, max_attempts, timeout. */
static int
resolve_options(struct pd_message *m, const struct pd_fields *f,
                const struct pd_config *cfg, const char **why, const char **field)
{
	const struct pd_field *fv;

	*field = "callback";
	if ((fv = fields_get(f, "callback")) != NULL) {
		if (url_acceptable(cfg, fv->value, fv->len, why) != 0)
			return -1;
		if (copy_text(&m->callback, fv) != 0) {
			*why = "out of memory";
			return -1;
		}
	}
	*field = "max_attempts";
	if ((fv = fields_get(f, "max_attempts")) != NULL &&
	    parse_int_field(fv, 1, 100, &m->max_attempts) != 0) {
		*why = "max_attempts must be a whole number from 1 to 100";
		return -1;
	}
	*field = "timeout";
	/* A worker holds a queue's message for the visibility timeout; a
	 * timeout there would be ignored, so it is refused instead. */
	if (m->queue != NULL && fields_get(f, "timeout") != NULL) {
		*why = "timeout is the time per HTTP attempt to a url; a queue's message is "
		       "held by its worker for the queue's visibility instead";
		return -1;
	}
	if ((fv = fields_get(f, "timeout")) != NULL &&
	    parse_int_field(fv, 1, 300, &m->timeout) != 0) {
		*why = "timeout must be a whole number of seconds from 1 to 300";
		return -1;
	}
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

	if (check_field_names(f, schedule_fields, why, field) != 0)
		goto bad;
	if (fields_get(f, "topic") != NULL) {
		if (resolve_topic(m, f, why, field) != 0)
			goto bad;
	} else if (resolve_destination(m, f, cfg, why, field) != 0)
		goto bad;
	if (resolve_due(m, f, now, why, field) != 0)
		goto bad;
	m->next_attempt = m->due;
	if (resolve_expiry(m, f, why, field) != 0)
		goto bad;

	*field = "priority";
	if ((fv = fields_get(f, "priority")) != NULL &&
	    parse_int_field(fv, PD_MIN_PRIORITY, PD_MAX_PRIORITY, &m->priority) != 0) {
		*why = "priority must be a whole number from -1000 to 1000 (lower is sooner)";
		goto bad;
	}

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

	if (resolve_options(m, f, cfg, why, field) != 0)
		goto bad;

	if (envelope_from_fields(&m->envelope, f, why, field) != 0)
		goto bad;
	/* A worker takes a queue's message: postdate makes no request of it.
	 * A GET has no body to carry a payload in, nor a type for one. */
	if (m->queue != NULL && fields_get(f, "method") != NULL) {
		*why = "method is how postdate requests a url; a queue's message is received "
		       "by its worker instead";
		*field = "method";
		goto bad;
	}
	if (m->envelope.method == PD_METHOD_GET && m->payload_len > 0) {
		*why = "a GET carries no body: leave payload out, or use another method";
		*field = "payload";
		goto bad;
	}
	if (m->envelope.method == PD_METHOD_GET && fields_get(f, "content_type") != NULL) {
		*why = "a GET carries no body, so no content_type either";
		*field = "content_type";
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

int
subscription_from_fields(struct pd_message *dest, char topic[PD_MAX_QUEUE_NAME + 1],
                         char name[PD_MAX_QUEUE_NAME + 1], const struct pd_fields *f,
                         const struct pd_config *cfg, const char **why, const char **field)
{
	memset(dest, 0, sizeof(*dest));
	dest->max_attempts = cfg->default_max_attempts;
	dest->timeout = cfg->default_timeout;
	if (check_field_names(f, subscribe_fields, why, field) != 0)
		goto bad;
	*field = "topic";
	if (copy_name(topic, fields_get(f, "topic"), why) != 0)
		goto bad;
	*field = "name";
	if (copy_name(name, fields_get(f, "name"), why) != 0)
		goto bad;
	if (resolve_destination(dest, f, cfg, why, field) != 0 ||
	    resolve_options(dest, f, cfg, why, field) != 0 ||
	    envelope_from_fields(&dest->envelope, f, why, field) != 0)
		goto bad;
	if (dest->queue != NULL && fields_get(f, "method") != NULL) {
		*why = "method is how postdate requests a url; a queue's message is received "
		       "by its worker instead";
		*field = "method";
		goto bad;
	}
	*field = NULL;
	return 0;
bad:
	message_free(dest);
	return -1;
}

void
message_free(struct pd_message *m)
{
	free(m->urls);
	free(m->queue);
	free(m->payload);
	free(m->content_type);
	free(m->callback);
	free(m->idempotency_key);
	free(m->delivered_to);
	free(m->report_of);
	free(m->report);
	free(m->topic);
	free(m->subscription);
	free(m->deliveries);
	envelope_free(&m->envelope);
	free(m->recurring);
	memset(m, 0, sizeof(*m));
}
