/*
 * status: GET /api/status. With id, one message and its attempt history;
 * without, a page of the list in due order with counts per state.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 1000

/* For --help; http_main adds the usage line, the options and the exit status. */
static const char description[] =
"The FastCGI responder for GET /api/status: ?id=ID answers one message with\n"
"its payload (text when UTF-8, else payload_base64) and its attempt\n"
"history; without id it lists messages by due time, without payloads\n"
"(?state=pending|delivering|delivered|failed|cancelled|expired|all,\n"
"&queue=NAME for one queue's messages only, &limit=1..1000, &cursor= from\n"
"the previous page's next_cursor); without state it lists only pending\n"
"messages (state=all lists every one). With queue, counts are that\n"
"queue's; a queue nobody has used lists nothing. A message's own headers\n"
"are shown by name only (\"headers\": [\"Authorization\"]), never their\n"
"values. Run it under a FastCGI server behind nginx or Apache; started\n"
"without one it answers a single plain-CGI request.\n";

static const char example[] =
"spawn-fcgi -s /run/postdate/status.sock -F 2 -- status -c /etc/postdate.conf";

static void
reply_store_error(struct pd_request *r, enum store_result res)
{
	if (res == STORE_BUSY || res == STORE_NOSPACE)
		http_error(r, 503, "the database is busy; try again", NULL);
	else
		http_error(r, 500, "the database could not be read", NULL);
}

static int
add_attempt(void *ctx, const struct pd_attempt *a)
{
	json_object_array_add(ctx, render_attempt(a));
	return 0;
}

static void
reply_one(struct pd_request *r, const char *id)
{
	struct pd_store *store = http_app(r)->store;
	struct pd_message m;
	enum store_result res;
	json_object *o, *history;

	history = json_object_new_array();
	res = id_valid(id) ? store_get(store, id, &m, add_attempt, history) : STORE_NOTFOUND;
	if (res != STORE_OK) {
		json_object_put(history);
		if (res == STORE_NOTFOUND)
			http_error(r, 404, "no message has this id", "id");
		else
			reply_store_error(r, res);
		return;
	}
	o = render_message_with_payload(&m);
	json_object_object_add(o, "history", history);
	message_free(&m);
	http_reply(r, 200, NULL, o);
}

/* The cursor is "<due>.<id>" of the last message shown. Clients treat it
 * as opaque; it is checked strictly all the same. */
static int
cursor_parse(const char *text, pd_ms *due, char id[PD_ID_LEN + 1])
{
	const char *dot = strchr(text, '.');
	pd_ms v = 0;

	if (dot == NULL || dot == text || dot - text > 15 || !id_valid(dot + 1))
		return -1;
	for (const char *p = text; p < dot; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	*due = v;
	memcpy(id, dot + 1, PD_ID_LEN + 1);
	return 0;
}

struct list_page {
	json_object *messages;
	int limit;
	int seen;
	char next_cursor[64];
};

static int
add_message(void *ctx, const struct pd_message *m)
{
	struct list_page *page = ctx;

	/* One row past the limit is read only to learn whether a next page exists. */
	if (++page->seen > page->limit)
		return 1;
	json_object_array_add(page->messages, render_message(m));
	snprintf(page->next_cursor, sizeof(page->next_cursor), "%" PRId64 ".%s", m->due, m->id);
	return 0;
}

static void
reply_list(struct pd_request *r)
{
	const struct pd_fields *f = http_fields(r);
	const struct pd_field *state_f = fields_get(f, "state");
	const struct pd_field *limit_f = fields_get(f, "limit");
	const struct pd_field *cursor_f = fields_get(f, "cursor");
	const struct pd_field *queue_f = fields_get(f, "queue");
	struct pd_store *store = http_app(r)->store;
	struct list_page page = { .limit = LIST_DEFAULT_LIMIT };
	char after_id[PD_ID_LEN + 1];
	pd_ms after_due = 0;
	long counts[PD_NSTATES];
	enum store_result res;
	int state = PD_PENDING;
	json_object *o, *c;

	if (state_f != NULL && strcmp(state_f->value, "all") == 0)
		state = -1;
	else if (state_f != NULL && (state = state_parse(state_f->value)) < 0) {
		http_error(r, 400, "state must be pending, delivering, delivered, failed, "
		           "cancelled, expired or all", "state");
		return;
	}
	if (queue_f != NULL && !queue_name_acceptable(queue_f->value, queue_f->len)) {
		http_error(r, 400, "queue must be 1 to 64 of the characters A-Z, a-z, 0-9, '_', "
		           "'.' and '-'", "queue");
		return;
	}
	if (limit_f != NULL) {
		long v = 0;

		if (limit_f->len == 0 || limit_f->len > 4)
			v = -1;
		for (size_t i = 0; v >= 0 && i < limit_f->len; i++)
			v = limit_f->value[i] >= '0' && limit_f->value[i] <= '9' ?
			    v * 10 + (limit_f->value[i] - '0') : -1;
		if (v < 1 || v > LIST_MAX_LIMIT) {
			http_error(r, 400, "limit must be a whole number from 1 to 1000", "limit");
			return;
		}
		page.limit = (int)v;
	}
	if (cursor_f != NULL && cursor_parse(cursor_f->value, &after_due, after_id) != 0) {
		http_error(r, 400, "not a cursor from a previous answer", "cursor");
		return;
	}

	page.messages = json_object_new_array();
	res = store_list(store, state, queue_f != NULL ? queue_f->value : NULL, after_due, cursor_f != NULL ? after_id : NULL,
	                 page.limit + 1, add_message, &page, counts);
	if (res != STORE_OK) {
		json_object_put(page.messages);
		reply_store_error(r, res);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "messages", page.messages);
	json_object_object_add(o, "next_cursor", page.seen > page.limit ?
	    json_object_new_string(page.next_cursor) : NULL);
	c = json_object_new_object();
	for (int i = 0; i < PD_NSTATES; i++)
		json_object_object_add(c, state_name((enum pd_state)i),
		                       json_object_new_int64(counts[i]));
	json_object_object_add(o, "counts", c);
	http_reply(r, 200, NULL, o);
}

static void
handle_status(struct pd_request *r)
{
	static const char *const known[] = { "id", "state", "queue", "limit", "cursor", NULL };
	const struct pd_fields *f = http_fields(r);
	const struct pd_field *id;

	if (http_fields_known(r, known, NULL) != 0)
		return;
	id = fields_get(f, "id");
	if (id != NULL)
		reply_one(r, id->value);
	else
		reply_list(r);
}

static const struct pd_route route = {
	.name = "status",
	.method = "GET",
	.needs_auth = 1,
	.description = description,
	.example = example,
	.handle = handle_status,
};

int
main(int argc, char **argv)
{
	return http_main(argc, argv, &route);
}
