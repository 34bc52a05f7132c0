/*
 * topics: POST /api/subscribe, POST /api/unsubscribe and GET /api/topics.
 * A subscription is a named destination of a topic (a URL pool or a
 * queue, with its own delivery options); a message scheduled to the topic
 * (POST /api/schedule topic=...) becomes one message per subscription.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* For --help; http_main_program adds the usage line, the options and the
 * exit status. */
static const char description[] =
"The FastCGI responder for a topic's subscriptions (see API.md, Topics):\n"
"  POST /api/subscribe    topic, name, a destination (url, repeatable: a pool;\n"
"                         or queue) and optionally callback, max_attempts,\n"
"                         timeout: 201 made, or 200 replaced\n"
"  POST /api/unsubscribe  topic, name: later publishes make no copy for it\n"
"  GET  /api/topics       every topic with its subscriptions (?name=TOPIC: one)\n"
"Topic and subscription names are [A-Za-z0-9_.-]{1,64}; a topic is made by\n"
"its first subscription and holds at most 1000. Publishing is POST\n"
"/api/schedule with topic=NAME (the schedule program).\n";

static const char example[] =
"spawn-fcgi -s /run/postdate/topics.sock -- topics -c /etc/postdate.conf";

/* A name field ([A-Za-z0-9_.-]{1,64}, once) of r, or NULL having answered. */
static const char *
required_name(struct pd_request *r, const char *field)
{
	const struct pd_fields *f = http_fields(r);
	const struct pd_field *v = fields_get(f, field);

	if (v == NULL) {
		http_error(r, 400, "this field is required", field);
		return NULL;
	}
	if (fields_count(f, field) > 1) {
		http_error(r, 400, "this field may be given only once", field);
		return NULL;
	}
	if (!queue_name_acceptable(v->value, v->len)) {
		http_error(r, 400, "a name must be 1 to 64 of the characters A-Z, a-z, 0-9, '_', "
		           "'.' and '-'", field);
		return NULL;
	}
	return v->value;
}

/* Finds one subscription by name among those store_topics hands over. */
struct found {
	const char *name;
	json_object *o;
};

static int
find_subscription(void *ctx, const char *topic, const struct pd_message *sub)
{
	struct found *f = ctx;

	if (sub != NULL && f->o == NULL && strcmp(sub->subscription, f->name) == 0)
		f->o = render_subscription(topic, sub);
	return 0;
}

static void
handle_subscribe(struct pd_request *r)
{
	struct pd_message dest;
	char topic[PD_MAX_QUEUE_NAME + 1], name[PD_MAX_QUEUE_NAME + 1];
	const char *why, *field;
	enum store_result res;
	struct found found = { .name = name };
	int created;
	pd_ms now = time_now();

	if (subscription_from_fields(&dest, topic, name, http_fields(r), &http_app(r)->cfg,
	                             &why, &field) != 0) {
		http_error(r, 400, why, field);
		return;
	}
	res = store_subscribe(http_store(r), topic, name, &dest, now, &created);
	message_free(&dest);
	if (res == STORE_FULL) {
		http_error(r, 507, "this topic already holds its 1000 subscriptions", "topic");
		return;
	}
	if (res != STORE_OK) {
		http_store_error(r, res, NULL);
		return;
	}
	log_info("%s subscription %s of topic %s", created ? "made" : "replaced", name, topic);
	/* The answer is the subscription as stored (a replaced one keeps the
	 * time it was made). */
	res = store_topics(http_store(r), topic, find_subscription, &found);
	if (res == STORE_OK && found.o != NULL)
		http_reply(r, created ? 201 : 200, NULL, found.o);
	else if (res == STORE_OK || res == STORE_NOTFOUND)
		http_error(r, 409, "the subscription was removed again at once", "name");
	else
		http_store_error(r, res, NULL);
}

static void
handle_unsubscribe(struct pd_request *r)
{
	static const char *const known[] = { "topic", "name", NULL };
	const char *topic, *name;
	enum store_result res;
	json_object *o;

	if (http_fields_known(r, known, NULL) != 0 || (topic = required_name(r, "topic")) == NULL ||
	    (name = required_name(r, "name")) == NULL)
		return;
	res = store_unsubscribe(http_store(r), topic, name);
	if (res == STORE_NOTFOUND) {
		http_error(r, 404, "this topic has no subscription of this name", "name");
		return;
	}
	if (res != STORE_OK) {
		http_store_error(r, res, NULL);
		return;
	}
	log_info("removed subscription %s of topic %s", name, topic);
	o = json_object_new_object();
	json_object_object_add(o, "topic", json_object_new_string(topic));
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "unsubscribed", json_object_new_boolean(1));
	http_reply(r, 200, NULL, o);
}

/* Builds {"topics": [{"name", "subscriptions": [...]}, ...]} as
 * store_topics hands the subscriptions over, topic by topic. */
struct topic_list {
	json_object *topics;
	json_object *current;     /* the subscriptions of the topic being read */
	char name[PD_MAX_QUEUE_NAME + 1];
};

static int
add_subscription(void *ctx, const char *topic, const struct pd_message *sub)
{
	struct topic_list *l = ctx;

	if (l->current == NULL || strcmp(l->name, topic) != 0) {
		json_object *o = json_object_new_object();

		l->current = json_object_new_array();
		snprintf(l->name, sizeof(l->name), "%s", topic);
		json_object_object_add(o, "name", json_object_new_string(topic));
		json_object_object_add(o, "subscriptions", l->current);
		json_object_array_add(l->topics, o);
	}
	if (sub != NULL)
		json_object_array_add(l->current, render_subscription(topic, sub));
	return 0;
}

static void
handle_topics(struct pd_request *r)
{
	static const char *const known[] = { "name", NULL };
	struct topic_list l = { .topics = json_object_new_array() };
	const char *topic = NULL;
	enum store_result res;
	json_object *o;

	if (http_fields_known(r, known, NULL) != 0 ||
	    (fields_get(http_fields(r), "name") != NULL &&
	     (topic = required_name(r, "name")) == NULL)) {
		json_object_put(l.topics);
		return;
	}
	res = store_topics(http_store(r), topic, add_subscription, &l);
	if (res == STORE_NOTFOUND) {
		json_object_put(l.topics);
		http_error(r, 404, "no topic has this name", "name");
		return;
	}
	if (res != STORE_OK) {
		json_object_put(l.topics);
		http_store_error(r, res, NULL);
		return;
	}
	if (topic != NULL) {
		o = json_object_get(json_object_array_get_idx(l.topics, 0));
		json_object_put(l.topics);
	} else {
		o = json_object_new_object();
		json_object_object_add(o, "topics", l.topics);
	}
	http_reply(r, 200, NULL, o);
}

static const struct pd_route routes[] = {
	{ .name = "subscribe", .path = "/api/subscribe", .method = "POST", .needs_auth = 1,
	  .handle = handle_subscribe },
	{ .name = "unsubscribe", .path = "/api/unsubscribe", .method = "POST", .needs_auth = 1,
	  .handle = handle_unsubscribe },
	{ .name = "topics", .path = "/api/topics", .method = "GET", .needs_auth = 1,
	  .handle = handle_topics },
};

static const struct pd_program program = {
	.name = "topics",
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
