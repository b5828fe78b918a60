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
	sv->v = xreallocarray(sv->v, sv->n + 2, sizeof(*sv->v));
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

int
conf_get_strv(struct pctx *p, const char *name, struct fy_node *v, struct diag_pos keyat,
              struct conf_strv *out, bool one_ok, bool email)
{
	struct conf_strv sv = { NULL, 0 };
	struct fy_node *item;
	void *it = NULL;
	int rc = 0;

	if (v != NULL && fy_node_is_scalar(v) && one_ok) {
		char *s = conf_get_str(p, name, v, keyat);

		if (s == NULL)
			return -1;
		if (email && !conf_email_ok(s)) {
			char *q = conf_quote_redacted(s);

			conf_err(p, conf_pos(p, v), "%s is not an email address", q);
			free(q);
			free(s);
			return -1;
		}
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
		char *s;

		if (!conf_visit(p, item)) {
			rc = -1;
			break;
		}
		iv = conf_deref(p, item);

		if (iv == NULL) {
			rc = -1;
			continue;
		}
		if (!fy_node_is_scalar(iv)) {
			conf_err(p, at, "each item of \"%s\" must be a string, not %s", name,
			         conf_node_kind(iv));
			rc = -1;
			continue;
		}
		s = conf_get_str(p, name, iv, at);
		if (s == NULL) {
			rc = -1;
			continue;
		}
		if (email && !conf_email_ok(s)) {
			char *q = conf_quote_redacted(s);

			conf_err(p, at, "%s is not an email address", q);
			free(q);
			free(s);
			rc = -1;
			continue;
		}
		conf_strv_push(&sv, s);
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

void
conf_set_generic(struct pctx *p, const struct conf_key *ck, struct fy_node *v,
                 struct diag_pos keyat, void *base)
{
	char *dst = (char *)base + ck->off;
	struct diag_pos at = conf_pos_or(p, v, keyat);
	const char *why;
	char *s, *q;
	int64_t i64;
	uint64_t u64;

	if (ck->type == CK_STRV) {
		struct conf_strv sv = { NULL, 0 };

		if (conf_get_strv(p, ck->name, v, keyat, &sv, false, false) == 0) {
			conf_strv_free((struct conf_strv *)(void *)dst);
			*(struct conf_strv *)(void *)dst = sv;
		}
		return;
	}
	s = conf_get_str(p, ck->name, v, keyat);
	if (s == NULL)
		return;
	q = conf_quote_redacted(s);
	switch (ck->type) {
	case CK_STR:
		if (s[0] == '-') {
			conf_err(p, at, "\"%s\" must not start with \"-\"", ck->name);
			break;
		}
		if (conf_blank(s)) {
			conf_err(p, at, "\"%s\" is only whitespace", ck->name);
			break;
		}
		free(*(char **)(void *)dst);
		*(char **)(void *)dst = s;
		s = NULL;
		break;
	case CK_BOOL:
		if (strcasecmp(s, "true") == 0)
			*(bool *)(void *)dst = true;
		else if (strcasecmp(s, "false") == 0)
			*(bool *)(void *)dst = false;
		else
			conf_err(p, at, "\"%s\" must be true or false, not %s", ck->name, q);
		break;
	case CK_INT:
	case CK_INT64:
		if (parse_int(s, &i64) < 0 || i64 < ck->min || i64 > ck->max) {
			conf_err(p, at,
			         "\"%s\" must be a whole number from %" PRId64 " to %" PRId64
			         ", not %s",
			         ck->name, ck->min, ck->max, q);
			break;
		}
		if (ck->type == CK_INT)
			*(int *)(void *)dst = (int)i64;
		else
			*(int64_t *)(void *)dst = i64;
		break;
	case CK_SIZE: {
		char lim[32], got[32];

		if (units_parse_size(s, &u64, &why) < 0) {
			conf_err(p, at, "\"%s\": bad size %s: %s", ck->name, q, why);
			break;
		}
		units_format_size(u64, got, sizeof(got));
		if (u64 < (uint64_t)ck->min) {
			units_format_size((uint64_t)ck->min, lim, sizeof(lim));
			conf_err(p, at, "\"%s\" is %s (%s), less than the least allowed, %s%s",
			         ck->name, q, got, lim,
			         strspn(s, "0123456789") == strlen(s)
			                 ? " (a bare number is bytes: write 512MiB)"
			                 : "");
			break;
		}
		*(uint64_t *)(void *)dst = u64;
		break;
	}
	case CK_DUR:
		if (units_parse_duration(s, &i64, &why) < 0) {
			conf_err(p, at, "\"%s\": bad duration %s: %s", ck->name, q, why);
			break;
		}
		if (i64 < ck->min || i64 > ck->max) {
			char lo[32], hi[32];

			units_format_duration((double)ck->min, lo, sizeof(lo));
			units_format_duration((double)ck->max, hi, sizeof(hi));
			conf_err(p, at, "\"%s\" must be from %s to %s, not %s", ck->name, lo, hi,
			         q);
			break;
		}
		*(int64_t *)(void *)dst = i64;
		break;
	case CK_ENUM: {
		size_t k, nv = 0;
		const char *best = NULL;
		size_t bestd = 3;
		struct buf b;
		int rc = 0;

		for (k = 0; ck->values[k] != NULL; k++) {
			if (strcmp(ck->values[k], s) == 0)
				break;
			size_t dd = conf_edit_distance(s, strlen(s), ck->values[k],
			                               strlen(ck->values[k]), 2);
			if (dd < bestd) {
				bestd = dd;
				best = ck->values[k];
			}
		}
		if (ck->values[k] != NULL) {
			*(int *)(void *)dst = (int)k;
			break;
		}
		buf_init(&b, BUF_MAX_MSG);
		for (nv = 0; ck->values[nv] != NULL; nv++)
			rc |= buf_printf(&b, "%s%s", nv > 0 ? ", " : "", ck->values[nv]);
		assert(rc == 0);
		if (best != NULL)
			conf_err(p, at, "\"%s\" must be one of %s, not %s (did you mean \"%s\"?)",
			         ck->name, buf_cstr(&b), q, best);
		else
			conf_err(p, at, "\"%s\" must be one of %s, not %s", ck->name, buf_cstr(&b),
			         q);
		buf_free(&b);
		break;
	}
	case CK_STRV:
	case CK_SPECIAL:
		assert(0 && "not a generic key");
		break;
	}
	free(q);
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
