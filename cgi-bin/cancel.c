/*
 * cancel: the routes that change one message's fate by its id, one
 * FastCGI program for both: POST /api/cancel (a pending message becomes
 * cancelled and is never delivered; one already under way or finished is
 * a 409) and POST /api/retry (a failed or expired message goes back to
 * pending, due now, its rounds reset: the dead-letter redrive; any other
 * state is a 409).
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
"The FastCGI responder for POST /api/cancel and POST /api/retry (field id),\n"
"chosen by the request's path. cancel: a pending message becomes cancelled\n"
"and is never delivered (200 also when it already was); delivering,\n"
"delivered, failed or expired is a 409 with its state. retry: a failed or\n"
"expired message goes back to pending, due now, with its rounds (receives,\n"
"for a queue's message: it becomes receivable again) and dropped URLs\n"
"reset, its history kept and a ttl of the same length counted from now;\n"
"pending, delivering, delivered or cancelled is a 409 with its state. A\n"
"retry is not refused by max_pending or a queue's max_depth: the message\n"
"was accepted once. Both answer 404 for an unknown id. Run it under a\n"
"FastCGI server behind nginx or Apache; started without one it answers a\n"
"single plain-CGI request.\n";

static const char example[] =
"spawn-fcgi -s /run/postdate/cancel.sock -- cancel -c /etc/postdate.conf";

/* The id field of a request that may hold nothing else, or NULL after
 * answering the request's fault. */
static const char *
only_id(struct pd_request *r)
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
		http_error(r, 404, "no message has this id", "id");
		return NULL;
	}
	return id->value;
}

/* {"id": ..., "state": ...}, the answer of both routes. */
static void
reply_state(struct pd_request *r, const char *id, enum pd_state state)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "state", json_object_new_string(state_name(state)));
	http_reply(r, 200, NULL, o);
}

/* A 409 that says what the message is. */
static void
reply_conflict(struct pd_request *r, const char *sentence, enum pd_state state)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(sentence));
	json_object_object_add(o, "field", json_object_new_string("id"));
	json_object_object_add(o, "state", json_object_new_string(state_name(state)));
	http_reply(r, 409, NULL, o);
}

static void
handle_cancel(struct pd_request *r)
{
	const char *id = only_id(r);
	enum pd_state state = PD_PENDING;
	enum store_result res;

	if (id == NULL)
		return;
	switch ((res = store_cancel(http_store(r), id, &state))) {
	case STORE_OK:
		log_info("cancelled %s", id);
		reply_state(r, id, PD_CANCELLED);
		break;
	case STORE_NOTFOUND:
		http_error(r, 404, "no message has this id", "id");
		break;
	case STORE_CONFLICT:
		reply_conflict(r, state == PD_DELIVERING ?
		    "the message is being delivered and can no longer be cancelled" :
		    "the message is no longer pending and cannot be cancelled", state);
		break;
	default:
		http_store_error(r, res, "the message could not be cancelled");
		break;
	}
}

static void
handle_retry(struct pd_request *r)
{
	const char *id = only_id(r);
	enum pd_state state = PD_PENDING;
	enum store_result res;

	if (id == NULL)
		return;
	switch ((res = store_retry(http_store(r), id, time_now(), &state))) {
	case STORE_OK:
		log_info("retry of %s: pending again, due now", id);
		reply_state(r, id, PD_PENDING);
		break;
	case STORE_NOTFOUND:
		http_error(r, 404, "no message has this id", "id");
		break;
	case STORE_CONFLICT:
		reply_conflict(r, state == PD_PENDING || state == PD_DELIVERING ?
		    "the message has not ended; only a failed or expired message can be retried" :
		    "only a failed or expired message can be retried", state);
		break;
	default:
		http_store_error(r, res, "the message could not be retried");
		break;
	}
}

static const struct pd_route routes[] = {
	{ .name = "cancel", .path = "/api/cancel", .method = "POST", .needs_auth = 1,
	  .handle = handle_cancel },
	{ .name = "retry", .path = "/api/retry", .method = "POST", .needs_auth = 1,
	  .handle = handle_retry },
};

static const struct pd_program program = {
	.name = "cancel",
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
