/* src/eph_cloud.c: `eph-cloud`, the process that speaks to a cloud provider's API (internal:
 * the digitalocean executor runs it; see docs/digitalocean.md "The API side").
 *
 *   eph-cloud OP        OP: sizes, create, get, delete, list, firewall
 *
 * One JSON object on stdin (the request: {"provider", "api_url", "token_file" | "token_env",
 * "deadline", ...the op's fields}), one JSON object on stdout (the result), exit status 0; or
 * exit status 1 and {"error", "kind", "status"} on stdout. The token is read here, from the
 * file or variable the request names, and never printed: nothing secret is in argv. It is,
 * with eph-mail, a program of ephemeron linked with libcurl, which the daemon never maps. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cloud/cloud.h"
#include "cloud/provider.h"
#include "util/buf.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define CLOUD_DEFAULT_DEADLINE 60.0       /* seconds, when the request names none */
#define CLOUD_MAX_DEADLINE     86400.0    /* a day: anything longer is a mistake */
#define CLOUD_MAX_REQUEST      (1u << 20) /* a request; user data is at most 64 KiB */

static const char usage[] =
        "usage: eph-cloud sizes|create|get|delete|list|firewall <REQUEST.json\n";

/* Prints the result or the error of C on stdout; returns the exit status. */
static int
finish(struct cloud_ctx *c, json_t *result)
{
	char *s;
	int status = 0;

	if (c->error != NULL) {
		json_decref(result);
		result = json_pack("{s:s, s:s, s:I}", "error", c->error, "kind",
		                   cloud_kind_name(c->kind), "status", (json_int_t)c->status);
		status = 1;
	}
	s = json_dumps(result, JSON_COMPACT | JSON_REAL_PRECISION(12));
	if (s == NULL)
		abort();
	if (printf("%s\n", s) < 0 || fflush(stdout) != 0)
		status = 1;
	free(s);
	json_decref(result);
	return status;
}

static json_t *
read_request(struct cloud_ctx *c)
{
	struct buf in;
	json_error_t e;
	json_t *j = NULL;
	int rc;

	buf_init(&in, CLOUD_MAX_REQUEST);
	if ((rc = fsio_read_fd(STDIN_FILENO, &in)) < 0) {
		if (rc == -E2BIG)
			cloud_fail(c, CLOUD_USAGE, 0, "the request is larger than %u bytes",
			           CLOUD_MAX_REQUEST);
		else
			cloud_fail(c, CLOUD_USAGE, 0, "reading the request: %s", strerror(-rc));
		goto out;
	}
	j = json_loadb(in.data != NULL ? in.data : "", in.len, 0, &e);
	if (j == NULL)
		cloud_fail(c, CLOUD_USAGE, 0, "the request is not JSON: %s (line %d, column %d)",
		           e.text, e.line, e.column);
	else if (!json_is_object(j)) {
		cloud_fail(c, CLOUD_USAGE, 0, "the request is not a JSON object");
		json_decref(j);
		j = NULL;
	}
out:
	buf_free(&in);
	return j;
}

/* The request's common fields into C: provider, api_url, deadline, the token. */
static int
setup(struct cloud_ctx *c, const json_t *req)
{
	json_t *prov = json_object_get(req, "provider"), *url = json_object_get(req, "api_url");
	json_t *dl = json_object_get(req, "deadline"), *tf = json_object_get(req, "token_file");
	json_t *te = json_object_get(req, "token_env");
	double deadline = CLOUD_DEFAULT_DEADLINE;
	size_t n;

	if (prov != NULL && !json_is_string(prov)) {
		cloud_fail(c, CLOUD_USAGE, 0, "\"provider\" must be a string");
		return -1;
	}
	c->prov = provider_find(prov != NULL ? json_string_value(prov) : "digitalocean");
	if (c->prov == NULL) {
		cloud_fail(c, CLOUD_USAGE, 0, "unknown provider \"%s\" (known: digitalocean)",
		           json_string_value(prov));
		return -1;
	}
	if (url != NULL && !json_is_null(url)) {
		const char *u = json_is_string(url) ? json_string_value(url) : "";

		if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0) {
			cloud_fail(c, CLOUD_USAGE, 0,
			           "\"api_url\" must be an http:// or https:// URL");
			return -1;
		}
		c->api_url = xstrdup(u);
	} else {
		c->api_url = xstrdup(c->prov->default_url);
	}
	n = strlen(c->api_url);
	while (n > 0 && c->api_url[n - 1] == '/')
		c->api_url[--n] = '\0';
	if (dl != NULL && !json_is_null(dl)) {
		deadline = json_is_number(dl) ? json_number_value(dl) : -1;
		if (!(deadline > 0 && deadline <= CLOUD_MAX_DEADLINE)) {
			cloud_fail(c, CLOUD_USAGE, 0,
			           "\"deadline\" must be a number of seconds in (0, %.0f]",
			           CLOUD_MAX_DEADLINE);
			return -1;
		}
	}
	c->deadline = cloud_now() + deadline;
	if ((tf != NULL) == (te != NULL) || (tf != NULL && !json_is_string(tf)) ||
	    (te != NULL && !json_is_string(te))) {
		cloud_fail(c, CLOUD_USAGE, 0, "give one of \"token_file\" and \"token_env\"");
		return -1;
	}
	return cloud_token_load(c, tf != NULL ? json_string_value(tf) : NULL,
	                        te != NULL ? json_string_value(te) : NULL);
}

int
main(int argc, char **argv)
{
	struct cloud_ctx c = { 0 };
	cloud_op_fn *op = NULL;
	json_t *req = NULL, *result = NULL;
	int status;

	if (argc != 2 || strcmp(argv[1], "--help") == 0) {
		fputs(usage, argc == 2 ? stdout : stderr);
		return argc == 2 ? 0 : 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		cloud_fail(&c, CLOUD_SERVER, 0, "libcurl could not start");
		goto out;
	}
	req = read_request(&c);
	if (req == NULL || setup(&c, req) != 0)
		goto out;
	if (strcmp(argv[1], "sizes") == 0)
		op = c.prov->sizes;
	else if (strcmp(argv[1], "create") == 0)
		op = c.prov->create;
	else if (strcmp(argv[1], "get") == 0)
		op = c.prov->get;
	else if (strcmp(argv[1], "delete") == 0)
		op = c.prov->del;
	else if (strcmp(argv[1], "list") == 0)
		op = c.prov->list;
	else if (strcmp(argv[1], "firewall") == 0)
		op = c.prov->firewall;
	if (op == NULL) {
		cloud_fail(&c, CLOUD_USAGE, 0,
		           "unknown operation \"%s\" (sizes, create, get, "
		           "delete, list, firewall)",
		           argv[1]);
		goto out;
	}
	if (op(&c, req, &result) != 0 && c.error == NULL)
		cloud_fail(&c, CLOUD_SERVER, 0, "%s failed", argv[1]);
out:
	status = finish(&c, result);
	json_decref(req);
	cloud_ctx_free(&c);
	curl_global_cleanup();
	return status;
}
