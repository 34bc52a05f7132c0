/*
 * recurring: recurring definitions, one FastCGI program for their routes:
 * POST and GET /api/recurring, POST /api/recurring/pause, /resume and
 * /delete (API.md "Recurring messages"). A definition is a cron expression
 * read on the wall clock of a zone and the template of the messages it
 * makes; the dispatcher makes each occurrence (store_recurring_make).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* Definitions in one answer of the list. */
#define LIST_MAX 1000
/* Occurrences previewed by GET /api/recurring?id= (upcoming), by default
 * and at most. */
#define UPCOMING_DEFAULT 5
#define UPCOMING_MAX 50

/* For --help; http_main_program adds the usage line, the options and the
 * exit status. */
static const char description[] =
"The FastCGI responder for the recurring routes (API.md \"Recurring\n"
"messages\"), chosen by the request path:\n"
"  POST /api/recurring         cron (five fields or a macro), tz (an IANA\n"
"                              zone the fields are read in; default UTC), an\n"
"                              optional name (unique, [A-Za-z0-9_.-]{1,64}),\n"
"                              a destination (url, repeatable, queue or topic)\n"
"                              and the message fields of schedule: payload,\n"
"                              content_type, callback, max_attempts, timeout,\n"
"                              priority, ttl (counted from each occurrence),\n"
"                              method, header/headers. To a topic, each\n"
"                              occurrence is a publish: one message per\n"
"                              subscription, made once.\n"
"                              201 with the definition and its next occurrence.\n"
"  GET  /api/recurring         every definition, oldest first (at most 1000);\n"
"                              ?id=ID one, with the ids of its latest messages\n"
"                              and its upcoming occurrences (a preview: the\n"
"                              first count, 1..50, default 5, after `after`, a\n"
"                              time in RFC 3339 or Unix seconds, default now).\n"
"  POST /api/recurring/pause   id: no occurrence is made until resumed; the one\n"
"                              waiting (made, never tried) is cancelled.\n"
"  POST /api/recurring/resume  id: the next occurrence is the first after now\n"
"                              (nothing missed while paused is made).\n"
"  POST /api/recurring/delete  id: as pause, and the definition is gone;\n"
"                              messages already made are kept.\n"
"A bad expression is a 400 naming cron, with the reason; at, delay, expires\n"
"and idempotency_key are refused (each occurrence is due at its own time).\n"
"A name already taken is a 409 naming name. Times are RFC 3339 UTC;\n"
"next_local is the next occurrence on the zone's wall clock with its\n"
"offset. The dispatcher makes each occurrence as an ordinary message\n"
"(status shows its recurring id) once the one before it has fallen due. Run it under a FastCGI server behind nginx or Apache;\n"
"started without one it answers a single plain-CGI request.\n";

static const char example[] =
"spawn-fcgi -s /run/postdate/recurring.sock -- recurring -c /etc/postdate.conf";

/* ---- answers ---- */

/* t on the wall clock of zone tz, with its offset:
 * "2027-03-29T09:00:00+02:00"; null for 0 or an unknown zone. */
static json_object *
json_local_time(pd_ms t, const char *tz)
{
	struct pd_tz *zone = NULL;
	int64_t s, local, days, rest;
	int32_t offset = 0;
	int y, mo, d;
	char buf[40];

	if (t == 0)
		return NULL;
	if (strcmp(tz, "UTC") != 0 && tz_load(tz, &zone) != 0)
		return NULL;
	s = t / PD_MS_PER_S;
	if (zone != NULL)
		offset = tz_offset_at(zone, s);
	tz_free(zone);
	local = s + offset;
	days = local >= 0 ? local / 86400 : (local - 86399) / 86400;
	rest = local - days * 86400;
	civil_from_days(days, &y, &mo, &d);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, mo, d,
	         (int)(rest / 3600), (int)(rest / 60 % 60), (int)(rest % 60),
	         offset < 0 ? '-' : '+', abs(offset) / 3600, abs(offset) / 60 % 60);
	return json_object_new_string(buf);
}

/* A definition as every route shows it. */
static json_object *
render_definition(const struct pd_recurring *d)
{
	const struct pd_message *m = &d->message;
	json_object *o = json_object_new_object(), *latest = json_object_new_array();
	char shown[PD_URL_SHOWN_BUF];
	int pulled = m->queue != NULL, fanned = m->topic != NULL;

	json_object_object_add(o, "id", json_object_new_string(d->id));
	json_object_object_add(o, "name", render_text_or_null(d->name));
	json_object_object_add(o, "cron", json_object_new_string(d->cron));
	json_object_object_add(o, "tz", json_object_new_string(d->tz));
	json_object_object_add(o, "paused", json_object_new_boolean(d->paused));
	json_object_object_add(o, "created", render_time(d->created));
	json_object_object_add(o, "next", render_time(d->next));
	json_object_object_add(o, "next_local", json_local_time(d->next, d->tz));
	json_object_object_add(o, "last", render_time(d->last));
	json_object_object_add(o, "urls", pulled || fanned ? NULL : render_urls(m->urls));
	json_object_object_add(o, "queue", render_text_or_null(m->queue));
	json_object_object_add(o, "topic", render_text_or_null(m->topic));
	/* A topic's copies take method, headers and the limits of a delivery
	 * from their subscriptions. */
	json_object_object_add(o, "method", pulled || fanned ? NULL :
	    json_object_new_string(method_name(m->envelope.method)));
	json_object_object_add(o, "headers", render_header_names(m->envelope.headers));
	json_object_object_add(o, "payload_bytes", json_object_new_int64((int64_t)m->payload_len));
	json_object_object_add(o, "content_type", json_object_new_string(m->content_type));
	json_object_object_add(o, "callback", m->callback != NULL ?
	    json_object_new_string(url_redact(m->callback, shown, sizeof(shown))) : NULL);
	/* 0 for a queue's: each message takes the queue's when it is made. */
	json_object_object_add(o, "max_attempts", m->max_attempts != 0 && !fanned ?
	    json_object_new_int(m->max_attempts) : NULL);
	json_object_object_add(o, "timeout", pulled || fanned ? NULL :
	    json_object_new_int(m->timeout));
	json_object_object_add(o, "priority", json_object_new_int(m->priority));
	json_object_object_add(o, "ttl", d->ttl != 0 ?
	    json_object_new_int64(d->ttl / PD_MS_PER_S) : NULL);
	for (int i = 0; i < d->nlatest; i++)
		json_object_array_add(latest, json_object_new_string(d->latest[i]));
	json_object_object_add(o, "messages", latest);
	return o;
}

/* ---- field checks ---- */

/* Answers 400 for a field given twice (url and header aside) or one
 * holding a NUL byte outside the payload. */
static int
fields_once(struct pd_request *r, const struct pd_fields *f)
{
	for (size_t i = 0; i < f->n; i++) {
		const char *name = f->v[i].name;

		if (strcmp(name, "payload") != 0 && strlen(f->v[i].value) != f->v[i].len) {
			http_error(r, 400, "a value may not hold a NUL byte", name);
			return -1;
		}
		if (strcmp(name, "url") != 0 && strcmp(name, "header") != 0 &&
		    fields_count(f, name) > 1) {
			http_error(r, 400, "this field may be given only once", name);
			return -1;
		}
	}
	return 0;
}

/* The fields of schedule that a definition does not take, and why. */
static const struct {
	const char *name;
	const char *why;
} refused_fields[] = {
	{ "at", "a recurring definition's messages are due at its occurrences (cron): "
	        "at does not apply" },
	{ "delay", "a recurring definition's messages are due at its occurrences (cron): "
	           "delay does not apply" },
	{ "expires", "give ttl instead: a duration counted from each occurrence" },
	{ "idempotency_key", "a recurring definition takes no idempotency_key; give it a "
	                     "name, which is unique, instead" },
};

/* The definition a POST /api/recurring asks for, into d; answers 400 (or
 * 500) and returns -1 when a field is bad. */
static int
definition_from_request(struct pd_request *r, struct pd_recurring *d, pd_ms now)
{
	const struct pd_fields *f = http_fields(r);
	const struct pd_field *cron = fields_get(f, "cron"), *tz = fields_get(f, "tz");
	const struct pd_field *name = fields_get(f, "name");
	struct pd_fields template = { 0 };
	struct pd_cron parsed;
	const char *why, *field;
	pd_ms first;

	memset(d, 0, sizeof(*d));
	if (fields_once(r, f) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(refused_fields) / sizeof(refused_fields[0]); i++)
		if (fields_get(f, refused_fields[i].name) != NULL) {
			http_error(r, 400, refused_fields[i].why, refused_fields[i].name);
			return -1;
		}
	if (cron == NULL || cron->len == 0) {
		http_error(r, 400, "cron is required: five fields (minute hour day-of-month month "
		           "day-of-week) or a macro such as @daily", "cron");
		return -1;
	}
	if (cron->is_json || cron_parse(cron->value, &parsed, &why) != 0) {
		http_error(r, 400, cron->is_json ? "cron must be a string" : why, "cron");
		return -1;
	}
	if (tz != NULL && (tz->is_json || tz->len == 0 || tz->len > PD_MAX_TIME_TEXT ||
	    !timezone_exists(tz->value) ||
	    recurring_next_after(cron->value, tz->value, now, &first, &why) != 0)) {
		http_error(r, 400, "not a time zone known to this system (use an IANA name such as "
		           "Europe/Berlin)", "tz");
		return -1;
	}
	if (name != NULL && (name->is_json || !queue_name_acceptable(name->value, name->len))) {
		http_error(r, 400, "name must be 1 to 64 of A-Z a-z 0-9 _ . -", "name");
		return -1;
	}
	/* The rest is a schedule request's, checked as schedule checks it. */
	for (size_t i = 0; i < f->n; i++) {
		const struct pd_field *v = &f->v[i];

		if (strcmp(v->name, "cron") == 0 || strcmp(v->name, "tz") == 0 ||
		    strcmp(v->name, "name") == 0)
			continue;
		if (fields_add(&template, v->name, strlen(v->name), v->value, v->len,
		               v->is_json) != 0) {
			fields_free(&template);
			http_error(r, 500, "out of memory", NULL);
			return -1;
		}
	}
	if (message_from_fields(&d->message, &template, &http_app(r)->cfg, now, &why,
	                        &field) != 0) {
		/* field may be a name inside template: answered before it is freed. */
		http_error(r, 400, why, field);
		fields_free(&template);
		return -1;
	}
	fields_free(&template);
	/* No at or delay: the message was due now, and its expiry is the ttl. */
	d->ttl = d->message.expires != 0 ? d->message.expires - d->message.due : 0;
	d->cron = strdup(cron->value);
	d->tz = strdup(tz != NULL ? tz->value : "UTC");
	d->name = name != NULL ? strdup(name->value) : NULL;
	if (d->cron == NULL || d->tz == NULL || (name != NULL && d->name == NULL)) {
		recurring_free(d);
		http_error(r, 500, "out of memory", NULL);
		return -1;
	}
	return 0;
}

/* The id field of pause, resume and delete (the only field they take). */
static const char *
required_id(struct pd_request *r)
{
	static const char *const known[] = { "id", NULL };
	const struct pd_field *id = fields_get(http_fields(r), "id");

	if (http_fields_known(r, known, NULL) != 0)
		return NULL;
	if (id == NULL || id->len == 0) {
		http_error(r, 400, "id is required", "id");
		return NULL;
	}
	if (!id_valid(id->value)) {
		http_error(r, 404, "no recurring definition has this id", "id");
		return NULL;
	}
	return id->value;
}

/* ---- the routes ---- */

static void
recurring_post(struct pd_request *r)
{
	struct pd_recurring d;
	enum store_result res;
	char location[96], when[PD_TIME_BUF];
	pd_ms now = time_now();

	if (definition_from_request(r, &d, now) != 0)
		return;
	res = store_recurring_add(http_store(r), &d, now);
	if (res == STORE_OK) {
		log_info("recurring %s: created (%s in %s), next occurrence %s", d.id, d.cron, d.tz,
		         time_format(d.next, when));
		snprintf(location, sizeof(location), "Location: /api/recurring?id=%s\r\n", d.id);
		http_reply(r, 201, location, render_definition(&d));
	} else if (res == STORE_CONFLICT)
		http_error(r, 409, "a recurring definition with this name exists already", "name");
	else
		http_store_error(r, res, NULL);
	recurring_free(&d);
}

/* The next n occurrences of d's schedule after from, paused or not: a
 * preview (what a user checks across a change of the clocks). */
static json_object *
render_upcoming(const struct pd_recurring *d, pd_ms from, int n)
{
	json_object *a = json_object_new_array();
	const char *why;
	pd_ms t = from;

	for (int i = 0; i < n && recurring_next_after(d->cron, d->tz, t, &t, &why) == 0; i++) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "at", render_time(t));
		json_object_object_add(o, "local", json_local_time(t, d->tz));
		json_object_array_add(a, o);
	}
	return a;
}

static int
add_definition(void *ctx, const struct pd_recurring *d)
{
	json_object_array_add(ctx, render_definition(d));
	return 0;
}

static void
recurring_get(struct pd_request *r)
{
	static const char *const known[] = { "id", "after", "count", NULL };
	const struct pd_fields *f = http_fields(r);
	const struct pd_field *id = fields_get(f, "id");
	struct pd_recurring d;
	enum store_result res;
	json_object *list, *o;
	const struct pd_field *after = fields_get(f, "after"), *count = fields_get(f, "count");
	const char *why;
	pd_ms from = time_now();
	int n = UPCOMING_DEFAULT;

	if (http_fields_known(r, known, NULL) != 0)
		return;
	if ((after != NULL || count != NULL) && id == NULL) {
		http_error(r, 400, "after and count preview one definition: give its id", "id");
		return;
	}
	if (after != NULL && (strlen(after->value) != after->len ||
	    timeparse_at(after->value, NULL, &from, &why) != 0)) {
		http_error(r, 400, "after must be a time: RFC 3339 or Unix seconds", "after");
		return;
	}
	if (count != NULL && (count->len == 0 || count->len > 2 ||
	    strspn(count->value, "0123456789") != count->len ||
	    (n = atoi(count->value)) < 1 || n > UPCOMING_MAX)) {
		http_error(r, 400, "count must be a whole number from 1 to 50", "count");
		return;
	}
	if (id != NULL) {
		res = id_valid(id->value) ? store_recurring_get(http_store(r), id->value, &d) :
		    STORE_NOTFOUND;
		if (res == STORE_NOTFOUND)
			http_error(r, 404, "no recurring definition has this id", "id");
		else if (res != STORE_OK)
			http_store_error(r, res, NULL);
		else {
			o = render_definition(&d);
			json_object_object_add(o, "upcoming", render_upcoming(&d, from, n));
			http_reply(r, 200, NULL, o);
			recurring_free(&d);
		}
		return;
	}
	list = json_object_new_array();
	if ((res = store_recurring_list(http_store(r), LIST_MAX, add_definition, list)) !=
	    STORE_OK) {
		json_object_put(list);
		http_store_error(r, res, NULL);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "recurring", list);
	http_reply(r, 200, NULL, o);
}

static void
handle_recurring(struct pd_request *r)
{
	const char *method = http_param(r, "REQUEST_METHOD");

	if (method != NULL && strcmp(method, "POST") == 0)
		recurring_post(r);
	else
		recurring_get(r);
}

static void
reply_changed(struct pd_request *r, enum store_result res, struct pd_recurring *d,
              const char *what)
{
	if (res == STORE_NOTFOUND) {
		http_error(r, 404, "no recurring definition has this id", "id");
		return;
	}
	if (res != STORE_OK) {
		http_store_error(r, res, NULL);
		return;
	}
	log_info("recurring %s: %s", d->id, what);
	http_reply(r, 200, NULL, render_definition(d));
	recurring_free(d);
}

static void
handle_pause(struct pd_request *r)
{
	const char *id = required_id(r);
	struct pd_recurring d;

	if (id != NULL)
		reply_changed(r, store_recurring_pause(http_store(r), id, time_now(), &d), &d,
		              "paused");
}

static void
handle_resume(struct pd_request *r)
{
	const char *id = required_id(r);
	struct pd_recurring d;

	if (id != NULL)
		reply_changed(r, store_recurring_resume(http_store(r), id, time_now(), &d), &d,
		              "resumed");
}

static void
handle_delete(struct pd_request *r)
{
	const char *id = required_id(r);
	enum store_result res;
	json_object *o;

	if (id == NULL)
		return;
	res = store_recurring_delete(http_store(r), id, time_now());
	if (res == STORE_NOTFOUND) {
		http_error(r, 404, "no recurring definition has this id", "id");
		return;
	}
	if (res != STORE_OK) {
		http_store_error(r, res, NULL);
		return;
	}
	log_info("recurring %s: deleted", id);
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "deleted", json_object_new_boolean(1));
	http_reply(r, 200, NULL, o);
}

static const struct pd_route routes[] = {
	{ .name = "recurring", .path = "/api/recurring", .method = "GET POST", .needs_auth = 1,
	  .raw_json_key = "payload", .handle = handle_recurring },
	{ .name = "recurring/pause", .path = "/api/recurring/pause", .method = "POST",
	  .needs_auth = 1, .handle = handle_pause },
	{ .name = "recurring/resume", .path = "/api/recurring/resume", .method = "POST",
	  .needs_auth = 1, .handle = handle_resume },
	{ .name = "recurring/delete", .path = "/api/recurring/delete", .method = "POST",
	  .needs_auth = 1, .handle = handle_delete },
};

static const struct pd_program program = {
	.name = "recurring",
	.description = description,
	.example = example,
	.routes = routes,
	.nroutes = sizeof(routes) / sizeof(routes[0]),
};

int
main(int argc, char **argv)
{
	return http_main_program(argc, argv, &program);
}
