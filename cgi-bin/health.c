/*
 * health: GET /api/health, without a token. Tells a monitor whether the
 * database answers and how late the most overdue pending message is, which
 * is how an operator sees that no dispatcher is running.
 */
#include <stdio.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* For --help; http_main adds the usage line, the options and the exit status. */
static const char description[] =
"The FastCGI responder for GET /api/health: {\"ok\": true, \"pending\": n,\n"
"\"delivering\": n, \"oldest_overdue_s\": x}, or 503 with ok false when the database cannot be\n"
"read. Needs no token. Run it under a FastCGI server behind nginx or Apache;\n"
"started without one it answers a single plain-CGI request.\n";

static const char example[] =
"curl -s http://127.0.0.1:8080/api/health";

static void
handle_health(struct pd_request *r)
{
	struct pd_app *app = http_app(r);
	json_object *o = json_object_new_object();
	long pending = 0, counts[PD_NSTATES] = { 0 };
	pd_ms earliest = 0, overdue, now = time_now();
	char text[32];

	if (http_fields(r)->n != 0) {
		json_object_put(o);
		http_error(r, 400, "unknown field", http_fields(r)->v[0].name);
		return;
	}
	if (app->store == NULL || store_health(app->store, &pending, &earliest) != STORE_OK) {
		json_object_object_add(o, "ok", json_object_new_boolean(0));
		json_object_object_add(o, "error", json_object_new_string("the database cannot be read"));
		http_reply(r, 503, NULL, o);
		return;
	}
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	json_object_object_add(o, "pending", json_object_new_int64(pending));
	/* Rounds in flight: overdue messages beside deliveries in flight mean
	 * a dispatcher that is busy, not one that is missing. */
	if (store_counts(app->store, counts) == STORE_OK)
		json_object_object_add(o, "delivering", json_object_new_int64(counts[PD_DELIVERING]));
	/* Milliseconds as seconds, written as such (not 0.57499999999999996). */
	overdue = earliest != 0 && earliest < now ? now - earliest : 0;
	snprintf(text, sizeof(text), "%lld.%03lld", (long long)(overdue / 1000),
	         (long long)(overdue % 1000));
	json_object_object_add(o, "oldest_overdue_s",
	    json_object_new_double_s((double)overdue / 1000.0, text));
	http_reply(r, 200, NULL, o);
}

static const struct pd_route route = {
	.name = "health",
	.method = "GET",
	.needs_auth = 0,
	.handles_no_store = 1,
	.description = description,
	.example = example,
	.handle = handle_health,
};

int
main(int argc, char **argv)
{
	return http_main(argc, argv, &route);
}
