/* src/cloud/provider_do.h: DigitalOcean's shapes, read (the pure part of provider_do.c,
 * exported for its unit tests). The operations are reached through cloud_provider_do. */
#ifndef EPH_CLOUD_PROVIDER_DO_H
#define EPH_CLOUD_PROVIDER_DO_H
#include <jansson.h>

/* One size of GET /v2/sizes (IN) in the contract's shape: {"slug", "memory_mib", "vcpus",
 * "disk_gb", "price_hourly", "price_monthly", "regions", "available"}; NULL when IN lacks a
 * field the API documents as required, or has one of the wrong type. Caller owns the result. */
json_t *provider_do_size(const json_t *in);

/* One droplet of the API (IN) in the contract's shape: {"id", "status", "name", "size",
 * "region", "tags", "created_at", "ipv4_public", "ipv4_private"} (IPs null when not yet
 * given); NULL when IN is not a droplet. Caller owns the result. */
json_t *provider_do_droplet(const json_t *in);

/* The provider's words in an error body BODY (LEN bytes): "MESSAGE (ID)"; NULL when BODY is
 * not the API's error object. Caller frees. */
char *provider_do_error_words(const char *body, size_t len);

/* Whether URL, a pagination link of an answer, is a page of the same API as API_URL (so that
 * the token is sent nowhere else). */
int provider_do_same_api(const char *api_url, const char *url);

#endif
