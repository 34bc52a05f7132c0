/*
 * store.c: store.h over the engines. The database setting picks the
 * engine (a postgresql:// URL or a file path); every operation then goes
 * to it. What is the same on every engine is built here from the engine's
 * batch operations.
 */
#include <string.h>

#include "postdate.h"
#include "store_engine.h"
#include "store_pg.h"
#include "../sql/migrations.h"

static const struct store_engine *const engines[] = {
	&store_pg_engine,
	&store_sqlite_engine,      /* last: any path */
};

/* The engine whose database the setting names; SQLite takes any path. */
static const struct store_engine *
engine_of(const char *database)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (engines[i]->names(database))
			return engines[i];
	return NULL;
}

int
store_database_is_url(const char *database)
{
	return strncmp(database, "postgresql://", 13) == 0 || strncmp(database, "postgres://", 11) == 0;
}

const char *
store_database_shown(const char *database, char *buf, size_t len)
{
	const char *shown, *p;
	size_t n;

	if (database == NULL || !store_database_is_url(database))
		return database;
	shown = url_redact(database, buf, len);
	if ((p = strstr(shown, "password=")) == NULL)
		return shown;
	/* Copied into buf (shown may be database itself), each password=
	 * parameter's value masked up to the next '&'. */
	n = 0;
	for (const char *q = shown; *q != '\0' && n + 4 < len;) {
		if ((q == shown || q[-1] == '?' || q[-1] == '&') && strncmp(q, "password=", 9) == 0) {
			if (n + 12 >= len)
				break;
			memcpy(buf + n, "password=***", 12);
			n += 12;
			q += 9;
			q += strcspn(q, "&#");
			continue;
		}
		buf[n++] = *q++;
	}
	buf[n] = '\0';
	return buf;
}

int
store_schema_version(void)
{
	return (int)(sizeof(migrations) / sizeof(migrations[0]));
}

int
store_open(struct pd_store **out, const struct pd_config *cfg)
{
	const struct store_engine *e = engine_of(cfg->database);

	*out = NULL;
	if (e == NULL) {
		log_error("store: %s: no engine for this database", DATABASE_SHOWN(cfg->database));
		return -1;
	}
	return e->open(out, cfg);
}

enum store_result
store_inspect(const char *path, int *version, store_problem_fn fn, void *ctx, long *problems)
{
	const struct store_engine *e = engine_of(path);

	return e != NULL ? e->inspect(path, version, fn, ctx, problems) : STORE_UNAVAILABLE;
}

enum store_result
store_insert(struct pd_store *s, struct pd_message *m, pd_ms now)
{
	struct store_insert item = { .message = m, .now = now };

	s->engine->insert_batch(s, &item, 1);
	return item.result;
}

enum store_result
store_receive(struct pd_store *s, const char *queue, int max, int visibility_s, pd_ms now,
              store_report_fn report_fn, void *report_ctx, store_received_fn fn, void *ctx)
{
	struct store_queue_op op = {
		.queue = queue, .max = max, .visibility_s = visibility_s, .fn = fn, .ctx = ctx,
	};

	s->engine->queue_batch(s, &op, 1, now, report_fn, report_ctx);
	return op.result;
}

enum store_result
store_ack(struct pd_store *s, struct store_ack *items, size_t n, pd_ms now,
          store_report_fn report_fn, void *ctx)
{
	struct store_queue_op op = { .items = items, .n = n };

	s->engine->queue_batch(s, &op, 1, now, report_fn, ctx);
	return op.result;
}

enum store_attempt_outcome
store_attempt_outcome_of(int status)
{
	if (status == 0)
		return STORE_ATTEMPT_NO_ANSWER;
	if (status < 200 || status > 599)
		return STORE_ATTEMPT_OTHER;
	return (enum store_attempt_outcome)(STORE_ATTEMPT_2XX + (status / 100 - 2));
}

/* ---- each operation, to its engine ---- */

void
store_close(struct pd_store *s)
{
	if (s != NULL)
		s->engine->close(s);
}

void
store_insert_batch(struct pd_store *s, struct store_insert *items, size_t n)
{
	s->engine->insert_batch(s, items, n);
}

enum store_result
store_cancel(struct pd_store *s, const char *id, enum pd_state *state)
{
	return s->engine->cancel(s, id, state);
}

enum store_result
store_get(struct pd_store *s, const char *id, struct pd_message *m, store_attempt_fn fn,
          void *ctx)
{
	return s->engine->get(s, id, m, fn, ctx);
}

enum store_result
store_history(struct pd_store *s, const char *id, store_attempt_fn fn, void *ctx)
{
	return s->engine->history(s, id, fn, ctx);
}

enum store_result
store_list(struct pd_store *s, int state, const char *queue, pd_ms after_due,
           const char *after_id, int limit, store_message_fn fn, void *ctx,
           long counts[PD_NSTATES])
{
	return s->engine->list(s, state, queue, after_due, after_id, limit, fn, ctx, counts);
}

enum store_result
store_counts(struct pd_store *s, long counts[PD_NSTATES])
{
	return s->engine->counts(s, counts);
}

enum store_result
store_health(struct pd_store *s, long counts[PD_NSTATES], pd_ms *earliest)
{
	return s->engine->health(s, counts, earliest);
}

enum store_result
store_queue_set(struct pd_store *s, const struct pd_queue_change *c, pd_ms now,
                struct pd_queue *q)
{
	return s->engine->queue_set(s, c, now, q);
}

enum store_result
store_subscribe(struct pd_store *s, const char *topic, const char *name,
                const struct pd_message *dest, pd_ms now, int *created)
{
	return s->engine->subscribe(s, topic, name, dest, now, created);
}

enum store_result
store_unsubscribe(struct pd_store *s, const char *topic, const char *name)
{
	return s->engine->unsubscribe(s, topic, name);
}

enum store_result
store_topics(struct pd_store *s, const char *topic, store_subscription_fn fn, void *ctx)
{
	return s->engine->topics(s, topic, fn, ctx);
}

enum store_result
store_queue_get(struct pd_store *s, const char *name, pd_ms now, struct pd_queue *q)
{
	return s->engine->queue_get(s, name, now, q);
}

enum store_result
store_queue_list(struct pd_store *s, pd_ms now, store_queue_fn fn, void *ctx)
{
	return s->engine->queue_list(s, now, fn, ctx);
}

enum store_result
store_queue_ready_at(struct pd_store *s, const char *queue, pd_ms *at)
{
	return s->engine->queue_ready_at(s, queue, at);
}

enum store_result
store_data_version(struct pd_store *s, long long *version)
{
	return s->engine->data_version(s, version);
}

int
store_watch_interval_ms(const struct pd_store *s)
{
	return s->engine->caps.watch_ms;
}

void
store_queue_batch(struct pd_store *s, struct store_queue_op *ops, size_t n, pd_ms now,
                  store_report_fn report_fn, void *report_ctx)
{
	s->engine->queue_batch(s, ops, n, now, report_fn, report_ctx);
}

enum store_result
store_release(struct pd_store *s, struct store_ack *item, pd_ms delay_ms, pd_ms now, pd_ms *due,
              store_report_fn report_fn, void *ctx)
{
	return s->engine->release(s, item, delay_ms, now, due, report_fn, ctx);
}

enum store_result
store_extend(struct pd_store *s, struct store_ack *item, pd_ms visibility_ms, pd_ms now,
             pd_ms *until)
{
	return s->engine->extend(s, item, visibility_ms, now, until);
}

int
store_sync_normal(struct pd_store *s)
{
	return s->engine->sync_normal(s);
}

enum store_result
store_next_due(struct pd_store *s, pd_ms *unbuffered, pd_ms *buffered)
{
	return s->engine->next_due(s, unbuffered, buffered);
}

enum store_result
store_promote(struct pd_store *s, pd_ms until, int limit, int *promoted)
{
	return s->engine->promote(s, until, limit, promoted);
}

enum store_result
store_claim(struct pd_store *s, pd_ms now, int limit, int lease_slack_s, store_claim_fn fn,
            void *ctx)
{
	return s->engine->claim(s, now, limit, lease_slack_s, fn, ctx);
}

enum store_result
store_settle(struct pd_store *s, struct pd_settlement *items, size_t n, pd_ms now,
             store_report_fn report_fn, void *ctx)
{
	return s->engine->settle(s, items, n, now, report_fn, ctx);
}

enum store_result
store_end_overdue(struct pd_store *s, pd_ms now, int limit, store_report_fn report_fn,
                  void *ctx, int *ended)
{
	return s->engine->end_overdue(s, now, limit, report_fn, ctx, ended);
}

enum store_result
store_recurring_add(struct pd_store *s, struct pd_recurring *r, pd_ms now)
{
	return s->engine->recurring_add(s, r, now);
}

enum store_result
store_recurring_get(struct pd_store *s, const char *id, struct pd_recurring *r)
{
	return s->engine->recurring_get(s, id, r);
}

enum store_result
store_recurring_list(struct pd_store *s, int limit, store_recurring_fn fn, void *ctx)
{
	return s->engine->recurring_list(s, limit, fn, ctx);
}

enum store_result
store_recurring_pause(struct pd_store *s, const char *id, pd_ms now, struct pd_recurring *r)
{
	return s->engine->recurring_pause(s, id, now, r);
}

enum store_result
store_recurring_resume(struct pd_store *s, const char *id, pd_ms now, struct pd_recurring *r)
{
	return s->engine->recurring_resume(s, id, now, r);
}

enum store_result
store_recurring_delete(struct pd_store *s, const char *id, pd_ms now)
{
	return s->engine->recurring_delete(s, id, now);
}

enum store_result
store_recurring_make_at(struct pd_store *s, pd_ms *at)
{
	return s->engine->recurring_make_at(s, at);
}

enum store_result
store_recurring_make(struct pd_store *s, pd_ms now, int limit, int *made, int *late)
{
	return s->engine->recurring_make(s, now, limit, made, late);
}

int
store_query_plans(struct pd_store *s, store_plan_fn fn, void *ctx)
{
	return s->engine->query_plans(s, fn, ctx);
}

enum store_result
store_metrics(struct pd_store *s, pd_ms now, struct store_metrics *m, store_queue_fn fn,
              void *ctx)
{
	return s->engine->metrics(s, now, m, fn, ctx);
}

enum store_result
store_retry(struct pd_store *s, const char *id, pd_ms now, enum pd_state *state)
{
	return s->engine->retry(s, id, now, state);
}

enum store_result
store_retry_state(struct pd_store *s, enum pd_state state, pd_ms due_before, pd_ms now,
                  int limit, int *retried)
{
	return s->engine->retry_state(s, state, due_before, now, limit, retried);
}

enum store_result
store_purge(struct pd_store *s, pd_ms before, int limit, int *purged)
{
	return s->engine->purge(s, before, limit, purged);
}

/* Only a database that is one file has a copy to make here; a server's
 * has its own tools, which its engine's refusal names (pg_dump). */
enum store_result
store_backup(struct pd_store *s, const char *path)
{
	if (!s->engine->caps.one_file && s->engine->backup == NULL) {
		log_error("store: %s databases are backed up with their own tools", s->engine->name);
		return STORE_ERROR;
	}
	return s->engine->backup(s, path);
}
