/* src/cloud/http.h: one HTTP request with libcurl, for eph-cloud (no retries here: see
 * cloud.h). Only eph-cloud links this; the daemon never links libcurl. */
#ifndef EPH_CLOUD_HTTP_H
#define EPH_CLOUD_HTTP_H
#include <stdbool.h>

#include "util/attr.h"
#include "util/buf.h"

#define HTTP_MAX_BODY   BUF_MAX_JSON /* an answer: a page of 200 droplets is ~1 MiB */
#define HTTP_MAX_HEADER 256u         /* a header value we keep (ratelimit-reset, retry-after) */

struct http_resp {
	long status;           /* 0: no answer (a network error: ERROR says which) */
	struct buf body;       /* the answer's body */
	char *ratelimit_reset; /* the header's value, or NULL */
	char *retry_after;     /* the header's value, or NULL */
	char *error;           /* with status 0: curl's words for what failed */
	bool unsent;           /* with status 0: no connection was made, so no server saw it */
};

void http_resp_init(struct http_resp *r);
void http_resp_free(struct http_resp *r); /* then reusable after http_resp_init */

/* Sends METHOD URL with the header "Authorization: Bearer TOKEN" and, when BODY is not NULL,
 * BODY as application/json; waits at most TIMEOUT_S seconds for the whole exchange. Fills R
 * (initialized, empty): 0 when an answer came (whatever its status), -EIO for a network error
 * (R->status 0, R->error set), -E2BIG for a body past HTTP_MAX_BODY. Follows no redirect;
 * speaks http and https only. The token's header is wiped from memory after use. */
EPH_MUST_CHECK int http_request(const char *method, const char *url, const char *token,
                                const char *body, double timeout_s, struct http_resp *r);

#endif
