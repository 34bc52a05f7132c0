/*
 * redact.c: URLs as postdate shows them. A target or callback URL may
 * carry credentials (http://user:secret@host/), which libcurl sends as
 * Basic auth. Delivery uses the URL as given; everything that shows or
 * logs one (status, the list, history, callback reports, log lines)
 * shows it through url_redact, with the password replaced by "***".
 */
#include <string.h>

#include "postdate.h"

#define URL_MASK "***"

const char *
url_redact(const char *url, char *buf, size_t len)
{
	const char *scheme_end, *host, *auth_end, *at = NULL, *colon, *keep_to;
	size_t head, tail;

	if (url == NULL || (scheme_end = strstr(url, "://")) == NULL)
		return url;
	host = scheme_end + 3;
	auth_end = host + strcspn(host, "/?#");
	/* The last '@' of the authority: whatever comes before it is hidden,
	 * however a parser would split a second '@'. */
	for (const char *p = host; p < auth_end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return url;
	/* With a password, the user name stays readable; without one, the
	 * user name is the credential (an API key), so it is hidden. */
	colon = memchr(host, ':', (size_t)(at - host));
	keep_to = colon != NULL ? colon + 1 : host;
	head = (size_t)(keep_to - url);
	tail = strlen(at);
	if (len < head + sizeof(URL_MASK) + tail) {
		/* Too long for buf: show only the scheme and the mask. */
		size_t scheme = (size_t)(host - url);

		if (len < scheme + sizeof(URL_MASK))
			return URL_MASK;
		memcpy(buf, url, scheme);
		memcpy(buf + scheme, URL_MASK, sizeof(URL_MASK));
		return buf;
	}
	memcpy(buf, url, head);
	memcpy(buf + head, URL_MASK, sizeof(URL_MASK) - 1);
	memcpy(buf + head + sizeof(URL_MASK) - 1, at, tail + 1);
	return buf;
}
