/*
 * request.h: what the FastCGI programs share: request bodies as fields,
 * schedule requests as messages, tokens, the request loop and group commit.
 */
#ifndef POSTDATE_REQUEST_H
#define POSTDATE_REQUEST_H

#include <stdio.h>

#include "postdate.h"
#include "store.h"

/* ---- fields.c, form.c, jsonreq.c: request bodies as a list of fields ---- */

/* One decoded field. value is NUL-terminated and may also contain NULs
 * (len is authoritative). is_json marks a JSON value kept as JSON text. */
struct pd_field {
	char *name;
	char *value;
	size_t len;
	int is_json;
};

struct pd_fields {
	struct pd_field *v;
	size_t n;
};

/* Appends a copy of name and value. Fails when PD_MAX_FIELDS are taken. */
int fields_add(struct pd_fields *f, const char *name, size_t namelen,
               const char *value, size_t len, int is_json);

/* The first field called name, or NULL. */
const struct pd_field *fields_get(const struct pd_fields *f, const char *name);

/* How many fields are called name. */
size_t fields_count(const struct pd_fields *f, const char *name);

void fields_free(struct pd_fields *f);

/* Decodes application/x-www-form-urlencoded (also a query string):
 * '&'-separated, '+' is a space, %XX decoded once; repeated names kept in
 * order. On a malformed escape, too many fields or too long a name,
 * returns -1 with *why and *field (the offending name, or NULL). */
int form_decode(const char *body, size_t len, struct pd_fields *out,
                const char **why, char *field, size_t fieldlen);

/* Decodes an application/json object. Strings become fields as they are;
 * numbers and booleans their JSON text; null is skipped; an array of
 * scalars becomes repeated fields. For the key raw_json_key (the payload),
 * any non-string value is kept as JSON text with is_json set, and so is an
 * object under the key PD_HEADERS_KEY (a message's headers, which
 * envelope_from_fields reads). Any other nested object or array is an
 * error naming the key. */
#define PD_HEADERS_KEY "headers"
int jsonreq_decode(const char *body, size_t len, const char *raw_json_key,
                   struct pd_fields *out, const char **why, char *field, size_t fieldlen);

/* Whether text is len bytes of well-formed UTF-8 (no overlong forms, no
 * surrogates). */
int utf8_valid(const char *text, size_t len);

/* ---- jsonw.c: JSON text written as it goes, for answers of many objects ---- */

#define JSONW_MAX_DEPTH 8

struct jsonw {
	char *buf;
	size_t len, room;
	int failed;               /* out of memory (or a bracket too many): no text */
	int after_key;            /* a key was written; its value comes next */
	unsigned depth;
	unsigned char has_item[JSONW_MAX_DEPTH];  /* per open bracket: not empty */
};

void jsonw_init(struct jsonw *w);
void jsonw_free(struct jsonw *w);
/* Opens ('{' or '[') or closes ('}' or ']') an object or array. */
void jsonw_open(struct jsonw *w, char bracket);
void jsonw_close(struct jsonw *w, char bracket);
/* The key of the next value, inside an object. */
void jsonw_key(struct jsonw *w, const char *key);
void jsonw_key_len(struct jsonw *w, const char *key, size_t n);
/* A string of n bytes of UTF-8, escaped; jsonw_string writes null for NULL. */
void jsonw_string_len(struct jsonw *w, const char *s, size_t n);
void jsonw_string(struct jsonw *w, const char *s);
void jsonw_int(struct jsonw *w, long long v);
void jsonw_null(struct jsonw *w);
/* The text written (len bytes, NUL-terminated), or NULL when writing
 * failed or a bracket is still open. */
const char *jsonw_text(const struct jsonw *w, size_t *len);

/* Copies len bytes of text into out (outlen bytes, NUL-terminated) with
 * every byte that is not well-formed UTF-8 written as "%XX". */
void utf8_escape_invalid(const char *text, size_t len, char *out, size_t outlen);

/* Reads a request's method (POST unless given) and its headers: repeated
 * header fields "Name: value" (a form), or headers, a JSON object of
 * strings, which jsonreq_decode keeps as JSON text. At most PD_MAX_HEADERS
 * and PD_MAX_HEADER_BYTES; names HTTP tokens, unique without case and none
 * that postdate sets itself or that describe the connection (API.md lists
 * them); values without control characters (CR, LF, NUL...) but tabs. On a
 * bad field returns -1 with *why (which never quotes a value) and *field
 * ("method" or "header"), e left empty. For every request that makes
 * messages: schedule, subscriptions, recurring definitions. */
int envelope_from_fields(struct pd_envelope *e, const struct pd_fields *f, const char **why,
                         const char **field);

/* Builds a new pending message from a schedule request's fields. On a bad
 * field returns -1 with *why and *field naming it. Sets everything except
 * id and created, which the store assigns. */
int message_from_fields(struct pd_message *m, const struct pd_fields *f,
                        const struct pd_config *cfg, pd_ms now,
                        const char **why, const char **field);

/* Reads a subscription from a subscribe request's fields: topic and name
 * (each [A-Za-z0-9_.-]{1,64}) and the delivery options of the copies it
 * gets, in dest (the destination url or queue, callback, max_attempts,
 * timeout). On a bad field returns -1 with *why and *field naming it. */
int subscription_from_fields(struct pd_message *dest, char topic[PD_MAX_QUEUE_NAME + 1],
                             char name[PD_MAX_QUEUE_NAME + 1], const struct pd_fields *f,
                             const struct pd_config *cfg, const char **why,
                             const char **field);

/* ---- auth.c: bearer tokens ---- */

/* Whether the Authorization header value carries one of the configured
 * tokens, compared in constant time. */
int auth_bearer_ok(const struct pd_config *cfg, const char *authorization);

/* ---- http.c: the FastCGI (or plain CGI) request loop ---- */

struct pd_request;

/* What a route accepts; http_serve checks these before the handler runs. */
struct pd_route {
	const char *name;         /* program name for logs and --help */
	const char *path;         /* the request path it answers ("/api/ack"), in a
	                             program of several routes; NULL in a program of one,
	                             which answers whatever path it is sent */
	const char *method;       /* "GET", "POST" or "GET POST" (GET also takes HEAD) */
	int needs_auth;           /* 0 only for /api/health */
	const char *raw_json_key; /* the JSON key kept as JSON text, or NULL */
	int raw_json_body;        /* a JSON body is not decoded into fields: the handler
	                             reads it with http_body (the size limit still holds) */
	int handles_no_store;     /* called even when the database cannot be opened */
	int group_commit;         /* runs in schedule_threads threads and stores through
	                             app->committer (see commit.c) */
	const char *description;  /* for --help: what the program answers */
	const char *example;      /* for --help: one command line */
	void (*handle)(struct pd_request *r);
};

struct pd_app;

/* A FastCGI program that answers several routes, chosen by the request's
 * path (DOCUMENT_URI as nginx sends it, else SCRIPT_NAME as Apache's
 * mod_proxy_fcgi does); a path it does not know is a JSON 404. */
struct pd_program {
	const char *name;         /* for logs and --help */
	const char *description;  /* for --help */
	const char *example;
	const struct pd_route *routes;
	size_t nroutes;
	/* How many request threads to run (NULL: one). Each request holds a
	 * store connection of its own while it is served (http_store), taken
	 * from the program's pool, since a SQLite connection is not shared
	 * between threads here. */
	int (*threads)(const struct pd_config *cfg);
	/* The most store connections those threads hold at once (0: one per
	 * thread); a request past it waits for one to be given back. */
	int max_connections;
	/* Called once the configuration is loaded, before the first request
	 * (NULL: nothing to do); nonzero ends the program with status 1. */
	int (*start)(struct pd_app *app);
};

/* The state each program keeps across requests. */
struct pd_app {
	struct pd_config cfg;
	struct pd_store *store;          /* of a program of one thread */
	struct pd_committer *committer;  /* for group_commit routes */
	const struct pd_route *route;    /* the only route of a single-route program */
	const struct pd_program *program;
};

/* Parses the options (-c, -l, --help, --version), loads the configuration
 * and opens the store, exiting 2 on bad usage and 1 on failure; then serves
 * requests until the web server closes the socket (or once, as plain CGI).
 * Returns the exit status. */
int http_main(int argc, char **argv, const struct pd_route *route);

/* As http_main, for a program of several routes. */
int http_main_program(int argc, char **argv, const struct pd_program *program);

/* For handlers. */
struct pd_app *http_app(struct pd_request *r);
const struct pd_fields *http_fields(struct pd_request *r);
const char *http_param(struct pd_request *r, const char *name);

/* The store this request uses: the program's, or in a program of several
 * threads the connection the request holds, from the program's pool (a new
 * one opened when none waits there, tried again at most once a second
 * after a failure or after http_store_failed). NULL when the database
 * cannot be opened. */
struct pd_store *http_store(struct pd_request *r);

/* Gives the connection a request of a threaded program holds back to the
 * pool while the request waits (a long-polling receive between looks), so
 * that a waiter holds none; http_store_again takes one again (waiting, at
 * the program's max_connections, for one to come back). http_store_again
 * returns NULL when none can be opened. */
void http_store_set_aside(struct pd_request *r);
struct pd_store *http_store_again(struct pd_request *r);

/* Says that an operation on http_store(r) failed in a way that a new
 * connection may cure (STORE_ERROR, STORE_UNAVAILABLE): it is closed, and
 * opened again by a later request. */
void http_store_failed(struct pd_request *r);

/* The request body as it came (NUL-terminated; len may be 0), for a
 * raw_json_body route. */
const char *http_body(struct pd_request *r, size_t *len);

/* Whether the process has been asked to stop (SIGTERM): a long wait
 * should answer now. */
int http_stopping(void);

/* Sends a JSON response and releases body. extra holds further header
 * lines ("Name: value\r\n"...), or NULL. */
void http_reply(struct pd_request *r, int status, const char *extra, struct json_object *body);

/* The same for JSON text a jsonw wrote, which it releases; a text that
 * could not be written whole is a 500. */
void http_reply_jsonw(struct pd_request *r, int status, const char *extra, struct jsonw *body);

/* Sends {"error": sentence, "field": field or null}. */
void http_error(struct pd_request *r, int status, const char *sentence, const char *field);

/* Answers a failure of the store as a whole: 503 with Retry-After: 1 when
 * the database is busy or unavailable, 503 when it is out of disk space,
 * else 500 with sentence (NULL: "the database could not be read or
 * written"). A failure that a new connection may cure closes this one
 * (http_store_failed). */
void http_store_error(struct pd_request *r, enum store_result res, const char *sentence);

/* Answers 400 and returns -1 for a field of r not in known (NULL-ended),
 * one given twice (but those in repeatable, NULL-ended, or NULL for none),
 * or one holding a NUL byte outside the payload. */
int http_fields_known(struct pd_request *r, const char *const known[],
                      const char *const repeatable[]);

/* Sends a body that is not JSON (len bytes of text, as content_type says);
 * text stays the caller's. */
void http_reply_text(struct pd_request *r, int status, const char *content_type,
                     const char *text, size_t len);

/* ---- longpoll.c: receives that wait for work ---- */

/* What a process's waiting receives share: the thread that watches for
 * commits (store_data_version, read every few milliseconds on a connection
 * of its own while anyone waits, not at all otherwise) and wakes them. */
struct longpoll;

/* Starts the watcher on cfg's database; stopping() says when waits should
 * end at once (SIGTERM). */
int longpoll_open(struct longpoll **out, const struct pd_config *cfg, int (*stopping)(void));
void longpoll_close(struct longpoll *lp);

/* How a waiting receive holds its store connection: take() before each
 * look (NULL: none can be had now), set_aside() before each sleep, so that
 * a waiter holds no connection while it sleeps. */
struct longpoll_store {
	struct pd_store *(*take)(void *ctx);
	void (*set_aside)(void *ctx);
	void *ctx;
};

/* Receives as store_receive does, waiting up to wait_ms for a message to
 * become receivable: it claims only when store_queue_ready_at says there is
 * work, and between looks sleeps, its connection set aside, until the
 * earliest of the deadline, the next ready time and a commit by any
 * connection. It answers early, with nothing, once stopping() says so.
 * *received counts the messages given to fn. STORE_OK (none when nothing
 * came in time), STORE_NOTFOUND (no such queue), STORE_UNAVAILABLE (no
 * connection), or the store's failure. */
enum store_result longpoll_receive(struct longpoll *lp, const struct longpoll_store *held,
                                   const char *queue, int max, int visibility_s, pd_ms wait_ms,
                                   store_report_fn report_fn, void *report_ctx,
                                   store_received_fn fn, void *ctx, int *received);

/* ---- metrics.c: GET /api/metrics in the Prometheus text format ---- */

/* The Content-Type of a scrape: the text format, version 0.0.4. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Writes text to out escaped as the format asks: a backslash and a line
 * feed always (a HELP text), a double quote too in a label value. */
void metrics_escape(FILE *out, const char *text, int is_label_value);

/* The whole scrape of m and the queues (as store_metrics and
 * store_queue_list read them) as of now: malloc'd text of *len bytes, or
 * NULL when out of memory. */
char *metrics_render(const struct store_metrics *m, const struct pd_queue *queues,
                     size_t nqueues, pd_ms now, size_t *len);

/* ---- commit.c: group commit for schedule's request threads ---- */

struct pd_app;
struct pd_committer;

/* Sets up group commit for app's request threads, through app->store
 * (reopened as needed when NULL). */
int committer_start(struct pd_committer **out, struct pd_app *app);

/* As store_insert, from any thread: queues m for the next transaction
 * (committed by this thread or another request's) and returns once that
 * transaction has committed (or failed). STORE_UNAVAILABLE while the
 * database cannot be opened. */
enum store_result committer_insert(struct pd_committer *c, struct pd_message *m, pd_ms now);

/* As store_receive or store_ack (op says which, as store_queue_batch
 * reads it), from any thread, in a transaction shared with the queue work
 * of other requests; returns op->result. */
enum store_result committer_queue(struct pd_committer *c, struct store_queue_op *op);

/* Frees c, once no request thread uses it any more. */
void committer_stop(struct pd_committer *c);

#endif
