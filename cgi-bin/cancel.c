/*
 * cancel: POST /api/cancel. A pending message becomes cancelled and is
 * never delivered; one already under way or finished is a 409.
 */
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* For --help; http_main adds the usage line, the options and the exit status. */
static const char description[] =
"The FastCGI responder for POST /api/cancel (field id): cancels a pending\n"
"message. Run it under a FastCGI server behind nginx or Apache; started\n"
"without one it answers a single plain-CGI request.\n";

static const char example[] =
"spawn-fcgi -s /run/postdate/cancel.sock -- cancel -c /etc/postdate.conf";

static void
handle_cancel(struct pd_request *r)
{
	const struct pd_fields *f = http_fields(r);
	const struct pd_field *id = fields_get(f, "id");
	enum pd_state state = PD_PENDING;
	json_object *o;

	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].name, "id") != 0) {
			http_error(r, 400, "unknown field", f->v[i].name);
			return;
		}
	if (id == NULL || id->len == 0) {
		http_error(r, 400, "id is required", "id");
		return;
	}
	if (fields_count(f, "id") > 1) {
		http_error(r, 400, "this field may be given only once", "id");
		return;
	}
	if (!id_valid(id->value)) {
		http_error(r, 404, "no message has this id", "id");
		return;
	}
	switch (store_cancel(http_app(r)->store, id->value, &state)) {
	case STORE_OK:
		log_info("cancelled %s", id->value);
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(id->value));
		json_object_object_add(o, "state", json_object_new_string("cancelled"));
		http_reply(r, 200, NULL, o);
		break;
	case STORE_NOTFOUND:
		http_error(r, 404, "no message has this id", "id");
		break;
	case STORE_CONFLICT:
		o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string(
		    state == PD_DELIVERING ? "the message is being delivered and can no longer be cancelled" :
		    "the message is no longer pending and cannot be cancelled"));
		json_object_object_add(o, "field", json_object_new_string("id"));
		json_object_object_add(o, "state", json_object_new_string(state_name(state)));
		http_reply(r, 409, NULL, o);
		break;
	case STORE_BUSY:
		http_error(r, 503, "the database is busy; try again", NULL);
		break;
	case STORE_NOSPACE:
		http_error(r, 503, "the database is out of disk space", NULL);
		break;
	default:
		http_error(r, 500, "the message could not be cancelled", NULL);
		break;
	}
}

static const struct pd_route route = {
	.name = "cancel",
	.method = "POST",
	.needs_auth = 1,
	.description = description,
	.example = example,
	.handle = handle_cancel,
};

int
main(int argc, char **argv)
{
	return http_main(argc, argv, &route);
}
