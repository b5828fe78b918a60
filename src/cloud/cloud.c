/* src/cloud/cloud.c: the context of a request to a provider, its error, and retries. */
#include "cloud/cloud.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cloud/backoff.h"
#include "cloud/provider.h"
#include "util/fsio.h"
#include "util/redact.h"
#include "util/xalloc.h"

const char *
cloud_kind_name(enum cloud_kind k)
{
	switch (k) {
	case CLOUD_OK:
		return "ok";
	case CLOUD_UNAVAILABLE:
		return "unavailable";
	case CLOUD_AUTH:
		return "auth";
	case CLOUD_RATELIMIT:
		return "ratelimit";
	case CLOUD_SERVER:
		return "server";
	case CLOUD_NETWORK:
		return "network";
	case CLOUD_BAD_REQUEST:
		return "bad_request";
	case CLOUD_USAGE:
		return "usage";
	}
	return "server";
}

void
cloud_ctx_free(struct cloud_ctx *c)
{
	if (c->token != NULL) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
	free(c->api_url);
	free(c->error);
	memset(c, 0, sizeof(*c));
}

double
cloud_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
cloud_fail(struct cloud_ctx *c, enum cloud_kind k, long status, const char *fmt, ...)
{
	va_list ap;
	char *msg, *safe;

	if (c->error != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort(); /* as xasprintf: out of memory */
	va_end(ap);
	safe = redact_value(msg, c->token, "[token]");
	free(msg);
	c->error = safe;
	c->kind = k;
	c->status = status;
}

int
cloud_token_load(struct cloud_ctx *c, const char *file, const char *env)
{
	const char *v;
	char *why = NULL;
	size_t n;

	if (env != NULL) {
		v = getenv(env);
		if (v == NULL || v[0] == '\0') {
			cloud_fail(c, CLOUD_USAGE, 0, "token_env: the variable %s is not set", env);
			return -1;
		}
		c->token = xstrdup(v);
	} else {
		if (fsio_read_secret_line(file, CLOUD_MAX_TOKEN, &c->token, &why) < 0) {
			cloud_fail(c, CLOUD_USAGE, 0, "token_file: %s", why);
			free(why);
			return -1;
		}
	}
	/* a header's value: printable ASCII, no blanks (nothing to inject) */
	n = strlen(c->token);
	for (size_t i = 0; i < n; i++)
		if (c->token[i] <= ' ' || c->token[i] > '~')
			n = 0;
	if (n == 0) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
		c->token = NULL;
		cloud_fail(c, CLOUD_USAGE, 0, "the token in %s %s is empty or not printable ASCII",
		           env != NULL ? "token_env" : "token_file", env != NULL ? env : file);
		return -1;
	}
	return 0;
}

static double
rand01(void)
{
	uint32_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (uint32_t)((uint64_t)(cloud_now() * 1e9) & 0xffffffffu);
	return (double)v / 4294967296.0;
}

static void
sleep_s(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Sleeps until the wall clock reads UNTIL (epoch seconds), not a moment less. */
static void
sleep_until_wall(double until)
{
	struct timespec ts;

	ts.tv_sec = (time_t)ceil(until);
	ts.tv_nsec = 0;
	if ((double)ts.tv_sec < until) /* never happens with ceil; kept exact */
		ts.tv_sec++;
	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* The provider's words for R, or a fallback; caller frees. */
static char *
answer_text(struct cloud_ctx *c, const struct http_resp *r)
{
	char *t = c->prov->error_text(r);

	return t != NULL ? t : xasprintf("HTTP %ld", r->status);
}

int
cloud_call(struct cloud_ctx *c, const char *method, const char *url, const json_t *body,
           struct http_resp *r)
{
	return cloud_call_checked(c, method, url, body, NULL, r);
}

int
cloud_call_checked(struct cloud_ctx *c, const char *method, const char *url, const json_t *body,
                   const struct cloud_check *check, struct http_resp *r)
{
	char *text = NULL;
	int attempt = 0, rc, done = 0;

	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		if (text == NULL)
			abort();
	}
	for (;;) {
		double left = c->deadline - cloud_now(), wait, until;
		char *words;

		attempt++;
		if (left <= 0) {
			cloud_fail(c, CLOUD_NETWORK, 0, "%s %s: no time left before the deadline",
			           method, url);
			break;
		}
		http_resp_free(r);
		http_resp_init(r);
		rc = http_request(method, url, c->token, text,
		                  left < CLOUD_TRY_MAX_S ? left : CLOUD_TRY_MAX_S, r);
		if (rc == -E2BIG) {
			cloud_fail(c, CLOUD_SERVER, r->status,
			           "%s %s: the answer is larger than %u bytes", method, url,
			           (unsigned)HTTP_MAX_BODY);
			break;
		}
		if (rc == 0 && r->status == 429) {
			double now = wall_now();

			words = answer_text(c, r);
			/* no reset given, or one already past (a server that would have us loop
			 * at once): backed off as a 5xx */
			if (!backoff_429_until(r->ratelimit_reset, r->retry_after, now, &until) ||
			    until <= now) {
				wait = backoff_delay(attempt, rand01());
				if (cloud_now() + wait > c->deadline) {
					cloud_fail(c, CLOUD_RATELIMIT, 429,
					           "%s %s: 429 %s, still limited at the deadline",
					           method, url, words);
					free(words);
					break;
				}
				fprintf(stderr,
				        "eph-cloud: 429 without a reset to come, waiting %.1f s\n",
				        wait);
				free(words);
				sleep_s(wait);
				continue;
			}
			if (until - now > c->deadline - cloud_now()) {
				cloud_fail(
				        c, CLOUD_RATELIMIT, 429,
				        "%s %s: 429 %s; the rate limit resets in %.0f s, past the "
				        "deadline",
				        method, url, words, ceil(until - now));
				free(words);
				break;
			}
			fprintf(stderr, "eph-cloud: 429, waiting %.1f s for %s\n",
			        until > now ? until - now : 0.0,
			        r->ratelimit_reset != NULL ? "ratelimit-reset" : "retry-after");
			free(words);
			sleep_until_wall(until);
			continue;
		}
		if (rc == 0 && r->status < 500)
			break; /* an answer for the caller */
		/* a 5xx or a network error: back off, if the deadline allows */
		wait = backoff_delay(attempt, rand01());
		words = rc == 0 ? answer_text(c, r) : xstrdup(r->error);
		if (cloud_now() + wait > c->deadline) {
			if (rc == 0)
				cloud_fail(c, CLOUD_SERVER, r->status,
				           "%s %s: %ld %s (after %d tries)", method, url, r->status,
				           words, attempt);
			else
				cloud_fail(c, CLOUD_NETWORK, 0, "%s %s: %s (after %d tries)",
				           method, url, words, attempt);
			free(words);
			break;
		}
		if (rc == 0)
			fprintf(stderr, "eph-cloud: %ld %s, retrying in %.1f s\n", r->status, words,
			        wait);
		else
			fprintf(stderr, "eph-cloud: %s, retrying in %.1f s\n", words, wait);
		free(words);
		sleep_s(wait);
		if (check != NULL && (rc == 0 || !r->unsent)) {
			/* the last try may have taken effect: never twice */
			if ((done = check->done(c, check->arg)) != 0) {
				http_resp_free(r);
				http_resp_init(r);
				break;
			}
		}
	}
	free(text);
	if (c->error != NULL)
		return -1;
	return done == 1 ? 1 : 0;
}

int
cloud_fail_answer(struct cloud_ctx *c, const struct http_resp *r, const char *what)
{
	char *words = answer_text(c, r);
	enum cloud_kind k = CLOUD_BAD_REQUEST;

	if (r->status == 401 || r->status == 403)
		k = CLOUD_AUTH;
	else if (r->status == 422)
		k = CLOUD_UNAVAILABLE;
	else if (r->status < 400 || r->status >= 500)
		k = CLOUD_SERVER; /* an answer no operation expects (a 3xx: redirects are not
		                     followed) */
	cloud_fail(c, k, r->status, "%s: %ld %s", what, r->status, words);
	free(words);
	return -1;
}

json_t *
cloud_answer_json(struct cloud_ctx *c, const struct http_resp *r, const char *what)
{
	json_error_t e;
	json_t *j = json_loadb(r->body.data != NULL ? r->body.data : "", r->body.len, 0, &e);

	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		cloud_fail(c, CLOUD_SERVER, r->status, "%s: the answer (%ld) is not a JSON object",
		           what, r->status);
		return NULL;
	}
	return j;
}
