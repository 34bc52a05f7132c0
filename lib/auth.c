/*
 * auth.c: bearer tokens. Both sides are compared as SHA-256 hashes, so the
 * comparison takes the same time whatever the length or content of the
 * guess; the configured tokens' hashes are made once, as the configuration
 * is read (config.c), so a request hashes only the token it sends.
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "postdate.h"
#include "request.h"

int
auth_bearer_ok(const struct pd_config *cfg, const char *authorization)
{
	unsigned char given[SHA256_DIGEST_LENGTH];
	const char *token;
	int ok = 0;

	if (cfg->ntokens == 0)
		return 1;
	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	token = authorization + 7;
	while (*token == ' ')
		token++;
	SHA256((const unsigned char *)token, strlen(token), given);
	/* Every token is compared, so the time does not tell which matched. */
	for (size_t i = 0; i < cfg->ntokens; i++)
		ok |= CRYPTO_memcmp(given, cfg->token_hashes[i], sizeof(given)) == 0;
	return ok;
}
