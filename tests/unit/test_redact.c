/* test_redact.c: URLs as they are shown and logged (redact.c). */
#include "postdate.h"
#include "unit.h"

static const char *
shown(const char *url)
{
	static char buf[PD_URL_SHOWN_BUF];

	return url_redact(url, buf, sizeof(buf));
}

/* Regression: http://user:secret@host/ was shown in clear in status, the
 * list, callback reports and the log. */
static void
test_the_password_is_masked_and_the_user_kept(void)
{
	CHECK_STR(shown("http://user:secret@example.com/hook"), "http://user:***@example.com/hook");
	CHECK_STR(shown("https://u:p@example.com:8443/x?y=1"), "https://u:***@example.com:8443/x?y=1");
	CHECK_STR(shown("http://user:@example.com/"), "http://user:***@example.com/");
	CHECK_STR(shown("http://u:s@[::1]:80/"), "http://u:***@[::1]:80/");
}

static void
test_a_user_without_password_is_masked_as_the_credential(void)
{
	CHECK_STR(shown("https://APIKEY123@example.com/"), "https://***@example.com/");
	CHECK_STR(shown("http://@example.com/"), "http://***@example.com/");
}

static void
test_everything_before_the_last_at_of_the_authority_is_hidden(void)
{
	CHECK_STR(shown("http://a:b@c@example.com/"), "http://a:***@example.com/");
	CHECK_STR(shown("http://a@b:c@example.com/"), "http://a@b:***@example.com/");
}

static void
test_urls_without_userinfo_are_returned_as_they_are(void)
{
	const char *plain = "http://example.com/a@b?c=d:e@f#g@h";

	CHECK(shown(plain) == plain);
	CHECK(shown("http://example.com") != NULL);
	CHECK_STR(shown("http://example.com?x=a:b@c"), "http://example.com?x=a:b@c");
	CHECK_STR(shown("not a url"), "not a url");
	CHECK(url_redact(NULL, NULL, 0) == NULL);
}

static void
test_a_buffer_too_small_never_shows_the_password(void)
{
	char small[16];

	CHECK_STR(url_redact("http://user:secret@example.com/long/path", small, sizeof(small)),
	          "http://***");
	CHECK_STR(url_redact("http://user:secret@example.com/", small, 4), "***");
}

static void
test_the_log_macro_masks_too(void)
{
	CHECK_STR(URL_SHOWN("http://u:pw@example.com/"), "http://u:***@example.com/");
}

static const struct unit_test tests[] = {
	UNIT(test_the_password_is_masked_and_the_user_kept),
	UNIT(test_a_user_without_password_is_masked_as_the_credential),
	UNIT(test_everything_before_the_last_at_of_the_authority_is_hidden),
	UNIT(test_urls_without_userinfo_are_returned_as_they_are),
	UNIT(test_a_buffer_too_small_never_shows_the_password),
	UNIT(test_the_log_macro_masks_too),
};

int
main(void)
{
	return unit_run("redact", tests, UNIT_COUNT(tests));
}
