/* src/cloud/backoff.c: when eph-cloud tries a request again. */
#include "cloud/backoff.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double
backoff_delay(int attempt, double rand01)
{
	double d = BACKOFF_BASE_S;

	if (attempt < 1)
		attempt = 1;
	for (int i = 1; i < attempt && d < BACKOFF_CAP_S; i++)
		d *= 2;
	if (d > BACKOFF_CAP_S)
		d = BACKOFF_CAP_S;
	if (!(rand01 >= 0) || rand01 >= 1) /* NaN or out of range: the whole wait */
		rand01 = 1;
	return d / 2 + d / 2 * rand01;
}

/* A decimal of digits only (surrounding blanks allowed) that fits in a long long. */
static int
parse_uint(const char *s, long long *out)
{
	char *end;
	long long v;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
		end++;
	if (*end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

int
backoff_parse_retry_after(const char *value, double now, double *until)
{
	long long secs;
	struct tm tm;
	const char *end;

	if (parse_uint(value, &secs) == 0) {
		*until = now + (double)secs;
		return 0;
	}
	/* IMF-fixdate, the only form RFC 9110 asks senders to use */
	memset(&tm, 0, sizeof(tm));
	while (*value == ' ')
		value++;
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL)
		return -EINVAL;
	while (*end == ' ' || *end == '\r' || *end == '\n')
		end++;
	if (*end != '\0')
		return -EINVAL;
	*until = (double)timegm(&tm);
	return 0;
}

int
backoff_parse_reset(const char *value, double *until)
{
	long long v;

	if (parse_uint(value, &v) != 0)
		return -EINVAL;
	*until = (double)v;
	return 0;
}

bool
backoff_429_until(const char *reset, const char *retry_after, double now, double *until)
{
	double a, best = 0;
	bool any = false;

	if (reset != NULL && backoff_parse_reset(reset, &a) == 0) {
		best = a;
		any = true;
	}
	if (retry_after != NULL && backoff_parse_retry_after(retry_after, now, &a) == 0) {
		if (!any || a > best)
			best = a;
		any = true;
	}
	if (any)
		*until = best;
	return any;
}
