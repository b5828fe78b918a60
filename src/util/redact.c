/* src/util/redact.c: credentials out of text meant for people. */
#include "util/redact.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

char *
redact_url(const char *text)
{
	struct buf b;
	const char *p;

	if (text == NULL)
		return NULL;
	buf_init(&b, BUF_MAX_UNLIMITED);
	p = text;
	for (;;) {
		const char *sep = strstr(p, "://"), *auth, *end, *at = NULL;

		if (sep == NULL) {
			if (buf_puts(&b, p) < 0)
				abort(); /* no limit */
			break;
		}
		auth = sep + 3;
		/* the authority ends at the path, the query, the fragment, or the end of a
		 * quoted or spaced URL; its last '@' ends the userinfo */
		end = auth + strcspn(auth, "/ \t\r\n'\"<>`?#");
		for (const char *q = auth; q < end; q++)
			if (*q == '@')
				at = q;
		if (buf_append(&b, p, (size_t)(auth - p)) < 0)
			abort(); /* no limit */
		p = at != NULL ? at + 1 : auth;
	}
	return buf_steal(&b);
}

char *
redact_value(const char *text, const char *secret, const char *mark)
{
	size_t n = secret != NULL ? strlen(secret) : 0;
	const char *p, *at;
	struct buf b;

	if (text == NULL)
		return NULL;
	buf_init(&b, BUF_MAX_UNLIMITED);
	for (p = text; n > 0 && (at = strstr(p, secret)) != NULL; p = at + n)
		if (buf_append(&b, p, (size_t)(at - p)) < 0 || buf_puts(&b, mark) < 0)
			abort();
	if (buf_puts(&b, p) < 0)
		abort();
	return buf_steal(&b);
}
