/* src/conf/conf_value.c: the values of the jobs file: strings, lists of strings, and the
 * generic types of the key tables (booleans, numbers, sizes, durations, enums). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/units.h"
#include "util/xalloc.h"

/* ---- values ---- */

bool
conf_name_ok(const char *k, size_t n)
{
	if (n == 0 || n > CONF_JOB_NAME_MAX ||
	    !((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '.' ||
		      k[i] == '_' || k[i] == '-'))
			return false;
	return true;
}

bool
conf_blank(const char *s)
{
	return s[strspn(s, " \t\n\r\f\v")] == '\0';
}

/* The text of scalar value V of key NAME: a non-empty string without NUL bytes. Reports and
 * returns NULL otherwise. *LENP gets the length. Borrowed from the document. */
static const char *
scalar(struct pctx *p, const char *name, struct fy_node *v, struct diag_pos keyat, size_t *lenp)
{
	const char *s;
	size_t len;

	if (v == NULL) {
		conf_err(p, keyat, "\"%s\" has no value", name);
		return NULL;
	}
	if (!fy_node_is_scalar(v)) {
		conf_err(p, conf_pos_or(p, v, keyat), "\"%s\" must be a single value, not %s", name,
		         conf_node_kind(v));
		return NULL;
	}
	s = fy_node_get_scalar(v, &len);
	if (s == NULL || len == 0) {
		conf_err(p, conf_pos_or(p, v, keyat), "\"%s\" is empty", name);
		return NULL;
	}
	if (memchr(s, '\0', len) != NULL) {
		conf_err(p, conf_pos_or(p, v, keyat), "\"%s\" contains a NUL character", name);
		return NULL;
	}
	*lenp = len;
	return s;
}

char *
conf_get_str(struct pctx *p, const char *name, struct fy_node *v, struct diag_pos keyat)
{
	size_t len;
	const char *s = scalar(p, name, v, keyat, &len);

	if (s == NULL || !conf_charge(p, len, keyat))
		return NULL;
	return xstrndup(s, len);
}

char *
conf_dup_counted(struct pctx *p, const char *s, struct diag_pos at)
{
	if (s == NULL)
		return NULL;
	if (!conf_charge(p, strlen(s), at))
		return NULL;
	return xstrdup(s);
}

void
conf_strv_free(struct conf_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

void
conf_strv_push(struct conf_strv *sv, char *s)
{
	/* the room is implied by n: the least power of two that holds n + 1 pointers, so the
	 * vector doubles when n + 1 is one (pushing n strings copies O(n) pointers, not n^2) */
	if (sv->v == NULL || ((sv->n + 1) & sv->n) == 0)
		sv->v = xreallocarray(sv->v, 2 * (sv->n + 1), sizeof(*sv->v));
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void
conf_strv_copy(struct pctx *p, struct conf_strv *dst, const struct conf_strv *src,
               struct diag_pos at)
{
	for (size_t i = 0; i < src->n; i++) {
		char *s = conf_dup_counted(p, src->v[i], at);

		if (s == NULL)
			return;
		conf_strv_push(dst, s);
	}
}

bool
conf_email_ok(const char *s)
{
	const char *at = strchr(s, '@');

	if (at == NULL || at == s || strchr(at + 1, '@') != NULL)
		return false;
	for (const char *q = s; *q != '\0'; q++)
		if ((unsigned char)*q <= ' ' || *q == '<' || *q == '>' || *q == ',' || *q == ';' ||
		    *q == '"' || *q == 0x7f)
			return false;
	at++;
	return *at != '\0' && *at != '.' && at[strlen(at) - 1] != '.' && strstr(at, "..") == NULL;
}

/* The string of scalar V, an item of "NAME" (KEYAT where it or its key stands), checked as
 * an email address when EMAIL (a bad one reported at AT); NULL (reported) otherwise. Caller
 * frees. */
static char *
strv_item(struct pctx *p, const char *name, struct fy_node *v, struct diag_pos keyat,
          struct diag_pos at, bool email)
{
	char *s = conf_get_str(p, name, v, keyat), *q;

	if (s == NULL || !email || conf_email_ok(s))
		return s;
	q = conf_quote_redacted(s);
	conf_err(p, at, "%s is not an email address", q);
	free(q);
	free(s);
	return NULL;
}

int
conf_get_strv(struct pctx *p, const char *name, struct fy_node *v, struct diag_pos keyat,
              struct conf_strv *out, bool one_ok, bool email)
{
	struct conf_strv sv = { NULL, 0 };
	struct fy_node *item;
	void *it = NULL;
	int rc = 0;
	char *s;

	if (v != NULL && fy_node_is_scalar(v) && one_ok) {
		if ((s = strv_item(p, name, v, keyat, conf_pos(p, v), email)) == NULL)
			return -1;
		conf_strv_push(out, s);
		return 0;
	}
	if (v == NULL || !fy_node_is_sequence(v)) {
		conf_err(p, conf_pos_or(p, v, keyat), "\"%s\" must be a list of strings, not %s",
		         name, conf_node_kind(v));
		return -1;
	}
	while ((item = fy_node_sequence_iterate(v, &it)) != NULL) {
		struct diag_pos at = conf_pos_or(p, item, keyat);
		struct fy_node *iv;

		if (!conf_visit(p, item)) {
			rc = -1;
			break;
		}
		if ((iv = conf_deref(p, item)) == NULL) {
			rc = -1;
			continue;
		}
		if (!fy_node_is_scalar(iv)) {
			conf_err(p, at, "each item of \"%s\" must be a string, not %s", name,
			         conf_node_kind(iv));
			rc = -1;
		} else if ((s = strv_item(p, name, iv, at, at, email)) == NULL) {
			rc = -1;
		} else {
			conf_strv_push(&sv, s);
		}
	}
	if (rc == 0 && sv.n == 0) {
		conf_err(p, conf_pos_or(p, v, keyat), "\"%s\" is an empty list", name);
		rc = -1;
	}
	if (rc < 0) {
		conf_strv_free(&sv);
		return -1;
	}
	for (size_t i = 0; i < sv.n; i++)
		conf_strv_push(out, sv.v[i]);
	free(sv.v);
	return 0;
}

static int
parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!(*s == '-' || (*s >= '0' && *s <= '9')))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -ERANGE;
	if (*end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/* The generic setters: each parses S, the value of key CK (at AT), into DST, or reports
 * why not and leaves DST as it was. S stays the caller's, except that set_str takes it
 * (and returns true) when it keeps it. */

static bool
set_str(struct pctx *p, const struct conf_key *ck, char *s, struct diag_pos at, void *dst)
{
	if (s[0] == '-') {
		conf_err(p, at, "\"%s\" must not start with \"-\"", ck->name);
		return false;
	}
	if (conf_blank(s)) {
		conf_err(p, at, "\"%s\" is only whitespace", ck->name);
		return false;
	}
	free(*(char **)dst);
	*(char **)dst = s;
	return true;
}

static void
set_bool(struct pctx *p, const struct conf_key *ck, const char *s, struct diag_pos at, void *dst)
{
	char *q;

	if (strcasecmp(s, "true") == 0) {
		*(bool *)dst = true;
	} else if (strcasecmp(s, "false") == 0) {
		*(bool *)dst = false;
	} else {
		q = conf_quote_redacted(s);
		conf_err(p, at, "\"%s\" must be true or false, not %s", ck->name, q);
		free(q);
	}
}

/* CK_INT and CK_INT64. */
static void
set_int(struct pctx *p, const struct conf_key *ck, const char *s, struct diag_pos at, void *dst)
{
	int64_t i64;
	char *q;

	if (parse_int(s, &i64) < 0 || i64 < ck->min || i64 > ck->max) {
		q = conf_quote_redacted(s);
		conf_err(p, at,
		         "\"%s\" must be a whole number from %" PRId64 " to %" PRId64 ", not %s",
		         ck->name, ck->min, ck->max, q);
		free(q);
		return;
	}
	if (ck->type == CK_INT)
		*(int *)dst = (int)i64;
	else
		*(int64_t *)dst = i64;
}

static void
set_size(struct pctx *p, const struct conf_key *ck, const char *s, struct diag_pos at, void *dst)
{
	char lim[32], got[32], *q;
	const char *why;
	uint64_t u64;

	if (units_parse_size(s, &u64, &why) < 0) {
		q = conf_quote_redacted(s);
		conf_err(p, at, "\"%s\": bad size %s: %s", ck->name, q, why);
		free(q);
		return;
	}
	if (u64 < (uint64_t)ck->min) {
		q = conf_quote_redacted(s);
		units_format_size(u64, got, sizeof(got));
		units_format_size((uint64_t)ck->min, lim, sizeof(lim));
		conf_err(p, at, "\"%s\" is %s (%s), less than the least allowed, %s%s", ck->name, q,
		         got, lim,
		         strspn(s, "0123456789") == strlen(s)
		                 ? " (a bare number is bytes: write 512MiB)"
		                 : "");
		free(q);
		return;
	}
	*(uint64_t *)dst = u64;
}

static void
set_dur(struct pctx *p, const struct conf_key *ck, const char *s, struct diag_pos at, void *dst)
{
	char lo[32], hi[32], *q;
	const char *why;
	int64_t i64;

	if (units_parse_duration(s, &i64, &why) < 0) {
		q = conf_quote_redacted(s);
		conf_err(p, at, "\"%s\": bad duration %s: %s", ck->name, q, why);
		free(q);
		return;
	}
	if (i64 < ck->min || i64 > ck->max) {
		q = conf_quote_redacted(s);
		units_format_duration((double)ck->min, lo, sizeof(lo));
		units_format_duration((double)ck->max, hi, sizeof(hi));
		conf_err(p, at, "\"%s\" must be from %s to %s, not %s", ck->name, lo, hi, q);
		free(q);
		return;
	}
	*(int64_t *)dst = i64;
}

/* A price: digits, optionally a point and at most 4 more digits ("24", "24.50"), no sign, no
 * exponent, within [min, max]. */
static void
set_price(struct pctx *p, const struct conf_key *ck, const char *s, struct diag_pos at, void *dst)
{
	size_t ni = strspn(s, "0123456789"), nf = 0;
	double v;
	char *q;

	if (s[ni] == '.')
		nf = strspn(s + ni + 1, "0123456789");
	if (ni == 0 || ni > 12 || nf > 4 || s[ni + (s[ni] == '.' ? 1 + nf : 0)] != '\0' ||
	    (s[ni] == '.' && nf == 0) || (v = strtod(s, NULL)) < (double)ck->min ||
	    v > (double)ck->max) {
		q = conf_quote_redacted(s);
		conf_err(p, at,
		         "\"%s\" must be a price from %" PRId64 " to %" PRId64
		         ", with at most 4 decimals (24 or 24.50), not %s",
		         ck->name, ck->min, ck->max, q);
		free(q);
		return;
	}
	*(double *)dst = v;
}

/* The value index, or a message with the values and the closest one. */
static void
set_enum(struct pctx *p, const struct conf_key *ck, const char *s, struct diag_pos at, void *dst)
{
	const char *best = NULL;
	size_t bestd = 3;
	struct buf b;
	char *q;
	int rc = 0;

	for (size_t k = 0; ck->values[k] != NULL; k++) {
		if (strcmp(ck->values[k], s) == 0) {
			*(int *)dst = (int)k;
			return;
		}
	}
	buf_init(&b, BUF_MAX_MSG);
	for (size_t k = 0; ck->values[k] != NULL; k++) {
		size_t dd =
		        conf_edit_distance(s, strlen(s), ck->values[k], strlen(ck->values[k]), 2);

		if (dd < bestd) {
			bestd = dd;
			best = ck->values[k];
		}
		rc |= buf_printf(&b, "%s%s", k > 0 ? ", " : "", ck->values[k]);
	}
	assert(rc == 0);
	q = conf_quote_redacted(s);
	if (best != NULL)
		conf_err(p, at, "\"%s\" must be one of %s, not %s (did you mean \"%s\"?)", ck->name,
		         buf_cstr(&b), q, best);
	else
		conf_err(p, at, "\"%s\" must be one of %s, not %s", ck->name, buf_cstr(&b), q);
	free(q);
	buf_free(&b);
}

void
conf_set_generic(struct pctx *p, const struct conf_key *ck, struct fy_node *v,
                 struct diag_pos keyat, void *base)
{
	void *dst = (char *)base + ck->off;
	struct diag_pos at = conf_pos_or(p, v, keyat);
	char *s;

	if (ck->type == CK_STRV) {
		struct conf_strv sv = { NULL, 0 };

		if (conf_get_strv(p, ck->name, v, keyat, &sv, false, false) == 0) {
			conf_strv_free(dst);
			*(struct conf_strv *)dst = sv;
		}
		return;
	}
	if ((s = conf_get_str(p, ck->name, v, keyat)) == NULL)
		return;
	switch (ck->type) {
	case CK_STR:
		if (set_str(p, ck, s, at, dst))
			s = NULL;
		break;
	case CK_BOOL:
		set_bool(p, ck, s, at, dst);
		break;
	case CK_INT:
	case CK_INT64:
		set_int(p, ck, s, at, dst);
		break;
	case CK_SIZE:
		set_size(p, ck, s, at, dst);
		break;
	case CK_DUR:
		set_dur(p, ck, s, at, dst);
		break;
	case CK_ENUM:
		set_enum(p, ck, s, at, dst);
		break;
	case CK_PRICE:
		set_price(p, ck, s, at, dst);
		break;
	case CK_STRV:
	case CK_SPECIAL:
		assert(0 && "not a generic key");
		break;
	}
	free(s);
}

void
conf_generic_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen,
                  struct fy_node *v, void *arg)
{
	struct conf_generic_arg *g = arg;
	const struct conf_key *ck = conf_key_find(g->sec, k, klen);

	if (ck == NULL) {
		conf_unknown_key(p, g->sec, key, k, klen, NULL);
		return;
	}
	if (v != NULL && (v = conf_deref(p, v)) == NULL)
		return; /* a broken alias, reported */
	if (ck->type == CK_SPECIAL) {
		g->special(p, ck, key, v, g->special_arg);
		return;
	}
	conf_set_generic(p, ck, v, conf_pos(p, key), g->base);
}

bool
conf_path_plain(const char *s)
{
	while (*s != '\0') {
		size_t n = strcspn(s, "/");

		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += n;
		if (*s == '/')
			s++;
	}
	return true;
}
