/*
 * fuzz_config.c: the configuration parser (config_parse_text() in
 * lib/config.c, what config_load runs on a file's text).
 *
 * Beyond "no crash": an accepted configuration keeps every bound the
 * programs rely on (at most 64 tokens of 16 to 256 visible ASCII, at most
 * PD_MAX_ALLOW_TARGETS valid ranges, numbers within their ranges, retry_max
 * not below retry_base, an absolute database path or a PostgreSQL URL); a
 * refused one names the file and says why; either way config_free releases
 * everything.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "postdate.h"
#include "store.h"

#define PATH "/fuzz/postdate.conf"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pd_config cfg;
	char err[512] = "";

	if (config_parse_text(&cfg, PATH, (const char *)data, size, err, sizeof(err)) != 0) {
		assert(strncmp(err, PATH ":", strlen(PATH ":")) == 0);
		assert(strlen(err) > strlen(PATH ":"));
		config_free(&cfg);
		return 0;
	}
	assert(err[0] == '\0');
	assert(strcmp(cfg.path, PATH) == 0);
	assert(cfg.database != NULL &&
	       (cfg.database[0] == '/' || store_database_is_url(cfg.database)));
	assert(cfg.ntokens <= 64);
	for (size_t i = 0; i < cfg.ntokens; i++) {
		size_t len = strlen(cfg.tokens[i]);

		assert(len >= 16 && len <= 256);
		for (size_t k = 0; k < len; k++)
			assert(cfg.tokens[i][k] > ' ' && cfg.tokens[i][k] <= '~');
	}
	assert(cfg.nallow <= PD_MAX_ALLOW_TARGETS);
	assert(cfg.nallow == 0 || cfg.allow != NULL);
	for (size_t i = 0; i < cfg.nallow; i++)
		assert(cfg.allow[i].prefix >= 0 && cfg.allow[i].prefix <= 128);
	assert(cfg.signing_secret == NULL || strncmp(cfg.signing_secret, "whsec_", 6) == 0);
	assert(cfg.max_body >= 1024 && cfg.max_body <= (64u << 20));
	assert(cfg.max_pending >= 1);
	assert(cfg.default_max_attempts >= 1 && cfg.default_max_attempts <= 100);
	assert(cfg.default_timeout >= 1 && cfg.default_timeout <= 300);
	assert(cfg.retry_base >= 1 && cfg.retry_max >= cfg.retry_base);
	assert(cfg.buffer_horizon >= 10 && cfg.buffer_horizon <= 86400);
	assert(cfg.concurrency >= 1 && cfg.concurrency <= 10000);
	assert(cfg.host_concurrency >= 1 && cfg.host_concurrency <= 10000);
	assert(cfg.synchronous_full == 0 || cfg.synchronous_full == 1);
	config_free(&cfg);
	return 0;
}
