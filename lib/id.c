/*
 * id.c: message ids. 128 bits written in lowercase base32 (RFC 4648's
 * letters and digits, in ASCII order): URL-safe and case-stable. The first
 * 48 bits are the creation time in milliseconds and the other 80 come from
 * OpenSSL's CSPRNG: unguessable, and ids sort by creation, so each new id
 * lands at the end of the primary-key index instead of on a random page of
 * it (a batch of inserts then dirties a few pages, not one per message).
 */
#include <stdint.h>
#include <string.h>

#include <openssl/rand.h>

#include "postdate.h"

/* In ASCII order, so that ids compare as the numbers they spell. */
static const char id_alphabet[] = "234567abcdefghijklmnopqrstuvwxyz";

int
id_generate(char buf[PD_ID_LEN + 1])
{
	unsigned char raw[16];
	unsigned int acc = 0, bits = 0;
	size_t out = 0;
	uint64_t now = (uint64_t)time_now();

	for (int i = 0; i < 6; i++)
		raw[i] = (unsigned char)(now >> (40 - 8 * i));
	if (RAND_bytes(raw + 6, sizeof(raw) - 6) != 1)
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
