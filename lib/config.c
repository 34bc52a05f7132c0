/*
 * config.c: the configuration file, "key = value" lines and "#" comments.
 * Unknown keys and bad values are errors naming the line, so a typo never
 * silently runs with a default.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "postdate.h"

#define CONFIG_MAX_LINE 4096
#define CONFIG_MAX_TOKENS 64
#define CONFIG_MAX_FILE (1 << 20)

const char *
config_path(const char *flag_value)
{
	const char *env;

	if (flag_value != NULL)
		return flag_value;
	env = getenv("POSTDATE_CONF");
	if (env != NULL && *env != '\0')
		return env;
	return "/etc/postdate.conf";
}

void
config_defaults(struct pd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_body = 1048576;
	cfg->report_body_max = PD_MAX_RESPONSE;
	cfg->max_pending = 1000000;
	cfg->default_max_attempts = 8;
	cfg->default_timeout = 10;
	cfg->retry_base = 5;
	cfg->retry_max = 3600;
	cfg->buffer_horizon = 3600;
	cfg->concurrency = 64;
	cfg->host_concurrency = 32;
	cfg->synchronous_full = 1;
	cfg->schedule_threads = 16;
	cfg->queue_visibility = 30;
	cfg->receive_waiters = 64;
	cfg->retention = 7 * 86400 * PD_MS_PER_S;
	/* The web's ports and the unprivileged ones: not SMTP, SSH and the
	 * other services of the low ports of a public host. */
	cfg->ports[0] = (struct pd_port_range){ 80, 80 };
	cfg->ports[1] = (struct pd_port_range){ 443, 443 };
	cfg->ports[2] = (struct pd_port_range){ 1024, 65535 };
	cfg->nports = 3;
}

/* Strict decimal: digits only, no sign, within [min, max]. */
static int
parse_long(const char *text, long min, long max, long *out)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*text))
		return -1;
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "whsec_" and base64 of 24 to 64 bytes, as the Standard Webhooks spec has it. */
static int
signing_secret_valid(const char *text)
{
	unsigned char raw[128];
	size_t len;
	int n;

	if (strncmp(text, "whsec_", 6) != 0)
		return 0;
	text += 6;
	len = strlen(text);
	if (len == 0 || len % 4 != 0 || len > 88)
		return 0;
	n = EVP_DecodeBlock(raw, (const unsigned char *)text, (int)len);
	if (n < 0)
		return 0;
	/* EVP_DecodeBlock counts padding as zero bytes. */
	n -= (text[len - 1] == '=') + (text[len - 2] == '=');
	return n >= 24 && n <= 64;
}

/* Visible ASCII only, 16 to 256 of them: long enough to resist guessing. */
static int
token_valid(const char *text)
{
	size_t len = strlen(text);

	if (len < 16 || len > 256)
		return 0;
	for (; *text; text++)
		if (*text <= ' ' || *text > '~')
			return 0;
	return 1;
}

static int
set_string(char **slot, const char *value)
{
	char *copy = strdup(value);

	if (copy == NULL)
		return -1;
	free(*slot);
	*slot = copy;
	return 0;
}

/* "a, b, c": the names Host may give, each checked, kept as written. */
static int
server_names_parse(struct pd_config *cfg, const char *value)
{
	const char *p = value;

	for (;;) {
		const char *end;
		size_t len;
		char *name, **grown;

		p += strspn(p, " \t");
		end = p + strcspn(p, ",");
		len = (size_t)(end - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!server_name_valid(p, len) || cfg->nserver_names == PD_MAX_SERVER_NAMES)
			return -1;
		grown = realloc(cfg->server_names, (cfg->nserver_names + 1) * sizeof(*grown));
		if (grown == NULL)
			return -1;
		cfg->server_names = grown;
		if ((name = strndup(p, len)) == NULL)
			return -1;
		cfg->server_names[cfg->nserver_names++] = name;
		if (*end == '\0')
			return 0;
		p = end + 1;
	}
}

struct config_int_key {
	const char *name;
	long min, max;
	size_t offset;
	int is_long;
};

#define INT_KEY(name, min, max) { #name, min, max, offsetof(struct pd_config, name), 0 }

static const struct config_int_key config_int_keys[] = {
	INT_KEY(default_max_attempts, 1, 100),
	INT_KEY(default_timeout, 1, 300),
	INT_KEY(retry_base, 1, 86400),
	INT_KEY(retry_max, 1, 604800),
	INT_KEY(buffer_horizon, 10, 86400),
	INT_KEY(concurrency, 1, 10000),
	INT_KEY(host_concurrency, 1, 10000),
	INT_KEY(schedule_threads, 1, 256),
	INT_KEY(queue_visibility, 1, PD_MAX_VISIBILITY),
	INT_KEY(receive_waiters, 1, 1024),
};

/*
 * Splits a line into its key and value (both NUL-terminated; key has 64
 * bytes, value CONFIG_MAX_LINE + 1). A "#" at the start of the line, or
 * after a space or tab, begins a comment that runs to the end of the line,
 * so "max_body = 2048  # bytes" reads as 2048; a "#" inside a value
 * (a token "ab#cd") is part of it. Returns 1 for a key line, 0 for a blank
 * or comment line, -1 with the reason in err.
 */
static int
config_split(const char *line, char *key, char *value, char *err, size_t errlen)
{
	const char *p = line, *eq, *vstart, *vend;
	size_t klen, vlen;

	if (strlen(line) > CONFIG_MAX_LINE) {
		snprintf(err, errlen, "line longer than %d bytes", CONFIG_MAX_LINE);
		return -1;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	eq = strchr(p, '=');
	if (eq == NULL) {
		snprintf(err, errlen, "expected \"key = value\"");
		return -1;
	}
	klen = (size_t)(eq - p);
	while (klen > 0 && (p[klen - 1] == ' ' || p[klen - 1] == '\t'))
		klen--;
	if (klen == 0 || klen >= 64) {
		snprintf(err, errlen, "expected \"key = value\"");
		return -1;
	}
	memcpy(key, p, klen);
	key[klen] = '\0';
	vstart = eq + 1;
	while (*vstart == ' ' || *vstart == '\t')
		vstart++;
	for (vend = vstart; *vend != '\0'; vend++)
		if (*vend == '#' && (vend[-1] == ' ' || vend[-1] == '\t'))
			break;
	while (vend > vstart && (vend[-1] == ' ' || vend[-1] == '\t' || vend[-1] == '\r'))
		vend--;
	vlen = (size_t)(vend - vstart);
	memcpy(value, vstart, vlen);
	value[vlen] = '\0';
	if (vlen == 0) {
		snprintf(err, errlen, "%s has no value", key);
		return -1;
	}
	return 1;
}

/* Whether key may be given on several lines: tokens and allowed ranges add
 * up; any other key set twice would silently take the last. */
static int
config_key_repeatable(const char *key)
{
	return strcmp(key, "token") == 0 || strcmp(key, "allow_targets") == 0;
}

int
config_parse_line(struct pd_config *cfg, const char *line, char *err, size_t errlen)
{
	char key[64], value[CONFIG_MAX_LINE + 1];
	long n;
	int rc;

	if ((rc = config_split(line, key, value, err, errlen)) <= 0)
		return rc;

	if (strcmp(key, "database") == 0)
		return set_string(&cfg->database, value);
	if (strcmp(key, "token") == 0) {
		unsigned char (*hashes)[32];
		char **grown;

		if (!token_valid(value)) {
			snprintf(err, errlen, "token must be 16 to 256 visible ASCII characters");
			return -1;
		}
		if (cfg->ntokens == CONFIG_MAX_TOKENS) {
			snprintf(err, errlen, "at most %d tokens", CONFIG_MAX_TOKENS);
			return -1;
		}
		grown = realloc(cfg->tokens, (cfg->ntokens + 1) * sizeof(*grown));
		if (grown == NULL)
			return -1;
		cfg->tokens = grown;
		hashes = realloc(cfg->token_hashes, (cfg->ntokens + 1) * sizeof(*hashes));
		if (hashes == NULL)
			return -1;
		cfg->token_hashes = hashes;
		cfg->tokens[cfg->ntokens] = NULL;
		if (set_string(&cfg->tokens[cfg->ntokens], value) != 0)
			return -1;
		/* Hashed once here, so a request hashes only the token it sends. */
		SHA256((const unsigned char *)value, strlen(value), cfg->token_hashes[cfg->ntokens]);
		cfg->ntokens++;
		return 0;
	}
	if (strcmp(key, "allow_targets") == 0) {
		struct pd_cidr *ranges, *grown;
		size_t count;

		/* Repeated lines add up, like token lines. */
		if (cidr_list_parse(value, &ranges, &count) != 0)
			ranges = NULL;
		if (ranges == NULL || cfg->nallow + count > PD_MAX_ALLOW_TARGETS) {
			free(ranges);
			snprintf(err, errlen, "allow_targets must be comma-separated CIDR ranges "
			         "such as 127.0.0.0/8, ::1 (at most %d in all)", PD_MAX_ALLOW_TARGETS);
			return -1;
		}
		grown = realloc(cfg->allow, (cfg->nallow + count) * sizeof(*grown));
		if (grown == NULL) {
			free(ranges);
			return -1;
		}
		memcpy(grown + cfg->nallow, ranges, count * sizeof(*grown));
		free(ranges);
		cfg->allow = grown;
		cfg->nallow += count;
		return 0;
	}
	if (strcmp(key, "allow_ports") == 0) {
		if (port_list_parse(value, cfg->ports, &cfg->nports) != 0) {
			snprintf(err, errlen, "allow_ports must be comma-separated ports and ranges "
			         "of 1 to 65535 such as 80, 443, 1024-65535 (at most %d)",
			         PD_MAX_ALLOW_PORTS);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "server_names") == 0) {
		if (server_names_parse(cfg, value) != 0) {
			snprintf(err, errlen, "server_names must be comma-separated host names or "
			         "addresses without a port, such as postdate.example, 192.0.2.1, "
			         "[2001:db8::1] (at most %d)", PD_MAX_SERVER_NAMES);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "signing_secret") == 0) {
		if (!signing_secret_valid(value)) {
			snprintf(err, errlen, "signing_secret must be \"whsec_\" followed by "
			         "base64 of 24 to 64 bytes");
			return -1;
		}
		return set_string(&cfg->signing_secret, value);
	}
	if (strcmp(key, "synchronous") == 0) {
		if (strcmp(value, "full") == 0)
			cfg->synchronous_full = 1;
		else if (strcmp(value, "normal") == 0)
			cfg->synchronous_full = 0;
		else {
			snprintf(err, errlen, "synchronous must be full or normal");
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "max_body") == 0) {
		/* nginx is configured to pass at most 64 MiB. */
		if (parse_long(value, 1024, 64L << 20, &n) != 0) {
			snprintf(err, errlen, "max_body must be a whole number from 1024 to 67108864");
			return -1;
		}
		cfg->max_body = (size_t)n;
		return 0;
	}
	if (strcmp(key, "report_body_max") == 0) {
		/* 0: the report says the status and type, never what was answered. */
		if (parse_long(value, 0, PD_MAX_RESPONSE, &n) != 0) {
			snprintf(err, errlen, "report_body_max must be a whole number from 0 to %d",
			         PD_MAX_RESPONSE);
			return -1;
		}
		cfg->report_body_max = (size_t)n;
		return 0;
	}
	if (strcmp(key, "retention") == 0) {
		const char *why;
		pd_ms ms;

		/* A duration as schedule's delay takes it; 0 keeps everything. */
		if (timeparse_duration(value, &ms, &why) != 0) {
			snprintf(err, errlen, "retention must be a duration such as 7d, 12h or 90m, "
			         "or 0 to keep every message");
			return -1;
		}
		cfg->retention = ms;
		return 0;
	}
	if (strcmp(key, "max_pending") == 0) {
		if (parse_long(value, 1, 1000000000000L, &n) != 0) {
			snprintf(err, errlen, "max_pending must be a whole number from 1 to 1000000000000");
			return -1;
		}
		cfg->max_pending = n;
		return 0;
	}
	for (size_t i = 0; i < sizeof(config_int_keys) / sizeof(config_int_keys[0]); i++) {
		const struct config_int_key *k = &config_int_keys[i];

		if (strcmp(key, k->name) != 0)
			continue;
		if (parse_long(value, k->min, k->max, &n) != 0) {
			snprintf(err, errlen, "%s must be a whole number from %ld to %ld",
			         k->name, k->min, k->max);
			return -1;
		}
		*(int *)((char *)cfg + k->offset) = (int)n;
		return 0;
	}
	snprintf(err, errlen, "unknown key \"%s\"", key);
	return -1;
}

/* A relative database path is taken from the configuration file's folder,
 * so the same file works whatever folder a program starts in. A
 * PostgreSQL URL (postgresql://, postgres://) is no path: kept as written. */
static int
resolve_database(struct pd_config *cfg)
{
	const char *slash;
	char *joined;
	size_t dirlen;

	if (cfg->database == NULL)
		return set_string(&cfg->database, "/var/lib/postdate/postdate.db");
	if (cfg->database[0] == '/' || strncmp(cfg->database, "postgresql://", 13) == 0 ||
	    strncmp(cfg->database, "postgres://", 11) == 0 || (slash = strrchr(cfg->path, '/')) == NULL)
		return 0;
	dirlen = (size_t)(slash - cfg->path);
	joined = malloc(dirlen + 1 + strlen(cfg->database) + 1);
	if (joined == NULL)
		return -1;
	sprintf(joined, "%.*s/%s", (int)dirlen, cfg->path, cfg->database);
	free(cfg->database);
	cfg->database = joined;
	return 0;
}

/* The line each single-valued key was first set on. */
struct config_seen {
	char key[64];
	int line;
};

int
config_parse_text(struct pd_config *cfg, const char *path, const char *text, size_t len,
                  char *err, size_t errlen)
{
	char line[CONFIG_MAX_LINE + 1], why[256], key[64], value[CONFIG_MAX_LINE + 1];
	struct config_seen seen[64];
	size_t nseen = 0;
	const char *p, *end;
	size_t n;
	int lineno = 0;

	config_defaults(cfg);
	if (set_string(&cfg->path, path) != 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	for (p = text, end = text + len; p < end; p += n + 1) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		lineno++;
		n = (size_t)((nl != NULL ? nl : end) - p);
		if (n > CONFIG_MAX_LINE) {
			snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
			         CONFIG_MAX_LINE);
			return -1;
		}
		if (memchr(p, '\0', n) != NULL) {
			snprintf(err, errlen, "%s:%d: NUL byte in line", path, lineno);
			return -1;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		if (config_parse_line(cfg, line, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			return -1;
		}
		/* The line parsed, so it splits, and its key is a known one. */
		if (config_split(line, key, value, why, sizeof(why)) != 1 ||
		    config_key_repeatable(key))
			continue;
		for (size_t i = 0; i < nseen; i++) {
			if (strcmp(seen[i].key, key) == 0) {
				snprintf(err, errlen, "%s:%d: %s is already set on line %d "
				         "(only token and allow_targets lines may repeat)", path,
				         lineno, key, seen[i].line);
				return -1;
			}
		}
		if (nseen < sizeof(seen) / sizeof(seen[0])) {
			memcpy(seen[nseen].key, key, sizeof(key));
			seen[nseen++].line = lineno;
		}
	}
	if (cfg->retry_max < cfg->retry_base) {
		snprintf(err, errlen, "%s: retry_max (%d) is below retry_base (%d)", path,
		         cfg->retry_max, cfg->retry_base);
		return -1;
	}
	if (resolve_database(cfg) != 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	return 0;
}

int
config_load(struct pd_config *cfg, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len;
	FILE *fp;
	int rc = -1;

	config_defaults(cfg);
	fp = fopen(path, "r");
	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Read it whole (and bounded) so that NUL bytes and long lines are seen. */
	text = malloc(CONFIG_MAX_FILE + 1);
	if (text == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	len = fread(text, 1, CONFIG_MAX_FILE + 1, fp);
	if (ferror(fp) || len > CONFIG_MAX_FILE) {
		snprintf(err, errlen, "%s: %s", path, ferror(fp) ? "read error" : "larger than 1 MiB");
		goto out;
	}
	rc = config_parse_text(cfg, path, text, len, err, errlen);
out:
	free(text);
	fclose(fp);
	return rc;
}

void
config_free(struct pd_config *cfg)
{
	for (size_t i = 0; i < cfg->ntokens; i++)
		free(cfg->tokens[i]);
	free(cfg->tokens);
	free(cfg->token_hashes);
	free(cfg->path);
	free(cfg->database);
	free(cfg->allow);
	free(cfg->signing_secret);
	for (size_t i = 0; i < cfg->nserver_names; i++)
		free(cfg->server_names[i]);
	free(cfg->server_names);
	memset(cfg, 0, sizeof(*cfg));
}
