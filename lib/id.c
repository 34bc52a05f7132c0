/*
 * id.c: message ids. 128 bits from OpenSSL's CSPRNG written in lowercase
 * base32 (RFC 4648 alphabet): unguessable, URL-safe, case-stable.
 */
#include <string.h>

#include <openssl/rand.h>

#include "postdate.h"

static const char id_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

int
id_generate(char buf[PD_ID_LEN + 1])
{
	unsigned char raw[16];
	unsigned int acc = 0, bits = 0;
	size_t out = 0;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	for (size_t i = 0; i < sizeof(raw); i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			buf[out++] = id_alphabet[(acc >> bits) & 31];
		}
	}
	/* 128 bits leave 3 over: pad them to a 26th digit. */
	buf[out++] = id_alphabet[(acc << (5 - bits)) & 31];
	buf[out] = '\0';
	return 0;
}

int
id_valid(const char *text)
{
	if (text == NULL || strlen(text) != PD_ID_LEN)
		return 0;
	for (const char *p = text; *p; p++)
		if (strchr(id_alphabet, *p) == NULL)
			return 0;
	return 1;
}
