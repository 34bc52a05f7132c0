/*
 * sign.c: Standard Webhooks signatures. A delivery carries
 * "webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">",
 * keyed with the bytes of the configured whsec_<base64> secret.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "postdate.h"
#include "delivery.h"

int
sign_init(struct pd_signer *sg, const char *secret)
{
	const char *b64;
	size_t len;
	int n;

	memset(sg, 0, sizeof(*sg));
	if (secret == NULL)
		return 0;
	if (strncmp(secret, "whsec_", 6) != 0)
		return -1;
	b64 = secret + 6;
	len = strlen(b64);
	/* config.c has checked the shape: 4..88 characters of padded base64. */
	if (len < 4 || len % 4 != 0 || len / 4 * 3 > sizeof(sg->key))
		return -1;
	n = EVP_DecodeBlock(sg->key, (const unsigned char *)b64, (int)len);
	if (n < 0)
		return -1;
	/* EVP_DecodeBlock counts padding as zero bytes. */
	n -= (b64[len - 1] == '=') + (b64[len - 2] == '=');
	sg->keylen = (size_t)n;
	sg->enabled = 1;
	return 0;
}

int
sign_webhook(const struct pd_signer *sg, const char *id, long long timestamp,
             const char *body, size_t len, char out[PD_SIGNATURE_BUF])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	char prefix[PD_ID_LEN + 32], digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *hmac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	size_t maclen = 0;
	int plen, ok = 0;

	plen = snprintf(prefix, sizeof(prefix), "%s.%lld.", id, timestamp);
	if (plen < 0 || (size_t)plen >= sizeof(prefix))
		return -1;
	if ((hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) != NULL &&
	    (ctx = EVP_MAC_CTX_new(hmac)) != NULL &&
	    EVP_MAC_init(ctx, sg->key, sg->keylen, params) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)body, len) == 1 &&
	    EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) == 1)
		ok = 1;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	if (!ok)
		return -1;
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
	return 0;
}

int
sign_stamp_lines(const struct pd_signer *sg, const char *id, long long timestamp,
                 const char *body, size_t len, char *stamp, size_t room, char *signature)
{
	char value[PD_SIGNATURE_BUF];
	int n = snprintf(stamp, room, "webhook-timestamp: %lld", timestamp);

	if (n < 0 || (size_t)n >= room)
		return -1;
	if (!sg->enabled)
		return 0;
	if (sign_webhook(sg, id, timestamp, body, len, value) != 0)
		return -1;
	n = snprintf(signature, PD_SIGNATURE_LINE, "webhook-signature: %s", value);
	return n < 0 || n >= PD_SIGNATURE_LINE ? -1 : 0;
}
