/* src/conf/conf_store.c: the top-level "results_store", the S3-compatible bucket each run's
 * results are uploaded to (docs/results.md). The keys are never read here: eph-upload reads
 * them at each upload, from a file (mode 600) or a variable, as a run's secrets are read. */
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "util/diag.h"
#include "util/xalloc.h"

#define STORE_PREFIX_MAX 512 /* bytes of the key prefix */

void
conf_results_store_free(struct conf *c)
{
	conf_results_store_clear(&c->results_store);
}

void
conf_results_store_clear(struct conf_results_store *s)
{
	free(s->url);
	free(s->bucket);
	free(s->prefix);
	free(s->endpoint);
	free(s->region);
	free(s->access_key.name);
	free(s->access_key.from);
	free(s->secret_key.name);
	free(s->secret_key.from);
	memset(s, 0, sizeof(*s));
}

/* A bucket name as S3 allows one: 3 to 63 of a-z 0-9 . -, starting and ending with a letter
 * or digit. */
static bool
bucket_ok(const char *b, size_t n)
{
	if (n < 3 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool alnum = (b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9');

		if (!alnum && ((b[i] != '.' && b[i] != '-') || i == 0 || i == n - 1))
			return false;
	}
	return true;
}

/* A key prefix: printable ASCII but \ and ?#, no empty, "." or ".." segment. */
static bool
prefix_ok(const char *s)
{
	const char *seg = s;

	if (strlen(s) > STORE_PREFIX_MAX)
		return false;
	for (const char *c = s;; c++) {
		if (*c == '/' || *c == '\0') {
			size_t n = (size_t)(c - seg);

			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return *c == '\0' && c == s; /* only "" itself */
			if (*c == '\0')
				return true;
			seg = c + 1;
			continue;
		}
		if (*c <= ' ' || *c >= 0x7f || *c == '\\' || *c == '?' || *c == '#')
			return false;
	}
}

static void
store_url(struct pctx *p, struct fy_node *v, struct diag_pos at)
{
	struct conf_results_store *s = &p->c->results_store;
	const char *b, *slash;
	char *u, *q, *pre;
	size_t n;

	if ((u = conf_get_str(p, "url", v, at)) == NULL)
		return;
	at = conf_pos_or(p, v, at);
	if (strncmp(u, "s3://", 5) != 0) {
		q = conf_quote_redacted(u);
		conf_err(p, at, "results_store.url must be s3://BUCKET/PREFIX, not %s", q);
		goto bad;
	}
	b = u + 5;
	slash = strchr(b, '/');
	n = slash != NULL ? (size_t)(slash - b) : strlen(b);
	if (!bucket_ok(b, n)) {
		q = conf_quote(b, n);
		conf_err(
		        p, at,
		        "results_store.url: bad bucket name %s: 3 to 63 lowercase letters, digits, \".\" and \"-\"",
		        q);
		goto bad;
	}
	pre = xstrdup(slash != NULL ? slash + 1 : "");
	while (pre[0] != '\0' && pre[strlen(pre) - 1] == '/')
		pre[strlen(pre) - 1] = '\0';
	if (!prefix_ok(pre)) {
		q = conf_quote(pre, strlen(pre));
		conf_err(
		        p, at,
		        "results_store.url: bad prefix %s: printable characters but \\ ? #, no empty, \".\" or \"..\" part, at most %d bytes",
		        q, STORE_PREFIX_MAX);
		free(pre);
		goto bad;
	}
	free(s->url);
	free(s->bucket);
	free(s->prefix);
	s->url = u;
	s->bucket = xstrndup(b, n);
	s->prefix = pre;
	return;
bad:
	free(q);
	free(u);
}

/* E (taken): http:// or https://, a host, an optional port, nothing after but one "/"; into
 * S->endpoint without that "/". */
static void
store_endpoint(struct pctx *p, struct conf_results_store *s, char *e, struct diag_pos at)
{
	const char *h;
	size_t n;
	char *q;

	h = strncmp(e, "https://", 8) == 0 ? e + 8 : strncmp(e, "http://", 7) == 0 ? e + 7 : NULL;
	n = h != NULL ? strcspn(h, "/?#@") : 0;
	if (h == NULL || n == 0 || (h[n] != '\0' && strcmp(h + n, "/") != 0)) {
		if (h != NULL && h[n] == '@')
			conf_err(p, at,
			         "results_store.endpoint must not hold a user name or password: "
			         "set access_key and secret_key");
		else {
			q = conf_quote_redacted(e);
			conf_err(
			        p, at,
			        "results_store.endpoint must be https://HOST[:PORT] (or http://), with no path, not %s",
			        q);
			free(q);
		}
		free(e);
		return;
	}
	if (h[n] == '/')
		e[strlen(e) - 1] = '\0';
	free(s->endpoint);
	s->endpoint = e;
}

/* R (taken): a region name, as it goes into the signature's scope. */
static void
store_region(struct pctx *p, struct conf_results_store *s, char *r, struct diag_pos at)
{
	if (r[strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-")] != '\0') {
		char *q = conf_quote(r, strlen(r));

		conf_err(p, at,
		         "results_store.region: %s is not a region name (lowercase letters, digits "
		         "and \"-\")",
		         q);
		free(q);
		free(r);
		return;
	}
	free(s->region);
	s->region = r;
}

/* The section being read, and which of its required keys were written. */
struct store_arg {
	struct conf_results_store *s;
	bool url, access_key, secret_key;
};

static void
store_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
              void *arg)
{
	struct store_arg *sa = arg;
	struct conf_results_store *s = sa->s;
	struct diag_pos at = conf_pos(p, key);
	struct conf_secret *k = ck->id == K_STORE_ACCESS_KEY ? &s->access_key : &s->secret_key;
	struct conf_secret got = { 0 };
	char *what;

	if (ck->id == K_STORE_URL) {
		sa->url = true;
		store_url(p, v, at);
		return;
	}
	if (ck->id == K_STORE_ENDPOINT || ck->id == K_STORE_REGION) {
		char *str = conf_get_str(p, ck->name, v, at);

		if (str == NULL)
			return;
		if (ck->id == K_STORE_ENDPOINT)
			store_endpoint(p, s, str, conf_pos_or(p, v, at));
		else
			store_region(p, s, str, conf_pos_or(p, v, at));
		return;
	}
	if (ck->id == K_STORE_ACCESS_KEY)
		sa->access_key = true;
	else
		sa->secret_key = true;
	what = xasprintf("results_store.%s", ck->name);
	if (conf_secret_source(p, what, v, at, &got)) {
		free(k->name);
		free(k->from);
		got.name = what;
		*k = got;
	} else {
		free(what);
	}
}

void
conf_results_store_read(struct pctx *p, struct fy_node *key, struct fy_node *v)
{
	struct conf_results_store *s = &p->c->results_store;
	struct store_arg sa = { s, false, false, false };
	struct conf_generic_arg g = { &conf_sec_results_store, s, store_special, &sa };
	struct diag_pos at = conf_pos(p, key);
	size_t before = conf_nerrors(p);
	struct fy_node *m = conf_want_map(p, "results_store", key, v);

	if (m == NULL)
		return;
	conf_map_walk(p, m, conf_generic_pair, &g);
	if (p->halted)
		return;
	if (!sa.url)
		conf_err(p, at, "\"results_store\" needs \"url\", s3://BUCKET/PREFIX");
	if (!sa.access_key)
		conf_err(p, at,
		         "\"results_store\" needs \"access_key\": { file: PATH } or { env: VAR }");
	if (!sa.secret_key)
		conf_err(p, at,
		         "\"results_store\" needs \"secret_key\": { file: PATH } or { env: VAR }");
	if (s->region == NULL)
		s->region = xstrdup("us-east-1");
	if (s->endpoint == NULL)
		s->endpoint = xasprintf("https://s3.%s.amazonaws.com", s->region);
	if (conf_nerrors(p) != before)
		conf_results_store_free(p->c); /* an invalid store is none */
}
