/*
 * postdate.h: the shared core of postdate, the HTTP message scheduler.
 *
 * Types first, then each concept followed by its functions, one .c file
 * per concept. Functions that can fail return 0 on success and -1 on
 * failure unless their comment says otherwise; "why" out-parameters
 * receive a static English sentence fit for an API error message.
 */
#ifndef POSTDATE_H
#define POSTDATE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define PD_VERSION "0.1.0"

/* Milliseconds since the Unix epoch, UTC. Every time inside postdate. */
typedef int64_t pd_ms;

#define PD_MS_PER_S 1000LL

/* Bounds on what a request may contain (see API.md "Common rules"). */
#define PD_MAX_FIELDS 64         /* fields in one request */
#define PD_MAX_NAME 64           /* bytes in a field name */
#define PD_MAX_JSON_DEPTH 32     /* nesting of a JSON request body */
#define PD_MAX_URLS 16           /* targets in one pool */
#define PD_MAX_URL 2048          /* bytes in one URL */
#define PD_MAX_IDEMPOTENCY_KEY 200
#define PD_MAX_CONTENT_TYPE 255
#define PD_MAX_TIME_TEXT 64      /* bytes in an `at`, `delay` or `tz` value */
#define PD_ID_LEN 26             /* 128 random bits in base32 */
#define PD_MAX_RESPONSE 65536    /* bytes of a target's answer kept for the report */
#define PD_MAX_ALLOW_TARGETS 64  /* ranges in allow_targets */

enum pd_state {
	PD_PENDING,
	PD_DELIVERING,
	PD_DELIVERED,
	PD_FAILED,
	PD_CANCELLED,
	PD_NSTATES
};

/* ---- log.c: one line per event on stderr ---- */

void log_init(const char *program);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* An address range; IPv4 is held as ::ffff:a.b.c.d with prefix 96 + n. */
struct pd_cidr {
	unsigned char addr[16];
	int prefix;
};

/* ---- config.c: the key = value configuration file ---- */

struct pd_config {
	char *path;               /* the file it was read from */
	char *database;           /* absolute, or relative to the file's folder */
	char **tokens;
	size_t ntokens;
	struct pd_cidr *allow;    /* allow_targets: ranges the target policy lets through */
	size_t nallow;
	char *signing_secret;     /* "whsec_<base64>", or NULL */
	size_t max_body;
	long max_pending;
	int default_max_attempts;
	int default_timeout;      /* seconds */
	int retry_base;           /* seconds */
	int retry_max;            /* seconds */
	int buffer_horizon;       /* seconds */
	int concurrency;          /* deliveries in flight per dispatcher */
	int host_concurrency;     /* ... and to any one host:port */
	int synchronous_full;     /* 1: synchronous=FULL, 0: NORMAL */
	int schedule_threads;     /* request threads per schedule process */
};

/* The file to read: the -c value if given, else $POSTDATE_CONF, else
 * /etc/postdate.conf. */
const char *config_path(const char *flag_value);

/* Sets every key to its default. */
void config_defaults(struct pd_config *cfg);

/* Reads FILE over the defaults. On failure writes "FILE:LINE: reason" to
 * err and returns -1; cfg is then still safe to config_free(). */
int config_load(struct pd_config *cfg, const char *path, char *err, size_t errlen);

/* What config_load does once the file is read: parses len bytes of text
 * (NULs and overlong lines are errors) over the defaults; path names the
 * file in errors and anchors a relative database. */
int config_parse_text(struct pd_config *cfg, const char *path, const char *text, size_t len,
                      char *err, size_t errlen);

/* Parses one "key = value" line (no newline). Returns 0, or -1 with the
 * reason in err. Blank and comment lines are accepted and ignored. */
int config_parse_line(struct pd_config *cfg, const char *line, char *err, size_t errlen);

void config_free(struct pd_config *cfg);

/* ---- timeparse.c: times and durations as users write them ---- */

/* The current time. */
pd_ms time_now(void);

/* Writes t as RFC 3339 UTC with milliseconds ("2026-11-22T13:30:00.000Z")
 * into buf (at least PD_TIME_BUF bytes). Returns buf. */
#define PD_TIME_BUF 32
char *time_format(pd_ms t, char *buf);

/* RFC 3339: "2026-11-22T13:30:00Z", "...+01:00", fractions of any length
 * (truncated to milliseconds); 't' and 'z' accepted; a space for 'T' too. */
int timeparse_rfc3339(const char *text, pd_ms *out, const char **why);

/* "YYYY-MM-DD HH:MM[:SS]" in the IANA zone tz (NULL or "" for UTC), using
 * the system's zoneinfo. A time that the zone skips (DST gap) is an error;
 * a time that occurs twice (DST overlap) means the first occurrence. */
int timeparse_local(const char *text, const char *tz, pd_ms *out, const char **why);

/* Unix seconds, digits only. */
int timeparse_unix(const char *text, pd_ms *out, const char **why);

/* Any of the three forms above, chosen by shape. tz applies to the local
 * form only; a tz with another form is an error. */
int timeparse_at(const char *text, const char *tz, pd_ms *out, const char **why);

/* "90" (seconds), "90s", "15m", "2h", "7d", "1h30m": units in descending
 * order, each at most once; at most ten years in all. */
int timeparse_duration(const char *text, pd_ms *out, const char **why);

/* Whether tz names a zone in the system's zoneinfo. */
int timezone_exists(const char *tz);

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
 * any non-string value is kept as JSON text with is_json set. Any other
 * nested object or array is an error naming the key. */
int jsonreq_decode(const char *body, size_t len, const char *raw_json_key,
                   struct pd_fields *out, const char **why, char *field, size_t fieldlen);

/* Whether text is len bytes of well-formed UTF-8 (no overlong forms, no
 * surrogates). */
int utf8_valid(const char *text, size_t len);

/* ---- id.c: message ids ---- */

/* Writes a fresh id (PD_ID_LEN chars of lowercase base32 from 128 bits: the
 * time in milliseconds, then 80 bits of OpenSSL randomness) and its NUL
 * into buf. Later ids sort after earlier ones. */
int id_generate(char buf[PD_ID_LEN + 1]);

/* Whether text has the shape of an id (so junk never reaches a query). */
int id_valid(const char *text);

/* ---- message.c: a message and how a schedule request becomes one ---- */

struct pd_message {
	char id[PD_ID_LEN + 1];
	enum pd_state state;
	pd_ms due;                /* when the user asked for delivery */
	pd_ms created;
	pd_ms next_attempt;       /* when the next round falls due; 0 if none */
	pd_ms delivered_at;       /* 0 if not delivered */
	char *urls;               /* the pool, one URL per line */
	char *payload;
	size_t payload_len;
	char *content_type;
	char *callback;           /* NULL if none */
	char *idempotency_key;    /* NULL if none */
	char *delivered_to;       /* NULL if not delivered */
	char *report_of;          /* for a callback report, the message it reports on */
	int max_attempts;
	int timeout;              /* seconds per HTTP attempt */
	int attempts;             /* rounds done */
};

const char *state_name(enum pd_state s);

/* The state called name, or -1. */
int state_parse(const char *name);

/* Builds a new pending message from a schedule request's fields. On a bad
 * field returns -1 with *why and *field naming it. Sets everything except
 * id and created, which the store assigns. */
int message_from_fields(struct pd_message *m, const struct pd_fields *f,
                        const struct pd_config *cfg, pd_ms now,
                        const char **why, const char **field);

/* Checks one target or callback URL: http or https, a host, no spaces or
 * control bytes, at most PD_MAX_URL bytes, and a host the target policy
 * allows (target.c). */
int url_acceptable(const struct pd_config *cfg, const char *url, size_t len,
                   const char **why);

/* ---- target.c: which addresses may be delivered to (the SSRF guard) ---- */

/* One range, "a.b.c.d[/n]" or "x::y[/n]", len bytes of text. */
int cidr_parse(const char *text, size_t len, struct pd_cidr *out);

/* "a/n, b/m, ...": a malloc'd array of at most PD_MAX_ALLOW_TARGETS. */
int cidr_list_parse(const char *text, struct pd_cidr **out, size_t *n);

/* A URL's host as libcurl gives it: refused (-1 with *why) when it is a
 * literal address, in any spelling, or a localhost name, in a forbidden
 * range that cfg->allow does not open. Other names pass: their address is
 * checked when connecting. */
int target_host_allowed(const struct pd_config *cfg, const char *host, const char **why);

/* The kind of forbidden address sa is ("a loopback address"), or NULL
 * when it may be connected to. */
struct sockaddr;
const char *target_address_refused(const struct pd_config *cfg, const struct sockaddr *sa);

void message_free(struct pd_message *m);

/* ---- store.c: everything that touches SQLite ---- */

enum store_result {
	STORE_OK = 0,
	STORE_NOTFOUND,     /* no such message */
	STORE_EXISTS,       /* the idempotency key was used; message holds the original */
	STORE_FULL,         /* max_pending reached */
	STORE_CONFLICT,     /* the message is in a state that forbids the change */
	STORE_BUSY,         /* the database stayed locked past the busy timeout */
	STORE_NOSPACE,      /* the disk is full */
	STORE_UNAVAILABLE,  /* the database could not be opened */
	STORE_ERROR         /* anything else; logged */
};

struct pd_store;

/* Opens (creating and migrating as needed) the configured database. */
int store_open(struct pd_store **out, const struct pd_config *cfg);
void store_close(struct pd_store *s);

/* Assigns m->id and m->created and inserts m in one transaction, into the
 * near-term buffer too when due within the horizon. Returns STORE_OK,
 * STORE_EXISTS (m replaced by the message holding its idempotency key),
 * STORE_FULL, STORE_BUSY, STORE_NOSPACE or STORE_ERROR. */
enum store_result store_insert(struct pd_store *s, struct pd_message *m, pd_ms now);

/* One message of a batch insert and, afterwards, what became of it. */
struct store_insert {
	struct pd_message *message;
	pd_ms now;
	enum store_result result;  /* as store_insert's */
};

/* Inserts every message as store_insert does, all in one transaction and
 * so with one sync to disk: group commit. A message refused on its own
 * (507, its key already used) does not hold the others back; when the
 * transaction fails, every message that would have been stored gets the
 * failure. */
void store_insert_batch(struct pd_store *s, struct store_insert *items, size_t n);

/* Reads one message. STORE_OK, STORE_NOTFOUND, STORE_BUSY or STORE_ERROR. */
enum store_result store_get(struct pd_store *s, const char *id, struct pd_message *m);

struct pd_attempt {
	pd_ms at;
	const char *url;
	int status;               /* HTTP status, 0 if none */
	const char *error;        /* NULL if none */
	int ms;
};

typedef int (*store_attempt_fn)(void *ctx, const struct pd_attempt *a);

/* Calls fn for each recorded attempt of id, oldest first. */
enum store_result store_history(struct pd_store *s, const char *id, store_attempt_fn fn, void *ctx);

/* A page of the list: messages in state (or every state if state < 0)
 * ordered by (due, id) after the cursor position (after_due, after_id;
 * after_id NULL for the first page). Calls fn for each, at most limit. */
typedef int (*store_message_fn)(void *ctx, const struct pd_message *m);
enum store_result store_list(struct pd_store *s, int state, pd_ms after_due, const char *after_id,
                             int limit, store_message_fn fn, void *ctx);

/* Message counts per state. */
enum store_result store_counts(struct pd_store *s, long counts[PD_NSTATES]);

/* Cancels a pending message. STORE_OK (also when already cancelled),
 * STORE_NOTFOUND, STORE_CONFLICT (*state says what it is), STORE_BUSY or
 * STORE_ERROR. */
enum store_result store_cancel(struct pd_store *s, const char *id, enum pd_state *state);

/* How many messages are pending and the earliest next attempt among them
 * (0 if none). */
enum store_result store_health(struct pd_store *s, long *pending, pd_ms *earliest);

/* The dispatch side. Its writes (leases and outcomes) may run at
 * synchronous=NORMAL: losing the last of them to a power cut only means a
 * message is delivered again, which at-least-once allows. */
int store_sync_normal(struct pd_store *s);

/* Explicit transactions (BEGIN IMMEDIATE) for the batched calls below,
 * each of which runs inside one. store_commit rolls back when it fails. */
enum store_result store_begin(struct pd_store *s);
enum store_result store_commit(struct pd_store *s);
void store_abort(struct pd_store *s);

/* The earliest next attempt among pending messages without a buffer row,
 * or 0: whether promotion has anything to do. */
enum store_result store_next_unbuffered(struct pd_store *s, pd_ms *next);

/* In its own transaction, gives up to limit pending messages whose next
 * attempt is at or before until a buffer row; *promoted says how many. */
enum store_result store_promote(struct pd_store *s, pd_ms until, int limit, int *promoted);

/* The earliest due time in the buffer, or 0. A leased row is due when its
 * lease ends. */
enum store_result store_next_due(struct pd_store *s, pd_ms *due);

/* Inside a transaction: leases up to limit buffer rows due at now (moving
 * their due time to the lease's end), marks
 * their messages delivering and calls fn with each (payload read; fn owns
 * the message) and the lease it holds. */
typedef int (*store_claim_fn)(void *ctx, struct pd_message *m, pd_ms lease);
enum store_result store_claim(struct pd_store *s, pd_ms now, int limit, int lease_slack_s,
                              store_claim_fn fn, void *ctx);

/* Inside a transaction: appends one HTTP attempt to id's history. */
enum store_result store_add_attempt(struct pd_store *s, const char *id, const struct pd_attempt *a);

/* The end of a round (or of a lease given back): what the message becomes. */
struct pd_settlement {
	const char *id;
	pd_ms lease;              /* the lease the caller holds */
	enum pd_state state;      /* PD_PENDING (another round), PD_DELIVERED or PD_FAILED */
	int attempts;             /* rounds done */
	pd_ms next_attempt;       /* for PD_PENDING */
	const char *urls;         /* the pool, less any URL that answered 410 */
	const char *delivered_to; /* NULL unless delivered */
	pd_ms delivered_at;
};

/* Inside a transaction: writes o when its lease is still held (STORE_OK),
 * else changes nothing (STORE_CONFLICT); BUSY or ERROR otherwise. */
enum store_result store_settle(struct pd_store *s, const struct pd_settlement *o, pd_ms now);

/* Inside a transaction: inserts a callback report message (assigning its
 * id), bypassing max_pending so that no outcome goes unreported. */
enum store_result store_add_report(struct pd_store *s, struct pd_message *m, pd_ms now);

/* Calls fn with each prepared statement's SQL and each line of its query
 * plan, so a test can check that every statement uses an index. */
typedef void (*store_plan_fn)(void *ctx, const char *sql, const char *plan_line);
int store_query_plans(struct pd_store *s, store_plan_fn fn, void *ctx);

/* ---- commit.c: group commit for schedule's request threads ---- */

struct pd_app;
struct pd_committer;

/* Starts the thread that commits the inserts of app's request threads,
 * through app->store (reopened as needed when NULL). */
int committer_start(struct pd_committer **out, struct pd_app *app);

/* As store_insert, from any thread: queues m for the next transaction and
 * returns once that transaction has committed (or failed). STORE_UNAVAILABLE
 * while the database cannot be opened. */
enum store_result committer_insert(struct pd_committer *c, struct pd_message *m, pd_ms now);

/* Commits what is queued, then stops the thread. */
void committer_stop(struct pd_committer *c);

/* ---- render.c: messages as API.md's JSON (json_object *) ---- */

struct json_object;

/* The answer to a schedule request: id, state, due, created, status_url. */
struct json_object *render_scheduled(const struct pd_message *m);

/* A message as status and the list show it, without history. */
struct json_object *render_message(const struct pd_message *m);

/* One entry of a message's history. */
struct json_object *render_attempt(const struct pd_attempt *a);

/* A target's answer, as a callback report shows it. */
struct pd_response {
	int status;
	const char *content_type; /* NULL if none */
	const char *body;         /* at most PD_MAX_RESPONSE bytes */
	size_t len;
};

/* The callback report of API.md for m (state delivered or failed): url is
 * the target that accepted (NULL if none), r the answer to report (NULL
 * if none); history (a JSON array) passes to the report. */
struct json_object *render_report(const struct pd_message *m, const char *url,
                                  const struct pd_response *r, struct json_object *history);

/* ---- sign.c: Standard Webhooks signatures ---- */

#define PD_SIGNATURE_BUF 64      /* "v1," + base64 of 32 bytes + NUL */

struct pd_signer {
	int enabled;              /* 0 when no signing_secret is configured */
	unsigned char key[66];
	size_t keylen;
};

/* Decodes a "whsec_<base64>" secret (NULL: signing off). */
int sign_init(struct pd_signer *sg, const char *secret);

/* Writes "v1,<base64 HMAC-SHA256 of id.timestamp.body>" into out. */
int sign_webhook(const struct pd_signer *sg, const char *id, long long timestamp,
                 const char *body, size_t len, char out[PD_SIGNATURE_BUF]);

/* ---- retry.c: when a failed round is tried again ---- */

/* How long to wait after rounds_failed failed rounds: retry_base *
 * 2^(rounds_failed-1) s times a jitter factor from 0.8 to 1.2 (chosen by
 * random), at least retry_after ms, at most retry_max. */
pd_ms retry_delay(const struct pd_config *cfg, int rounds_failed, pd_ms retry_after,
                  uint32_t random);

/* A Retry-After header value (seconds, or an HTTP date) as ms from now;
 * 0 when absent, malformed or in the past. */
pd_ms retry_after_parse(const char *value, pd_ms now);

/* ---- delivery.c: rounds of HTTP attempts over libcurl's multi interface ---- */

/* How a round ended. */
enum pd_outcome {
	PD_OUTCOME_DELIVERED,     /* a target answered 2xx */
	PD_OUTCOME_RETRY,         /* every target failed; another round later */
	PD_OUTCOME_FAILED,        /* max_attempts rounds done, or no target left */
	PD_OUTCOME_RELEASED       /* stopped before the round ended: give it back */
};

/* One HTTP attempt as delivery records it (the strings are the job's). */
struct pd_attempt_record {
	struct pd_attempt a;
	char *error;              /* owned copy behind a.error */
};

/* A claimed message on its way: one round of attempts over its pool. */
struct pd_job {
	struct pd_message m;
	pd_ms lease;                       /* the lease the store gave */
	char *pool[PD_MAX_URLS];           /* the URLs, in the message's order */
	size_t npool;
	int gone[PD_MAX_URLS];             /* answered 410 or refused: dropped for good */
	unsigned char order[PD_MAX_URLS];  /* this round's shuffled pool */
	size_t norder, tried;
	struct pd_attempt_record attempts[PD_MAX_URLS];
	size_t nattempts;
	pd_ms retry_after;                 /* the longest Retry-After this round (ms) */

	/* The transfer in flight. */
	void *easy;                        /* CURL * */
	int slot;                          /* in the engine's list of transfers */
	struct curl_slist *headers;
	char errbuf[256];                  /* CURL_ERROR_SIZE */
	const struct pd_config *policy;    /* whose allow_targets applies */
	char refused[160];                 /* why the policy refused to connect, or "" */

	/* The latest answer, kept for the callback report. */
	int status;
	char *content_type;
	char *body;
	size_t body_len;
	int body_capped;

	/* The outcome, once the round is over. */
	enum pd_outcome outcome;
	int accepted;                      /* index into pool, or -1 */
	pd_ms finished;
	pd_ms next_attempt;                /* for PD_OUTCOME_RETRY */
	int lease_lost;                    /* another dispatcher took it over */
	struct pd_job *next;               /* in the engine's list of finished jobs */
};

/* Makes a job of a claimed message (which it takes over); NULL when out
 * of memory (m is then freed). */
struct pd_job *job_new(struct pd_message *m, pd_ms lease);

/* The pool less the URLs that answered 410, one per line (malloc'd). */
char *job_urls_left(const struct pd_job *job);

void job_free(struct pd_job *job);

struct pd_engine;

/* concurrency and host_concurrency come from cfg; sg signs when enabled. */
struct pd_engine *engine_new(const struct pd_config *cfg, const struct pd_signer *sg, int verbose);
void engine_free(struct pd_engine *e);

/* Starts a round of job: shuffles its pool and sends the first attempt. */
void engine_start(struct pd_engine *e, struct pd_job *job);

/* Moves transfers on, waiting at most timeout_ms for something to happen;
 * then returns the jobs whose round ended (a list linked by next), or NULL. */
struct pd_job *engine_run(struct pd_engine *e, int timeout_ms);

/* How many jobs have a transfer in flight. */
int engine_active(const struct pd_engine *e);

/* From now on a round ends after its current attempt (PD_OUTCOME_RELEASED
 * if no target accepted): for stopping on a signal. */
void engine_finish_rounds(struct pd_engine *e);

/* Ends every transfer at once; their jobs come back released. */
struct pd_job *engine_abort(struct pd_engine *e);

/* ---- auth.c: bearer tokens ---- */

/* Whether the Authorization header value carries one of the configured
 * tokens, compared in constant time. */
int auth_bearer_ok(const struct pd_config *cfg, const char *authorization);

/* ---- http.c: the FastCGI (or plain CGI) request loop ---- */

struct pd_request;

/* What a route accepts; http_serve checks these before the handler runs. */
struct pd_route {
	const char *name;         /* program name for logs and --help */
	const char *method;       /* "GET" or "POST" (GET routes also take HEAD) */
	int needs_auth;           /* 0 only for /api/health */
	const char *raw_json_key; /* the JSON key kept as JSON text, or NULL */
	int handles_no_store;     /* called even when the database cannot be opened */
	int group_commit;         /* runs in schedule_threads threads and stores through
	                             app->committer (see commit.c) */
	const char *description;  /* for --help: what the program answers */
	const char *example;      /* for --help: one command line */
	void (*handle)(struct pd_request *r);
};

/* The state each program keeps across requests. */
struct pd_app {
	struct pd_config cfg;
	struct pd_store *store;
	struct pd_committer *committer;  /* for group_commit routes */
	const struct pd_route *route;
};

/* Parses the options (-c, -l, --help, --version), loads the configuration
 * and opens the store, exiting 2 on bad usage and 1 on failure; then serves
 * requests until the web server closes the socket (or once, as plain CGI).
 * Returns the exit status. */
int http_main(int argc, char **argv, const struct pd_route *route);

/* For handlers. */
struct pd_app *http_app(struct pd_request *r);
const struct pd_fields *http_fields(struct pd_request *r);
const char *http_param(struct pd_request *r, const char *name);

/* Sends a JSON response and releases body. extra holds further header
 * lines ("Name: value\r\n"...), or NULL. */
void http_reply(struct pd_request *r, int status, const char *extra, struct json_object *body);

/* Sends {"error": sentence, "field": field or null}. */
void http_error(struct pd_request *r, int status, const char *sentence, const char *field);

#endif
