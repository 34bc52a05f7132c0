/*
 * schedule: POST /api/schedule. Validates a message, stores it durably and
 * answers 201 only after the commit (see API.md). Requests are served by
 * schedule_threads threads whose messages share commits (commit.c).
 */
#include <stdio.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* For --help; http_main adds the usage line, the options and the exit status. */
static const char description[] =
"The FastCGI responder for POST /api/schedule: stores a message to be\n"
"POSTed to its target URLs (url, repeatable: a pool) or to be received from\n"
"a queue by its workers (queue=NAME, [A-Za-z0-9_.-]{1,64}, made on first\n"
"use) at a given time. priority (-1000..1000, lower is sooner) orders what\n"
"is due; ttl (a duration counted from the due time) or expires (a time, as\n"
"at, with tz) ends a message not delivered by then as expired. topic=NAME\n"
"publishes instead: one message per subscription of the topic (see\n"
"/api/subscribe), all made in one transaction, answered with each copy's\n"
"id; a topic without subscriptions answers 404, and a subscribed queue at\n"
"its max_depth makes the whole publish a 507 with nothing written. method\n"
"(POST, PUT, PATCH, DELETE or GET; a GET carries\n"
"no payload) is how a url is requested; header=\"Name: value\" (repeatable;\n"
"in JSON, headers: an object of strings) adds headers of the message's own,\n"
"at most 32 and 8 KiB, sent with every attempt or handed to the queue's\n"
"worker. Host, Content-Length, Content-Type, Transfer-Encoding, Connection,\n"
"Upgrade, TE, Trailer, Keep-Alive, Proxy-*, User-Agent, Expect and\n"
"webhook-* are refused. Header values are never logged; status and the\n"
"list show the names only.\n"
"\n"
"Run it under a FastCGI server (spawn-fcgi, or a systemd socket) behind\n"
"nginx or Apache; started without one it answers a single plain-CGI\n"
"request.\n"
"\n"
"Each process serves schedule_threads requests at once (configuration,\n"
"default 16) and commits the messages that arrive together in one\n"
"transaction, so one sync to disk acknowledges many: each request is\n"
"answered only after the commit that holds its message.\n"
"\n"
"Every field but the payload must be UTF-8 (content_type printable ASCII),\n"
"times must fall within the years 0000-9999, and an idempotency_key used\n"
"again answers 200 with the original message, or 409 when the request's\n"
"contents (targets or queue, payload, content_type, callback, limits,\n"
"priority, method, headers) differ. A queue holding its max_depth of pending and\n"
"delivering messages answers 507 naming queue.\n";

static const char example[] =
"spawn-fcgi -s /run/postdate/schedule.sock -F 2 -- schedule -c /etc/postdate.conf";

/* Answers the store's failures that schedule and publish share. */
static void
refuse(struct pd_request *r, enum store_result res)
{
	struct pd_app *app = http_app(r);
	char sentence[128];

	switch (res) {
	case STORE_FULL:
		snprintf(sentence, sizeof(sentence),
		         "the store already holds max_pending (%ld) pending messages",
		         app->cfg.max_pending);
		http_error(r, 507, sentence, NULL);
		break;
	case STORE_BUSY:
		http_error(r, 503, "the database is busy; try again", NULL);
		break;
	case STORE_NOSPACE:
		http_error(r, 503, "the database is out of disk space", NULL);
		break;
	case STORE_UNAVAILABLE:
		http_error(r, 503, "the database is unavailable", NULL);
		break;
	default:
		http_error(r, 500, "the message could not be stored", NULL);
		break;
	}
}

/* A message to a topic: one copy per subscription, in one transaction. */
static void
publish(struct pd_request *r, struct pd_message *m, pd_ms now)
{
	struct pd_app *app = http_app(r);
	char sentence[256], due[PD_TIME_BUF];
	enum store_result res = committer_insert(app->committer, m, now);

	switch (res) {
	case STORE_OK:
		log_info("published to topic %s due %s: %zu copies (%zu payload bytes)", m->topic,
		         time_format(m->due, due), m->ndeliveries, m->payload_len);
		http_reply(r, 201, NULL, render_published(m));
		break;
	case STORE_EXISTS:
		http_reply(r, 200, NULL, render_published(m));
		break;
	case STORE_NOTFOUND:
		snprintf(sentence, sizeof(sentence), "topic %s has no subscriptions: nothing was "
		         "published", m->topic);
		http_error(r, 404, sentence, "topic");
		break;
	case STORE_CONFLICT:
		http_error(r, 409, "this idempotency_key was used for a request with other "
		           "contents (topic, payload, content_type or priority)", "idempotency_key");
		break;
	case STORE_QUEUE_FULL:
		snprintf(sentence, sizeof(sentence), "the queue of subscription %s already holds "
		         "its max_depth of pending and delivering messages: nothing was published",
		         m->subscription != NULL ? m->subscription : "?");
		http_error(r, 507, sentence, "topic");
		break;
	default:
		refuse(r, res);
		break;
	}
}

static void
handle_schedule(struct pd_request *r)
{
	struct pd_app *app = http_app(r);
	struct pd_message m;
	const char *why, *field;
	char location[64], due[PD_TIME_BUF];
	enum store_result res;
	pd_ms now = time_now();

	if (message_from_fields(&m, http_fields(r), &app->cfg, now, &why, &field) != 0) {
		http_error(r, 400, why, field);
		return;
	}
	if (m.topic != NULL) {
		publish(r, &m, now);
		message_free(&m);
		return;
	}
	switch ((res = committer_insert(app->committer, &m, now))) {
	case STORE_OK:
		log_info("scheduled %s due %s (%zu payload bytes)", m.id, time_format(m.due, due),
		         m.payload_len);
		snprintf(location, sizeof(location), "Location: /api/status?id=%s\r\n", m.id);
		http_reply(r, 201, location, render_scheduled(&m));
		break;
	case STORE_EXISTS:
		snprintf(location, sizeof(location), "Location: /api/status?id=%s\r\n", m.id);
		http_reply(r, 200, location, render_scheduled(&m));
		break;
	case STORE_CONFLICT:
		http_error(r, 409, "this idempotency_key was used for a request with other "
		           "contents (targets or queue, payload, content_type, callback, limits, "
		           "priority, method or headers)", "idempotency_key");
		break;
	case STORE_QUEUE_FULL:
		http_error(r, 507, "the queue already holds its max_depth of pending and "
		           "delivering messages", "queue");
		break;
	default:
		refuse(r, res);
		break;
	}
	message_free(&m);
}

static const struct pd_route route = {
	.name = "schedule",
	.method = "POST",
	.needs_auth = 1,
	.raw_json_key = "payload",
	.group_commit = 1,
	.description = description,
	.example = example,
	.handle = handle_schedule,
};

int
main(int argc, char **argv)
{
	return http_main(argc, argv, &route);
}
