/* src/cloud/provider.h: a cloud provider, as eph-cloud drives it: a table of operations, one
 * per `eph-cloud OP` (/work/cloud-interface.md, docs/digitalocean.md "The API side"). Each
 * provider's specifics (paths, JSON shapes, pagination, its error bodies) live in one file,
 * provider_NAME.c; a second provider is one more file and one more line in provider.c. */
#ifndef EPH_CLOUD_PROVIDER_H
#define EPH_CLOUD_PROVIDER_H
#include <jansson.h>

struct cloud_ctx;
struct http_resp;

/* Every operation takes the request object REQ (borrowed; its op fields are checked here),
 * and on success returns 0 with *OUT a new JSON object, the result the contract names; on
 * failure returns -1 with the context's error set (cloud_fail). */
typedef int cloud_op_fn(struct cloud_ctx *c, const json_t *req, json_t **out);

struct cloud_provider {
	const char *name;        /* as requests name it: "digitalocean" */
	const char *default_url; /* its API, without the version's path */
	cloud_op_fn *sizes;      /* {} -> {"sizes": [...]}, all pages */
	cloud_op_fn *create;     /* {"name", "region", "size", ...} -> {"id", "status"} */
	cloud_op_fn *get;        /* {"id"} -> the machine, or {"gone": true} */
	cloud_op_fn *del;        /* {"id"} -> {"deleted": true} or {"gone": true} */
	cloud_op_fn *list;       /* {"tag"} -> {"droplets": [...]}, all pages */
	cloud_op_fn *firewall;   /* {"id", "firewall"} -> {"applied": true}: the machine put
	                          * behind the firewall; NULL when the provider has none */
	/* The provider's own words for an error answer R (its message and id), or NULL when its
	 * body says nothing readable. The caller frees it. */
	char *(*error_text)(const struct http_resp *r);
};

extern const struct cloud_provider cloud_provider_do;

/* The provider named NAME, or NULL. */
const struct cloud_provider *provider_find(const char *name);

#endif
