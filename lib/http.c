/*
 * http.c: the request loop every FastCGI program shares. It checks the
 * method, the token and the body size, decodes the fields, and only then
 * calls the route's handler. A bad request ends that request with a JSON
 * error; the process keeps serving.
 *
 * Under a FastCGI server (fd 0 is a listening socket) it loops on
 * FCGX_Accept_r, in one thread, in schedule_threads threads for a
 * group-commit route (schedule), or in as many as a program of several
 * routes asks for (queue), each request holding a store connection;
 * started any other way it serves one plain-CGI request from stdin and the
 * environment.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <json-c/json.h>

#include "postdate.h"
#include "request.h"
#include "store.h"

#if defined(__SANITIZE_ADDRESS__)
#define HTTP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HTTP_ASAN 1
#endif
#endif
#ifdef HTTP_ASAN
#include <sanitizer/lsan_interface.h>
#endif

extern char **environ;

/* How many requests are being served right now; SIGTERM waits for them. */
static atomic_int serving;
static atomic_int stop_after_request;   /* set by SIGTERM; read by every thread */

/* Ends the process once nothing is being served. _exit skips LeakSanitizer's
 * check at exit; run it here so that `make test SANITIZE=1` sees leaks. */
static void
exit_idle(void)
{
#ifdef HTTP_ASAN
	__lsan_do_leak_check();
#endif
	_exit(0);
}

/* libfcgi's own SIGTERM handler only sets a flag while accept() keeps
 * waiting, so a worker would outlive its server. Ours exits at once when
 * idle, and after the requests in progress (whose answers are already
 * committed or not begun) when busy. */
static void
on_terminate(int signo)
{
	(void)signo;
	stop_after_request = 1;
	if (atomic_load(&serving) == 0)
		exit_idle();
}

struct pd_request {
	struct pd_app *app;
	const struct pd_route *route;  /* the route this request asked for */
	struct pd_store *store;   /* held while it is served, when the program has threads */
	pd_ms store_last_try;     /* when it was last opened, or tried */
	FCGX_Request *fcgx;       /* NULL under plain CGI */
	char **envp;
	char *body;
	size_t body_len;
	struct pd_fields fields;
	int is_head;
	int replied;
};

struct pd_app *
http_app(struct pd_request *r)
{
	return r->app;
}

const struct pd_fields *
http_fields(struct pd_request *r)
{
	return &r->fields;
}

const char *
http_param(struct pd_request *r, const char *name)
{
	return FCGX_GetParam(name, r->envp);
}

const char *
http_body(struct pd_request *r, size_t *len)
{
	*len = r->body_len;
	return r->body != NULL ? r->body : "";
}

int
http_stopping(void)
{
	return atomic_load(&stop_after_request) != 0;
}

/* Whether each request has a store connection of its own while it is
 * served (from the pool below). */
static int
store_per_thread(const struct pd_app *app)
{
	return app->program->threads != NULL;
}

static void pool_forget(void);
static void pool_give(struct pd_store *s);
static int store_reopen(struct pd_request *r);

struct pd_store *
http_store(struct pd_request *r)
{
	return store_per_thread(r->app) ? r->store : r->app->store;
}

void
http_store_failed(struct pd_request *r)
{
	if (!store_per_thread(r->app) || r->store == NULL)
		return;
	store_close(r->store);
	r->store = NULL;
	pool_forget();
}

void
http_store_set_aside(struct pd_request *r)
{
	if (!store_per_thread(r->app))
		return;
	pool_give(r->store);
	r->store = NULL;
}

struct pd_store *
http_store_again(struct pd_request *r)
{
	if (http_store(r) == NULL)
		store_reopen(r);
	return http_store(r);
}

static const char *
status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 507: return "Insufficient Storage";
	default: return "Status";
	}
}

static void
http_write(struct pd_request *r, const char *data, size_t len)
{
	if (r->fcgx != NULL)
		FCGX_PutStr(data, (int)len, r->fcgx->out);
	else
		fwrite(data, 1, len, stdout);
}

/* Sends the JSON text of an answer, a newline after it. */
static void
reply_json_text(struct pd_request *r, int status, const char *extra, const char *text,
                size_t textlen)
{
	char head[1024];
	int n;

	r->replied = 1;
	n = snprintf(head, sizeof(head),
	    "Status: %d %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s\r\n",
	    status, status_reason(status), textlen + 1, extra != NULL ? extra : "");
	http_write(r, head, (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1);
	if (!r->is_head) {
		http_write(r, text, textlen);
		http_write(r, "\n", 1);
	}
}

void
http_reply(struct pd_request *r, int status, const char *extra, struct json_object *body)
{
	const char *text;
	size_t textlen;

	if (!r->replied) {
		text = json_object_to_json_string_length(body,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &textlen);
		reply_json_text(r, status, extra, text, textlen);
	}
	json_object_put(body);
}

void
http_reply_jsonw(struct pd_request *r, int status, const char *extra, struct jsonw *body)
{
	size_t textlen;
	const char *text = jsonw_text(body, &textlen);

	if (text == NULL) {
		log_error("%s: out of memory writing an answer", r->route != NULL ?
		          r->route->name : "request");
		jsonw_free(body);
		http_error(r, 500, "internal error", NULL);
		return;
	}
	if (!r->replied)
		reply_json_text(r, status, extra, text, textlen);
	jsonw_free(body);
}

void
http_reply_text(struct pd_request *r, int status, const char *content_type, const char *text,
                size_t len)
{
	char head[512];
	int n;

	if (r->replied)
		return;
	r->replied = 1;
	n = snprintf(head, sizeof(head),
	    "Status: %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "\r\n",
	    status, status_reason(status), content_type, len);
	http_write(r, head, (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1);
	if (!r->is_head)
		http_write(r, text, len);
}

static void
http_error_with(struct pd_request *r, int status, const char *extra, const char *sentence,
                const char *field)
{
	json_object *o = json_object_new_object();
	char shown[3 * PD_MAX_NAME + 1];

	/* A field name comes from the client: bytes that are not UTF-8 are
	 * shown %-escaped, or the answer would not be valid JSON. */
	if (field != NULL && !utf8_valid(field, strlen(field))) {
		utf8_escape_invalid(field, strlen(field), shown, sizeof(shown));
		field = shown;
	}
	json_object_object_add(o, "error", json_object_new_string(sentence));
	json_object_object_add(o, "field", field != NULL ? json_object_new_string(field) : NULL);
	http_reply(r, status, extra, o);
}

void
http_error(struct pd_request *r, int status, const char *sentence, const char *field)
{
	http_error_with(r, status, NULL, sentence, field);
}

void
http_store_error(struct pd_request *r, enum store_result res, const char *sentence)
{
	switch (res) {
	case STORE_BUSY:
		http_error_with(r, 503, "Retry-After: 1\r\n", "the database is busy; try again", NULL);
		break;
	case STORE_NOSPACE:
		http_error(r, 503, "the database is out of disk space", NULL);
		break;
	case STORE_UNAVAILABLE:
		http_store_failed(r);
		http_error_with(r, 503, "Retry-After: 1\r\n", "the database is unavailable", NULL);
		break;
	default:
		/* A new connection may cure what this one has. */
		http_store_failed(r);
		http_error(r, 500, sentence != NULL ? sentence :
		           "the database could not be read or written", NULL);
		break;
	}
}

/* Whether name is one of list (NULL-ended; a NULL list holds none). */
static int
name_in(const char *name, const char *const list[])
{
	for (size_t k = 0; list != NULL && list[k] != NULL; k++)
		if (strcmp(name, list[k]) == 0)
			return 1;
	return 0;
}

int
http_fields_known(struct pd_request *r, const char *const known[],
                  const char *const repeatable[])
{
	const struct pd_fields *f = http_fields(r);

	for (size_t i = 0; i < f->n; i++) {
		const struct pd_field *v = &f->v[i];

		if (!name_in(v->name, known)) {
			http_error(r, 400, "unknown field", v->name);
			return -1;
		}
		if (!name_in(v->name, repeatable) && fields_count(f, v->name) > 1) {
			http_error(r, 400, "this field may be given only once", v->name);
			return -1;
		}
		if (strcmp(v->name, "payload") != 0 && strlen(v->value) != v->len) {
			http_error(r, 400, "a value may not hold a NUL byte", v->name);
			return -1;
		}
	}
	return 0;
}

/* Strict Content-Length: digits only, no sign, no overflow. An absent
 * or empty one is 0 here; the caller tells it from a stated 0. */
static int
parse_content_length(const char *text, size_t *out)
{
	size_t v = 0;

	if (text == NULL || *text == '\0') {
		*out = 0;
		return 0;
	}
	for (; *text; text++) {
		if (*text < '0' || *text > '9' || v > (SIZE_MAX - 9) / 10)
			return -1;
		v = v * 10 + (size_t)(*text - '0');
	}
	*out = v;
	return 0;
}

/* Reads exactly len bytes of body. */
static int
read_body(struct pd_request *r, size_t len)
{
	size_t got = 0;

	r->body = malloc(len + 1);
	if (r->body == NULL)
		return -1;
	while (got < len) {
		int n;

		if (r->fcgx != NULL)
			n = FCGX_GetStr(r->body + got, (int)(len - got), r->fcgx->in);
		else
			n = (int)fread(r->body + got, 1, len - got, stdin);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	r->body[len] = '\0';
	r->body_len = len;
	return 0;
}

/*
 * Reads a body whose length the server did not state, to the end of the
 * FastCGI stream: Apache's mod_proxy_fcgi passes a chunked request body
 * on as it arrives, without CONTENT_LENGTH. It keeps at most limit bytes;
 * the buffer grows as the body comes, so a small body costs little.
 * Returns 0 (r->body holds it), 1 when the body is larger than limit
 * (what was read is not used, and is freed with the request), -1 when
 * the stream failed or memory ran out.
 */
static int
read_body_to_end(struct pd_request *r, size_t limit)
{
	size_t got = 0, room = 0;

	for (;;) {
		int n;

		if (got == room) {
			size_t want = room == 0 ? 16384 : room * 2;
			char *grown;

			/* One byte past the limit tells "too large" from "exactly the limit". */
			if (want > limit + 1)
				want = limit + 1;
			if (want <= room)
				return 1;
			grown = realloc(r->body, want + 1);
			if (grown == NULL)
				return -1;
			r->body = grown;
			room = want;
		}
		n = FCGX_GetStr(r->body + got, (int)(room - got), r->fcgx->in);
		if (n < 0 || FCGX_GetError(r->fcgx->in) != 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > limit)
		return 1;
	r->body[got] = '\0';
	r->body_len = got;
	return 0;
}

static void
body_too_large(struct pd_request *r)
{
	char sentence[96];

	snprintf(sentence, sizeof(sentence), "the request body is larger than %zu bytes",
	         r->app->cfg.max_body);
	http_error(r, 413, sentence, NULL);
}

/* The media type without parameters, compared case-insensitively. */
static int
media_type_is(const char *content_type, const char *want)
{
	size_t n = strlen(want);

	return strncasecmp(content_type, want, n) == 0 &&
	       (content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ');
}

/* Turns the query string (GET) or body (POST) into fields, or answers. */
static int
decode_request(struct pd_request *r, const char *method)
{
	const struct pd_route *route = r->route;
	const char *why = NULL, *type, *length;
	char field[3 * PD_MAX_NAME + 1] = "";    /* room for a %-escaped name */
	size_t len;
	int rc;

	if (strcmp(method, "POST") != 0) {
		const char *query = http_param(r, "QUERY_STRING");

		rc = form_decode(query != NULL ? query : "", query != NULL ? strlen(query) : 0,
		                 &r->fields, &why, field, sizeof(field));
		goto decoded;
	}
	length = http_param(r, "CONTENT_LENGTH");
	if (parse_content_length(length, &len) != 0) {
		http_error(r, 400, "invalid Content-Length", NULL);
		return -1;
	}
	/* No length stated: under FastCGI the body may still come (chunked
	 * through Apache) and ends with its stream; plain CGI has none then
	 * (RFC 3875), and stdin might never end. */
	if ((length == NULL || *length == '\0') && r->fcgx != NULL) {
		rc = read_body_to_end(r, r->app->cfg.max_body);
		if (rc == 1) {
			body_too_large(r);
			return -1;
		}
		if (rc != 0) {
			http_error(r, 400, "the request body could not be read", NULL);
			return -1;
		}
		len = r->body_len;
	} else if (len > r->app->cfg.max_body) {
		body_too_large(r);
		return -1;
	} else if (read_body(r, len) != 0) {
		http_error(r, 400, "the request body ended early", NULL);
		return -1;
	}
	type = http_param(r, "CONTENT_TYPE");
	if (len == 0 && (type == NULL || *type == '\0'))
		return 0;
	if (type != NULL && media_type_is(type, "application/json") && route->raw_json_body)
		return 0;
	if (type != NULL && media_type_is(type, "application/json"))
		rc = jsonreq_decode(r->body, len, route->raw_json_key, &r->fields, &why,
		                    field, sizeof(field));
	else if (type == NULL || *type == '\0' ||
	         media_type_is(type, "application/x-www-form-urlencoded"))
		rc = form_decode(r->body, len, &r->fields, &why, field, sizeof(field));
	else {
		http_error(r, 415, "send application/x-www-form-urlencoded or application/json",
		           NULL);
		return -1;
	}
decoded:
	if (rc != 0) {
		http_error(r, 400, why != NULL ? why : "malformed request",
		           field[0] != '\0' ? field : NULL);
		return -1;
	}
	return 0;
}

/*
 * The connections of a program whose request threads each need one, when
 * no request holds them: a stack, the last one given back on top. A
 * request takes the one used last, whose page cache is warm; with one
 * connection per thread, most requests would land on a cold one and read
 * their pages from the file again. At most as many are open as requests
 * have been served at once, and never more than the program's
 * max_connections: past that a request waits for one to come back (a
 * long-polling receive holds one only while it looks, so a process of
 * many waiters keeps few connections to a database server).
 */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_returned = PTHREAD_COND_INITIALIZER;
static struct pd_store **pool;
static size_t pool_n, pool_room;
static size_t pool_open;          /* open: held by requests or waiting here */
static size_t pool_max;           /* the program's max_connections (0: no bound) */

/* A connection that waits in the pool, or NULL with the right to open one
 * (counted: pool_forget gives it up if the opening fails). Waits while
 * pool_max are open and none waits here. */
static struct pd_store *
pool_take(void)
{
	struct pd_store *s = NULL;

	pthread_mutex_lock(&pool_lock);
	while (pool_n == 0 && pool_max != 0 && pool_open >= pool_max)
		pthread_cond_wait(&pool_returned, &pool_lock);
	if (pool_n > 0)
		s = pool[--pool_n];
	else
		pool_open++;
	pthread_mutex_unlock(&pool_lock);
	return s;
}

/* One connection of the pool's is gone (closed, or never opened). */
static void
pool_forget(void)
{
	pthread_mutex_lock(&pool_lock);
	pool_open--;
	pthread_cond_signal(&pool_returned);
	pthread_mutex_unlock(&pool_lock);
}

static void
pool_give(struct pd_store *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&pool_lock);
	if (pool_n == pool_room) {
		size_t room = pool_room ? 2 * pool_room : 16;
		void *more = realloc(pool, room * sizeof(*pool));

		if (more != NULL) {
			pool = more;
			pool_room = room;
		}
	}
	if (pool_n < pool_room) {
		pool[pool_n++] = s;
		s = NULL;
		pthread_cond_signal(&pool_returned);
	}
	pthread_mutex_unlock(&pool_lock);
	if (s != NULL) {
		store_close(s);
		pool_forget();
	}
}

/* A store that could not be opened (at start-up, or again after a failure)
 * is tried again at most once a second, so a database that comes back is
 * served without a restart. The program's store, or the request's, taken
 * from the pool when one waits there. */
static int
store_reopen(struct pd_request *r)
{
	static pd_ms last_try;
	struct pd_app *app = r->app;
	pd_ms *tried = store_per_thread(app) ? &r->store_last_try : &last_try;
	pd_ms now = clock_monotonic();

	if (store_per_thread(app) && (r->store = pool_take()) != NULL)
		return 1;
	if (*tried == 0 || now - *tried >= 1000) {
		if (store_open(store_per_thread(app) ? &r->store : &app->store, &app->cfg) == 0) {
			*tried = 0;
			return 1;
		}
		*tried = now;
	}
	if (store_per_thread(app))
		pool_forget();
	return 0;
}

/* Whether method (a word) is one of route's, HEAD counting as GET. */
static int
method_allowed(const struct pd_route *route, const char *method, int is_head)
{
	const char *want = is_head ? "GET" : method;
	size_t n = strlen(want);

	for (const char *p = route->method; *p != '\0'; ) {
		size_t len = strcspn(p, " ");

		if (len == n && strncmp(p, want, n) == 0)
			return 1;
		p += len;
		p += strspn(p, " ");
	}
	return 0;
}

/* The Allow header of route: its methods, HEAD after GET. */
static void
allow_header(const struct pd_route *route, char *out, size_t size)
{
	size_t used = (size_t)snprintf(out, size, "Allow:");

	for (const char *p = route->method; *p != '\0' && used < size; ) {
		size_t len = strcspn(p, " ");

		used += (size_t)snprintf(out + used, size - used, "%s %.*s%s",
		    p == route->method ? "" : ",", (int)len, p,
		    len == 3 && strncmp(p, "GET", 3) == 0 ? ", HEAD" : "");
		p += len;
		p += strspn(p, " ");
	}
	if (used < size)
		snprintf(out + used, size - used, "\r\n");
}

/* The route a request's path asks for: the only one of a single-route
 * program, else the one whose path is DOCUMENT_URI (nginx), or SCRIPT_NAME
 * followed by PATH_INFO (CGI's split of the path, which Apache's
 * mod_proxy_fcgi makes at the last folder that exists under its
 * DocumentRoot: /api/receive arrives as "/api" and "/receive"); NULL for
 * none. */
static const struct pd_route *
route_of_request(struct pd_request *r)
{
	const struct pd_program *program = r->app->program;
	const char *path, *info;
	char joined[256];

	if (program->nroutes == 1 && program->routes[0].path == NULL)
		return &program->routes[0];
	path = http_param(r, "DOCUMENT_URI");
	if (path == NULL || *path == '\0') {
		path = http_param(r, "SCRIPT_NAME");
		info = http_param(r, "PATH_INFO");
		if (path != NULL && info != NULL && *info != '\0') {
			/* A path longer than any route's is no route. */
			if ((size_t)snprintf(joined, sizeof(joined), "%s%s", path, info) >=
			    sizeof(joined))
				return NULL;
			path = joined;
		}
	}
	if (path == NULL)
		return NULL;
	for (size_t i = 0; i < program->nroutes; i++)
		if (strcmp(program->routes[i].path, path) == 0)
			return &program->routes[i];
	return NULL;
}

static void
serve_request(struct pd_request *r)
{
	const struct pd_route *route;
	const char *method = http_param(r, "REQUEST_METHOD"), *refusal;
	char allow[64];

	if (method == NULL)
		method = "GET";
	r->is_head = strcmp(method, "HEAD") == 0;
	/* Before anything else: a page elsewhere learns nothing, not even
	 * which routes exist. */
	if ((refusal = origin_refused(&r->app->cfg, http_param(r, "HTTP_HOST"),
	                              http_param(r, "HTTP_ORIGIN"))) != NULL) {
		http_error(r, 403, refusal, NULL);
		return;
	}
	if ((route = route_of_request(r)) == NULL) {
		http_error(r, 404, "no such route", NULL);
		return;
	}
	r->route = route;
	if (!method_allowed(route, method, r->is_head)) {
		allow_header(route, allow, sizeof(allow));
		http_error_with(r, 405, allow, "method not allowed", NULL);
		return;
	}
	if (route->needs_auth && !auth_bearer_ok(&r->app->cfg, http_param(r, "HTTP_AUTHORIZATION"))) {
		http_error_with(r, 401, "WWW-Authenticate: Bearer\r\n",
		    "a valid token is required: send Authorization: Bearer <token>", NULL);
		return;
	}
	if (decode_request(r, method) != 0)
		return;
	/* A group-commit route opens the store in committer_insert, under its lock. */
	if (!route->group_commit && http_store(r) == NULL && !store_reopen(r) &&
	    !route->handles_no_store) {
		http_error(r, 503, "the database is unavailable", NULL);
		return;
	}
	route->handle(r);
	if (!r->replied) {
		log_error("%s: handler sent no answer", route->name);
		http_error(r, 500, "internal error", NULL);
	}
}

static void
request_reset(struct pd_request *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
	fields_free(&r->fields);
	r->is_head = 0;
	r->replied = 0;
	r->route = NULL;
	if (store_per_thread(r->app)) {
		pool_give(r->store);
		r->store = NULL;
	}
}

/* Whether the web server has sent all of the request's input: the end of
 * its body has been read, or is all that is left. */
static int
input_ended(FCGX_Request *fcgx)
{
	return FCGX_HasSeenEOF(fcgx->in) == EOF || FCGX_GetChar(fcgx->in) == EOF;
}

/* One request thread: accepts and serves FastCGI requests until the server
 * closes the socket or SIGTERM asks to stop. */
static void *
serve_loop(void *arg)
{
	struct pd_request r = { .app = arg };
	FCGX_Request fcgx;
	int rc;

	if (FCGX_InitRequest(&fcgx, 0, 0) != 0) {
		log_error("cannot initialise a FastCGI request");
		return NULL;
	}
	r.fcgx = &fcgx;
	for (;;) {
		/* Threads accept at once, unserialised (libfcgi's threaded
		 * example takes a mutex for "platforms that require it"; Linux
		 * wakes one accept() per connection): a mutex handed from thread
		 * to thread cost two futex calls and a context switch per request,
		 * and held while the request's parameters were read, one slow
		 * client held up every other. */
		rc = stop_after_request ? -1 : FCGX_Accept_r(&fcgx);
		if (rc < 0)
			break;
		atomic_fetch_add(&serving, 1);
		r.envp = fcgx.envp;
		serve_request(&r);
		/* A request whose input has all been read is closed at once:
		 * libfcgi otherwise shuts the socket's sending side and waits
		 * in poll() for the server to close its own (a sleep and a
		 * wake-up per request), so that input still arriving cannot
		 * reset the connection before the server has read the answer.
		 * A request answered before its body ended (413) still closes
		 * that way. */
		if (input_ended(&fcgx))
			FCGX_Detach(&fcgx);
		FCGX_Finish_r(&fcgx);
		request_reset(&r);
		/* The last request to end after SIGTERM ends the process. */
		if (atomic_fetch_sub(&serving, 1) == 1 && stop_after_request)
			exit_idle();
	}
	FCGX_Free(&fcgx, 1);
	store_close(r.store);
	return NULL;
}

/* Serves on fd 0 with one thread, schedule_threads for a group-commit
 * route, or the program's own count; returns when the server closes the
 * socket. */
static int
serve_fastcgi(struct pd_app *app)
{
	struct sigaction sa = { .sa_handler = on_terminate };
	int nthreads = app->program->threads != NULL ? app->program->threads(&app->cfg) :
	               app->route != NULL && app->route->group_commit ?
	               app->cfg.schedule_threads : 1;
	pthread_t *threads;
	int started;

	/* Installed before FCGX_Init, which then leaves it in place. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (FCGX_Init() != 0) {
		log_error("cannot initialise FastCGI");
		return -1;
	}
	pool_max = app->program->max_connections > 0 ? (size_t)app->program->max_connections : 0;
	if (nthreads == 1 && !store_per_thread(app)) {
		serve_loop(app);
		return 0;
	}
	threads = calloc((size_t)nthreads, sizeof(*threads));
	if (threads == NULL) {
		log_error("out of memory starting %d request threads", nthreads);
		return -1;
	}
	for (started = 0; started < nthreads; started++)
		if (pthread_create(&threads[started], NULL, serve_loop, app) != 0)
			break;
	if (started < nthreads)
		log_warn("started %d of %d request threads", started, nthreads);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	return started > 0 ? 0 : -1;
}

/* The --help text: the program's own description and example around the
 * options and exit statuses that every FastCGI program shares. */
static void
usage_exit(const struct pd_program *program, int status)
{
	FILE *out = status == 0 ? stdout : stderr;

	fprintf(out, "usage: %s [-c FILE] [-l FILE]\n\n%s\n", program->name,
	        program->description);
	fputs("  -c, --config FILE  configuration file (default: $POSTDATE_CONF, else\n"
	      "                     /etc/postdate.conf)\n"
	      "  -l, --log FILE     append log lines to FILE instead of stderr (spawn-fcgi\n"
	      "                     sends a worker's stderr to /dev/null)\n"
	      "  -h, --help         show this text\n"
	      "  -V, --version      show the version\n"
	      "\n"
	      "Exit status: 0 when the server closes the socket, 1 on a start-up failure\n"
	      "(bad configuration; the reason is logged), 2 on bad usage.\n\n", out);
	fprintf(out, "Example: %s\n", program->example);
	exit(status);
}

int
http_main(int argc, char **argv, const struct pd_route *route)
{
	struct pd_program program = {
		.name = route->name,
		.description = route->description,
		.example = route->example,
		.routes = route,
		.nroutes = 1,
	};

	return http_main_program(argc, argv, &program);
}

int
http_main_program(int argc, char **argv, const struct pd_program *program)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static struct pd_app app;
	struct pd_request r = { .app = &app };
	const char *conf = NULL, *logfile = NULL;
	char err[512];
	int ch;

	while ((ch = getopt_long(argc, argv, "c:l:hV", options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf = optarg;
			break;
		case 'l':
			logfile = optarg;
			break;
		case 'h':
			usage_exit(program, 0);
			break;
		case 'V':
			printf("postdate %s %s\n", program->name, PD_VERSION);
			return 0;
		default:
			usage_exit(program, 2);
		}
	}
	if (optind != argc)
		usage_exit(program, 2);

	log_init(program->name);
	/* spawn-fcgi points a worker's stderr at /dev/null; --log keeps its lines. */
	if (logfile != NULL && freopen(logfile, "a", stderr) == NULL) {
		fprintf(stdout, "%s: cannot open %s: %s\n", program->name, logfile,
		        strerror(errno));
		return 1;
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	app.program = program;
	/* A program of one route and one thread keeps the shared store. */
	app.route = program->nroutes == 1 ? &program->routes[0] : NULL;
	if (config_load(&app.cfg, config_path(conf), err, sizeof(err)) != 0) {
		log_error("%s", err);
		return 1;
	}
	if (app.cfg.ntokens == 0 && program->routes[0].needs_auth)
		log_warn("no token in %s: the API is open to anyone who can reach it",
		         app.cfg.path);
	/* Opened here also in a program of threads (each opens its own): this
	 * runs the migrations once, and says at start-up when it cannot. */
	if (store_open(&app.store, &app.cfg) != 0)
		log_error("cannot open the database %s yet; answering 503 until it opens",
		          DATABASE_SHOWN(app.cfg.database));

	if (app.route != NULL && app.route->group_commit &&
	    committer_start(&app.committer, &app) != 0)
		return 1;
	if (program->start != NULL && program->start(&app) != 0)
		return 1;
	if (FCGX_IsCGI()) {
		r.envp = environ;
		serve_request(&r);
		fflush(stdout);
		request_reset(&r);
		store_close(r.store);
	} else if (serve_fastcgi(&app) != 0)
		return 1;
	committer_stop(app.committer);
	store_close(app.store);
	config_free(&app.cfg);
	return 0;
}
