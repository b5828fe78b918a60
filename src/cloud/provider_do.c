/* src/cloud/provider_do.c: DigitalOcean's API v2, everything eph-cloud knows of it: the paths,
 * the JSON shapes (github.com/digitalocean/openapi), `links.pages.next` pagination, its error
 * bodies {"id", "message", "request_id"}. The rate limits and retries are the API's common
 * rules (cloud.c): 429 with `ratelimit-reset`, an epoch second. */
#include "cloud/provider_do.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cloud/cloud.h"
#include "cloud/provider.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define DO_PER_PAGE 200 /* the API's largest page */

json_t *
provider_do_size(const json_t *in)
{
	json_t *slug = json_object_get(in, "slug"), *mem = json_object_get(in, "memory");
	json_t *vcpus = json_object_get(in, "vcpus"), *disk = json_object_get(in, "disk");
	json_t *ph = json_object_get(in, "price_hourly"),
	       *pm = json_object_get(in, "price_monthly");
	json_t *regions = json_object_get(in, "regions"), *avail = json_object_get(in, "available");
	json_t *rs, *r;
	size_t i;

	if (!json_is_string(slug) || !json_is_integer(mem) || json_integer_value(mem) <= 0 ||
	    !json_is_integer(vcpus) || !json_is_integer(disk) || !json_is_number(ph) ||
	    !json_is_number(pm) || !json_is_array(regions) || !json_is_boolean(avail))
		return NULL;
	rs = json_array();
	json_array_foreach(regions, i, r)
	{
		if (!json_is_string(r)) {
			json_decref(rs);
			return NULL;
		}
		json_array_append(rs, r);
	}
	/* the API's "memory" is in megabytes that are MiB (1024 for s-1vcpu-1gb) */
	return json_pack("{s:O, s:I, s:I, s:I, s:f, s:f, s:o, s:O}", "slug", slug, "memory_mib",
	                 json_integer_value(mem), "vcpus", json_integer_value(vcpus), "disk_gb",
	                 json_integer_value(disk), "price_hourly", json_number_value(ph),
	                 "price_monthly", json_number_value(pm), "regions", rs, "available", avail);
}

/* The address of the first networks.v4 entry of TYPE, or JSON null. */
static json_t *
v4_addr(const json_t *droplet, const char *type)
{
	json_t *v4 = json_object_get(json_object_get(droplet, "networks"), "v4"), *n;
	size_t i;

	json_array_foreach(v4, i, n)
	{
		json_t *t = json_object_get(n, "type"), *a = json_object_get(n, "ip_address");

		if (json_is_string(t) && strcmp(json_string_value(t), type) == 0 &&
		    json_is_string(a))
			return json_incref(a);
	}
	return json_null();
}

json_t *
provider_do_droplet(const json_t *in)
{
	json_t *id = json_object_get(in, "id"), *status = json_object_get(in, "status");
	json_t *name = json_object_get(in, "name"), *size = json_object_get(in, "size_slug");
	json_t *region = json_object_get(json_object_get(in, "region"), "slug");
	json_t *tags = json_object_get(in, "tags"), *created = json_object_get(in, "created_at");

	if (!json_is_integer(id) || !json_is_string(status) || !json_is_string(name))
		return NULL;
	if (!json_is_string(size)) /* size_slug is required, but the size object says it too */
		size = json_object_get(json_object_get(in, "size"), "slug");
	return json_pack("{s:O, s:O, s:O, s:O?, s:O?, s:o, s:O?, s:o, s:o}", "id", id, "status",
	                 status, "name", name, "size", json_is_string(size) ? size : NULL, "region",
	                 json_is_string(region) ? region : NULL, "tags",
	                 json_is_array(tags) ? json_deep_copy(tags) : json_array(), "created_at",
	                 json_is_string(created) ? created : NULL, "ipv4_public",
	                 v4_addr(in, "public"), "ipv4_private", v4_addr(in, "private"));
}

char *
provider_do_error_words(const char *body, size_t len)
{
	json_t *j = json_loadb(body != NULL ? body : "", len, 0, NULL);
	json_t *id = json_object_get(j, "id"), *msg = json_object_get(j, "message");
	char *out = NULL;

	if (json_is_string(msg) && json_is_string(id))
		out = xasprintf("%s (%s)", json_string_value(msg), json_string_value(id));
	else if (json_is_string(msg))
		out = xstrdup(json_string_value(msg));
	else if (json_is_string(id))
		out = xstrdup(json_string_value(id));
	json_decref(j);
	return out;
}

int
provider_do_same_api(const char *api_url, const char *url)
{
	size_t n = strlen(api_url);

	return strncmp(url, api_url, n) == 0 && strncmp(url + n, "/v2/", 4) == 0;
}

static char *
do_error_text(const struct http_resp *r)
{
	return provider_do_error_words(r->body.data, r->body.len);
}

/* Percent-encodes S for a query (tags are [A-Za-z0-9_:-], but a request is checked anyway). */
static char *
query_escape(const char *s)
{
	struct buf b;

	buf_init(&b, BUF_MAX_MSG);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		int rc = isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~'
		                 ? buf_putc(&b, (char)ch)
		                 : buf_printf(&b, "%%%02X", ch);

		if (rc != 0) {
			buf_free(&b);
			return NULL;
		}
	}
	return buf_steal(&b);
}

/* Follows the pages from URL (taken), appending each item of KEY, mapped by MAP, to OUT.
 * 0, or -1 with C's error set. */
static int
do_pages(struct cloud_ctx *c, char *url, const char *key, json_t *(*map)(const json_t *),
         json_t *out)
{
	struct http_resp r;
	int pages = 0, rc = 0;

	http_resp_init(&r);
	while (url != NULL) {
		json_t *j, *items, *it, *next;
		size_t i;

		if (++pages > CLOUD_MAX_PAGES) {
			cloud_fail(c, CLOUD_SERVER, 0, "GET %s: more than %d pages", key,
			           CLOUD_MAX_PAGES);
			rc = -1;
			break;
		}
		if (cloud_call(c, "GET", url, NULL, &r) != 0) {
			rc = -1;
			break;
		}
		if (r.status != 200) {
			rc = cloud_fail_answer(c, &r, url);
			break;
		}
		j = cloud_answer_json(c, &r, url);
		if (j == NULL) {
			rc = -1;
			break;
		}
		items = json_object_get(j, key);
		if (!json_is_array(items)) {
			cloud_fail(c, CLOUD_SERVER, r.status,
			           "GET %s: the answer has no \"%s\" list", url, key);
			json_decref(j);
			rc = -1;
			break;
		}
		json_array_foreach(items, i, it)
		{
			json_t *m = map(it);

			if (m == NULL) {
				cloud_fail(c, CLOUD_SERVER, r.status,
				           "GET %s: item %zu of \"%s\" is not as documented", url,
				           i, key);
				rc = -1;
				break;
			}
			json_array_append_new(out, m);
		}
		next = json_object_get(json_object_get(json_object_get(j, "links"), "pages"),
		                       "next");
		free(url);
		url = NULL;
		if (rc == 0 && json_is_string(next)) {
			if (!provider_do_same_api(c->api_url, json_string_value(next))) {
				cloud_fail(
				        c, CLOUD_SERVER, r.status,
				        "GET %s: the next page's link leaves the API (%s): not followed",
				        key, json_string_value(next));
				rc = -1;
			} else {
				url = xstrdup(json_string_value(next));
			}
		}
		json_decref(j);
		if (rc != 0)
			break;
	}
	free(url);
	http_resp_free(&r);
	return rc;
}

static int
do_sizes(struct cloud_ctx *c, const json_t *req, json_t **out)
{
	json_t *sizes = json_array();

	(void)req;
	if (do_pages(c, xasprintf("%s/v2/sizes?per_page=%d", c->api_url, DO_PER_PAGE), "sizes",
	             provider_do_size, sizes) != 0) {
		json_decref(sizes);
		return -1;
	}
	*out = json_pack("{s:o}", "sizes", sizes);
	return 0;
}

static int
do_list(struct cloud_ctx *c, const json_t *req, json_t **out)
{
	json_t *tag = json_object_get(req, "tag"), *ds;
	char *q;

	if (!json_is_string(tag) || json_string_length(tag) == 0) {
		cloud_fail(c, CLOUD_USAGE, 0, "list: \"tag\" must be a non-empty string");
		return -1;
	}
	q = query_escape(json_string_value(tag));
	if (q == NULL) {
		cloud_fail(c, CLOUD_USAGE, 0, "list: \"tag\" is too long");
		return -1;
	}
	ds = json_array();
	if (do_pages(
	            c,
	            xasprintf("%s/v2/droplets?tag_name=%s&per_page=%d", c->api_url, q, DO_PER_PAGE),
	            "droplets", provider_do_droplet, ds) != 0) {
		free(q);
		json_decref(ds);
		return -1;
	}
	free(q);
	*out = json_pack("{s:o}", "droplets", ds);
	return 0;
}

/* Copies the string field NAME of REQ into BODY; -1 with C's error when it is not one
 * (OPTIONAL: absent or null is fine). */
static int
copy_str(struct cloud_ctx *c, const json_t *req, const char *name, json_t *body, int optional)
{
	json_t *v = json_object_get(req, name);

	if ((v == NULL || json_is_null(v)) && optional)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		cloud_fail(c, CLOUD_USAGE, 0, "create: \"%s\" must be a non-empty string", name);
		return -1;
	}
	json_object_set(body, name, v);
	return 0;
}

static int
copy_list(struct cloud_ctx *c, const json_t *req, const char *name, json_t *body)
{
	json_t *v = json_object_get(req, name), *it;
	size_t i;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		cloud_fail(c, CLOUD_USAGE, 0, "create: \"%s\" must be a list", name);
		return -1;
	}
	json_array_foreach(v, i, it)
	{
		/* ssh_keys: fingerprints or ids of keys in the account */
		if (!json_is_string(it) &&
		    !(json_is_integer(it) && strcmp(name, "ssh_keys") == 0)) {
			cloud_fail(c, CLOUD_USAGE, 0, "create: \"%s\" item %zu must be a string",
			           name, i);
			return -1;
		}
	}
	json_object_set(body, name, v);
	return 0;
}

/* The droplet's id in REQ, or 0 with C's error set. */
static json_int_t
req_id(struct cloud_ctx *c, const json_t *req, const char *op)
{
	json_t *id = json_object_get(req, "id");

	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		cloud_fail(c, CLOUD_USAGE, 0, "%s: \"id\" must be a positive integer", op);
		return 0;
	}
	return json_integer_value(id);
}

/* A create whose answer was lost (a 5xx, a connection dropped after the request went): the
 * droplet it may have made, found by its name and tags. */
struct create_check {
	const json_t *body; /* the create's: name, tags */
	json_t *found;      /* the droplet found (provider_do_droplet's shape), or NULL */
};

/* Whether droplet D (provider_do_droplet's shape) is the one BODY asks for: its name, and
 * every tag of BODY (this scheduler's instance and the run). */
static bool
create_matches(const json_t *d, const json_t *body)
{
	json_t *tags = json_object_get(body, "tags"), *t, *have = json_object_get(d, "tags"), *h;
	size_t i, k;

	if (strcasecmp(json_string_value(json_object_get(d, "name")),
	               json_string_value(json_object_get(body, "name"))) != 0)
		return false;
	json_array_foreach(tags, i, t)
	{
		bool seen = false;

		json_array_foreach(have, k, h)
		{
			if (json_equal(h, t))
				seen = true;
		}
		if (!seen)
			return false;
	}
	return true;
}

static int
create_done(struct cloud_ctx *c, void *arg)
{
	struct create_check *cc = arg;
	json_t *ds = json_array(), *d;
	char *q = query_escape(json_string_value(json_object_get(cc->body, "name")));
	size_t i;
	int rc;

	if (q == NULL) {
		cloud_fail(c, CLOUD_USAGE, 0, "create: \"name\" is too long");
		json_decref(ds);
		return -1;
	}
	/* the API matches names exactly (ignoring case); matched here again, with the tags */
	fprintf(stderr, "eph-cloud: looking for the droplet the last try may have made\n");
	rc = do_pages(c,
	              xasprintf("%s/v2/droplets?name=%s&per_page=%d", c->api_url, q, DO_PER_PAGE),
	              "droplets", provider_do_droplet, ds);
	free(q);
	if (rc != 0) {
		json_decref(ds);
		return -1;
	}
	json_array_foreach(ds, i, d)
	{
		if (create_matches(d, cc->body)) {
			cc->found = json_incref(d);
			break;
		}
	}
	json_decref(ds);
	return cc->found != NULL ? 1 : 0;
}

static int
do_create(struct cloud_ctx *c, const json_t *req, json_t **out)
{
	json_t *body = json_object(), *image = json_object_get(req, "image"), *j = NULL, *d = NULL;
	struct create_check chk = { .body = body };
	struct cloud_check check = { create_done, &chk };
	struct http_resp r;
	char *url;
	int rc = -1, called;

	http_resp_init(&r);
	if (copy_str(c, req, "name", body, 0) || copy_str(c, req, "region", body, 0) ||
	    copy_str(c, req, "size", body, 0) || copy_str(c, req, "user_data", body, 1) ||
	    copy_str(c, req, "vpc_uuid", body, 1) || copy_list(c, req, "tags", body) ||
	    copy_list(c, req, "ssh_keys", body))
		goto out;
	/* an image is a slug ("debian-12-x64") or a snapshot's id, which the API wants as a
	 * number */
	if (json_is_integer(image) && json_integer_value(image) > 0) {
		json_object_set(body, "image", image);
	} else if (json_is_string(image) && json_string_length(image) > 0) {
		const char *s = json_string_value(image);

		if (strspn(s, "0123456789") == strlen(s) && strlen(s) < 16)
			json_object_set_new(body, "image", json_integer(strtoll(s, NULL, 10)));
		else
			json_object_set(body, "image", image);
	} else {
		cloud_fail(c, CLOUD_USAGE, 0, "create: \"image\" must be a slug or an id");
		goto out;
	}
	url = xasprintf("%s/v2/droplets", c->api_url);
	called = cloud_call_checked(c, "POST", url, body, &check, &r);
	free(url);
	if (called < 0)
		goto out;
	if (called == 1) {
		d = chk.found; /* made by a try whose answer was lost */
		chk.found = NULL;
	} else if (r.status != 202 && r.status != 201 && r.status != 200) {
		cloud_fail_answer(c, &r, "POST /v2/droplets");
		goto out;
	} else {
		j = cloud_answer_json(c, &r, "POST /v2/droplets");
		if (j == NULL)
			goto out;
		d = provider_do_droplet(json_object_get(j, "droplet"));
	}
	if (d == NULL) {
		cloud_fail(c, CLOUD_SERVER, r.status,
		           "POST /v2/droplets: the answer has no droplet");
		goto out;
	}
	*out = json_pack("{s:O, s:O}", "id", json_object_get(d, "id"), "status",
	                 json_object_get(d, "status"));
	rc = 0;
out:
	json_decref(d);
	json_decref(chk.found);
	json_decref(j);
	json_decref(body);
	http_resp_free(&r);
	return rc;
}

/* GET or DELETE of droplet REQ's id. */
static int
do_one(struct cloud_ctx *c, const json_t *req, json_t **out, const char *method)
{
	json_int_t id = req_id(c, req, strcmp(method, "GET") == 0 ? "get" : "delete");
	struct http_resp r;
	json_t *j, *d;
	char *url;
	int rc = -1;

	if (id == 0)
		return -1;
	http_resp_init(&r);
	url = xasprintf("%s/v2/droplets/%" JSON_INTEGER_FORMAT, c->api_url, id);
	if (cloud_call(c, method, url, NULL, &r) != 0)
		goto out;
	if (r.status == 404) {
		*out = json_pack("{s:b}", "gone", 1);
		rc = 0;
	} else if (strcmp(method, "DELETE") == 0 && (r.status == 204 || r.status == 202)) {
		*out = json_pack("{s:b}", "deleted", 1);
		rc = 0;
	} else if (strcmp(method, "GET") == 0 && r.status == 200) {
		j = cloud_answer_json(c, &r, url);
		if (j == NULL)
			goto out;
		d = provider_do_droplet(json_object_get(j, "droplet"));
		json_decref(j);
		if (d == NULL) {
			cloud_fail(c, CLOUD_SERVER, r.status, "GET %s: the answer has no droplet",
			           url);
			goto out;
		}
		*out = d;
		rc = 0;
	} else {
		cloud_fail_answer(c, &r, url);
	}
out:
	free(url);
	http_resp_free(&r);
	return rc;
}

static int
do_get(struct cloud_ctx *c, const json_t *req, json_t **out)
{
	return do_one(c, req, out, "GET");
}

static int
do_del(struct cloud_ctx *c, const json_t *req, json_t **out)
{
	return do_one(c, req, out, "DELETE");
}

/* Droplet REQ's id put behind firewall REQ's "firewall" (POST /v2/firewalls/ID/droplets,
 * which answers 204; adding a droplet already behind it is no error). */
static int
do_firewall(struct cloud_ctx *c, const json_t *req, json_t **out)
{
	json_int_t id = req_id(c, req, "firewall");
	const char *fw = json_string_value(json_object_get(req, "firewall"));
	struct http_resp r;
	json_t *body;
	char *url, *q;
	int rc = -1;

	if (id == 0)
		return -1;
	if (fw == NULL || *fw == '\0') {
		cloud_fail(c, CLOUD_USAGE, 0, "firewall: \"firewall\" must be a firewall's id");
		return -1;
	}
	q = query_escape(fw);
	url = xasprintf("%s/v2/firewalls/%s/droplets", c->api_url, q);
	free(q);
	body = json_pack("{s:[I]}", "droplet_ids", id);
	http_resp_init(&r);
	if (cloud_call(c, "POST", url, body, &r) != 0)
		goto out;
	if (r.status == 204 || r.status == 200) {
		*out = json_pack("{s:b}", "applied", 1);
		rc = 0;
	} else {
		cloud_fail_answer(c, &r, url);
	}
out:
	json_decref(body);
	free(url);
	http_resp_free(&r);
	return rc;
}

const struct cloud_provider cloud_provider_do = {
	.name = "digitalocean",
	.default_url = "https://api.digitalocean.com",
	.sizes = do_sizes,
	.create = do_create,
	.get = do_get,
	.del = do_del,
	.list = do_list,
	.firewall = do_firewall,
	.error_text = do_error_text,
};
