/*
 * postdate: the admin command line, for the operator on the host. It works
 * on the configured database directly, through the store (lib/store.h),
 * beside the running programs: what it changes is one transaction each, as
 * the HTTP routes' changes are.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "postdate.h"
#include "store.h"

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT 1000
/* Messages retried or purged per transaction: each batch is short, so the
 * running programs wait for the write lock a few milliseconds at most. */
#define ADMIN_BATCH 1000

/* What every command gets: the options before it and its own arguments. */
struct cli {
	struct pd_config cfg;
	int json;                 /* --json: one JSON object on stdout */
	int argc;                 /* the command's arguments, its name first */
	char **argv;
};

struct command {
	const char *name;
	const char *usage;        /* the arguments, for the usage lines */
	const char *help;         /* what it does, for `postdate COMMAND --help` */
	int needs_database;       /* refuses to run when the file does not exist */
	int (*run)(struct cli *c, struct pd_store *s);
};

static const struct command commands[];
static const size_t ncommands;

/* ---- output ---- */

/* Prints o as one line of JSON on stdout and releases it. */
static void
print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                        JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* A failure that a script can read too: {"error": ..., plus extra} on
 * stdout with --json (extra is released), else the sentence on stderr. */
static int
fail(struct cli *c, json_object *extra, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(struct cli *c, json_object *extra, const char *fmt, ...)
{
	char sentence[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sentence, sizeof(sentence), fmt, ap);
	va_end(ap);
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "error", json_object_new_string(sentence));
		if (extra != NULL) {
			json_object_object_foreach(extra, key, value)
				json_object_object_add(o, key, json_object_get(value));
		}
		print_json(o);
	} else
		fprintf(stderr, "postdate: %s\n", sentence);
	json_object_put(extra);
	return EXIT_FAILED;
}

static int
store_failed(struct cli *c, enum store_result res, const char *what)
{
	return fail(c, NULL, "%s: %s", what,
	            res == STORE_BUSY ? "the database stayed locked; try again" :
	            res == STORE_NOSPACE ? "the disk is full" :
	            res == STORE_UNAVAILABLE ? "the database cannot be opened" :
	            "a database error (see the line above)");
}

/* A time as every program shows it, or "-" for none. */
static const char *
shown_time(pd_ms t, char buf[PD_TIME_BUF])
{
	if (t == 0)
		return "-";
	return time_format(t, buf);
}

/* Where a message goes: its queue, or its pool (the first URL and how
 * many more), redacted as everywhere. */
static void
destination(const struct pd_message *m, char *out, size_t len)
{
	char first[PD_MAX_URL + 1];
	size_t n = 1, flen;

	if (m->queue != NULL) {
		snprintf(out, len, "queue %s", m->queue);
		return;
	}
	flen = strcspn(m->urls, "\n");
	snprintf(first, sizeof(first), "%.*s", (int)flen, m->urls);
	for (const char *p = m->urls; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	if (n > 1)
		snprintf(out, len, "%s (+%zu more)", URL_SHOWN(first), n - 1);
	else
		snprintf(out, len, "%s", URL_SHOWN(first));
}

/* ---- the database ---- */

/* Whether the configured database exists; says so when not. */
static int
database_exists(struct cli *c)
{
	struct stat st;

	/* A server's database is there or not when connecting says so. */
	if (store_database_is_url(c->cfg.database) || stat(c->cfg.database, &st) == 0)
		return 1;
	fail(c, NULL, "no database at %s (%s); `postdate migrate` creates one",
	     DATABASE_SHOWN(c->cfg.database), strerror(errno));
	return 0;
}

static int
id_argument(struct cli *c, const char **id)
{
	if (c->argc != 2 || c->argv[1][0] == '-') {
		fprintf(stderr, "usage: postdate %s ID\n", c->argv[0]);
		return EXIT_USAGE;
	}
	*id = c->argv[1];
	return EXIT_OK;
}

/* ---- status ---- */

struct history_print {
	json_object *list;        /* --json: the attempts, as status shows them */
	int n;                    /* else: rows printed */
};

static int
history_row(void *ctx, const struct pd_attempt *a)
{
	struct history_print *h = ctx;
	char at[PD_TIME_BUF], status[16];

	if (h->list != NULL) {
		json_object_array_add(h->list, render_attempt(a));
		return 0;
	}
	if (h->n++ == 0)
		printf("\n%-24s  %-6s  %6s  %s\n", "ATTEMPT AT", "STATUS", "MS", "URL / ERROR");
	snprintf(status, sizeof(status), a->status != 0 ? "%d" : "-", a->status);
	printf("%-24s  %-6s  %6d  %s%s%s\n", time_format(a->at, at), status, a->ms,
	       URL_SHOWN(a->url), a->error != NULL ? "  " : "", a->error != NULL ? a->error : "");
	return 0;
}

/* The fields of m, one per line, as a terminal shows them. */
static void
print_message(const struct pd_message *m)
{
	char t[PD_TIME_BUF], dest[PD_MAX_URL + 64];

	destination(m, dest, sizeof(dest));
	printf("id            %s\n", m->id);
	printf("state         %s\n", state_name(m->state));
	printf("due           %s\n", shown_time(m->due, t));
	printf("created       %s\n", shown_time(m->created, t));
	printf("destination   %s\n", dest);
	if (m->queue == NULL && strchr(m->urls, '\n') != NULL)
		for (const char *p = m->urls; *p != '\0'; ) {
			size_t len = strcspn(p, "\n");
			char url[PD_MAX_URL + 1];

			snprintf(url, sizeof(url), "%.*s", (int)len, p);
			printf("  url         %s\n", URL_SHOWN(url));
			p += len + (p[len] == '\n');
		}
	printf("attempts      %d of at most %d\n", m->attempts, m->max_attempts);
	if (m->state == PD_PENDING || m->state == PD_DELIVERING)
		printf("next attempt  %s\n", shown_time(m->next_attempt, t));
	if (m->priority != 0)
		printf("priority      %d\n", m->priority);
	if (m->expires != 0)
		printf("expires       %s\n", shown_time(m->expires, t));
	if (m->delivered_to != NULL) {
		printf("delivered to  %s\n", URL_SHOWN(m->delivered_to));
		printf("delivered at  %s\n", shown_time(m->delivered_at, t));
	}
	if (m->callback != NULL)
		printf("callback      %s\n", URL_SHOWN(m->callback));
	if (m->report != NULL)
		printf("report        %s\n", m->report);
	if (m->report_of != NULL)
		printf("report of     %s\n", m->report_of);
	if (m->idempotency_key != NULL)
		printf("key           %s\n", m->idempotency_key);
	printf("payload       %zu bytes, %s\n", m->payload_len, m->content_type);
}

static int
run_status(struct cli *c, struct pd_store *s)
{
	struct history_print h = { 0 };
	struct pd_message m;
	enum store_result res;
	const char *id;
	int rc;

	if ((rc = id_argument(c, &id)) != EXIT_OK)
		return rc;
	if (c->json)
		h.list = json_object_new_array();
	/* For a terminal the fields come first and the attempts after them,
	 * read just after (a message's history only grows). */
	res = id_valid(id) ? store_get(s, id, &m, c->json ? history_row : NULL, &h) :
	    STORE_NOTFOUND;
	if (res != STORE_OK) {
		json_object_put(h.list);
		if (res == STORE_NOTFOUND)
			return fail(c, NULL, "no message has the id %s", id);
		return store_failed(c, res, "reading the message");
	}
	if (c->json) {
		json_object *o = render_message_with_payload(&m);

		json_object_object_add(o, "history", h.list);
		print_json(o);
		message_free(&m);
		return EXIT_OK;
	}
	print_message(&m);
	message_free(&m);
	if ((res = store_history(s, id, history_row, &h)) != STORE_OK)
		return store_failed(c, res, "reading the history");
	if (h.n == 0)
		printf("\nno attempts yet\n");
	return EXIT_OK;
}

/* ---- list ---- */

struct list_print {
	struct cli *c;
	json_object *messages;
	int n;
};

static int
list_row(void *ctx, const struct pd_message *m)
{
	struct list_print *l = ctx;
	char due[PD_TIME_BUF], dest[PD_MAX_URL + 64], attempts[32];

	if (l->c->json) {
		json_object_array_add(l->messages, render_message(m));
		return 0;
	}
	if (l->n++ == 0)
		printf("%-26s  %-10s  %-24s  %-8s  %s\n", "ID", "STATE", "DUE", "ATTEMPTS",
		       "DESTINATION");
	destination(m, dest, sizeof(dest));
	snprintf(attempts, sizeof(attempts), "%d/%d", m->attempts, m->max_attempts);
	printf("%-26s  %-10s  %-24s  %-8s  %s\n", m->id, state_name(m->state),
	       time_format(m->due, due), attempts, dest);
	return 0;
}

/* Reads "--name VALUE" or "--name=VALUE" at argv[*i]; 1 when it is that
 * option (*value set, *i past it), 0 when not, -1 when its value is
 * missing. */
static int
option_value(struct cli *c, int *i, const char *name, const char **value)
{
	const char *arg = c->argv[*i];
	size_t len = strlen(name);

	if (strncmp(arg, name, len) != 0)
		return 0;
	if (arg[len] == '=') {
		*value = arg + len + 1;
		return 1;
	}
	if (arg[len] != '\0')
		return 0;
	if (*i + 1 >= c->argc) {
		fprintf(stderr, "postdate %s: %s needs a value\n", c->argv[0], name);
		return -1;
	}
	*value = c->argv[++*i];
	return 1;
}

static int
parse_count(const char *text, long min, long max, long *out)
{
	char *end;
	long v;

	if (*text < '0' || *text > '9')
		return -1;
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
run_list(struct cli *c, struct pd_store *s)
{
	const char *state_text = "pending", *queue = NULL, *limit_text = NULL;
	struct list_print l = { .c = c };
	long counts[PD_NSTATES], limit = LIST_DEFAULT_LIMIT;
	enum store_result res;
	int state, got;

	for (int i = 1; i < c->argc; i++) {
		if ((got = option_value(c, &i, "--state", &state_text)) == 0 &&
		    (got = option_value(c, &i, "--queue", &queue)) == 0 &&
		    (got = option_value(c, &i, "--limit", &limit_text)) == 0) {
			fprintf(stderr, "postdate list: unknown argument %s\n", c->argv[i]);
			return EXIT_USAGE;
		}
		if (got < 0)
			return EXIT_USAGE;
	}
	if (strcmp(state_text, "all") == 0)
		state = -1;
	else if ((state = state_parse(state_text)) < 0) {
		fprintf(stderr, "postdate list: --state must be pending, delivering, delivered, "
		        "failed, cancelled, expired or all\n");
		return EXIT_USAGE;
	}
	if (queue != NULL && !queue_name_acceptable(queue, strlen(queue))) {
		fprintf(stderr, "postdate list: --queue must be 1 to 64 of A-Z a-z 0-9 _ . -\n");
		return EXIT_USAGE;
	}
	if (limit_text != NULL && parse_count(limit_text, 1, LIST_MAX_LIMIT, &limit) != 0) {
		fprintf(stderr, "postdate list: --limit must be a number from 1 to %d\n",
		        LIST_MAX_LIMIT);
		return EXIT_USAGE;
	}
	l.messages = json_object_new_array();
	res = store_list(s, state, queue, 0, NULL, (int)limit, list_row, &l, counts);
	if (res != STORE_OK) {
		json_object_put(l.messages);
		return store_failed(c, res, "listing messages");
	}
	if (c->json) {
		json_object *o = json_object_new_object(), *n = json_object_new_object();

		for (int i = 0; i < PD_NSTATES; i++)
			json_object_object_add(n, state_name((enum pd_state)i),
			                       json_object_new_int64(counts[i]));
		json_object_object_add(o, "messages", l.messages);
		json_object_object_add(o, "counts", n);
		print_json(o);
		return EXIT_OK;
	}
	json_object_put(l.messages);
	if (l.n == 0)
		printf("no %s messages%s%s\n", state < 0 ? "" : state_text,
		       queue != NULL ? " in queue " : "", queue != NULL ? queue : "");
	printf("%smessages%s%s:", l.n > 0 ? "\n" : "", queue != NULL ? " of queue " : "",
	       queue != NULL ? queue : "");
	for (int i = 0; i < PD_NSTATES; i++)
		printf(" %ld %s%s", counts[i], state_name((enum pd_state)i),
		       i + 1 < PD_NSTATES ? "," : "\n");
	if (l.n == limit)
		printf("(the first %ld shown; --limit shows up to %d)\n", limit, LIST_MAX_LIMIT);
	return EXIT_OK;
}

/* ---- cancel, retry ---- */

static int
state_reply(struct cli *c, const char *id, enum pd_state state, const char *said)
{
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "state", json_object_new_string(state_name(state)));
		print_json(o);
	} else
		printf("%s %s\n", id, said);
	return EXIT_OK;
}

static json_object *
state_field(enum pd_state state)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "state", json_object_new_string(state_name(state)));
	return o;
}

static int
run_cancel(struct cli *c, struct pd_store *s)
{
	enum pd_state state = PD_PENDING;
	enum store_result res;
	const char *id;
	int rc;

	if ((rc = id_argument(c, &id)) != EXIT_OK)
		return rc;
	res = id_valid(id) ? store_cancel(s, id, &state) : STORE_NOTFOUND;
	switch (res) {
	case STORE_OK:
		return state_reply(c, id, PD_CANCELLED, "cancelled");
	case STORE_NOTFOUND:
		return fail(c, NULL, "no message has the id %s", id);
	case STORE_CONFLICT:
		return fail(c, state_field(state), "%s is %s and cannot be cancelled", id,
		            state_name(state));
	default:
		return store_failed(c, res, "cancelling");
	}
}

static int
run_retry(struct cli *c, struct pd_store *s)
{
	enum pd_state state = PD_PENDING;
	enum store_result res;
	const char *which = NULL;
	pd_ms started = time_now();
	long total = 0;
	int got, i = 1, n;

	if (c->argc == 2 && c->argv[1][0] != '-') {
		const char *id = c->argv[1];

		res = id_valid(id) ? store_retry(s, id, started, &state) : STORE_NOTFOUND;
		switch (res) {
		case STORE_OK:
			return state_reply(c, id, PD_PENDING, "is pending again, due now");
		case STORE_NOTFOUND:
			return fail(c, NULL, "no message has the id %s", id);
		case STORE_CONFLICT:
			return fail(c, state_field(state), "%s is %s: only a failed or expired "
			            "message can be retried", id, state_name(state));
		default:
			return store_failed(c, res, "retrying");
		}
	}
	if (c->argc != 3 || (got = option_value(c, &i, "--state", &which)) <= 0) {
		fprintf(stderr, "usage: postdate retry ID | postdate retry --state failed|expired\n");
		return EXIT_USAGE;
	}
	if (strcmp(which, "failed") == 0)
		state = PD_FAILED;
	else if (strcmp(which, "expired") == 0)
		state = PD_EXPIRED;
	else {
		fprintf(stderr, "postdate retry: --state must be failed or expired\n");
		return EXIT_USAGE;
	}
	/* Every message of the state that was due before the command started,
	 * a short transaction per batch; those retried are due from then on,
	 * so one that fails again meanwhile is not taken twice. */
	do {
		res = store_retry_state(s, state, started + 1, time_now(), ADMIN_BATCH, &n);
		if (res != STORE_OK) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "retried", json_object_new_int64(total));
			store_failed(c, res, "retrying");
			return fail(c, o, "%ld %s messages were retried before the failure",
			            total, which);
		}
		total += n;
	} while (n == ADMIN_BATCH);
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "retried", json_object_new_int64(total));
		json_object_object_add(o, "state", json_object_new_string(which));
		print_json(o);
	} else
		printf("%ld %s message%s pending again, due now\n", total, which,
		       total == 1 ? " is" : "s are");
	return EXIT_OK;
}

/* ---- queues ---- */

struct queues_print {
	struct cli *c;
	json_object *list;
	int n;
	pd_ms now;
};

static int
queue_row(void *ctx, const struct pd_queue *q)
{
	struct queues_print *p = ctx;
	double oldest = q->oldest_ready != 0 && q->oldest_ready < p->now ?
	    (double)(p->now - q->oldest_ready) / 1000.0 : 0;

	if (p->c->json) {
		/* The object GET /api/queues shows. */
		json_object_array_add(p->list, render_queue(q, p->now));
		return 0;
	}
	if (p->n++ == 0)
		printf("%-24s %7s %7s %10s %7s %9s %9s %5s %7s %6s %s\n", "QUEUE", "READY", "PENDING",
		       "DELIVERING", "FAILED", "DELIVERED", "OLDEST_S", "VIS_S", "ATTEMPTS", "DEPTH",
		       "PAUSED");
	printf("%-24s %7ld %7ld %10ld %7ld %9ld %9.1f %5d %8d %6ld %s\n", q->name, q->ready,
	       q->pending, q->delivering, q->failed, q->delivered, oldest, q->visibility,
	       q->max_attempts, q->max_depth, q->paused ? "yes" : "no");
	return 0;
}

static int
run_queues(struct cli *c, struct pd_store *s)
{
	struct queues_print p = { .c = c, .now = time_now() };
	enum store_result res;

	if (c->argc != 1) {
		fprintf(stderr, "usage: postdate queues\n");
		return EXIT_USAGE;
	}
	p.list = json_object_new_array();
	if ((res = store_queue_list(s, p.now, queue_row, &p)) != STORE_OK) {
		json_object_put(p.list);
		return store_failed(c, res, "reading the queues");
	}
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "queues", p.list);
		print_json(o);
		return EXIT_OK;
	}
	json_object_put(p.list);
	if (p.n == 0)
		printf("no queues\n");
	return EXIT_OK;
}

/* ---- purge ---- */

static int
run_purge(struct cli *c, struct pd_store *s)
{
	const char *text = NULL, *why;
	char shown[PD_TIME_BUF];
	enum store_result res;
	pd_ms age, before;
	long total = 0;
	int i = 1, n;

	if (c->argc != 3 || option_value(c, &i, "--older-than", &text) <= 0) {
		fprintf(stderr, "usage: postdate purge --older-than DURATION\n");
		return EXIT_USAGE;
	}
	if (timeparse_duration(text, &age, &why) != 0) {
		fprintf(stderr, "postdate purge: --older-than: %s (e.g. 30d, 12h, 90m)\n", why);
		return EXIT_USAGE;
	}
	before = time_now() - age;
	do {
		if ((res = store_purge(s, before, ADMIN_BATCH, &n)) != STORE_OK) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "purged", json_object_new_int64(total));
			store_failed(c, res, "purging");
			return fail(c, o, "%ld messages were deleted before the failure", total);
		}
		total += n;
	} while (n == ADMIN_BATCH);
	time_format(before, shown);
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "purged", json_object_new_int64(total));
		json_object_object_add(o, "ended_before", json_object_new_string(shown));
		print_json(o);
	} else
		printf("deleted %ld message%s that ended before %s, with their history\n", total,
		       total == 1 ? "" : "s", shown);
	return EXIT_OK;
}

/* ---- backup, check, migrate ---- */

static int
run_backup(struct cli *c, struct pd_store *s)
{
	enum store_result res;
	struct stat st;
	const char *file;
	char partial[4096];
	int version, fd;

	if (c->argc != 2 || c->argv[1][0] == '-') {
		fprintf(stderr, "usage: postdate backup FILE\n");
		return EXIT_USAGE;
	}
	file = c->argv[1];
	if (lstat(file, &st) == 0)
		return fail(c, NULL, "%s already exists; a backup never overwrites a file", file);
	/* Written beside it under another name and renamed when whole, so
	 * FILE is either absent or a complete copy. */
	if ((size_t)snprintf(partial, sizeof(partial), "%s.partial-%ld", file, (long)getpid()) >=
	    sizeof(partial))
		return fail(c, NULL, "%s: the name is too long", file);
	if ((res = store_backup(s, partial)) != STORE_OK) {
		unlink(partial);
		return store_failed(c, res, "backing up");
	}
	if ((fd = open(partial, O_RDONLY)) < 0 || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(partial, file) != 0) {
		int saved = errno;

		unlink(partial);
		return fail(c, NULL, "%s: %s", file, strerror(saved));
	}
	if (store_inspect(file, &version, NULL, NULL, NULL) != STORE_OK || stat(file, &st) != 0)
		return fail(c, NULL, "%s: the copy cannot be read back", file);
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "backup", json_object_new_string(file));
		json_object_object_add(o, "bytes", json_object_new_int64((int64_t)st.st_size));
		json_object_object_add(o, "schema_version", json_object_new_int(version));
		print_json(o);
	} else
		printf("backed up %s to %s (%lld bytes, schema version %d)\n",
		       DATABASE_SHOWN(c->cfg.database), file, (long long)st.st_size, version);
	return EXIT_OK;
}

struct problems {
	struct cli *c;
	json_object *list;
};

static void
problem_seen(void *ctx, const char *problem)
{
	struct problems *p = ctx;

	json_object_array_add(p->list, json_object_new_string(problem));
	if (!p->c->json)
		printf("problem: %s\n", problem);
}

static int
run_check(struct cli *c, struct pd_store *s)
{
	struct problems p = { .c = c };
	const char *file = c->cfg.database;
	enum store_result res;
	int version, known = store_schema_version(), ok;
	long n = 0;
	struct stat st;

	(void)s;
	if (c->argc > 2 || (c->argc == 2 && c->argv[1][0] == '-')) {
		fprintf(stderr, "usage: postdate check [FILE]\n");
		return EXIT_USAGE;
	}
	if (c->argc == 2)
		file = c->argv[1];
	if (!store_database_is_url(file) && stat(file, &st) != 0)
		return fail(c, NULL, "no database at %s (%s)", file, strerror(errno));
	p.list = json_object_new_array();
	res = store_inspect(file, &version, problem_seen, &p, &n);
	if (res != STORE_OK) {
		json_object_put(p.list);
		return fail(c, NULL, "%s cannot be read as a database", DATABASE_SHOWN(file));
	}
	ok = n == 0 && version >= 1 && version <= known;
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "ok", json_object_new_boolean(ok));
		json_object_object_add(o, "database", json_object_new_string(DATABASE_SHOWN(file)));
		json_object_object_add(o, "schema_version", json_object_new_int(version));
		json_object_object_add(o, "known_version", json_object_new_int(known));
		json_object_object_add(o, "problems", p.list);
		print_json(o);
		return ok ? EXIT_OK : EXIT_FAILED;
	}
	json_object_put(p.list);
	printf("%s: integrity %s, schema version %d", DATABASE_SHOWN(file),
	       n == 0 ? "ok" : "FAILED", version);
	if (version == known)
		printf(" (current)\n");
	else if (version > known)
		printf(" (newer than this postdate, which knows up to %d)\n", known);
	else if (version == 0)
		printf(" (not a postdate database, or an empty one)\n");
	else
		printf(" (older: `postdate migrate` brings it to %d)\n", known);
	return ok ? EXIT_OK : EXIT_FAILED;
}

static int
run_migrate(struct cli *c, struct pd_store *unused)
{
	struct pd_store *s = NULL;
	struct stat st;
	int before = 0, after = store_schema_version();

	(void)unused;
	if (c->argc != 1) {
		fprintf(stderr, "usage: postdate migrate\n");
		return EXIT_USAGE;
	}
	if ((store_database_is_url(c->cfg.database) || stat(c->cfg.database, &st) == 0) &&
	    store_inspect(c->cfg.database, &before, NULL, NULL, NULL) != STORE_OK)
		return fail(c, NULL, "%s cannot be read as a database", DATABASE_SHOWN(c->cfg.database));
	if (before > after)
		return fail(c, NULL, "%s has schema version %d; this postdate knows up to %d",
		            DATABASE_SHOWN(c->cfg.database), before, after);
	/* Opening runs what the database has not had yet, each migration in
	 * its own transaction, as every program does when it starts. */
	if (store_open(&s, &c->cfg) != 0)
		return fail(c, NULL, "%s could not be opened or migrated (see the line above)",
		            DATABASE_SHOWN(c->cfg.database));
	store_close(s);
	if (c->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "database",
		                       json_object_new_string(DATABASE_SHOWN(c->cfg.database)));
		json_object_object_add(o, "from", json_object_new_int(before));
		json_object_object_add(o, "to", json_object_new_int(after));
		print_json(o);
	} else if (before == after)
		printf("%s: already at schema version %d\n", DATABASE_SHOWN(c->cfg.database), after);
	else
		printf("%s: schema version %d -> %d (%d migration%s)\n",
		       DATABASE_SHOWN(c->cfg.database), before,
		       after, after - before, after - before == 1 ? "" : "s");
	return EXIT_OK;
}

/* ---- the command line ---- */

static const struct command commands[] = {
	{ "status", "ID",
	  "Shows one message: its state, due time, destination, rounds, outcome,\n"
	  "callback and payload size, then every HTTP attempt, oldest first.\n"
	  "--json prints what GET /api/status?id= answers (the payload included).\n",
	  1, run_status },
	{ "list", "[--state S] [--queue Q] [--limit N]",
	  "Lists messages by due time, then id: pending ones unless --state says\n"
	  "delivering, delivered, failed, cancelled, expired or all; with --queue,\n"
	  "only that queue's (and its counts). --limit: 1 to 1000, default 100.\n"
	  "Ends with the counts per state. --json prints {\"messages\": [...],\n"
	  "\"counts\": {...}} as the API's list does.\n",
	  1, run_list },
	{ "cancel", "ID",
	  "Cancels a pending message: it is never delivered. A message being\n"
	  "delivered or already ended is refused (exit status 1, its state said).\n",
	  1, run_cancel },
	{ "retry", "ID | --state failed|expired",
	  "Puts a failed or expired message back to pending, due now, its rounds\n"
	  "(receives) reset, as POST /api/retry does; with --state, every failed\n"
	  "(or expired) message there is, 1000 per transaction, and says how many.\n"
	  "Any other state of ID is refused (exit status 1, its state said).\n",
	  1, run_retry },
	{ "queues", "",
	  "Lists every queue with its figures (ready, pending, delivering, failed,\n"
	  "delivered, how long the oldest ready message has waited) and settings\n"
	  "(visibility, max attempts, max depth, paused).\n",
	  1, run_queues },
	{ "purge", "--older-than DURATION",
	  "Deletes the messages that ended (delivered, failed, cancelled, expired)\n"
	  "longer ago than DURATION (30d, 12h, 90m, 0 for all that ended), with\n"
	  "their history and payloads, 1000 per transaction: what the dispatcher's\n"
	  "`retention` does, at once. Pending and delivering messages are never\n"
	  "touched. The file shrinks only with VACUUM (see the README).\n",
	  1, run_purge },
	{ "backup", "FILE",
	  "Copies the database into the new file FILE with SQLite's online backup\n"
	  "API: one consistent snapshot, taken while every program keeps running\n"
	  "(they are not blocked). FILE must not exist; it appears only complete.\n"
	  "A PostgreSQL database is refused: back it up with pg_dump.\n",
	  1, run_backup },
	{ "check", "[FILE]",
	  "Runs SQLite's integrity check on the database (or on FILE, e.g. a\n"
	  "backup) without changing it, and shows its schema version against the\n"
	  "one this postdate knows. Exit status 1 when it finds a problem or the\n"
	  "version is newer than this postdate's. On PostgreSQL it compares the\n"
	  "kept counts with the rows instead.\n",
	  0, run_check },
	{ "migrate", "",
	  "Creates the database if there is none and runs the migrations it has\n"
	  "not had yet, each in one transaction (every program does this when it\n"
	  "starts; this does it now, and says from which version to which). Back\n"
	  "the file up first: there is no way back.\n",
	  0, run_migrate },
};

static const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

static void
usage(FILE *out)
{
	fputs("usage: postdate [-c FILE] [--json] COMMAND [ARGS]\n"
	      "       postdate COMMAND --help\n"
	      "\n"
	      "The admin command line of postdate, for the operator on the host: it\n"
	      "reads and changes the configured database (an SQLite file or a\n"
	      "PostgreSQL URL) directly (the same configuration as the other\n"
	      "programs), while they keep running. Each change is one short\n"
	      "transaction.\n"
	      "\n"
	      "commands:\n", out);
	for (size_t i = 0; i < ncommands; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].usage);
	fputs("\n"
	      "options:\n"
	      "  -c, --config FILE  configuration file (default: $POSTDATE_CONF, else\n"
	      "                     /etc/postdate.conf)\n"
	      "  --json             print one JSON object on stdout (errors too, as\n"
	      "                     {\"error\": ...}), for scripts\n"
	      "  -h, --help         show this text (`postdate COMMAND --help`: that\n"
	      "                     command's)\n"
	      "  -V, --version      show the version\n"
	      "\n"
	      "Exit status: 0 on success, 1 on a failure (an unknown id, a refused\n"
	      "change, a database problem; the reason is printed), 2 on bad usage.\n"
	      "\n"
	      "Example: postdate -c /etc/postdate.conf retry --state failed\n", out);
}

static void
command_usage(const struct command *cmd, FILE *out)
{
	fprintf(out, "usage: postdate [-c FILE] [--json] %s%s%s\n\n%s", cmd->name,
	        *cmd->usage != '\0' ? " " : "", cmd->usage, cmd->help);
}

int
main(int argc, char **argv)
{
	struct cli c = { 0 };
	const struct command *cmd = NULL;
	const char *config_flag = NULL;
	struct pd_store *s = NULL;
	char err[512];
	int i, status;

	log_init("postdate");
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EXIT_OK;
		}
		if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("postdate %s\n", PD_VERSION);
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--json") == 0)
			c.json = 1;
		else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		         i + 1 < argc)
			config_flag = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			config_flag = argv[i] + 9;
		else {
			fprintf(stderr, "postdate: unknown option %s\n\n", argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t k = 0; k < ncommands; k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			cmd = &commands[k];
	if (cmd == NULL && strcmp(argv[i], "help") == 0) {
		for (size_t k = 0; i + 1 < argc && k < ncommands; k++)
			if (strcmp(argv[i + 1], commands[k].name) == 0) {
				command_usage(&commands[k], stdout);
				return EXIT_OK;
			}
		usage(stdout);
		return i + 1 < argc ? EXIT_USAGE : EXIT_OK;
	}
	if (cmd == NULL) {
		fprintf(stderr, "postdate: unknown command %s\n\n", argv[i]);
		usage(stderr);
		return EXIT_USAGE;
	}
	c.argc = argc - i;
	c.argv = argv + i;
	for (int k = 1; k < c.argc; k++)
		if (strcmp(c.argv[k], "-h") == 0 || strcmp(c.argv[k], "--help") == 0) {
			command_usage(cmd, stdout);
			return EXIT_OK;
		}
	/* After the usage checks that need no configuration: a bad
	 * configuration is a failure (1), as in every program. */
	config_defaults(&c.cfg);
	if (config_load(&c.cfg, config_path(config_flag), err, sizeof(err)) != 0) {
		fprintf(stderr, "postdate: %s\n", err);
		config_free(&c.cfg);
		return EXIT_FAILED;
	}
	if (cmd->needs_database) {
		if (!database_exists(&c)) {
			config_free(&c.cfg);
			return EXIT_FAILED;
		}
		if (store_open(&s, &c.cfg) != 0) {
			status = fail(&c, NULL, "%s could not be opened (see the line above)",
			              DATABASE_SHOWN(c.cfg.database));
			config_free(&c.cfg);
			return status;
		}
	}
	status = cmd->run(&c, s);
	store_close(s);
	config_free(&c.cfg);
	return status;
}
