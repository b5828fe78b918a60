/* src/cloud/backoff.h: when eph-cloud tries a request again (docs/digitalocean.md "The API
 * side"). Pure: no clock, no I/O; the caller gives the times and the randomness, so that
 * every rule is tested as it is. */
#ifndef EPH_CLOUD_BACKOFF_H
#define EPH_CLOUD_BACKOFF_H
#include <stdbool.h>

#include "util/attr.h"

#define BACKOFF_BASE_S 0.5  /* the first wait after a 5xx or a network error */
#define BACKOFF_CAP_S  30.0 /* no wait longer than this: a provider back up is seen soon */

/* The wait before try ATTEMPT + 1 after ATTEMPT (1-based) failed with a 5xx or a network
 * error: exponential (BACKOFF_BASE_S x 2^(ATTEMPT-1), at most BACKOFF_CAP_S) with equal
 * jitter: half of it fixed, the other half scaled by RAND01 in [0, 1), so that clients that
 * failed together do not come back together. */
double backoff_delay(int attempt, double rand01);

/* Parses an HTTP `retry-after` VALUE: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct
 * 2026 07:28:00 GMT"). On success sets *UNTIL to the epoch second from which a request may be
 * sent (NOW + delta for seconds) and returns 0; -EINVAL when VALUE is neither. */
EPH_MUST_CHECK int backoff_parse_retry_after(const char *value, double now, double *until);

/* Parses a `ratelimit-reset` VALUE: a Unix epoch second. 0 and *UNTIL set, or -EINVAL. */
EPH_MUST_CHECK int backoff_parse_reset(const char *value, double *until);

/* When a request may be sent again after a 429 whose headers said RESET (ratelimit-reset) and
 * RETRY_AFTER (either may be NULL), at wall-clock NOW: the later of the times they give, never
 * sooner than either. Returns true and sets *UNTIL when at least one was readable; false when
 * neither was (the caller then backs off as for a 5xx). */
bool backoff_429_until(const char *reset, const char *retry_after, double now, double *until);

#endif
