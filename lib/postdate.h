/*
 * postdate.h: what every part of postdate shares: types and limits, logs,
 * configuration, times, ids, the message and the target policy, and the
 * JSON shapes of API.md. request.h (the FastCGI programs), store.h (the
 * database) and delivery.h (the dispatcher's HTTP side) build on it.
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
#define PD_MAX_RESPONSE 65536    /* bytes of a target's answer a report may relay */
#define PD_MAX_ALLOW_TARGETS 64  /* ranges in allow_targets */
#define PD_MAX_ALLOW_PORTS 64    /* ports and ranges in allow_ports */
#define PD_MAX_QUEUE_NAME 64     /* bytes in a queue, topic or subscription name: [A-Za-z0-9_.-] */
#define PD_MAX_SUBSCRIPTIONS 1000 /* subscriptions of one topic: copies one publish makes */
#define PD_MIN_PRIORITY (-1000)  /* priority: lower is sooner */
#define PD_MAX_PRIORITY 1000
#define PD_MAX_RECEIVE 100       /* messages in one receive, items in one ack */
#define PD_MAX_VISIBILITY 43200  /* seconds a receive or extend may lease for */
#define PD_MAX_WAIT 20           /* seconds a receive may long-poll */
#define PD_RECEIPT_LEN 32        /* hex of the 128 random bits that prove a receive */

enum pd_state {
	PD_PENDING,
	PD_DELIVERING,
	PD_DELIVERED,
	PD_FAILED,
	PD_CANCELLED,
	PD_EXPIRED,               /* its ttl ran out before it was delivered (acked) */
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

/* Ports lo to hi, both included. */
struct pd_port_range {
	unsigned lo, hi;
};

/* ---- config.c: the key = value configuration file ---- */

struct pd_config {
	char *path;               /* the file it was read from */
	char *database;           /* absolute, or relative to the file's folder */
	char **tokens;
	unsigned char (*token_hashes)[32];  /* SHA-256 of each token, made as it is read */
	size_t ntokens;
	struct pd_cidr *allow;    /* allow_targets: ranges the target policy lets through */
	size_t nallow;
	struct pd_port_range ports[PD_MAX_ALLOW_PORTS];  /* allow_ports: the ports delivered to */
	size_t nports;
	char **server_names;      /* server_names: the Host names answered, or none */
	size_t nserver_names;
	char *signing_secret;     /* "whsec_<base64>", or NULL */
	size_t max_body;
	size_t report_body_max;   /* bytes of a target's answer kept for the report */
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
	int queue_visibility;     /* seconds: the visibility of a queue made on first use */
	int receive_waiters;      /* long-polling receives per queue process */
	pd_ms retention;          /* ms an ended message is kept (dispatch deletes it
	                             after); 0: kept for ever */
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

/* The current time (wall clock): for what is stored or sent. */
pd_ms time_now(void);

/* clock.c: ms on a clock that never steps (CLOCK_MONOTONIC), from an
 * arbitrary origin: for local deadlines and waits, never stored. */
pd_ms clock_monotonic(void);

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

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t days_from_civil(int64_t y, int m, int d);
void civil_from_days(int64_t days, int *y, int *m, int *d);

/* ---- tz.c: IANA zones from their TZif files, no TZ or localtime ---- */

/* A loaded zone: read-only, so any thread may use it. */
struct pd_tz;

/* Parses the len bytes of a TZif file (RFC 8536): the 64-bit data of
 * version 2+ and the footer's TZ string (version 1: its 32-bit data).
 * A pure function of the bytes. -1 when they are not a valid zone. */
int tz_parse(const unsigned char *data, size_t len, struct pd_tz **out);

/* Loads the zone that timezone_exists(name) accepts, from the system's
 * zoneinfo. -1 when it is unknown or its file is malformed. */
int tz_load(const char *name, struct pd_tz **out);

void tz_free(struct pd_tz *z);

/* The UTC offset (seconds east) of zone z at the instant utc (seconds). */
int32_t tz_offset_at(const struct pd_tz *z, int64_t utc);

/* How a local reading maps to instants. */
enum tz_local {
	TZ_LOCAL_UNIQUE,          /* exactly one instant */
	TZ_LOCAL_REPEATED,        /* two (clocks went back): *utc is the first */
	TZ_LOCAL_SKIPPED          /* none (clocks went forward over it): *utc is
	                             the end of the gap, the first instant after */
};

/* Converts local, a local date and time in z written as seconds since
 * 1970-01-01T00:00 of that wall clock, to UTC seconds in *utc. The caller
 * picks the rule: `at` refuses a skipped time; recurring fires a skipped
 * time at the gap's end and a repeated time once, at the first. */
enum tz_local tz_local_to_utc(const struct pd_tz *z, int64_t local, int64_t *utc);

/* ---- cron.c: cron expressions, the schedule of a recurring message ---- */

#define PD_MAX_CRON 256           /* bytes in a cron expression */
#define PD_CRON_BUF 256           /* room for cron_format's text and its NUL */

/* A parsed expression: bit v of a field's mask is set when the field
 * allows value v. */
struct pd_cron {
	uint64_t minutes;             /* bits 0-59 */
	uint32_t hours;               /* bits 0-23 */
	uint32_t days;                /* bits 1-31: days of the month */
	uint16_t months;              /* bits 1-12 */
	uint8_t weekdays;             /* bits 0-6, Sunday 0 (a 7 is folded to 0) */
	/* Whether the day-of-month and day-of-week fields were anything but
	 * "*". Cron's rule: when both are, a day matches if either does. */
	uint8_t days_restricted;
	uint8_t weekdays_restricted;
};

/* Parses the five fields (minute hour day-of-month month day-of-week;
 * "*", lists, ranges, steps, names jan..dec and sun..sat) or a macro
 * (@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually),
 * at most PD_MAX_CRON bytes. Refuses an expression that can never run
 * ("0 0 30 2 *"). *why names the field and what is wrong with it. */
int cron_parse(const char *text, struct pd_cron *out, const char **why);

/* Writes c in a normalised form that cron_parse reads back as c: numbers,
 * runs as ranges ("1-5"), "*" for an unrestricted day field. buf has at
 * least PD_CRON_BUF bytes. Returns buf. */
char *cron_format(const struct pd_cron *c, char *buf);

/* The first instant strictly after `after` at which the wall clock of
 * zone (NULL for UTC) reads a minute that c matches (a whole minute of
 * UTC too in any zone whose offset is whole minutes, as all are today). A
 * minute that the zone skips (clocks going forward) fires at the end of
 * the gap, once however many skipped minutes match; a minute that happens
 * twice (clocks going back) fires at its first instant only. -1 with *why
 * when nothing matches within ten years, or after is outside the years
 * 0001-9989. */
int cron_next(const struct pd_cron *c, const struct pd_tz *zone, pd_ms after, pd_ms *out,
              const char **why);

/* ---- id.c: message ids ---- */

/* Writes a fresh id (PD_ID_LEN chars of lowercase base32 from 128 bits: the
 * time in milliseconds, then 80 bits of OpenSSL randomness) and its NUL
 * into buf. Later ids sort after earlier ones. */
int id_generate(char buf[PD_ID_LEN + 1]);

/* Whether text has the shape of an id (so junk never reaches a query). */
int id_valid(const char *text);

/* ---- envelope.c: a message's own HTTP method and headers ---- */

#define PD_MAX_HEADERS 32        /* headers of one message */
#define PD_MAX_HEADER_BYTES 8192 /* their lines in all, as sent: "Name: value" and CRLF */

enum pd_method {
	PD_METHOD_POST,           /* the default: 0, so a zeroed message is a POST */
	PD_METHOD_PUT,
	PD_METHOD_PATCH,
	PD_METHOD_DELETE,
	PD_METHOD_GET,            /* carries no body */
	PD_NMETHODS
};

/* What a message's request carries besides its body. The headers' stored
 * form, the one that delivery, a receive and render all read: "Name: value"
 * lines joined by '\n' (one space after the colon, the value trimmed), or
 * NULL for none. Names are HTTP tokens, values hold no control characters
 * but tabs (envelope_from_fields checked them). Values are often
 * credentials: never logged, never shown by status, the list or the page. */
struct pd_envelope {
	enum pd_method method;
	char *headers;
};

/* "POST", "PUT", ...; "POST" for anything unknown. */
const char *method_name(enum pd_method m);

/* The method called exactly name (len bytes, capitals), or -1. */
int method_parse(const char *name, size_t len);

/* Calls fn for each header of the stored form, in order; stops with -1 when
 * fn returns nonzero. Name and value are not NUL-terminated. */
typedef int (*header_fn)(void *ctx, const char *name, size_t namelen, const char *value,
                         size_t valuelen);
int headers_each(const char *stored, header_fn fn, void *ctx);

void envelope_free(struct pd_envelope *e);

/* ---- message.c: a message and how a schedule request becomes one ---- */

struct pd_message {
	char id[PD_ID_LEN + 1];
	enum pd_state state;
	pd_ms due;                /* when the user asked for delivery */
	pd_ms created;
	pd_ms next_attempt;       /* when the next round falls due; 0 if none */
	pd_ms delivered_at;       /* 0 if not delivered */
	char *urls;               /* the pool, one URL per line; "" for a queue's */
	char *queue;              /* the queue it waits in, or NULL (pushed to urls) */
	int priority;             /* PD_MIN_PRIORITY..PD_MAX_PRIORITY, lower first */
	pd_ms expires;            /* not delivered by then: expired; 0 for never */
	char *payload;
	size_t payload_len;
	char *content_type;
	char *callback;           /* NULL if none */
	char *idempotency_key;    /* NULL if none */
	char *delivered_to;       /* NULL if not delivered */
	char *report_of;          /* for a callback report, the message it reports on */
	char *report;             /* the id of its own callback report, once made */
	char *recurring;          /* the id of the recurring definition that made it, or NULL */
	int max_attempts;         /* rounds (receives, for a queue's); 0 in a new
	                             queue message: the queue's */
	int timeout;              /* seconds per HTTP attempt */
	int attempts;             /* rounds (receives) started */
	struct pd_envelope envelope;  /* its method and its own headers */
	/* A message scheduled to a topic (urls ""): the copies made of it, one
	 * per subscription. A copy names its topic and subscription. */
	char *topic;
	char *subscription;       /* for a copy: the subscription it was made for */
	struct pd_delivery *deliveries;
	size_t ndeliveries;
};

/* One copy a publish made: the subscription and the message made for it. */
struct pd_delivery {
	char subscription[PD_MAX_QUEUE_NAME + 1];
	char id[PD_ID_LEN + 1];
};

const char *state_name(enum pd_state s);

/* The state called name, or -1. */
int state_parse(const char *name);

/* Whether name (len bytes) is a queue name: [A-Za-z0-9_.-]{1,64}. */
int queue_name_acceptable(const char *name, size_t len);

/* Checks one target or callback URL: http or https, a host, no spaces or
 * control bytes, at most PD_MAX_URL bytes, and a host the target policy
 * allows (target.c). */
int url_acceptable(const struct pd_config *cfg, const char *url, size_t len,
                   const char **why);

/* ---- origin.c: whom a request is addressed to, and which page sent it ---- */

#define PD_MAX_SERVER_NAMES 64

/* Why a request is refused (a sentence for a 403), or NULL. host and
 * origin are the Host and Origin headers, NULL when absent. Host, when
 * there is one, must be one of server_names when they are set, and one of
 * the loopback names (localhost, 127.0.0.1, [::1]) when no token is; with
 * no token an Origin must be the page's own (scheme://Host). */
const char *origin_refused(const struct pd_config *cfg, const char *host, const char *origin);

/* Whether len bytes are a host name or address as a Host header gives one,
 * without a port: "postdate.example", "192.0.2.1", "[2001:db8::1]". */
int server_name_valid(const char *name, size_t len);

/* ---- redact.c: URLs as they are shown and logged ---- */

/* Room for any URL that url_acceptable lets through, redacted. */
#define PD_URL_SHOWN_BUF (PD_MAX_URL + 8)

/* url with the password of its userinfo replaced by "***" (user:***@host),
 * or the user name when there is no password (***@host). Returns url itself when it has no userinfo, else
 * buf (len bytes). Delivery uses the real URL; whatever shows or logs one
 * goes through this. */
const char *url_redact(const char *url, char *buf, size_t len);

/* url_redact into a buffer that lives until the end of the enclosing
 * block, for use inside a log call. */
#define URL_SHOWN(url) url_redact((url), (char[PD_URL_SHOWN_BUF]){ 0 }, PD_URL_SHOWN_BUF)

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

/* "80, 443, 1024-65535": at most PD_MAX_ALLOW_PORTS ports and ranges of
 * 1 to 65535 into out; -1 when malformed. */
int port_list_parse(const char *text, struct pd_port_range *out, size_t *n);

/* "a port outside allow_ports" when cfg->ports does not hold port (as the
 * URL gives it, or as connected to), else NULL. */
const char *target_port_refused(const struct pd_config *cfg, unsigned port);

void message_free(struct pd_message *m);

/* One HTTP attempt, as history shows it. */
struct pd_attempt {
	pd_ms at;
	const char *url;
	int status;               /* HTTP status, 0 if none */
	const char *error;        /* NULL if none */
	int ms;
};

/* ---- render.c: messages as API.md's JSON (json_object *) ---- */

struct json_object;

/* The answer to a schedule request: id, state, due, created, status_url. */
struct json_object *render_scheduled(const struct pd_message *m);

/* A time as RFC 3339 UTC text, or null for 0. */
struct json_object *render_time(pd_ms t);

/* Text, or null for NULL. */
struct json_object *render_text_or_null(const char *s);

/* A URL pool (one URL per line) as an array of URLs as they are shown,
 * passwords masked. */
struct json_object *render_urls(const char *urls);

/* Stored headers as status, the list and the page show them: a JSON array
 * of their names only, since the values are often credentials. */
struct json_object *render_header_names(const char *stored);

/* The answer to a publish (a message to a topic): topic, due, created and
 * its deliveries, the subscription and id of each copy. */
struct json_object *render_published(const struct pd_message *m);

/* A subscription (a destination as subscription_from_fields reads it, its
 * name in sub->subscription) of topic. */
struct json_object *render_subscription(const char *topic, const struct pd_message *sub);

/* A message as status and the list show it, without history. */
struct json_object *render_message(const struct pd_message *m);

/* A message as GET /api/status?id= shows it: render_message and its
 * payload, as text (payload) when it is UTF-8, else payload_base64. */
struct json_object *render_message_with_payload(const struct pd_message *m);

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

/* A message as a receive hands it to a worker (API.md "POST /api/receive"):
 * its payload (text, or payload_base64), the receipt that proves this
 * receive and when its lease ends. Written by w (request.h), since a
 * receive answers with up to 100 of them. */
struct jsonw;
void render_received(struct jsonw *w, const struct pd_message *m, const char *receipt,
                     pd_ms visible_until);

#endif
