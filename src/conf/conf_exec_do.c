/* src/conf/conf_exec_do.c: the keys of an executor of type digitalocean (docs/digitalocean.md):
 * where the API token is (a file others cannot read, or a variable), the region, image and
 * sizes the droplets are made from, how many may live at once and what they may cost, and the
 * provider's address. Read with its own table, then checked as a whole. Last, the checks a job
 * on it owes: a pinned commit, since its code travels as one. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

#define DO_API_DEFAULT   "https://api.digitalocean.com"
#define DO_IMAGE_DEFAULT "debian-12-x64"
#define DO_SLUG_MAX      64   /* bytes of a region, size or image slug */
#define DO_TAG_MAX       255  /* the provider's limit on a tag's length */
#define DO_MAX_SIZES     100  /* slugs "sizes" may list */
#define DO_MAX_MACHINES  1000 /* the largest max_machines */
#define DO_URL_MAX       2000 /* bytes of api_url */
#define DO_TOKEN_MAX     4096 /* bytes of a token file */
#define SIZE_MAX_        ((int64_t)UNITS_SIZE_MAX)
#define DUR_MAX          UNITS_DURATION_MAX

#define KEYS(arr) arr, EPH_ARRAY_LEN(arr)

/* The keys its special handler reads, by index. */
enum {
	DK_TYPE,
	DK_TOKEN_FILE,
	DK_TOKEN_ENV,
	DK_REGION,
	DK_IMAGE,
	DK_SIZES,
	DK_VPC,
	DK_SSH_KEYS,
	DK_TAGS,
	DK_FIREWALL,
	DK_API_URL,
	DK_MAX_SPEND,
	DK_USER,
};

static const struct conf_key do_keys[] = {
	[DK_TYPE] = { "type", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "required", "digitalocean" },
	[DK_TOKEN_FILE] = { "token_file", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL,
	                    "token_file or token_env is required",
	                    "file holding the API token; not readable by group or others" },
	[DK_TOKEN_ENV] = { "token_env", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "none",
	                   "variable of the daemon's environment holding the API token" },
	[DK_REGION] = { "region", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "required",
	                "the region's slug, e.g. fra1" },
	[DK_IMAGE] = { "image", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, DO_IMAGE_DEFAULT,
	               "a stock image's slug or a snapshot's id" },
	[DK_SIZES] = { "sizes", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "auto",
	               "auto (any size of the region), or the allowed slugs, cheapest first" },
	[DK_VPC] = { "vpc_uuid", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "the region's default",
	             "the VPC the droplets join" },
	[DK_SSH_KEYS] = { "ssh_keys", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "none",
	                  "the account's SSH keys (ids or fingerprints) added to each droplet" },
	[DK_TAGS] = { "tags", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "none",
	              "more tags for each droplet: letters, digits, _, : and -" },
	[DK_FIREWALL] = { "firewall", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "none",
	                  "a firewall's id the droplets are put behind" },
	[DK_API_URL] = { "api_url", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, DO_API_DEFAULT,
	                 "the API's address, without /v2 (plain http draws a warning)" },
	[DK_MAX_SPEND] = { "max_spend", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "no cap",
	                   "{usd: N, per: month}: no machine is made past it (reason budget)" },
	[DK_USER] = { "user", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, "root",
	              "the user ssh logs in as on the droplets" },
	{ "max_machines", CK_INT, K_OTHER, offsetof(struct conf_do, max_machines), 1,
	  DO_MAX_MACHINES, NULL, "5", "live droplets at most; more runs wait, in fire order" },
	{ "boot_timeout", CK_DUR, K_OTHER, offsetof(struct conf_do, boot_timeout), 1, 86400, NULL,
	  "5m", "longest from create to ssh answering; else deleted, reason provision" },
	{ "reserve", CK_SIZE, K_OTHER, offsetof(struct conf_do, reserve), 0, SIZE_MAX_, NULL,
	  "256MiB", "memory of each size kept for the system and the agent" },
	{ "default_memory", CK_SIZE, K_OTHER, offsetof(struct conf_do, default_memory), 1 << 20,
	  SIZE_MAX_, NULL, "1GiB", "what a job without memory gets" },
	{ "lost_after", CK_DUR, K_OTHER, offsetof(struct conf_do, lost_after), 1, DUR_MAX, NULL,
	  "10m", "a droplet that does not answer this long makes its run lost" },
	{ "connect_timeout", CK_DUR, K_OTHER, offsetof(struct conf_do, connect_timeout), 1, 3600,
	  NULL, "10s", "longest ssh waits for a connection (ConnectTimeout)" },
	{ "boot_estimate", CK_DUR, K_OTHER, offsetof(struct conf_do, boot_estimate), 0, 86400, NULL,
	  "90s",
	  "how long before its instant a scheduled run's machine is made, until boots are measured" },
	{ "reconcile", CK_DUR, K_OTHER, offsetof(struct conf_do, reconcile), 1, 86400, NULL, "3m",
	  "how often the droplets are listed: one no live run owns is deleted" },
};

const struct conf_section conf_sec_do = { "a digitalocean executor", KEYS(do_keys) };

/* max_spend's keys: the amount, and the period (a month, the one there is today). */
struct do_spend {
	double usd;
	int per;
};

static const char *const spend_per[] = { "month", NULL };

static const struct conf_key spend_keys[] = {
	{ "usd", CK_PRICE, K_OTHER, offsetof(struct do_spend, usd), 0, CONF_PRICE_MAX, NULL,
	  "required", "US dollars" },
	{ "per", CK_ENUM, K_OTHER, offsetof(struct do_spend, per), 0, 0, spend_per, "month",
	  "the period the cap is for" },
};

static const struct conf_section spend_sec = { "max_spend", KEYS(spend_keys) };

/* An executor being read: its settings, and where its values stand. */
struct do_build {
	struct conf_do *s;
	struct conf_generic_arg g;
	struct diag_pos token_file_at, token_env_at, region_at;
};

/* Whether S holds a control character (a newline among them). */
static bool
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Whether every byte of S is in the set ALLOWED (letters and digits are always). */
static bool
only(const char *s, const char *allowed)
{
	for (; *s != '\0'; s++) {
		char ch = *s;

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || (ch != '\0' && strchr(allowed, ch) != NULL)))
			return false;
	}
	return true;
}

/* A slug-like value of key NAME (region, image, vpc_uuid, firewall): ALLOWED besides letters
 * and digits, at most MAX bytes; into *DST. */
static void
word_value(struct pctx *p, const char *name, struct fy_node *key, struct fy_node *v,
           const char *allowed, size_t max, char **dst, struct diag_pos *at)
{
	struct diag_pos vat = conf_pos_or(p, v, conf_pos(p, key));
	char *s, *q;

	if (at != NULL)
		*at = vat;
	if ((s = conf_get_str(p, name, v, conf_pos(p, key))) == NULL)
		return;
	q = conf_quote_redacted(s);
	if (strlen(s) > max)
		conf_err(p, vat, "\"%s\" is longer than %zu bytes", name, max);
	else if (!only(s, allowed))
		conf_err(p, vat, "\"%s\" may hold only letters, digits and \"%s\", not %s", name,
		         allowed, q);
	else {
		free(*dst);
		*dst = s;
		s = NULL;
	}
	free(q);
	free(s);
}

/* token_file: a file of this machine, absolute or relative to the jobs file's directory,
 * that group and others cannot read (it is looked at: validation sees what the daemon will). */
static void
token_file_value(struct pctx *p, struct do_build *b, struct fy_node *key, struct fy_node *v)
{
	struct diag_pos at = conf_pos_or(p, v, conf_pos(p, key));
	struct stat st;
	char *s, *path;
	int fd;

	b->token_file_at = at;
	if ((s = conf_get_str(p, "token_file", v, conf_pos(p, key))) == NULL)
		return;
	if (conf_blank(s) || has_control(s) || s[0] == '~') {
		conf_err(
		        p, at,
		        "\"token_file\" must be a file of this machine: absolute, or relative to the jobs file's directory (\"~\" is not expanded)");
		free(s);
		return;
	}
	path = s[0] == '/' ? xstrdup(s) : xasprintf("%s/%s", p->c->dir, s);
	free(s);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		conf_err(p, at, "token_file %s cannot be read: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
	} else {
		close(fd);
		if (!S_ISREG(st.st_mode))
			conf_err(p, at, "token_file %s is not a regular file", path);
		else if ((st.st_mode & 077) != 0)
			conf_err(
			        p, at,
			        "token_file %s can be read by group or others (mode %04o); refusing to use it: chmod 600 %s",
			        path, (unsigned)(st.st_mode & 07777), path);
		else if (st.st_size > DO_TOKEN_MAX)
			conf_err(p, at, "token_file %s is larger than a token may be (%d bytes)",
			         path, DO_TOKEN_MAX);
	}
	free(b->s->token_file);
	b->s->token_file = path;
}

/* sizes: "auto", or a non-empty list of size slugs. */
static void
sizes_value(struct pctx *p, struct conf_do *s, struct fy_node *key, struct fy_node *v)
{
	struct diag_pos keyat = conf_pos(p, key), at = conf_pos_or(p, v, keyat);
	struct conf_strv sv = { NULL, 0 };
	const char *text;
	size_t len;

	if (v != NULL && fy_node_is_scalar(v)) {
		text = fy_node_get_scalar(v, &len);
		if (text != NULL && len == 4 && memcmp(text, "auto", 4) == 0) {
			conf_strv_free(&s->sizes);
			return;
		}
		conf_err(
		        p, at,
		        "\"sizes\" must be auto or a list of size slugs ([s-1vcpu-1gb, s-2vcpu-4gb])");
		return;
	}
	if (conf_get_strv(p, "sizes", v, keyat, &sv, false, false) < 0)
		return;
	if (sv.n == 0)
		conf_err(p, at, "\"sizes\" is an empty list: write auto, or the allowed slugs");
	else if (sv.n > DO_MAX_SIZES)
		conf_err(p, at, "\"sizes\" lists more than %d slugs", DO_MAX_SIZES);
	for (size_t i = 0; i < sv.n; i++) {
		if (strlen(sv.v[i]) > DO_SLUG_MAX || !only(sv.v[i], "-.")) {
			char *q = conf_quote_redacted(sv.v[i]);

			conf_err(p, at, "bad size slug %s: letters, digits, \"-\" and \".\" only",
			         q);
			free(q);
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(sv.v[i], sv.v[j]) == 0) {
				char *q = conf_quote_redacted(sv.v[i]);

				conf_err(p, at, "size %s is listed twice in \"sizes\"", q);
				free(q);
				break;
			}
	}
	conf_strv_free(&s->sizes);
	s->sizes = sv;
}

/* ssh_keys, tags: lists of words. TAGS: the provider's tag characters only. */
static void
list_value(struct pctx *p, const char *name, struct fy_node *key, struct fy_node *v,
           const char *allowed, size_t max, struct conf_strv *dst)
{
	struct diag_pos keyat = conf_pos(p, key), at = conf_pos_or(p, v, keyat);
	struct conf_strv sv = { NULL, 0 };

	if (conf_get_strv(p, name, v, keyat, &sv, false, false) < 0)
		return;
	for (size_t i = 0; i < sv.n; i++) {
		if (strlen(sv.v[i]) > max || !only(sv.v[i], allowed)) {
			char *q = conf_quote_redacted(sv.v[i]);

			conf_err(p, at,
			         "bad item %s of \"%s\": at most %zu letters, digits and \"%s\"", q,
			         name, max, allowed);
			free(q);
		}
	}
	conf_strv_free(dst);
	*dst = sv;
}

/* api_url: http:// or https://, with a host, without /v2 and without userinfo. */
static void
api_url_value(struct pctx *p, struct conf_do *s, struct fy_node *key, struct fy_node *v)
{
	struct diag_pos at = conf_pos_or(p, v, conf_pos(p, key));
	size_t skip, len;
	char *u, *q;

	if ((u = conf_get_str(p, "api_url", v, conf_pos(p, key))) == NULL)
		return;
	len = strlen(u);
	while (len > 0 && u[len - 1] == '/')
		u[--len] = '\0';
	q = conf_quote_redacted(u);
	skip = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;
	if (len > DO_URL_MAX)
		conf_err(p, at, "\"api_url\" is longer than %d bytes", DO_URL_MAX);
	else if (skip == 0)
		conf_err(p, at, "\"api_url\" must start with https:// (or http://), not %s", q);
	else if (u[skip] == '\0' || u[skip] == '/')
		conf_err(p, at, "\"api_url\" has no host: %s", q);
	else if (strpbrk(u, " \t\"\\") != NULL || has_control(u))
		conf_err(p, at,
		         "\"api_url\" may not hold whitespace, quotes or control characters");
	else if (memchr(u + skip, '@', strcspn(u + skip, "/")) != NULL)
		conf_err(
		        p, at,
		        "\"api_url\" may not hold a user or password: the token is given by token_file or token_env");
	else if (len >= 3 && strcmp(u + len - 3, "/v2") == 0)
		conf_err(p, at, "\"api_url\" is written without /v2: %s", q);
	else {
		free(s->api_url);
		s->api_url = u;
		s->api_line = at.line;
		s->api_col = at.col;
		u = NULL;
	}
	free(q);
	free(u);
}

/* max_spend: {usd: N, per: month}. */
static void
max_spend_value(struct pctx *p, struct conf_do *s, struct fy_node *key, struct fy_node *v)
{
	struct do_spend sp = { -1, 0 };
	struct conf_generic_arg g = { &spend_sec, &sp, NULL, NULL };
	struct fy_node *m;
	size_t before = conf_nerrors(p);

	if ((m = conf_want_map(p, "max_spend", key, v)) == NULL)
		return;
	conf_map_walk(p, m, conf_generic_pair, &g);
	if (conf_nerrors(p) != before)
		return;
	if (sp.usd < 0)
		conf_err(p, conf_pos_or(p, m, conf_pos(p, key)),
		         "\"max_spend\" needs \"usd\": the most the droplets may cost a month");
	else if (sp.usd == 0)
		conf_err(p, conf_pos_or(p, m, conf_pos(p, key)),
		         "\"max_spend\" of 0 would make no machine: leave it out for no cap");
	else
		s->max_spend = sp.usd;
}

static void
do_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
           void *arg)
{
	struct do_build *b = arg;
	struct conf_do *s = b->s;

	switch (ck - do_keys) {
	case DK_TOKEN_FILE:
		token_file_value(p, b, key, v);
		return;
	case DK_TOKEN_ENV:
		b->token_env_at = conf_pos_or(p, v, conf_pos(p, key));
		word_value(p, "token_env", key, v, "_", 255, &s->token_env, NULL);
		return;
	case DK_REGION:
		word_value(p, "region", key, v, "-", DO_SLUG_MAX, &s->region, &b->region_at);
		return;
	case DK_IMAGE:
		word_value(p, "image", key, v, "-._", DO_SLUG_MAX, &s->image, NULL);
		return;
	case DK_SIZES:
		sizes_value(p, s, key, v);
		return;
	case DK_VPC:
		word_value(p, "vpc_uuid", key, v, "-", DO_SLUG_MAX, &s->vpc_uuid, NULL);
		return;
	case DK_SSH_KEYS:
		list_value(p, "ssh_keys", key, v, ":", 128, &s->ssh_keys);
		return;
	case DK_TAGS:
		list_value(p, "tags", key, v, "_:-", DO_TAG_MAX, &s->tags);
		return;
	case DK_FIREWALL:
		word_value(p, "firewall", key, v, "-", DO_SLUG_MAX, &s->firewall, NULL);
		return;
	case DK_API_URL:
		api_url_value(p, s, key, v);
		return;
	case DK_MAX_SPEND:
		max_spend_value(p, s, key, v);
		return;
	case DK_USER:
		word_value(p, "user", key, v, "-_.", 32, &s->user, NULL);
		return;
	default: /* DK_TYPE: read by conf_executors.c, never passed here */
		return;
	}
}

static void
do_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
        void *arg)
{
	struct do_build *b = arg;

	if (!(klen == 4 && memcmp(k, "type", 4) == 0)) /* the executor's type, already read */
		conf_generic_pair(p, key, k, klen, v, &b->g);
}

void
conf_do_read(struct pctx *p, struct conf_executor *e, struct fy_node *m, struct diag_pos keyat)
{
	struct conf_do *s = xcalloc(1, sizeof(*s));
	struct do_build b;
	char *q;

	s->image = xstrdup(DO_IMAGE_DEFAULT);
	s->api_url = xstrdup(DO_API_DEFAULT);
	s->user = xstrdup("root");
	s->max_machines = 5;
	s->boot_timeout = 300;
	s->reserve = UINT64_C(256) << 20;
	s->default_memory = UINT64_C(1) << 30;
	s->lost_after = 600;
	s->connect_timeout = 10;
	s->reconcile = 180;
	s->boot_estimate = 90;
	e->keys = s;
	memset(&b, 0, sizeof(b));
	b.s = s;
	b.g = (struct conf_generic_arg){ &conf_sec_do, s, do_special, &b };
	conf_map_walk(p, m, do_pair, &b);
	if (p->halted)
		return;
	q = conf_quote(e->name, strlen(e->name));
	if (b.token_file_at.line > 0 && b.token_env_at.line > 0)
		conf_err(p, b.token_env_at,
		         "executor %s has both \"token_file\" and \"token_env\": keep one", q);
	else if (b.token_file_at.line == 0 && b.token_env_at.line == 0)
		conf_err(
		        p, keyat,
		        "executor %s needs \"token_file\" (a file only its owner can read) or \"token_env\": the API token",
		        q);
	if (b.region_at.line == 0)
		conf_err(p, keyat, "executor %s needs \"region\": the region's slug, e.g. fra1", q);
	free(q);
}

void
conf_do_free(void *keys)
{
	struct conf_do *s = keys;

	if (s == NULL)
		return;
	free(s->token_file);
	free(s->token_env);
	free(s->region);
	free(s->image);
	conf_strv_free(&s->sizes);
	free(s->vpc_uuid);
	conf_strv_free(&s->ssh_keys);
	conf_strv_free(&s->tags);
	free(s->firewall);
	free(s->api_url);
	free(s->user);
	free(s);
}

void
conf_do_job_check(struct pctx *p, const struct conf_executor *e, bool keys_ok,
                  const struct jobb *jb, const char *q, struct diag_pos at)
{
	struct diag_pos eat = jb->executor_at.line > 0 ? jb->executor_at : at;
	char *eq;

	(void)keys_ok;
	if (p->c->source.repo != NULL || conf_from_repo())
		return;
	eq = conf_quote(e->name, strlen(e->name));
	conf_err(
	        p, eat,
	        "job %s runs on executor %s (digitalocean): its code travels as a commit, so the file needs a \"source:\" section (or run the daemon with --from-repo)",
	        q, eq);
	free(eq);
}
