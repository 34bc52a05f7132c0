/*
 * render.c: messages as the JSON objects of API.md. One place, so the
 * schedule answer, status, the list and callback reports agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "postdate.h"
#include "request.h"

json_object *
render_time(pd_ms t)
{
	char buf[PD_TIME_BUF];

	return t != 0 ? json_object_new_string(time_format(t, buf)) : NULL;
}

json_object *
render_text_or_null(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

/* A URL as it is shown: its password masked (redact.c), or null. */
static json_object *
json_url_or_null(const char *url)
{
	char buf[PD_URL_SHOWN_BUF];

	return url != NULL ? json_object_new_string(url_redact(url, buf, sizeof(buf))) : NULL;
}

json_object *
render_urls(const char *urls)
{
	json_object *a = json_object_new_array();
	const char *p = urls;

	while (p != NULL && *p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		char one[PD_MAX_URL + 1];

		/* Stored URLs passed url_acceptable; a longer one is cut, never
		 * shown unmasked. */
		if (len > PD_MAX_URL)
			len = PD_MAX_URL;
		memcpy(one, p, len);
		one[len] = '\0';
		json_object_array_add(a, json_url_or_null(one));
		p = nl != NULL ? nl + 1 : NULL;
	}
	return a;
}

static int
add_header_name(void *ctx, const char *name, size_t namelen, const char *value, size_t valuelen)
{
	(void)value, (void)valuelen;
	return json_object_array_add(ctx, json_object_new_string_len(name, (int)namelen));
}

json_object *
render_header_names(const char *stored)
{
	json_object *a = json_object_new_array();

	headers_each(stored, add_header_name, a);
	return a;
}

/* The answer to a schedule request. */
json_object *
render_scheduled(const struct pd_message *m)
{
	json_object *o = json_object_new_object();
	char url[64];

	snprintf(url, sizeof(url), "/api/status?id=%s", m->id);
	json_object_object_add(o, "id", json_object_new_string(m->id));
	json_object_object_add(o, "state", json_object_new_string(state_name(m->state)));
	json_object_object_add(o, "due", render_time(m->due));
	json_object_object_add(o, "created", render_time(m->created));
	json_object_object_add(o, "status_url", json_object_new_string(url));
	return o;
}

/* The answer to a publish: the copies it made, one per subscription. */
json_object *
render_published(const struct pd_message *m)
{
	json_object *o = json_object_new_object(), *list = json_object_new_array();

	json_object_object_add(o, "topic", json_object_new_string(m->topic));
	json_object_object_add(o, "due", render_time(m->due));
	json_object_object_add(o, "created", render_time(m->created));
	for (size_t i = 0; i < m->ndeliveries; i++) {
		json_object *d = json_object_new_object();

		json_object_object_add(d, "subscription",
		                       json_object_new_string(m->deliveries[i].subscription));
		json_object_object_add(d, "id", json_object_new_string(m->deliveries[i].id));
		json_object_array_add(list, d);
	}
	json_object_object_add(o, "deliveries", list);
	return o;
}

/* A subscription of topic as subscribe and GET /api/topics show it: its
 * destination (urls, or queue) and delivery options. */
json_object *
render_subscription(const char *topic, const struct pd_message *sub)
{
	json_object *o = json_object_new_object();
	int pulled = sub->queue != NULL;

	json_object_object_add(o, "topic", json_object_new_string(topic));
	json_object_object_add(o, "name", json_object_new_string(sub->subscription));
	json_object_object_add(o, "urls", pulled ? NULL : render_urls(sub->urls));
	json_object_object_add(o, "queue", render_text_or_null(sub->queue));
	json_object_object_add(o, "callback", json_url_or_null(sub->callback));
	/* 0 for a queue: the queue's own max_attempts applies. */
	json_object_object_add(o, "max_attempts", sub->max_attempts > 0 ?
	                       json_object_new_int(sub->max_attempts) : NULL);
	json_object_object_add(o, "timeout", pulled ? NULL : json_object_new_int(sub->timeout));
	/* As a message shows them: header names only, never the values. */
	json_object_object_add(o, "method", pulled ? NULL :
	                       json_object_new_string(method_name(sub->envelope.method)));
	json_object_object_add(o, "headers", render_header_names(sub->envelope.headers));
	json_object_object_add(o, "created", render_time(sub->created));
	return o;
}

/* A message as status and the list show it (history is added by the caller).
 * Its destination is its URL pool (urls) or its queue (queue), the other
 * null; a topic's copy also names the topic and its subscription. headers
 * are names only; recurring is the id of the definition that made the
 * message, or null. */
json_object *
render_message(const struct pd_message *m)
{
	json_object *o = json_object_new_object();
	int pulled = m->queue != NULL;

	json_object_object_add(o, "id", json_object_new_string(m->id));
	json_object_object_add(o, "state", json_object_new_string(state_name(m->state)));
	json_object_object_add(o, "due", render_time(m->due));
	json_object_object_add(o, "created", render_time(m->created));
	json_object_object_add(o, "urls", pulled ? NULL : render_urls(m->urls));
	json_object_object_add(o, "queue", render_text_or_null(m->queue));
	/* A copy made by a publish names its topic and subscription too. */
	json_object_object_add(o, "topic", render_text_or_null(m->topic));
	json_object_object_add(o, "subscription", render_text_or_null(m->subscription));
	json_object_object_add(o, "priority", json_object_new_int(m->priority));
	json_object_object_add(o, "expires", render_time(m->expires));
	json_object_object_add(o, "method", json_object_new_string(method_name(m->envelope.method)));
	json_object_object_add(o, "headers", render_header_names(m->envelope.headers));
	json_object_object_add(o, "recurring", render_text_or_null(m->recurring));
	json_object_object_add(o, "callback", json_url_or_null(m->callback));
	json_object_object_add(o, "attempts", json_object_new_int(m->attempts));
	json_object_object_add(o, "max_attempts", json_object_new_int(m->max_attempts));
	json_object_object_add(o, "next_attempt",
	    m->state == PD_PENDING ? render_time(m->next_attempt) : NULL);
	json_object_object_add(o, "delivered_to", json_url_or_null(m->delivered_to));
	json_object_object_add(o, "delivered_at", render_time(m->delivered_at));
	json_object_object_add(o, "payload_bytes", json_object_new_int64((int64_t)m->payload_len));
	json_object_object_add(o, "content_type", render_text_or_null(m->content_type));
	/* A worker holds a queue's message for the queue's visibility: no
	 * HTTP attempt of postdate's has a timeout there. */
	json_object_object_add(o, "timeout", pulled ? NULL : json_object_new_int(m->timeout));
	json_object_object_add(o, "idempotency_key", render_text_or_null(m->idempotency_key));
	/* A callback report is a message too: each side names the other. */
	json_object_object_add(o, "report", render_text_or_null(m->report));
	json_object_object_add(o, "report_of", render_text_or_null(m->report_of));
	return o;
}

/* len bytes at data in base64 (to free), or NULL when out of memory. */
static char *
base64_of(const char *data, size_t len)
{
	char *b64 = malloc(4 * ((len + 2) / 3) + 1);

	if (b64 != NULL)
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)data, (int)len);
	return b64;
}

/* Adds len bytes at data to o as text under text_key when they are UTF-8,
 * else as base64 under base64_key, so that any bytes survive JSON. */
static void
add_text_or_base64(json_object *o, const char *text_key, const char *base64_key,
                   const char *data, size_t len)
{
	char *b64;

	if (utf8_valid(data, len)) {
		json_object_object_add(o, text_key, json_object_new_string_len(data, (int)len));
	} else if ((b64 = base64_of(data, len)) != NULL) {
		json_object_object_add(o, base64_key, json_object_new_string(b64));
		free(b64);
	}
}

json_object *
render_message_with_payload(const struct pd_message *m)
{
	json_object *o = render_message(m);

	/* A store that has not read the payload leaves it NULL: shown as
	 * unknown rather than as an empty payload. */
	if (m->payload == NULL)
		json_object_object_add(o, "payload", NULL);
	else
		add_text_or_base64(o, "payload", "payload_base64", m->payload, m->payload_len);
	return o;
}

/* One attempt of the history. */
json_object *
render_attempt(const struct pd_attempt *a)
{
	json_object *o = json_object_new_object();
	char buf[PD_TIME_BUF];

	json_object_object_add(o, "at", json_object_new_string(time_format(a->at, buf)));
	json_object_object_add(o, "url", json_url_or_null(a->url));
	json_object_object_add(o, "status", a->status != 0 ? json_object_new_int(a->status) : NULL);
	json_object_object_add(o, "error", render_text_or_null(a->error));
	json_object_object_add(o, "ms", json_object_new_int(a->ms));
	return o;
}

/* The response part of a report: the body as text when it is UTF-8, else
 * as base64 (so a binary answer survives JSON). */
static json_object *
render_response(const struct pd_response *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_int(r->status));
	json_object_object_add(o, "content_type", render_text_or_null(r->content_type));
	add_text_or_base64(o, "body", "body_base64", r->body, r->len);
	return o;
}

json_object *
render_report(const struct pd_message *m, const char *url, const struct pd_response *r,
              json_object *history)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(m->id));
	json_object_object_add(o, "state", json_object_new_string(state_name(m->state)));
	json_object_object_add(o, "due", render_time(m->due));
	json_object_object_add(o, "delivered_at", render_time(m->delivered_at));
	json_object_object_add(o, "url", json_url_or_null(url));
	json_object_object_add(o, "attempts", json_object_new_int(m->attempts));
	json_object_object_add(o, "response", r != NULL ? render_response(r) : NULL);
	json_object_object_add(o, "history", history);
	return o;
}

/* The payload as add_text_or_base64 gives it, written by w. */
static void
write_text_or_base64(struct jsonw *w, const char *text_key, const char *base64_key,
                     const char *data, size_t len)
{
	char *b64;

	if (utf8_valid(data, len)) {
		jsonw_key(w, text_key);
		jsonw_string_len(w, data, len);
		return;
	}
	if ((b64 = base64_of(data, len)) == NULL) {
		w->failed = 1;
		return;
	}
	jsonw_key(w, base64_key);
	jsonw_string(w, b64);
	free(b64);
}

static int
write_header(void *ctx, const char *name, size_t namelen, const char *value, size_t valuelen)
{
	/* Stored names passed envelope.c's checks: unique without case. */
	jsonw_key_len(ctx, name, namelen);
	jsonw_string_len(ctx, value, valuelen);
	return 0;
}

static void
write_time(struct jsonw *w, const char *key, pd_ms t)
{
	char buf[PD_TIME_BUF];

	jsonw_key(w, key);
	jsonw_string(w, t != 0 ? time_format(t, buf) : NULL);
}

void
render_received(struct jsonw *w, const struct pd_message *m, const char *receipt,
                pd_ms visible_until)
{
	jsonw_open(w, '{');
	jsonw_key(w, "id");
	jsonw_string(w, m->id);
	jsonw_key(w, "receipt");
	jsonw_string(w, receipt);
	jsonw_key(w, "queue");
	jsonw_string(w, m->queue);
	write_text_or_base64(w, "payload", "payload_base64", m->payload != NULL ? m->payload : "",
	                     m->payload_len);
	jsonw_key(w, "content_type");
	jsonw_string(w, m->content_type);
	jsonw_key(w, "headers");
	jsonw_open(w, '{');
	headers_each(m->envelope.headers, write_header, w);
	jsonw_close(w, '}');
	jsonw_key(w, "priority");
	jsonw_int(w, m->priority);
	jsonw_key(w, "attempt");
	jsonw_int(w, m->attempts);
	jsonw_key(w, "max_attempts");
	jsonw_int(w, m->max_attempts);
	write_time(w, "due", m->due);
	write_time(w, "created", m->created);
	write_time(w, "visible_until", visible_until);
	jsonw_close(w, '}');
}

/* Milliseconds as seconds, written as such (not 0.57499999999999996). */
static json_object *
json_seconds(pd_ms ms)
{
	char text[32];

	snprintf(text, sizeof(text), "%lld.%03lld", (long long)(ms / 1000),
	         (long long)(ms % 1000));
	return json_object_new_double_s((double)ms / 1000.0, text);
}

/* A queue as GET /api/queues shows it. */
json_object *
render_queue(const struct pd_queue *q, pd_ms now)
{
	json_object *o = json_object_new_object();
	pd_ms oldest = q->oldest_ready != 0 && q->oldest_ready < now ? now - q->oldest_ready : 0;

	json_object_object_add(o, "name", json_object_new_string(q->name));
	json_object_object_add(o, "visibility", json_object_new_int(q->visibility));
	json_object_object_add(o, "max_attempts", json_object_new_int(q->max_attempts));
	json_object_object_add(o, "max_depth", json_object_new_int64(q->max_depth));
	json_object_object_add(o, "paused", json_object_new_boolean(q->paused));
	json_object_object_add(o, "pending", json_object_new_int64(q->pending));
	json_object_object_add(o, "ready", json_object_new_int64(q->ready));
	json_object_object_add(o, "delivering", json_object_new_int64(q->delivering));
	json_object_object_add(o, "failed", json_object_new_int64(q->failed));
	json_object_object_add(o, "delivered", json_object_new_int64(q->delivered));
	json_object_object_add(o, "cancelled", json_object_new_int64(q->cancelled));
	json_object_object_add(o, "expired", json_object_new_int64(q->expired));
	json_object_object_add(o, "oldest_ready_s", json_seconds(oldest));
	return o;
}
