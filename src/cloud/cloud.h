/* src/cloud/cloud.h: what every provider of eph-cloud shares: the request's context (API,
 * token, deadline), its error, and a request tried again as the API's rules ask: a 429 waits
 * for `ratelimit-reset` / `retry-after` and never goes sooner; a 5xx or a network error backs
 * off with jitter (cloud/backoff.h); all of it bounded by the deadline. */
#ifndef EPH_CLOUD_CLOUD_H
#define EPH_CLOUD_CLOUD_H
#include <stdbool.h>

#include <jansson.h>

#include "cloud/http.h"
#include "util/attr.h"

#define CLOUD_MAX_TOKEN 4096u /* a token file: DigitalOcean's are 71 bytes */
#define CLOUD_MAX_PAGES 1000  /* pages of one listing followed, at most */
#define CLOUD_TRY_MAX_S 30.0  /* one try's longest wait: a hung answer is tried again */

/* The error kinds of the contract, each with its name in eph-cloud's output. */
enum cloud_kind {
	CLOUD_OK,
	CLOUD_UNAVAILABLE, /* "unavailable": 422, the size or region cannot be had now */
	CLOUD_AUTH,        /* "auth": 401, 403 */
	CLOUD_RATELIMIT,   /* "ratelimit": 429 past the deadline */
	CLOUD_SERVER,      /* "server": 5xx past the deadline, or an answer we cannot read */
	CLOUD_NETWORK,     /* "network": no connection past the deadline */
	CLOUD_BAD_REQUEST, /* "bad_request": another 4xx */
	CLOUD_USAGE,       /* "usage": the request we were given is wrong */
};

const char *cloud_kind_name(enum cloud_kind k);

struct cloud_provider;

struct cloud_ctx {
	const struct cloud_provider *prov;
	char *api_url;   /* without a trailing '/' */
	char *token;     /* wiped by cloud_ctx_free; never printed */
	double deadline; /* cloud_now() seconds after which nothing more is tried */
	/* the error, once cloud_fail said it */
	enum cloud_kind kind;
	long status; /* the HTTP status it came with, 0 if none */
	char *error;
};

void cloud_ctx_free(struct cloud_ctx *c); /* wipes the token; the struct may then be reused */

/* Monotonic seconds. */
double cloud_now(void);

/* Sets C's error (the first one stays; a later call is ignored). The message never holds the
 * token: should the provider ever echo it, it is replaced by "[token]". */
void cloud_fail(struct cloud_ctx *c, enum cloud_kind k, long status, const char *fmt, ...)
        EPH_PRINTF(4, 5);

/* Reads the token into C->token: from the file FILE (refused if group or others may read or
 * write it; one line, less its line end: fsio_read_secret_line) or the variable ENV (exactly one
 * of them not NULL). 0, or -1 with C's error set ("usage" for a missing file or variable, a
 * file others may read, or an empty token). */
EPH_MUST_CHECK int cloud_token_load(struct cloud_ctx *c, const char *file, const char *env);

/* Sends METHOD URL (BODY, a JSON object or NULL) with C's token and tries again while the
 * deadline allows: after a 429 at the time its headers say, never sooner; after a 5xx or a
 * network error after backoff_delay(). Each wait is a line on stderr ("eph-cloud: 429,
 * waiting 12 s for ratelimit-reset"). Returns 0 with R (initialized by the caller) holding an
 * answer that is neither a 429 nor a 5xx; or -1 with C's error set (ratelimit, server, network
 * past the deadline). */
EPH_MUST_CHECK int cloud_call(struct cloud_ctx *c, const char *method, const char *url,
                              const json_t *body, struct http_resp *r);

/* For a request that must not take effect twice (a create): before trying it again after a
 * try that may have taken effect unseen (a 5xx, or a network error once a connection was
 * made), DONE(C, ARG) is asked whether it did: 1 it did, 0 it did not, -1 it cannot tell (C's
 * error set: nothing more is tried). */
struct cloud_check {
	int (*done)(struct cloud_ctx *c, void *arg);
	void *arg;
};

/* As cloud_call, asking CHECK before each such retry: returns 1 (R empty) when it says the
 * request took effect. */
EPH_MUST_CHECK int cloud_call_checked(struct cloud_ctx *c, const char *method, const char *url,
                                      const json_t *body, const struct cloud_check *check,
                                      struct http_resp *r);

/* Sets C's error from a 4xx answer R (auth for 401 and 403, unavailable for 422, bad_request
 * otherwise) with the provider's words. Returns -1. */
int cloud_fail_answer(struct cloud_ctx *c, const struct http_resp *r, const char *what);

/* The body of answer R parsed as a JSON object, or NULL with C's error set (server). */
json_t *cloud_answer_json(struct cloud_ctx *c, const struct http_resp *r, const char *what);

#endif
