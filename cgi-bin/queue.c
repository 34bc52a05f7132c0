/*
 * queue: the pull side of queues, one FastCGI program for its routes:
 * POST /api/receive, /api/ack, /api/release, /api/extend and GET/POST
 * /api/queues (API.md "Queues: pull delivery"). It runs receive_waiters + 8
 * request threads, each request holding a store connection, so that
 * long-polling receives wait in threads, not in processes.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

/* Threads beyond the waiters, so that acks, releases and short receives
 * are served while every waiter waits. */
#define QUEUE_SPARE_THREADS 8
/* Store connections a queue process holds at once, however many receives
 * wait: a waiter holds one only while it looks (a few hundred
 * microseconds a look), so a few serve them all, and a database server
 * shared by many hosts is not asked for one per waiter. With 8, the
 * receive storm test's workers queued for them, and on PostgreSQL the
 * leases they were told overlapped by up to 22 ms (3 runs of 4); with 16
 * they did not (4 of 4). */
#define QUEUE_CONNECTIONS 16

/* For --help; http_main_program adds the usage line, the options and the
 * exit status. */
static const char description[] =
"The FastCGI responder for the queue routes (see postdate-api(7)), chosen\n"
"by the request path:\n"
"  POST /api/receive   queue, max 1..100, visibility 1..43200 s, wait 0..20 s:\n"
"                      leases up to max messages to the worker; with wait it\n"
"                      long-polls until one is receivable or the time is up.\n"
"                      Each message comes with its headers, values included.\n"
"                      An unknown queue is a 404 naming queue (create it with\n"
"                      POST /api/queues, or by scheduling into it).\n"
"  POST /api/ack       id and receipt, or a JSON body {\"items\": [{\"id\",\n"
"                      \"receipt\"}, ...]} (1..100, one transaction).\n"
"  POST /api/release   id, receipt, delay (a duration; default: at once).\n"
"  POST /api/extend    id, receipt, visibility (seconds from now, 1..43200).\n"
"  GET  /api/queues    every queue with its settings and counts; ?name= one.\n"
"  POST /api/queues    name and any of visibility, max_attempts (1..100),\n"
"                      max_depth (0..1000000000, 0: no limit), paused\n"
"                      (true/false): creates or changes a queue.\n"
"A receipt that someone else's receive has replaced (or of a message that\n"
"has ended) is a 409 with the message's state.\n"
"\n"
"Each process runs receive_waiters + 8 request threads (configuration,\n"
"default 64): a waiting receive takes a thread, not a process, and claims\n"
"only when a message is receivable (one thread per process watches for\n"
"commits and wakes the waiters); past receive_waiters receives waiting at\n"
"once, another that asks to wait is answered 503 with Retry-After: 1. On\n"
"SIGTERM waiting receives answer at once (an empty list). Receives and\n"
"acks that arrive together share one transaction (group commit, as in\n"
"schedule): one sync to disk answers them all. Give the web\n"
"server a read timeout above the longest wait (20 s). Run it under a\n"
"FastCGI server behind nginx or Apache; started without one it answers a\n"
"single plain-CGI request.\n";

static const char example[] =
"spawn-fcgi -s /run/postdate/queue.sock -F 2 -- queue -c /etc/postdate.conf";

/* Receives waiting right now in this process. */
static atomic_int waiting;

/* What wakes them (longpoll.c). */
static struct longpoll *poller;

static int
queue_start(struct pd_app *app)
{
	if (committer_start(&app->committer, app) != 0)
		return -1;
	return longpoll_open(&poller, &app->cfg, http_stopping);
}

static int
queue_threads(const struct pd_config *cfg)
{
	return cfg->receive_waiters + QUEUE_SPARE_THREADS;
}

/* ---- field checks ---- */

/* A whole number lo..hi written as digits only (no sign, no fraction, no
 * space, at most 10 digits). */
static int
parse_count(const struct pd_field *fv, long lo, long hi, long *out)
{
	long v = 0;

	if (fv->len == 0 || fv->len > 10)
		return -1;
	for (size_t i = 0; i < fv->len; i++) {
		if (fv->value[i] < '0' || fv->value[i] > '9')
			return -1;
		v = v * 10 + (fv->value[i] - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* An optional count field: absent leaves *out; bad answers 400 with why. */
static int
count_field(struct pd_request *r, const char *name, long lo, long hi, const char *why,
            long *out)
{
	const struct pd_field *fv = fields_get(http_fields(r), name);

	if (fv == NULL)
		return 0;
	if (parse_count(fv, lo, hi, out) != 0) {
		http_error(r, 400, why, name);
		return -1;
	}
	return 0;
}

static int
receipt_valid(const char *text)
{
	if (text == NULL || strlen(text) != PD_RECEIPT_LEN)
		return 0;
	for (const char *p = text; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

#define WHY_QUEUE "queue must be 1 to 64 of A-Z a-z 0-9 _ . -"
#define WHY_NAME "name must be 1 to 64 of A-Z a-z 0-9 _ . -"
#define WHY_VISIBILITY "visibility must be a whole number of seconds from 1 to 43200"
#define WHY_RECEIPT "receipt must be the 32 lowercase hex digits a receive gave"

_Static_assert(PD_MAX_QUEUE_NAME == 64 && PD_MAX_VISIBILITY == 43200 &&
               PD_RECEIPT_LEN == 32 && PD_MAX_RECEIVE == 100 && PD_MAX_WAIT == 20,
    "the sentences above and below spell out the limits");

/* The queue name in field name (queue, or name in /api/queues), which must
 * be given; answers 400 naming the field when it is missing or bad. */
static const char *
required_queue(struct pd_request *r, const char *name, const char *missing, const char *bad)
{
	const struct pd_field *fv = fields_get(http_fields(r), name);

	if (fv == NULL || fv->len == 0) {
		http_error(r, 400, missing, name);
		return NULL;
	}
	if (!queue_name_acceptable(fv->value, fv->len)) {
		http_error(r, 400, bad, name);
		return NULL;
	}
	return fv->value;
}

/* The id and receipt of one acknowledgement, checked; answers 400. */
static int
id_and_receipt(struct pd_request *r, const char *id, const char *receipt)
{
	if (id == NULL || *id == '\0') {
		http_error(r, 400, "id is required", "id");
		return -1;
	}
	if (!id_valid(id)) {
		http_error(r, 400, "not a message id", "id");
		return -1;
	}
	if (receipt == NULL || *receipt == '\0') {
		http_error(r, 400, "receipt is required: the one the receive gave", "receipt");
		return -1;
	}
	if (!receipt_valid(receipt)) {
		http_error(r, 400, WHY_RECEIPT, "receipt");
		return -1;
	}
	return 0;
}

/* A field's value (without NUL bytes: http_fields_known), or NULL. */
static const char *
field_value(struct pd_request *r, const char *name)
{
	const struct pd_field *fv = fields_get(http_fields(r), name);

	return fv != NULL ? fv->value : NULL;
}

/* ---- answers ---- */

/* 503 with Retry-After: 1, for a moment of overload. */
static void
reply_retry_later(struct pd_request *r, const char *sentence)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(sentence));
	json_object_object_add(o, "field", NULL);
	http_reply(r, 503, "Retry-After: 1\r\n", o);
}

/* Why a receipt no longer holds, by what the message is now. */
static const char *
stale_sentence(enum pd_state state)
{
	switch (state) {
	case PD_PENDING:
	case PD_DELIVERING:
		return "the receipt is stale: the message was received again since "
		       "(or released), and only the newest receipt holds its lease";
	default:
		return "the receipt is stale: the message has ended";
	}
}

/* 409 {"error", "state", "field": null}: the receipt no longer holds. */
static void
reply_stale(struct pd_request *r, enum pd_state state)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(stale_sentence(state)));
	json_object_object_add(o, "state", json_object_new_string(state_name(state)));
	json_object_object_add(o, "field", NULL);
	http_reply(r, 409, NULL, o);
}

/* The outcome of one ack, release or extend that the store refused. */
static void
reply_item_refused(struct pd_request *r, const struct store_ack *item, enum store_result res)
{
	if (res == STORE_OK)
		res = item->result;
	if (res == STORE_NOTFOUND)
		http_error(r, 404, "no message has this id", "id");
	else if (res == STORE_CONFLICT)
		reply_stale(r, item->state);
	else
		http_store_error(r, res, NULL);
}

static json_object *
json_time_or_null(pd_ms t)
{
	char buf[PD_TIME_BUF];

	return t != 0 ? json_object_new_string(time_format(t, buf)) : NULL;
}


/* ---- POST /api/receive ---- */

/* Adds a received message to the answer's "messages" array, ctx a jsonw. */
static int
add_received(void *ctx, struct pd_message *m, const char *receipt, pd_ms visible_until)
{
	render_received(ctx, m, receipt, visible_until);
	message_free(m);
	return 0;
}

/* Takes one of receive_waiters places; 0 when all are taken. */
static int
waiter_enter(int limit)
{
	int n = atomic_load(&waiting);

	do {
		if (n >= limit)
			return 0;
	} while (!atomic_compare_exchange_weak(&waiting, &n, n + 1));
	return 1;
}

/* A waiting receive's connection, as longpoll_receive holds it: the
 * request's, and its callback reports are made on the same one (inside
 * the receive's transaction). */
struct waiting_receive {
	struct pd_request *r;
	struct pd_reporter *reporter;
};

static struct pd_store *
take_store(void *waiting_receive)
{
	struct waiting_receive *w = waiting_receive;

	return w->reporter->store = http_store_again(w->r);
}

static void
set_store_aside(void *waiting_receive)
{
	struct waiting_receive *w = waiting_receive;

	http_store_set_aside(w->r);
	w->reporter->store = NULL;
}

static void
handle_receive(struct pd_request *r)
{
	static const char *const known[] = { "queue", "max", "visibility", "wait", NULL };
	struct pd_app *app = http_app(r);
	struct pd_reporter reporter = { http_store(r), &app->cfg };
	struct store_queue_op op = { .fn = add_received };
	long max = 1, visibility = 0, wait = 0;
	enum store_result res;
	struct jsonw answer;
	const char *queue;
	int received = 0;

	if (http_fields_known(r, known, NULL) != 0 ||
	    (queue = required_queue(r, "queue", "queue is required", WHY_QUEUE)) == NULL ||
	    count_field(r, "max", 1, PD_MAX_RECEIVE,
	                "max must be a whole number from 1 to 100", &max) != 0 ||
	    count_field(r, "visibility", 1, PD_MAX_VISIBILITY, WHY_VISIBILITY, &visibility) != 0 ||
	    count_field(r, "wait", 0, PD_MAX_WAIT,
	                "wait must be a whole number of seconds from 0 to 20", &wait) != 0)
		return;
	if (wait > 0 && !waiter_enter(app->cfg.receive_waiters)) {
		reply_retry_later(r, "too many receives are waiting; try again");
		return;
	}
	/* {"messages": [...]}, each message written as it is handed over. */
	jsonw_init(&answer);
	jsonw_open(&answer, '{');
	jsonw_key(&answer, "messages");
	jsonw_open(&answer, '[');
	op.queue = queue;
	op.max = (int)max;
	op.visibility_s = (int)visibility;
	op.ctx = &answer;
	if (wait > 0) {
		struct waiting_receive w = { r, &reporter };
		struct longpoll_store held = { take_store, set_store_aside, &w };

		res = longpoll_receive(poller, &held, queue, (int)max, (int)visibility,
		                       wait * PD_MS_PER_S, report_of_message, &reporter,
		                       add_received, &answer, &received);
		atomic_fetch_sub(&waiting, 1);
	} else {	/* in one commit with the process's other queue work */
		/* The committer writes on a connection of its own: none is
		 * held for this request while it waits its turn. */
		http_store_set_aside(r);
		res = committer_queue(app->committer, &op);
	}
	if (res != STORE_OK) {
		jsonw_free(&answer);
		if (res == STORE_NOTFOUND)
			http_error(r, 404, "no queue has this name (create it with POST "
			           "/api/queues, or by scheduling a message into it)", "queue");
		else
			http_store_error(r, res, NULL);
		return;
	}
	jsonw_close(&answer, ']');
	jsonw_close(&answer, '}');
	http_reply_jsonw(r, 200, NULL, &answer);
}

/* ---- POST /api/ack ---- */

/* One item of a batch's results: {"id", "state"}, or {"id", "error",
 * "state"} for one refused. */
static void
write_ack_result(struct jsonw *w, const struct store_ack *item)
{
	jsonw_open(w, '{');
	jsonw_key(w, "id");
	jsonw_string(w, item->id);
	if (item->result == STORE_OK) {
		jsonw_key(w, "state");
		jsonw_string(w, "delivered");
	} else if (item->result == STORE_NOTFOUND) {
		jsonw_key(w, "error");
		jsonw_string(w, "no message has this id");
		jsonw_key(w, "state");
		jsonw_null(w);
	} else {
		jsonw_key(w, "error");
		jsonw_string(w, stale_sentence(item->state));
		jsonw_key(w, "state");
		jsonw_string(w, state_name(item->state));
	}
	jsonw_close(w, '}');
}

/* Acks items in one transaction and answers: one item as {"id", "state"}
 * (404, 409 on its own), a batch as {"results": [...]}. */
static void
ack_and_reply(struct pd_request *r, struct store_ack *items, size_t n, int batch)
{
	struct store_queue_op op = { .items = items, .n = n };
	enum store_result res;
	struct jsonw answer;
	json_object *o;

	http_store_set_aside(r);       /* the committer has a connection of its own */
	res = committer_queue(http_app(r)->committer, &op);
	if (res != STORE_OK) {
		http_store_error(r, res, NULL);
		return;
	}
	if (!batch) {
		if (items[0].result != STORE_OK) {
			reply_item_refused(r, &items[0], STORE_OK);
			return;
		}
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(items[0].id));
		json_object_object_add(o, "state", json_object_new_string("delivered"));
		http_reply(r, 200, NULL, o);
		return;
	}
	jsonw_init(&answer);
	jsonw_open(&answer, '{');
	jsonw_key(&answer, "results");
	jsonw_open(&answer, '[');
	for (size_t i = 0; i < n; i++)
		write_ack_result(&answer, &items[i]);
	jsonw_close(&answer, ']');
	jsonw_close(&answer, '}');
	http_reply_jsonw(r, 200, NULL, &answer);
}

/* A JSON body {"items": [{"id": "...", "receipt": "..."}, ...]}: checked
 * whole before anything is written; a bad item is a 400 naming items. */
static void
ack_items(struct pd_request *r, json_object *body)
{
	struct store_ack items[PD_MAX_RECEIVE];
	json_object *list = NULL;
	size_t n;
	char why[128];

	if (json_object_object_length(body) != 1 ||
	    !json_object_object_get_ex(body, "items", &list) ||
	    !json_object_is_type(list, json_type_array)) {
		http_error(r, 400, "a batch is {\"items\": [{\"id\": ..., \"receipt\": ...}, ...]} "
		           "and nothing else", "items");
		return;
	}
	n = json_object_array_length(list);
	if (n < 1 || n > PD_MAX_RECEIVE) {
		http_error(r, 400, "items must hold 1 to 100 acknowledgements", "items");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *item = json_object_array_get_idx(list, i), *id, *receipt;

		memset(&items[i], 0, sizeof(items[i]));
		if (!json_object_is_type(item, json_type_object) ||
		    json_object_object_length(item) != 2 ||
		    !json_object_object_get_ex(item, "id", &id) ||
		    !json_object_object_get_ex(item, "receipt", &receipt) ||
		    !json_object_is_type(id, json_type_string) ||
		    !json_object_is_type(receipt, json_type_string)) {
			snprintf(why, sizeof(why), "items[%zu] must be {\"id\": \"...\", "
			         "\"receipt\": \"...\"}", i);
			http_error(r, 400, why, "items");
			return;
		}
		items[i].id = json_object_get_string(id);
		items[i].receipt = json_object_get_string(receipt);
		if ((size_t)json_object_get_string_len(id) != strlen(items[i].id) ||
		    !id_valid(items[i].id)) {
			snprintf(why, sizeof(why), "items[%zu]: not a message id", i);
			http_error(r, 400, why, "items");
			return;
		}
		if ((size_t)json_object_get_string_len(receipt) != strlen(items[i].receipt) ||
		    !receipt_valid(items[i].receipt)) {
			snprintf(why, sizeof(why), "items[%zu]: " WHY_RECEIPT, i);
			http_error(r, 400, why, "items");
			return;
		}
	}
	ack_and_reply(r, items, n, 1);
}

/* The fields of a JSON body that is not a batch, as any other route reads
 * them; answers 400 on failure. */
static int
decode_json_fields(struct pd_request *r, const char *body, size_t len, struct pd_fields *out)
{
	char field[3 * PD_MAX_NAME + 1] = "";
	const char *why = NULL;

	if (jsonreq_decode(body, len, NULL, out, &why, field, sizeof(field)) != 0) {
		http_error(r, 400, why != NULL ? why : "malformed request",
		           field[0] != '\0' ? field : NULL);
		return -1;
	}
	return 0;
}

static void
handle_ack(struct pd_request *r)
{
	static const char *const known[] = { "id", "receipt", NULL };
	const char *type = http_param(r, "CONTENT_TYPE");
	struct pd_fields json_fields = { 0 };
	const struct pd_fields *f = http_fields(r);
	struct store_ack item = { 0 };
	const struct pd_field *id, *receipt;
	size_t len;
	const char *body = http_body(r, &len);

	/* A JSON body came raw (raw_json_body): a batch, or one ack. */
	if (type != NULL && len > 0 && strncasecmp(type, "application/json", 16) == 0) {
		json_tokener *tok = json_tokener_new_ex(PD_MAX_JSON_DEPTH);
		json_object *parsed = NULL;

		if (tok == NULL) {
			http_error(r, 500, "out of memory", NULL);
			return;
		}
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
		parsed = json_tokener_parse_ex(tok, body, (int)len);
		if (json_tokener_get_error(tok) == json_tokener_success &&
		    (size_t)json_tokener_get_parse_end(tok) < len &&
		    strspn(body + json_tokener_get_parse_end(tok), " \t\r\n") !=
		    len - json_tokener_get_parse_end(tok)) {
			json_object_put(parsed);
			parsed = NULL;
		}
		json_tokener_free(tok);
		if (parsed != NULL && json_object_is_type(parsed, json_type_object) &&
		    json_object_object_get_ex(parsed, "items", NULL)) {
			ack_items(r, parsed);
			json_object_put(parsed);
			return;
		}
		json_object_put(parsed);
		/* Not a batch: jsonreq checks it strictly as every route does. */
		if (decode_json_fields(r, body, len, &json_fields) != 0)
			return;
		f = &json_fields;
	}
	if (http_fields_known(r, known, NULL) != 0)
		goto done;
	id = fields_get(f, "id");
	receipt = fields_get(f, "receipt");
	if (id_and_receipt(r, id != NULL ? id->value : NULL,
	                   receipt != NULL ? receipt->value : NULL) != 0)
		goto done;
	item.id = id->value;
	item.receipt = receipt->value;
	ack_and_reply(r, &item, 1, 0);
done:
	fields_free(&json_fields);
}

/* ---- POST /api/release, /api/extend ---- */

static void
handle_release(struct pd_request *r)
{
	static const char *const known[] = { "id", "receipt", "delay", NULL };
	struct pd_reporter reporter = { http_store(r), &http_app(r)->cfg };
	struct store_ack item = { 0 };
	const struct pd_field *delay;
	enum store_result res;
	const char *why;
	pd_ms delay_ms = 0, due = 0;
	json_object *o;

	if (http_fields_known(r, known, NULL) != 0 ||
	    id_and_receipt(r, field_value(r, "id"), field_value(r, "receipt")) != 0)
		return;
	if ((delay = fields_get(http_fields(r), "delay")) != NULL &&
	    timeparse_duration(delay->value, &delay_ms, &why) != 0) {
		http_error(r, 400, "delay must be a duration: 90, 90s, 15m, 2h, 7d, 1h30m", "delay");
		return;
	}
	item.id = field_value(r, "id");
	item.receipt = field_value(r, "receipt");
	res = store_release(http_store(r), &item, delay_ms, time_now(), &due, report_of_message,
	                    &reporter);
	if (res != STORE_OK || item.result != STORE_OK) {
		reply_item_refused(r, &item, res);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(item.id));
	json_object_object_add(o, "state", json_object_new_string(state_name(item.state)));
	json_object_object_add(o, "due", item.state == PD_PENDING ? json_time_or_null(due) : NULL);
	http_reply(r, 200, NULL, o);
}

static void
handle_extend(struct pd_request *r)
{
	static const char *const known[] = { "id", "receipt", "visibility", NULL };
	struct store_ack item = { 0 };
	enum store_result res;
	long visibility = 0;
	pd_ms until = 0;
	json_object *o;

	if (http_fields_known(r, known, NULL) != 0 ||
	    id_and_receipt(r, field_value(r, "id"), field_value(r, "receipt")) != 0)
		return;
	if (fields_get(http_fields(r), "visibility") == NULL) {
		http_error(r, 400, "visibility is required: seconds from now, 1 to 43200",
		           "visibility");
		return;
	}
	if (count_field(r, "visibility", 1, PD_MAX_VISIBILITY, WHY_VISIBILITY, &visibility) != 0)
		return;
	item.id = field_value(r, "id");
	item.receipt = field_value(r, "receipt");
	res = store_extend(http_store(r), &item, visibility * PD_MS_PER_S, time_now(), &until);
	if (res != STORE_OK || item.result != STORE_OK) {
		reply_item_refused(r, &item, res);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(item.id));
	json_object_object_add(o, "visible_until", json_time_or_null(until));
	http_reply(r, 200, NULL, o);
}

/* ---- GET, POST /api/queues ---- */

static int
add_queue(void *ctx, const struct pd_queue *q)
{
	json_object **list = ctx;

	json_object_array_add(list[0], render_queue(q, time_now()));
	return 0;
}

static void
queues_get(struct pd_request *r)
{
	static const char *const known[] = { "name", NULL };
	json_object *o, *list[1];
	enum store_result res;
	struct pd_queue q;
	const char *name;
	pd_ms now = time_now();

	if (http_fields_known(r, known, NULL) != 0)
		return;
	if (fields_get(http_fields(r), "name") != NULL) {
		if ((name = required_queue(r, "name", "name is required", WHY_NAME)) == NULL)
			return;
		res = store_queue_get(http_store(r), name, now, &q);
		if (res == STORE_NOTFOUND)
			http_error(r, 404, "no queue has this name", "name");
		else if (res != STORE_OK)
			http_store_error(r, res, NULL);
		else
			http_reply(r, 200, NULL, render_queue(&q, now));
		return;
	}
	list[0] = json_object_new_array();
	res = store_queue_list(http_store(r), now, add_queue, list);
	if (res != STORE_OK) {
		json_object_put(list[0]);
		http_store_error(r, res, NULL);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "queues", list[0]);
	http_reply(r, 200, NULL, o);
}

static void
queues_post(struct pd_request *r)
{
	static const char *const known[] = { "name", "visibility", "max_attempts", "max_depth",
	                                     "paused", NULL };
	struct pd_queue_change c = { .visibility = -1, .max_attempts = -1, .max_depth = -1,
	                             .paused = -1 };
	long visibility = -1, max_attempts = -1, max_depth = -1;
	const char *paused;
	enum store_result res;
	struct pd_queue q;
	pd_ms now = time_now();

	if (http_fields_known(r, known, NULL) != 0 ||
	    (c.name = required_queue(r, "name", "name is required", WHY_NAME)) == NULL ||
	    count_field(r, "visibility", 1, PD_MAX_VISIBILITY, WHY_VISIBILITY, &visibility) != 0 ||
	    count_field(r, "max_attempts", 1, 100,
	                "max_attempts must be a whole number from 1 to 100", &max_attempts) != 0 ||
	    count_field(r, "max_depth", 0, 1000000000,
	                "max_depth must be a whole number from 0 (no limit) to 1000000000",
	                &max_depth) != 0)
		return;
	if ((paused = field_value(r, "paused")) != NULL) {
		if (strcmp(paused, "true") == 0)
			c.paused = 1;
		else if (strcmp(paused, "false") == 0)
			c.paused = 0;
		else {
			http_error(r, 400, "paused must be true or false", "paused");
			return;
		}
	}
	c.visibility = (int)visibility;
	c.max_attempts = (int)max_attempts;
	c.max_depth = max_depth;
	res = store_queue_set(http_store(r), &c, now, &q);
	if (res != STORE_OK) {
		http_store_error(r, res, NULL);
		return;
	}
	log_info("queue %s: visibility %d s, max_attempts %d, max_depth %ld%s", q.name,
	         q.visibility, q.max_attempts, q.max_depth, q.paused ? ", paused" : "");
	http_reply(r, 200, NULL, render_queue(&q, now));
}

static void
handle_queues(struct pd_request *r)
{
	const char *method = http_param(r, "REQUEST_METHOD");

	if (method != NULL && strcmp(method, "POST") == 0)
		queues_post(r);
	else
		queues_get(r);
}

static const struct pd_route routes[] = {
	{ .name = "receive", .path = "/api/receive", .method = "POST", .needs_auth = 1,
	  .handle = handle_receive },
	{ .name = "ack", .path = "/api/ack", .method = "POST", .needs_auth = 1,
	  .raw_json_body = 1, .handle = handle_ack },
	{ .name = "release", .path = "/api/release", .method = "POST", .needs_auth = 1,
	  .handle = handle_release },
	{ .name = "extend", .path = "/api/extend", .method = "POST", .needs_auth = 1,
	  .handle = handle_extend },
	{ .name = "queues", .path = "/api/queues", .method = "GET POST", .needs_auth = 1,
	  .handle = handle_queues },
};

static const struct pd_program program = {
	.name = "queue",
	.description = description,
	.example = example,
	.routes = routes,
	.nroutes = sizeof(routes) / sizeof(routes[0]),
	.threads = queue_threads,
	.max_connections = QUEUE_CONNECTIONS,
	.start = queue_start,
};

int
main(int argc, char **argv)
{
	return http_main_program(argc, argv, &program);
}
