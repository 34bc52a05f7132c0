/*
 * store_pg_admin.c: the administrative operations on PostgreSQL: metrics,
 * retry, retention (purge), backup (refused: pg_dump), inspect, query
 * plans, and what longpoll watches (data_version).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postdate.h"
#include "store_pg.h"

const struct pg_statement pg_admin_statements[] = {
	{ "totals", "SELECT counter, n FROM totals" },
};
const int pg_admin_nstatements =
	(int)(sizeof(pg_admin_statements) / sizeof(pg_admin_statements[0]));

/* A server's database is not one file: pg_dump backs it up. store.c
 * refuses before it comes here (caps.one_file = 0). */
enum store_result
pg_op_backup(struct pd_store *s, const char *path)
{
	(void)s;
	(void)path;
	log_error("store: a PostgreSQL database is backed up with pg_dump");
	return STORE_ERROR;
}
