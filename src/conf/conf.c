/* src/conf/conf.c: reading, parsing and validating the jobs file. libfyaml builds the
 * document (duplicate keys are found here: conf_dup_keys); this file walks it against the key
 * tables of conf_keys.c, reports every problem at its node as FILE:LINE:COL, and keeps going. */
#include "conf/conf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfyaml.h>

#include "conf/conf_compact.h"
#include "conf/conf_keys.h"
#include "sched/cronexpr.h"
#include "sched/tz.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/redact.h"
#include "util/units.h"
#include "util/xalloc.h"

#define CONF_JOB_NAME_MAX   64
#define CONF_MAX_JOBS       20000 /* the daemon stays a few MiB at 10,000 (bench/daemon.sh) */
#define CONF_MAX_ENV        256   /* variables of one job */
/* The work the file may take once aliases are followed, in bytes: every string copied
 * counts its length, every key or list item read CONF_VISIT_COST more. A guard against
 * "billion laughs" (an alias to a big env mapping, used by every one of many jobs), and
 * what keeps loading linear in the file's size: the budget is CONF_EXPAND_MAX plus
 * CONF_VISIT_COST / 2 for each byte of the file, which a file without aliases never
 * spends (a key or an item takes at least 2 of its bytes). */
#define CONF_EXPAND_MAX     (64u << 20)
#define CONF_VISIT_COST     64
#define CONF_QUOTE_MAX      80   /* bytes of user text quoted in a message */
#define CONF_MAX_ERRORS     100  /* distinct errors reported before the loader stops */
#define CONF_MAX_RAISED     1000 /* errors raised, repeats included, before it stops */
/* Bytes of the canonical forms of keys that are lists or mappings (conf_dup_keys) */
#define CONF_KEYS_CANON_MAX (16u << 20)

/* A job being built: the job, and where its values came from, for later checks. */
struct jobb {
	struct conf_job j;
	struct diag_pos memory_at, email_at, run_at, command_at;
	bool has_schedule, email_from_defaults;
};

struct pctx {
	const char *file;
	struct diag *d;
	struct conf *c;
	size_t expand_max;  /* the budget of work, in bytes */
	size_t expand_left; /* counted down by the work done (conf_charge, conf_visit) */
	size_t canon_left;  /* CONF_KEYS_CANON_MAX, counted down by key_canon */
	/* Errors go through conf_err: each distinct one once (an anchor's errors repeat for every
	 * alias to it), and after too many the walk stops (halted). */
	size_t nraised;              /* errors raised, repeats included */
	char *seen[CONF_MAX_ERRORS]; /* the distinct messages, "LINE:COL: msg" */
	size_t nseen;
	bool halted;       /* too many errors, or the work budget spent: nothing more is walked */
	char **zone_names; /* parallel to c->zones, as the jobs name them */
	/* python section, the first layer of every job's requirements/interpreter */
	char *py_requirements, *py_interpreter;
	bool defaults_email_reported;
};

/* ---- positions and messages ---- */

/* The position of node N: libfyaml's marks are 0-based, and this is the one place that
 * converts them. A collection has no token of its own here; its first scalar stands for it
 * (in block style, where the collection starts). {line 0} when N has no position. */
static struct diag_pos
conf_pos(const struct pctx *p, struct fy_node *n)
{
	struct diag_pos at = { p->file, 0, 0 };

	for (int depth = 0; n != NULL && depth < 64; depth++) {
		if (fy_node_is_scalar(n)) {
			struct fy_token *t = fy_node_get_scalar_token(n);
			const struct fy_mark *m = t != NULL ? fy_token_start_mark(t) : NULL;

			if (m != NULL) {
				at.line = m->line + 1;
				at.col = m->column + 1;
			}
			return at;
		}
		void *it = NULL;
		if (fy_node_is_mapping(n)) {
			struct fy_node_pair *pr = fy_node_mapping_iterate(n, &it);

			if (pr == NULL)
				break;
			n = fy_node_pair_key(pr) != NULL ? fy_node_pair_key(pr)
			                                 : fy_node_pair_value(pr);
		} else {
			n = fy_node_sequence_iterate(n, &it);
		}
	}
	return at;
}

/* N's position, else FALLBACK's (an empty collection, a missing value). */
static struct diag_pos
conf_pos_or(const struct pctx *p, struct fy_node *n, struct diag_pos fallback)
{
	struct diag_pos at = conf_pos(p, n);

	return at.line > 0 ? at : fallback;
}

/* S (LEN bytes) quoted for a message: control bytes escaped, long text cut at a character
 * boundary. Caller frees. */
static char *
conf_quote(const char *s, size_t len)
{
	struct buf b;
	size_t n = len;
	int rc = 0;

	if (n > CONF_QUOTE_MAX) {
		n = CONF_QUOTE_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	buf_init(&b, BUF_MAX_MSG);
	rc |= buf_putc(&b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			rc |= buf_printf(&b, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			rc |= buf_printf(&b, "\\x%02x", ch);
		else
			rc |= buf_putc(&b, (char)ch);
	}
	rc |= buf_puts(&b, n < len ? "\"..." : "\"");
	assert(rc == 0); /* at most ~4 * CONF_QUOTE_MAX bytes */
	return buf_steal(&b);
}

/* S quoted for a message, without the userinfo of any URL in it (a value echoed in an error
 * must not show a password). Caller frees. */
static char *
conf_quote_redacted(const char *s)
{
	char *clean = redact_url(s), *q = conf_quote(clean, strlen(clean));

	free(clean);
	return q;
}

/* Reports an error at AT: into D the first time, a repeat (same place, same message)
 * only counted. Past CONF_MAX_ERRORS distinct errors or CONF_MAX_RAISED raised ones it says
 * so, once, and halts the walk. Loading stays bounded this way: an alias repeats the errors
 * of what it leads to wherever it is used. */
static void conf_err(struct pctx *p, struct diag_pos at, const char *fmt, ...) EPH_PRINTF(3, 4);

static void
conf_err(struct pctx *p, struct diag_pos at, const char *fmt, ...)
{
	va_list ap;
	char *msg, *key;
	size_t i;

	if (p->halted && p->nraised >= CONF_MAX_RAISED)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort(); /* only on allocation, as xalloc */
	va_end(ap);
	p->nraised++;
	key = xasprintf("%d:%d: %s", at.line, at.col, msg);
	for (i = 0; i < p->nseen && strcmp(p->seen[i], key) != 0; i++)
		;
	if (i == p->nseen && p->nseen < CONF_MAX_ERRORS) {
		diag_error(p->d, at, "%s", msg);
		p->seen[p->nseen++] = key;
		key = NULL;
	}
	free(key);
	free(msg);
	if (p->nseen == CONF_MAX_ERRORS || p->nraised == CONF_MAX_RAISED) {
		/* the file's own line: printed first, before the errors it cuts short */
		if (p->nseen < CONF_MAX_ERRORS)
			diag_error(
			        p->d, (struct diag_pos){ p->file, 0, 0 },
			        "too many errors, stopping: the same ones again and again, through aliases");
		else
			diag_error(p->d, (struct diag_pos){ p->file, 0, 0 },
			           "too many errors, stopping: these are the first %d",
			           CONF_MAX_ERRORS);
		p->halted = true;
		p->nraised = CONF_MAX_RAISED;
	}
}

/* Errors raised so far, repeats included: what tells whether a part of the file failed. */
static size_t
conf_nerrors(const struct pctx *p)
{
	return p->nraised;
}

/* ---- values ---- */

/* Whether S holds only whitespace. */
static bool
conf_blank(const char *s)
{
	return s[strspn(s, " \t\n\r\f\v")] == '\0';
}

/* N with aliases followed; NULL (reported) for an alias that leads nowhere. */
static struct fy_node *
conf_deref(struct pctx *p, struct fy_node *n)
{
	struct fy_node *t;

	if (n == NULL || !fy_node_is_alias(n))
		return n;
	t = fy_node_resolve_alias(n);
	if (t == NULL)
		conf_err(p, conf_pos(p, n),
		         "alias does not lead to a value (unknown anchor or a cycle)");
	return t;
}

static const char *
conf_node_kind(struct fy_node *n)
{
	if (n == NULL)
		return "nothing";
	if (fy_node_is_mapping(n))
		return "a mapping";
	if (fy_node_is_sequence(n))
		return "a list";
	return "a scalar";
}

/* Counts LEN + 1 bytes of work against the budget; false when it is spent (reported once,
 * and the walk halts). */
static bool
conf_charge(struct pctx *p, size_t len, struct diag_pos at)
{
	if (len + 1 <= p->expand_left) {
		p->expand_left -= len + 1;
		return true;
	}
	if (p->expand_left > 0 && !p->halted)
		conf_err(p, at, "the file expands to more than %zu MiB once aliases are followed",
		         p->expand_max >> 20);
	p->expand_left = 0;
	p->halted = true;
	return false;
}

/* Counts reading node N, a key or a list item; false when the walk must stop. */
static bool
conf_visit(struct pctx *p, struct fy_node *n)
{
	if (p->halted)
		return false;
	if (CONF_VISIT_COST < p->expand_left) {
		p->expand_left -= CONF_VISIT_COST;
		return true;
	}
	return conf_charge(p, CONF_VISIT_COST, conf_pos(p, n));
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

/* As scalar(), into a new string the caller frees. */
static char *
conf_get_str(struct pctx *p, const char *name, struct fy_node *v, struct diag_pos keyat)
{
	size_t len;
	const char *s = scalar(p, name, v, keyat, &len);

	if (s == NULL || !conf_charge(p, len, keyat))
		return NULL;
	return xstrndup(s, len);
}

static char *
conf_dup_counted(struct pctx *p, const char *s, struct diag_pos at)
{
	if (s == NULL)
		return NULL;
	if (!conf_charge(p, strlen(s), at))
		return NULL;
	return xstrdup(s);
}

static void
conf_strv_free(struct conf_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

static void
conf_strv_push(struct conf_strv *sv, char *s)
{
	sv->v = xreallocarray(sv->v, sv->n + 2, sizeof(*sv->v));
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

static void
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

/* An email address, checked for the basic shape local@domain.tld. */
static bool
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

/* A list of strings (a single string counts as a list of one when ONE_OK). Returns 0 and
 * appends to OUT, or -1 (reported). EMAIL checks each item as an address. */
static int
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

/* Parses V as key CK's generic type into the section struct at BASE. */
static void
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

/* ---- mappings, with merge keys ---- */

typedef void (*conf_pair_fn)(struct pctx *p, struct fy_node *key, const char *k, size_t klen,
                             struct fy_node *val, void *arg);

/* A key of mapping M as text, or NULL (reported) when it is not a plain scalar. */
static const char *
key_text(struct pctx *p, struct fy_node_pair *pr, struct fy_node *m, size_t *klen)
{
	struct fy_node *k = fy_node_pair_key(pr);
	struct fy_node *kd = conf_deref(p, k);
	const char *s;

	if (k != NULL && kd == NULL)
		return NULL;
	if (kd == NULL || !fy_node_is_scalar(kd) || (s = fy_node_get_scalar(kd, klen)) == NULL ||
	    *klen == 0) {
		conf_err(p,
		         conf_pos_or(p, k, conf_pos_or(p, fy_node_pair_value(pr), conf_pos(p, m))),
		         "a key must be a non-empty string");
		return NULL;
	}
	return s;
}

static bool
is_merge_key(struct fy_node_pair *pr, const char *k, size_t klen)
{
	struct fy_node *kn = fy_node_pair_key(pr);

	return klen == 2 && memcmp(k, "<<", 2) == 0 && kn != NULL &&
	       fy_node_get_style(kn) == FYNS_PLAIN;
}

/* Calls FN for each key of mapping M, then for each key that M's merge key (<<: *anchor, or
 * a list of them) brings in and that neither M nor an earlier merged mapping has. */
static void
conf_map_walk(struct pctx *p, struct fy_node *m, conf_pair_fn fn, void *arg)
{
	struct fy_node *merge = NULL, *srcs[16];
	struct fy_node_pair *pr;
	size_t nsrc = 0, klen;
	const char *k;
	void *it = NULL;

	while ((pr = fy_node_mapping_iterate(m, &it)) != NULL) {
		if (!conf_visit(p, fy_node_pair_key(pr)))
			return;
		if ((k = key_text(p, pr, m, &klen)) == NULL)
			continue;
		if (is_merge_key(pr, k, klen)) {
			merge = fy_node_pair_value(pr);
			if (merge == NULL)
				conf_err(p, conf_pos(p, fy_node_pair_key(pr)),
				         "\"<<\" has no value");
			continue;
		}
		fn(p, fy_node_pair_key(pr), k, klen, fy_node_pair_value(pr), arg);
	}
	if (merge == NULL)
		return;
	{
		struct fy_node *mv = conf_deref(p, merge);

		if (mv != NULL && fy_node_is_mapping(mv)) {
			srcs[nsrc++] = mv;
		} else if (mv != NULL && fy_node_is_sequence(mv)) {
			struct fy_node *item;
			void *sit = NULL;

			while ((item = fy_node_sequence_iterate(mv, &sit)) != NULL) {
				struct fy_node *iv;

				if (!conf_visit(p, item))
					return;
				iv = conf_deref(p, item);

				if (iv == NULL)
					continue;
				if (!fy_node_is_mapping(iv)) {
					conf_err(p, conf_pos(p, item),
					         "\"<<\" merges mappings, not %s",
					         conf_node_kind(iv));
				} else if (nsrc == EPH_ARRAY_LEN(srcs)) {
					conf_err(p, conf_pos(p, item),
					         "\"<<\" merges at most %zu mappings",
					         EPH_ARRAY_LEN(srcs));
					break;
				} else {
					srcs[nsrc++] = iv;
				}
			}
		} else if (mv != NULL) {
			conf_err(p, conf_pos(p, merge),
			         "\"<<\" merges a mapping or a list of mappings, not %s",
			         conf_node_kind(mv));
		}
	}
	for (size_t i = 0; i < nsrc; i++) {
		it = NULL;
		while ((pr = fy_node_mapping_iterate(srcs[i], &it)) != NULL) {
			bool shadowed;

			if (!conf_visit(p, fy_node_pair_key(pr)))
				return;
			if ((k = key_text(p, pr, srcs[i], &klen)) == NULL)
				continue;
			if (is_merge_key(pr, k, klen)) {
				conf_err(p, conf_pos(p, fy_node_pair_key(pr)),
				         "a merged mapping cannot merge again (nested \"<<\")");
				continue;
			}
			shadowed = fy_node_mapping_lookup_pair_by_simple_key(m, k, klen) != NULL;
			for (size_t j = 0; j < i && !shadowed; j++)
				shadowed = fy_node_mapping_lookup_pair_by_simple_key(srcs[j], k,
				                                                     klen) != NULL;
			if (!shadowed)
				fn(p, fy_node_pair_key(pr), k, klen, fy_node_pair_value(pr), arg);
		}
	}
}

/* Reports unknown key K of section S, with a suggestion when one is close. */
static void
conf_unknown_key(struct pctx *p, const struct conf_section *s, struct fy_node *key, const char *k,
                 size_t klen, const char *extra)
{
	const char *sug = conf_key_suggest(s, k, klen);
	char *q = conf_quote(k, klen);

	if (sug != NULL)
		conf_err(p, conf_pos(p, key), "unknown key %s (did you mean \"%s\"?)", q, sug);
	else
		conf_err(p, conf_pos(p, key), "unknown key %s%s", q, extra != NULL ? extra : "");
	free(q);
}

/* V (deref'd) when it is a mapping; NULL (reported) otherwise. */
static struct fy_node *
conf_want_map(struct pctx *p, const char *name, struct fy_node *key, struct fy_node *v)
{
	struct fy_node *dv = conf_deref(p, v);

	if (v != NULL && dv == NULL)
		return NULL;
	if (dv == NULL || !fy_node_is_mapping(dv)) {
		conf_err(p, conf_pos_or(p, dv, conf_pos(p, key)),
		         "\"%s\" must be a mapping, not %s", name, conf_node_kind(dv));
		return NULL;
	}
	return dv;
}

/* A section whose keys are all generic: source, mail's plain keys, retention, local. */
struct conf_generic_arg {
	const struct conf_section *sec;
	void *base;
	void (*special)(struct pctx *p, const struct conf_key *ck, struct fy_node *key,
	                struct fy_node *v, void *arg);
	void *special_arg;
};

static void
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

/* ---- jobs ---- */

static void
conf_job_clear(struct conf_job *j)
{
	free(j->name);
	free(j->schedule);
	cronexpr_free(j->cron);
	free(j->timezone);
	free(j->run);
	conf_strv_free(&j->command);
	free(j->executor);
	conf_strv_free(&j->env);
	free(j->workdir);
	conf_strv_free(&j->notify.email);
	free(j->requirements);
	free(j->interpreter);
	memset(j, 0, sizeof(*j));
}

/* A deep copy of the defaults (no name, schedule or command: defaults have none). */
static void
jobb_copy(struct pctx *p, struct jobb *dst, const struct jobb *src, struct diag_pos at)
{
	*dst = *src;
	dst->j.name = NULL;
	dst->j.schedule = NULL;
	dst->j.cron = NULL;
	dst->j.run = NULL;
	dst->j.command = (struct conf_strv){ NULL, 0 };
	dst->j.timezone = conf_dup_counted(p, src->j.timezone, at);
	dst->j.executor = conf_dup_counted(p, src->j.executor, at);
	dst->j.workdir = conf_dup_counted(p, src->j.workdir, at);
	dst->j.requirements = conf_dup_counted(p, src->j.requirements, at);
	dst->j.interpreter = conf_dup_counted(p, src->j.interpreter, at);
	dst->j.env = (struct conf_strv){ NULL, 0 };
	conf_strv_copy(p, &dst->j.env, &src->j.env, at);
	dst->j.notify.email = (struct conf_strv){ NULL, 0 };
	conf_strv_copy(p, &dst->j.notify.email, &src->j.notify.email, at);
	dst->email_from_defaults = src->j.notify.email.n > 0;
}

struct conf_job_arg {
	struct jobb *jb;
	bool defaults;
};

static int
zone_get(struct pctx *p, const char *name, const struct tz **out)
{
	struct tz *z;
	int rc;

	for (size_t i = 0; i < p->c->nzones; i++) {
		if (p->zone_names[i] != NULL && strcmp(p->zone_names[i], name) == 0) {
			*out = p->c->zones[i];
			return 0;
		}
	}
	rc = tz_load(name, &z);
	if (rc < 0)
		return rc;
	p->c->zones = xreallocarray(p->c->zones, p->c->nzones + 1, sizeof(*p->c->zones));
	p->zone_names = xreallocarray(p->zone_names, p->c->nzones + 1, sizeof(*p->zone_names));
	p->c->zones[p->c->nzones] = z;
	p->zone_names[p->c->nzones] = xstrdup(name);
	p->c->nzones++;
	*out = z;
	return 0;
}

static bool
env_name_ok(const char *k, size_t n)
{
	if (n == 0 ||
	    !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
		      (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

/* The variables the agent sets for the command (src/agent/agent.c): a job's own would be
 * silently replaced. */
static const char *const env_reserved[] = {
	"EPH_RUN_ID", "EPH_JOB", "EPH_ATTEMPT", "EPH_SCHEDULED_AT", "EPH_COMMIT",
};

static bool
env_name_reserved(const char *k, size_t n)
{
	for (size_t i = 0; i < EPH_ARRAY_LEN(env_reserved); i++)
		if (strlen(env_reserved[i]) == n && memcmp(env_reserved[i], k, n) == 0)
			return true;
	return false;
}

/* One env mapping being read: its variables in order, merged into the inherited ones once
 * it is read (env_merge). A mapping has no two equal keys (conf_dup_keys) and merged keys are
 * shadowed (conf_map_walk), so these are distinct. */
struct env_arg {
	struct conf_strv vars;                /* "KEY=VALUE" */
	struct diag_pos at[CONF_MAX_ENV + 1]; /* where each stands */
	bool too_many;
};

static void
env_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
         void *arg)
{
	struct env_arg *ea = arg;
	struct diag_pos at = conf_pos(p, key);
	const char *s;
	size_t len;
	char *kv, *q;

	if (ea->too_many)
		return;
	if (!env_name_ok(k, klen)) {
		q = conf_quote(k, klen);
		conf_err(
		        p, at,
		        "%s is not a valid environment variable name (letters, digits and _, not starting with a digit)",
		        q);
		free(q);
		return;
	}
	if (env_name_reserved(k, klen)) {
		q = conf_quote(k, klen);
		conf_err(
		        p, at,
		        "environment variable %s is reserved: ephemeron sets EPH_RUN_ID, EPH_JOB, EPH_ATTEMPT, EPH_SCHEDULED_AT and EPH_COMMIT for each run",
		        q);
		free(q);
		return;
	}
	v = conf_deref(p, v);
	if (v == NULL || !fy_node_is_scalar(v)) {
		q = conf_quote(k, klen);
		conf_err(p, conf_pos_or(p, v, at),
		         "environment variable %s must be a single value, not %s", q,
		         conf_node_kind(v));
		free(q);
		return;
	}
	s = fy_node_get_scalar(v, &len);
	if (s == NULL)
		s = "";
	if (memchr(s, '\0', len) != NULL) {
		q = conf_quote(k, klen);
		conf_err(p, conf_pos_or(p, v, at),
		         "environment variable %s contains a NUL character", q);
		free(q);
		return;
	}
	if (ea->vars.n == CONF_MAX_ENV) {
		conf_err(p, at, "more than %d environment variables", CONF_MAX_ENV);
		ea->too_many = true;
		return;
	}
	if (!conf_charge(p, klen + len + 1, at))
		return;
	kv = xmalloc(klen + len + 2);
	memcpy(kv, k, klen);
	kv[klen] = '=';
	memcpy(kv + klen + 1, s, len);
	kv[klen + len + 1] = '\0';
	ea->at[ea->vars.n] = at;
	conf_strv_push(&ea->vars, kv);
}

/* A variable's name, for sorting: "NAME=..." up to the '='. */
struct env_name {
	const char *s;
	size_t len, idx;
};

static int
env_name_cmp(const void *a, const void *b)
{
	const struct env_name *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Moves the variables of EA into ENV: one of the same name replaces it in its place, the
 * others are appended, in order. Sorted names: no variable is compared with every other. */
static void
env_merge(struct pctx *p, struct conf_strv *env, struct env_arg *ea)
{
	struct env_name *names;
	size_t n0 = env->n, i;

	if (n0 == 0) {
		*env = ea->vars;
		return;
	}
	names = xreallocarray(NULL, n0 + 1, sizeof(*names));
	for (i = 0; i < n0; i++)
		names[i] = (struct env_name){ env->v[i], strcspn(env->v[i], "="), i };
	qsort(names, n0, sizeof(*names), env_name_cmp);
	for (i = 0; i < ea->vars.n; i++) {
		char *kv = ea->vars.v[i];
		struct env_name key = { kv, strcspn(kv, "="), 0 }, *hit;

		hit = bsearch(&key, names, n0, sizeof(*names), env_name_cmp);
		if (hit != NULL) {
			free(env->v[hit->idx]);
			env->v[hit->idx] = kv;
			hit->s = kv;
		} else if (env->n < CONF_MAX_ENV) {
			conf_strv_push(env, kv);
		} else {
			if (!ea->too_many)
				conf_err(p, ea->at[i], "more than %d environment variables",
				         CONF_MAX_ENV);
			ea->too_many = true;
			free(kv);
		}
	}
	free(names);
	free(ea->vars.v);
}

static void
notify_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
               void *arg)
{
	struct jobb *jb = arg;
	struct diag_pos at = conf_pos(p, key);

	if (ck->id == K_NOTIFY_EMAIL) {
		struct conf_strv sv = { NULL, 0 };

		if (conf_get_strv(p, "email", v, at, &sv, true, true) == 0) {
			conf_strv_free(&jb->j.notify.email);
			jb->j.notify.email = sv;
			jb->email_at = at;
			jb->email_from_defaults = false;
		}
	} else if (ck->id == K_NOTIFY_ON) {
		struct conf_strv sv = { NULL, 0 };
		unsigned bits = 0;
		bool ok = true;

		void *it = NULL;

		if (conf_get_strv(p, "on", v, at, &sv, true, false) < 0)
			return;
		for (size_t i = 0; i < sv.n; i++) {
			/* the item's node, for its position: conf_get_strv kept them all, in order
			 */
			struct fy_node *item =
			        fy_node_is_sequence(v) ? fy_node_sequence_iterate(v, &it) : v;
			size_t b;

			for (b = 0; conf_notify_on_names[b] != NULL; b++)
				if (strcmp(conf_notify_on_names[b], sv.v[i]) == 0)
					break;
			if (conf_notify_on_names[b] != NULL) {
				bits |= 1u << b;
				continue;
			}
			char *q = conf_quote_redacted(sv.v[i]);

			conf_err(
			        p, conf_pos_or(p, item, at),
			        "unknown notify.on event %s (use failure, oom, timeout, lost, success, always or recovered)",
			        q);
			free(q);
			ok = false;
		}
		if (ok)
			jb->j.notify.on = bits;
		conf_strv_free(&sv);
	}
}

/* "command": a list whose first item is the program, neither blank nor an option (as
 * "-x": every program would read it as one, and none is named so). */
static void
command_set(struct pctx *p, struct fy_node *v, struct diag_pos at, struct conf_job *j)
{
	struct conf_strv sv = { NULL, 0 };
	struct diag_pos at0;
	char *q;

	if (conf_get_strv(p, "command", v, at, &sv, false, false) < 0)
		return;
	at0 = conf_pos_or(p, fy_node_sequence_get_by_index(v, 0), at);
	if (conf_blank(sv.v[0]) || sv.v[0][0] == '-') {
		q = conf_quote_redacted(sv.v[0]);
		if (conf_blank(sv.v[0]))
			conf_err(p, at0, "\"command\" must start with a program, not %s", q);
		else
			conf_err(
			        p, at0,
			        "\"command\" must start with a program, not the option %s (a command is [PROGRAM, ARGUMENT, ...])",
			        q);
		free(q);
		conf_strv_free(&sv);
		return;
	}
	conf_strv_free(&j->command);
	j->command = sv;
}

/* Compiles schedule S, whose text starts at AT, into *OUT; its errors go through conf_err. */
static void
schedule_parse(struct pctx *p, const char *s, struct diag_pos at, struct cronexpr **out)
{
	struct diag cd;

	diag_init(&cd);
	if (cronexpr_parse(s, &at, out, &cd) < 0 && diag_nerrors(&cd) == 0)
		conf_err(p, at, "bad schedule");
	for (size_t i = 0; i < cd.n; i++)
		conf_err(p, (struct diag_pos){ p->file, cd.items[i].line, cd.items[i].col }, "%s",
		         cd.items[i].msg);
	diag_free(&cd);
}

static void
conf_job_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
              void *arg)
{
	struct conf_job_arg *ja = arg;
	struct jobb *jb = ja->jb;
	struct conf_job *j = &jb->j;
	const struct conf_key *ck = conf_key_find(&conf_sec_job, k, klen);
	struct diag_pos at = conf_pos(p, key);
	char *s;

	if (ck == NULL) {
		conf_unknown_key(p, &conf_sec_job, key, k, klen, NULL);
		return;
	}
	if (!ja->defaults && ck->id == K_RUN)
		jb->run_at = at;
	else if (!ja->defaults && ck->id == K_COMMAND)
		jb->command_at = at;
	else if (ck->id == K_SCHEDULE)
		jb->has_schedule = true;
	if (v != NULL && (v = conf_deref(p, v)) == NULL)
		return; /* a broken alias, reported */
	if (ja->defaults && (ck->id == K_SCHEDULE || ck->id == K_RUN || ck->id == K_COMMAND)) {
		conf_err(p, at, "\"%s\" cannot be a default: set it in each job", ck->name);
		return;
	}
	switch (ck->id) {
	case K_SCHEDULE: {
		struct diag_pos cat;

		jb->has_schedule = true;
		if ((s = conf_get_str(p, "schedule", v, at)) == NULL)
			return;
		/* libfyaml marks a quoted scalar at its first character, inside the quote:
		 * that is already the column of TEXT's first byte */
		cat = conf_pos(p, v);
		free(j->schedule);
		cronexpr_free(j->cron);
		j->cron = NULL;
		j->schedule = s;
		schedule_parse(p, s, cat, &j->cron);
		return;
	}
	case K_RUN:
		conf_set_generic(p, ck, v, at, j);
		return;
	case K_COMMAND:
		command_set(p, v, at, j);
		return;
	case K_MEMORY:
		jb->memory_at = conf_pos_or(p, v, at);
		conf_set_generic(p, ck, v, at, j);
		return;
	case K_TIMEZONE: {
		const struct tz *z;
		char *q;
		int rc;

		if ((s = conf_get_str(p, "timezone", v, at)) == NULL)
			return;
		rc = zone_get(p, s, &z);
		if (rc == 0) {
			free(j->timezone);
			j->timezone = s;
			j->tz = z;
			return;
		}
		q = conf_quote_redacted(s);
		if (rc == -ENOENT)
			conf_err(p, conf_pos(p, v),
			         "unknown time zone %s (use an IANA name, as Europe/Berlin or UTC)",
			         q);
		else if (rc == -EINVAL)
			conf_err(
			        p, conf_pos(p, v),
			        "%s is not a time zone name (use an IANA name, as Europe/Berlin or UTC)",
			        q);
		else
			conf_err(p, conf_pos(p, v), "cannot load time zone %s: %s", q,
			         strerror(-rc));
		free(q);
		free(s);
		return;
	}
	case K_EXECUTOR: {
		static const struct conf_key ex[] = {
			{ "local", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, NULL, NULL },
			{ "droplet", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, NULL, NULL },
			{ "slurm", CK_SPECIAL, K_OTHER, 0, 0, 0, NULL, NULL, NULL },
		};
		static const struct conf_section exs = { "executors", ex, EPH_ARRAY_LEN(ex) };
		const char *sug;
		char *q;

		if ((s = conf_get_str(p, "executor", v, at)) == NULL)
			return;
		if (strcmp(s, "local") == 0) {
			free(j->executor);
			j->executor = s;
			return;
		}
		q = conf_quote_redacted(s);
		if (strcmp(s, "droplet") == 0 || strcmp(s, "slurm") == 0)
			conf_err(p, conf_pos(p, v),
			         "executor %s is not available yet (only \"local\" is)", q);
		else if ((sug = conf_key_suggest(&exs, s, strlen(s))) != NULL)
			conf_err(p, conf_pos(p, v), "unknown executor %s (did you mean \"%s\"?)", q,
			         sug);
		else
			conf_err(p, conf_pos(p, v),
			         "unknown executor %s (only \"local\" is available)", q);
		free(q);
		free(s);
		return;
	}
	case K_ENV: {
		struct fy_node *m = conf_want_map(p, "env", key, v);

		if (m != NULL) {
			struct env_arg *ea = xcalloc(1, sizeof(*ea));

			conf_map_walk(p, m, env_pair, ea);
			env_merge(p, &j->env, ea);
			free(ea);
		}
		return;
	}
	case K_WORKDIR: {
		int depth = 0;
		bool bad = false;

		if ((s = conf_get_str(p, "workdir", v, at)) == NULL)
			return;
		if (conf_blank(s)) {
			conf_err(p, conf_pos(p, v), "\"workdir\" is only whitespace");
			free(s);
			return;
		}
		if (s[0] == '/') {
			conf_err(p, conf_pos(p, v),
			         "\"workdir\" must be relative to the repository, not absolute");
			free(s);
			return;
		}
		for (const char *c = s; *c != '\0' && !bad;) {
			size_t n = strcspn(c, "/");

			if (n == 2 && c[0] == '.' && c[1] == '.')
				bad = --depth < 0;
			else if (n > 0 && !(n == 1 && c[0] == '.'))
				depth++;
			c += n;
			while (*c == '/')
				c++;
		}
		if (bad) {
			conf_err(
			        p, conf_pos(p, v),
			        "\"workdir\" must stay inside the repository (it climbs out with \"..\")");
			free(s);
			return;
		}
		free(j->workdir);
		j->workdir = s;
		return;
	}
	case K_NOTIFY: {
		struct fy_node *m = conf_want_map(p, "notify", key, v);
		struct conf_generic_arg g = { &conf_sec_notify, &j->notify, notify_special, jb };

		if (m != NULL)
			conf_map_walk(p, m, conf_generic_pair, &g);
		return;
	}
	default:
		conf_set_generic(p, ck, v, at, j);
		return;
	}
}

static bool
job_name_ok(const char *k, size_t n)
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

struct conf_jobs_arg {
	const struct jobb *dflt;
	struct conf_job *jobs;
	size_t n, cap;
	bool too_many;
};

static void
conf_jobs_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
               void *arg)
{
	struct conf_jobs_arg *ja = arg;
	struct diag_pos at = conf_pos(p, key);
	struct jobb jb;
	struct conf_job_arg jarg = { &jb, false };
	struct fy_node *m;
	size_t before = conf_nerrors(p);
	char *q;

	if (ja->too_many || p->halted)
		return;
	if (ja->n == CONF_MAX_JOBS) {
		conf_err(p, at, "more than %d jobs", CONF_MAX_JOBS);
		ja->too_many = true;
		return;
	}
	if (!job_name_ok(k, klen)) {
		q = conf_quote(k, klen);
		conf_err(
		        p, at,
		        "bad job name %s: use at most %d lowercase letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit",
		        q, CONF_JOB_NAME_MAX);
		free(q);
	}
	if (v != NULL && (v = conf_deref(p, v)) == NULL)
		return;
	if (v == NULL || !fy_node_is_mapping(v)) {
		q = conf_quote(k, klen);
		conf_err(p, conf_pos_or(p, v, at),
		         "job %s must be a mapping (schedule, run, ...), not %s", q,
		         conf_node_kind(v));
		free(q);
		return;
	}
	m = v;
	jobb_copy(p, &jb, ja->dflt, at);
	jb.j.name = xstrndup(k, klen);
	jb.j.line = at.line;
	jb.j.col = at.col;
	conf_map_walk(p, m, conf_job_pair, &jarg);
	q = conf_quote(k, klen);
	if (!jb.has_schedule)
		conf_err(p, at, "job %s has no \"schedule\"", q);
	if (jb.run_at.line > 0 && jb.command_at.line > 0) {
		struct diag_pos later = jb.run_at.line > jb.command_at.line ||
		                                        (jb.run_at.line == jb.command_at.line &&
		                                         jb.run_at.col > jb.command_at.col)
		                                ? jb.run_at
		                                : jb.command_at;

		conf_err(p, later, "job %s has both \"run\" and \"command\": keep one", q);
	} else if (jb.run_at.line == 0 && jb.command_at.line == 0) {
		conf_err(
		        p, at,
		        "job %s needs \"run\" (a shell command line) or \"command\" (a list of arguments)",
		        q);
	}
	if (jb.j.memory > p->c->local.memory_budget && jb.j.executor != NULL &&
	    strcmp(jb.j.executor, "local") == 0) {
		char a[32], b[32];

		units_format_size(jb.j.memory, a, sizeof(a));
		units_format_size(p->c->local.memory_budget, b, sizeof(b));
		conf_err(
		        p, jb.memory_at.line > 0 ? jb.memory_at : at,
		        "job %s needs memory %s, more than executors.local.memory_budget (%s): it could never start",
		        q, a, b);
	}
	if (jb.j.notify.email.n > 0 && p->c->mail.smtp == NULL &&
	    !(jb.email_from_defaults && p->defaults_email_reported)) {
		conf_err(p, jb.email_at.line > 0 ? jb.email_at : at,
		         "notify.email needs a \"mail\" section with \"smtp\" to send through");
		if (jb.email_from_defaults)
			p->defaults_email_reported = true;
	}
	free(q);
	if (conf_nerrors(p) != before) {
		conf_job_clear(&jb.j);
		return;
	}
	if (ja->n == ja->cap) {
		ja->cap = ja->cap ? ja->cap * 2 : 16;
		ja->jobs = xreallocarray(ja->jobs, ja->cap, sizeof(*ja->jobs));
	}
	ja->jobs[ja->n++] = jb.j;
}

/* ---- sections ---- */

static void
mail_special(struct pctx *p, const struct conf_key *ck, struct fy_node *key, struct fy_node *v,
             void *arg)
{
	struct conf_mail *m = arg;
	struct diag_pos at = conf_pos(p, key);
	char *s, *q;

	switch (ck->id) {
	case K_SMTP:
		if ((s = conf_get_str(p, "smtp", v, at)) == NULL)
			return;
		if ((strncmp(s, "smtp://", 7) != 0 || s[7] == '\0' || s[7] == '/') &&
		    (strncmp(s, "smtps://", 8) != 0 || s[8] == '\0' || s[8] == '/')) {
			q = conf_quote_redacted(s);
			conf_err(
			        p, conf_pos(p, v),
			        "\"smtp\" must be smtp://HOST[:PORT] or smtps://HOST[:PORT], not %s",
			        q);
			free(q);
			free(s);
			return;
		}
		q = strstr(s, "://") + 3;
		if (memchr(q, '@', strcspn(q, "/?#")) != NULL) {
			/* the value is not echoed: it holds a password or a user name */
			conf_err(
			        p, conf_pos(p, v),
			        "\"smtp\" must not hold a user name or password (USER[:PASSWORD]@): "
			        "set mail.username and mail.password_file instead");
			free(s);
			return;
		}
		free(m->smtp);
		m->smtp = s;
		return;
	case K_FROM:
		if ((s = conf_get_str(p, "from", v, at)) == NULL)
			return;
		if (!conf_email_ok(s)) {
			q = conf_quote_redacted(s);
			conf_err(p, conf_pos(p, v), "%s is not an email address", q);
			free(q);
			free(s);
			return;
		}
		free(m->from);
		m->from = s;
		return;
	case K_ADMIN: {
		struct conf_strv sv = { NULL, 0 };

		if (conf_get_strv(p, "admin", v, at, &sv, true, true) == 0) {
			conf_strv_free(&m->admin);
			m->admin = sv;
		}
		return;
	}
	default:
		assert(0 && "not a special mail key");
	}
}

static void
python_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
            void *arg)
{
	const struct conf_key *ck = conf_key_find(&conf_sec_python, k, klen);
	char *s;

	(void)arg;
	if (ck == NULL) {
		conf_unknown_key(p, &conf_sec_python, key, k, klen, NULL);
		return;
	}
	if ((s = conf_get_str(p, ck->name, conf_deref(p, v), conf_pos(p, key))) == NULL)
		return;
	if (conf_blank(s)) {
		conf_err(p, conf_pos(p, v), "\"%s\" is only whitespace", ck->name);
		free(s);
		return;
	}
	if (ck->id == K_REQUIREMENTS) {
		free(p->py_requirements);
		p->py_requirements = s;
	} else {
		free(p->py_interpreter);
		p->py_interpreter = s;
	}
}

static void
executors_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
               void *arg)
{
	struct conf_generic_arg g = { &conf_sec_local, &p->c->local, NULL, NULL };
	struct fy_node *m;
	char *q;

	(void)arg;
	if ((klen == 7 && memcmp(k, "droplet", 7) == 0) ||
	    (klen == 5 && memcmp(k, "slurm", 5) == 0)) {
		q = conf_quote(k, klen);
		conf_err(p, conf_pos(p, key),
		         "executor %s is not available yet (only \"local\" is)", q);
		free(q);
		return;
	}
	if (conf_key_find(&conf_sec_executors, k, klen) == NULL) {
		conf_unknown_key(p, &conf_sec_executors, key, k, klen,
		                 " (the executors are: local)");
		return;
	}
	if ((m = conf_want_map(p, "local", key, v)) != NULL)
		conf_map_walk(p, m, conf_generic_pair, &g);
}

/* 80% of the machine's memory: MemTotal from /proc/meminfo, else sysconf. */
static uint64_t
default_memory_budget(void)
{
	uint64_t total = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	if (f != NULL) {
		char line[256]; /* our own file's lines, not user input */
		unsigned long long kb;

		while (fgets(line, sizeof(line), f) != NULL) {
			if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
				total = (uint64_t)kb * 1024;
				break;
			}
		}
		fclose(f);
	}
	if (total == 0) {
		long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);

		if (pages > 0 && psz > 0)
			total = (uint64_t)pages * (uint64_t)psz;
	}
	if (total == 0)
		total = UINT64_C(1) << 30;
	return total / 10 * 8;
}

struct top {
	struct fy_node *key[K_JOBS + 1];
	struct fy_node *val[K_JOBS + 1];
};

static void
top_pair(struct pctx *p, struct fy_node *key, const char *k, size_t klen, struct fy_node *v,
         void *arg)
{
	struct top *t = arg;
	const struct conf_key *ck = conf_key_find(&conf_sec_top, k, klen);

	if (ck == NULL && klen > 2 && memcmp(k, "x-", 2) == 0)
		return; /* an extension key, a place for anchors */
	if (ck == NULL) {
		conf_unknown_key(p, &conf_sec_top, key, k, klen, NULL);
		return;
	}
	t->key[ck->id] = key;
	t->val[ck->id] = v;
}

static int
job_cmp(const void *a, const void *b)
{
	const struct conf_job *x = a, *y = b;

	return strcmp(x->name, y->name);
}

void
conf_source_defaults(struct conf_source *s)
{
	memset(s, 0, sizeof(*s));
	s->refresh = 30;
	s->on_fetch_error = CONF_FETCH_USE_LAST;
	s->fetch_timeout = 120;
	s->keep_worktrees = 5;
}

static void
conf_init_defaults(struct conf *c)
{
	conf_source_defaults(&c->source);
	c->mail.starttls = true;
	c->mail.max_age = 24 * 3600;
	c->mail.source_alarm = 3600;
	c->mail.timeout = 60;
	c->retention.days = 30;
	c->retention.runs_per_job = 1000;
	c->max_parallel = 0;
}

/* Walks the document's root into P->c. */
static void
conf_walk(struct pctx *p, struct fy_node *root)
{
	struct conf *c = p->c;
	struct top t;
	struct jobb dflt;
	struct conf_jobs_arg ja;
	struct fy_node *m;
	struct diag_pos file_at = { p->file, 0, 0 };
	bool memory_budget_set;

	memset(&t, 0, sizeof(t));
	memset(&dflt, 0, sizeof(dflt));
	memset(&ja, 0, sizeof(ja));
	conf_map_walk(p, root, top_pair, &t);

	if (t.key[K_SOURCE] != NULL &&
	    (m = conf_want_map(p, "source", t.key[K_SOURCE], t.val[K_SOURCE])) != NULL) {
		struct conf_generic_arg g = { &conf_sec_source, &c->source, NULL, NULL };

		conf_map_walk(p, m, conf_generic_pair, &g);
	}
	if (t.key[K_PYTHON] != NULL &&
	    (m = conf_want_map(p, "python", t.key[K_PYTHON], t.val[K_PYTHON])) != NULL)
		conf_map_walk(p, m, python_pair, NULL);
	c->local.memory_budget = 0;
	if (t.key[K_EXECUTORS] != NULL &&
	    (m = conf_want_map(p, "executors", t.key[K_EXECUTORS], t.val[K_EXECUTORS])) != NULL)
		conf_map_walk(p, m, executors_pair, NULL);
	memory_budget_set = c->local.memory_budget != 0;
	if (!memory_budget_set)
		c->local.memory_budget = default_memory_budget();
	if (t.key[K_RETENTION] != NULL &&
	    (m = conf_want_map(p, "retention", t.key[K_RETENTION], t.val[K_RETENTION])) != NULL) {
		struct conf_generic_arg g = { &conf_sec_retention, &c->retention, NULL, NULL };

		conf_map_walk(p, m, conf_generic_pair, &g);
	}
	if (t.key[K_MAX_PARALLEL] != NULL) {
		const struct conf_key *ck = conf_key_find(&conf_sec_top, "max_parallel", 12);

		conf_set_generic(p, ck, conf_deref(p, t.val[K_MAX_PARALLEL]),
		                 conf_pos(p, t.key[K_MAX_PARALLEL]), c);
	}
	if (t.key[K_MAIL] != NULL &&
	    (m = conf_want_map(p, "mail", t.key[K_MAIL], t.val[K_MAIL])) != NULL) {
		struct conf_generic_arg g = { &conf_sec_mail, &c->mail, mail_special, &c->mail };
		struct diag_pos at = conf_pos(p, t.key[K_MAIL]);

		conf_map_walk(p, m, conf_generic_pair, &g);
		if (c->mail.smtp == NULL)
			conf_err(p, at, "\"mail\" needs \"smtp\", the server to send through");
		else if (c->mail.from == NULL)
			conf_err(p, at, "\"mail\" needs \"from\", the sender address");
		if (c->mail.password_file != NULL && c->mail.password_env != NULL)
			conf_err(
			        p, at,
			        "\"mail\" has both \"password_file\" and \"password_env\": keep one");
		if (c->mail.username != NULL && c->mail.password_file == NULL &&
		    c->mail.password_env == NULL)
			conf_err(
			        p, at,
			        "\"mail\" has a \"username\" but no \"password_file\" or \"password_env\"");
	}

	/* every job starts from these, then the defaults section, then its own keys */
	dflt.j.kill_grace = 10;
	dflt.j.executor = xstrdup("local");
	dflt.j.retry_backoff = 30;
	dflt.j.concurrency = CONF_CONC_FORBID;
	dflt.j.catchup = CONF_CATCHUP_LATEST;
	dflt.j.starting_deadline = 3600;
	dflt.j.notify.on = CONF_NOTIFY_FAILURE;
	dflt.j.interpreter = xstrdup(p->py_interpreter != NULL ? p->py_interpreter : "python3");
	dflt.j.requirements = p->py_requirements != NULL ? xstrdup(p->py_requirements) : NULL;
	if (t.key[K_DEFAULTS] != NULL &&
	    (m = conf_want_map(p, "defaults", t.key[K_DEFAULTS], t.val[K_DEFAULTS])) != NULL) {
		struct conf_job_arg jarg = { &dflt, true };

		conf_map_walk(p, m, conf_job_pair, &jarg);
	}
	ja.dflt = &dflt;
	if (t.key[K_JOBS] == NULL) {
		conf_err(p, file_at, "no jobs: the file needs a \"jobs\" mapping");
	} else if ((m = conf_want_map(p, "jobs", t.key[K_JOBS], t.val[K_JOBS])) != NULL) {
		if (fy_node_mapping_item_count(m) == 0)
			conf_err(p, conf_pos(p, t.key[K_JOBS]), "no jobs: \"jobs\" is empty");
		else
			conf_map_walk(p, m, conf_jobs_pair, &ja);
	}
	conf_job_clear(&dflt.j);
	c->jobs = ja.jobs;
	c->njobs = ja.n;
	if (c->njobs > 1)
		qsort(c->jobs, c->njobs, sizeof(*c->jobs), job_cmp);
}

/* The machine's zone, for the jobs that name none. */
static void
conf_local_zone(struct pctx *p)
{
	struct conf *c = p->c;
	struct tz *z;
	int rc;

	rc = tz_load_local(&z);
	if (rc < 0) {
		for (size_t i = 0; i < c->njobs; i++) {
			if (c->jobs[i].tz == NULL) {
				conf_err(
				        p, (struct diag_pos){ NULL, 0, 0 },
				        "cannot load the machine's time zone (%s); give each job a \"timezone\"",
				        strerror(-rc));
				break;
			}
		}
		return;
	}
	c->zones = xreallocarray(c->zones, c->nzones + 1, sizeof(*c->zones));
	p->zone_names = xreallocarray(p->zone_names, c->nzones + 1, sizeof(*p->zone_names));
	c->zones[c->nzones] = z;
	p->zone_names[c->nzones] = NULL;
	c->nzones++;
	c->local_tz = z;
	for (size_t i = 0; i < c->njobs; i++)
		if (c->jobs[i].tz == NULL)
			c->jobs[i].tz = z;
}

/* ---- the YAML text ---- */

/* The offset of the first byte that is not valid UTF-8 (or is NUL) in TEXT, or LEN. */
static size_t
utf8_check(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c == 0)
			return i;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return i;
		}
		if (len - i <= n)
			return i;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			return i;
		i += n + 1;
	}
	return len;
}

/* Line and column (1-based, in characters) of byte OFF of TEXT. */
static struct diag_pos
text_pos(const char *file, const char *text, size_t off)
{
	struct diag_pos at = { file, 1, 1 };

	for (size_t i = 0; i < off; i++) {
		if (text[i] == '\n') {
			at.line++;
			at.col = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			at.col++;
		}
	}
	return at;
}

static void
fy_silent(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
	(void)diag;
	(void)user;
	(void)buf;
	(void)len;
}

/* Moves libfyaml's collected errors into D, in our format. Returns how many. */
static size_t
fy_errors_to_diag(struct pctx *p, struct fy_diag *fd)
{
	struct fy_diag_error *e;
	void *it = NULL;
	size_t n = 0;

	while ((e = fy_diag_errors_iterate(fd, &it)) != NULL) {
		struct diag_pos at = { p->file, e->line > 0 ? e->line : 0,
			               e->column > 0 ? e->column : 0 };

		if (e->type < FYET_ERROR)
			continue;
		conf_err(p, at, "%s", e->msg);
		n++;
	}
	return n;
}

/* ---- duplicate keys ----
 *
 * libfyaml's own check compares each new key with every earlier one of its mapping
 * (quadratic: 1.6 s of CPU for 10,000 jobs), so the document is built with it off and
 * checked here: each mapping's plain keys sorted, equal neighbours reported. */

/* A scalar key of a mapping, and its place there. */
struct keyref {
	const char *s;
	size_t len;
	size_t idx;
	struct fy_node *key;
};

static int
keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	int c;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	c = memcmp(x->s, y->s, x->len);
	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void
dup_report(struct pctx *p, struct fy_node *key, struct fy_node *val, struct fy_node *m)
{
	char *q;

	if (key != NULL && fy_node_is_scalar(key) && !fy_node_is_alias(key)) {
		size_t len;
		const char *s = fy_node_get_scalar(key, &len);

		q = conf_quote(s != NULL ? s : "", s != NULL ? len : 0);
	} else {
		char *t = key != NULL ? fy_emit_node_to_string(key, FYECF_MODE_FLOW_ONELINE) : NULL;

		q = conf_quote(t != NULL ? t : "", t != NULL ? strlen(t) : 0);
		free(t);
	}
	conf_err(p, conf_pos_or(p, key, conf_pos_or(p, val, conf_pos(p, m))), "duplicate key %s",
	         q);
	free(q);
}

/* A byte string with its length (keys may hold NUL through escapes). */
struct bytes {
	char *s;
	size_t len;
	size_t idx;
};

static int
bytes_cmp(const void *a, const void *b)
{
	const struct bytes *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Appends LEN bytes to B within the budget of canonical forms; false (reported once, and
 * the walk halts) past it. */
static bool
canon_put(struct pctx *p, struct buf *b, const void *s, size_t len, struct fy_node *n)
{
	if (len <= p->canon_left) {
		p->canon_left -= len;
		if (buf_append(b, s, len) == 0)
			return true;
	}
	if (!p->halted)
		conf_err(
		        p, conf_pos(p, n),
		        "keys that are lists or mappings are too large to compare (more than %u MiB)",
		        CONF_KEYS_CANON_MAX >> 20);
	p->canon_left = 0;
	p->halted = true;
	return false;
}

static bool key_canon(struct pctx *p, struct buf *b, struct fy_node *n);

/* The canonical form of mapping M: its pairs' forms, sorted, so that order does not count. */
static bool
map_canon(struct pctx *p, struct buf *b, struct fy_node *m)
{
	size_t n = (size_t)fy_node_mapping_item_count(m), i = 0;
	struct bytes *pairs = xcalloc(n + 1, sizeof(*pairs));
	struct fy_node_pair *pr;
	void *it = NULL;
	bool ok = canon_put(p, b, "{", 1, m);

	while (ok && (pr = fy_node_mapping_iterate(m, &it)) != NULL && i < n) {
		struct buf pb;

		buf_init(&pb, BUF_MAX_UNLIMITED);
		ok = key_canon(p, &pb, fy_node_pair_key(pr)) &&
		     key_canon(p, &pb, fy_node_pair_value(pr));
		pairs[i].len = pb.len;
		pairs[i].s = buf_steal(&pb);
		buf_free(&pb);
		i++;
	}
	qsort(pairs, i, sizeof(*pairs), bytes_cmp);
	for (size_t k = 0; k < i; k++) {
		ok = ok && canon_put(p, b, pairs[k].s, pairs[k].len, m);
		free(pairs[k].s);
	}
	free(pairs);
	return ok && canon_put(p, b, "}", 1, m);
}

/* Appends the canonical form of key N to B: equal forms for equal keys, as libfyaml's
 * node equality had it (a scalar by its text, whatever its style; an empty one as no key;
 * an alias by its name; a list in order; a mapping in any order). Aliases are not followed,
 * and libfyaml's depth limit bounds the recursion. */
static bool
key_canon(struct pctx *p, struct buf *b, struct fy_node *n)
{
	const char *s = NULL;
	size_t len = 0;
	char head[32];
	bool ok;

	if (n != NULL && fy_node_is_scalar(n))
		s = fy_node_get_scalar(n, &len);
	if (n == NULL || (fy_node_is_scalar(n) && (s == NULL || len == 0)))
		return canon_put(p, b, "~", 1, n);
	if (fy_node_is_scalar(n)) {
		snprintf(head, sizeof(head), "%c%zu:", fy_node_is_alias(n) ? '*' : 's', len);
		return canon_put(p, b, head, strlen(head), n) && canon_put(p, b, s, len, n);
	}
	if (fy_node_is_mapping(n))
		return map_canon(p, b, n);
	ok = canon_put(p, b, "[", 1, n);
	{
		struct fy_node *item;
		void *it = NULL;

		while (ok && (item = fy_node_sequence_iterate(n, &it)) != NULL)
			ok = key_canon(p, b, item);
	}
	return ok && canon_put(p, b, "]", 1, n);
}

/* Reports each of the N keys of OTHER (pairs of mapping M, in order) equal to an earlier
 * one, by sorting their canonical forms. */
static void
dup_keys_other(struct pctx *p, struct fy_node *m, struct fy_node_pair **other, size_t n)
{
	struct bytes *cs = xcalloc(n, sizeof(*cs));
	size_t i, nc = 0;

	for (i = 0; i < n; i++) {
		struct buf b;

		buf_init(&b, BUF_MAX_UNLIMITED);
		if (!key_canon(p, &b, fy_node_pair_key(other[i]))) {
			buf_free(&b);
			break;
		}
		cs[nc].len = b.len;
		cs[nc].s = buf_steal(&b);
		cs[nc].idx = i;
		nc++;
		buf_free(&b);
	}
	if (i == n) {
		qsort(cs, nc, sizeof(*cs), bytes_cmp);
		for (i = 1; i < nc; i++)
			if (cs[i].len == cs[i - 1].len &&
			    memcmp(cs[i].s, cs[i - 1].s, cs[i].len) == 0)
				dup_report(p, fy_node_pair_key(other[cs[i].idx]),
				           fy_node_pair_value(other[cs[i].idx]), m);
	}
	for (i = 0; i < nc; i++)
		free(cs[i].s);
	free(cs);
}

/* Reports every key of mapping M equal to an earlier key of M. Plain scalar keys (nearly
 * all) are sorted as they are; the others (collections, aliases, empty keys) are sorted by
 * their canonical forms (key_canon): no key is compared with every other. */
static void
dup_keys_map(struct pctx *p, struct fy_node *m)
{
	size_t n = (size_t)fy_node_mapping_item_count(m), ns = 0, no = 0;
	struct keyref *ks;
	struct fy_node_pair **other, *pr;
	void *it = NULL;

	if (n < 2)
		return;
	ks = xreallocarray(NULL, n, sizeof(*ks));
	other = xreallocarray(NULL, n, sizeof(*other));
	for (size_t i = 0; (pr = fy_node_mapping_iterate(m, &it)) != NULL && i < n; i++) {
		struct fy_node *k = fy_node_pair_key(pr);
		const char *s;
		size_t len;

		if (k != NULL && fy_node_is_scalar(k) && !fy_node_is_alias(k) &&
		    (s = fy_node_get_scalar(k, &len)) != NULL)
			ks[ns++] = (struct keyref){ s, len, i, k };
		else
			other[no++] = pr;
	}
	qsort(ks, ns, sizeof(*ks), keyref_cmp);
	for (size_t i = 1; i < ns; i++)
		if (ks[i].len == ks[i - 1].len && memcmp(ks[i].s, ks[i - 1].s, ks[i].len) == 0)
			dup_report(p, ks[i].key, NULL, m);
	if (no >= 2)
		dup_keys_other(p, m, other, no);
	free(ks);
	free(other);
}

/* Checks every mapping under N (aliases are not followed: what they lead to is checked
 * where it stands). libfyaml's depth limit bounds the recursion. */
static void
conf_dup_keys(struct pctx *p, struct fy_node *n)
{
	struct fy_node_pair *pr;
	struct fy_node *item;
	void *it = NULL;

	if (n == NULL || fy_node_is_scalar(n) || p->halted)
		return;
	if (fy_node_is_sequence(n)) {
		while ((item = fy_node_sequence_iterate(n, &it)) != NULL)
			conf_dup_keys(p, item);
		return;
	}
	dup_keys_map(p, n);
	while ((pr = fy_node_mapping_iterate(n, &it)) != NULL) {
		conf_dup_keys(p, fy_node_pair_key(pr));
		conf_dup_keys(p, fy_node_pair_value(pr));
	}
}

static int
conf_parse(struct pctx *p, const char *text, size_t len)
{
	struct fy_diag_cfg dc;
	struct fy_diag *fd;
	struct fy_parser *fyp = NULL;
	struct fy_document *doc = NULL, *doc2;
	struct fy_parse_cfg pc;
	struct fy_node *root;
	size_t bad = utf8_check((const unsigned char *)text, len);

	if (bad < len) {
		if (text[bad] == '\0')
			conf_err(p, text_pos(p->file, text, bad),
			         "contains a NUL byte: a jobs file is text");
		else
			conf_err(p, text_pos(p->file, text, bad),
			         "not valid UTF-8 (byte 0x%02x): a jobs file must be UTF-8",
			         (unsigned char)text[bad]);
		return -EINVAL;
	}
	fy_diag_cfg_default(&dc);
	dc.fp = NULL;
	dc.output_fn = fy_silent;
	dc.colorize = false;
	fd = fy_diag_create(&dc);
	if (fd == NULL)
		abort(); /* only fails on allocation */
	fy_diag_set_collect_errors(fd, true);
	memset(&pc, 0, sizeof(pc));
	pc.flags = FYPCF_QUIET | FYPCF_JSON_NONE | FYPCF_ALLOW_DUPLICATE_KEYS; /* conf_dup_keys */
	pc.diag = fd;
	fyp = fy_parser_create(&pc);
	if (fyp == NULL)
		abort();
	if (fy_parser_set_string(fyp, text, len) != 0) {
		conf_err(p, (struct diag_pos){ p->file, 0, 0 }, "cannot parse");
		goto out;
	}
	doc = fy_parse_load_document(fyp);
	if (fy_errors_to_diag(p, fd) > 0 || doc == NULL) {
		if (conf_nerrors(p) == 0)
			conf_err(p, (struct diag_pos){ p->file, 0, 0 },
			         "no jobs: the file is empty");
		goto out;
	}
	root = fy_document_root(doc);
	doc2 = fy_parse_load_document(fyp);
	if (doc2 != NULL) {
		struct fy_node *r2 = fy_document_root(doc2);
		const struct fy_mark *m2 =
		        fy_document_state_start_mark(fy_document_get_document_state(doc2));
		struct diag_pos at2 = { p->file, 0, 0 };

		/* an empty one (a trailing "---") has no node: its start stands for it */
		if (m2 != NULL)
			at2 = (struct diag_pos){ p->file, m2->line + 1, m2->column + 1 };
		conf_err(p, conf_pos_or(p, r2, at2),
		         "a second YAML document: the jobs file holds one");
		fy_parse_document_destroy(fyp, doc2);
		goto out;
	}
	if (fy_errors_to_diag(p, fd) > 0)
		goto out;
	conf_dup_keys(p, root);
	if (conf_nerrors(p) != 0)
		goto out; /* as when libfyaml rejected them: the rest would mislead */
	if (root == NULL) {
		conf_err(p, (struct diag_pos){ p->file, 0, 0 }, "no jobs: the file is empty");
		goto out;
	}
	root = conf_deref(p, root);
	if (root == NULL)
		goto out;
	if (!fy_node_is_mapping(root)) {
		struct diag_pos at = conf_pos(p, root);

		if (at.line == 0)
			at = (struct diag_pos){ p->file, 1, 1 };
		conf_err(p, at,
		         "the top level must be a mapping (source, defaults, jobs, ...), not %s",
		         conf_node_kind(root));
		goto out;
	}
	conf_walk(p, root);
	if (conf_nerrors(p) == 0)
		conf_local_zone(p);
out:
	if (doc != NULL)
		fy_parse_document_destroy(fyp, doc);
	fy_parser_destroy(fyp);
	fy_diag_destroy(fd);
	return conf_nerrors(p) == 0 ? 0 : -EINVAL;
}

/* ---- public ---- */

int
conf_load_mem(const char *name, const char *dir, const char *text, size_t len, struct conf **out,
              struct diag *d)
{
	struct pctx p;
	struct conf *c;
	int rc;

	*out = NULL;
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(name);
	if (dir != NULL) {
		c->dir = xstrdup(dir);
	} else {
		c->dir = getcwd(NULL, 0);
		if (c->dir == NULL)
			c->dir = xstrdup("/");
	}
	conf_init_defaults(c);
	memset(&p, 0, sizeof(p));
	p.file = name;
	p.d = d;
	p.c = c;
	p.expand_max = CONF_EXPAND_MAX + CONF_VISIT_COST / 2 * len;
	p.expand_left = p.expand_max;
	p.canon_left = CONF_KEYS_CANON_MAX;
	if (len > BUF_MAX_CONF) {
		diag_error(d, (struct diag_pos){ name, 0, 0 },
		           "too large: a jobs file may have at most %u MiB", BUF_MAX_CONF >> 20);
		rc = -EINVAL;
	} else {
		rc = conf_parse(&p, text, len);
	}
	for (size_t i = 0; i < c->nzones; i++)
		free(p.zone_names[i]);
	free(p.zone_names);
	free(p.py_requirements);
	free(p.py_interpreter);
	for (size_t i = 0; i < p.nseen; i++)
		free(p.seen[i]);
	if (rc < 0) {
		conf_free(c);
		return rc;
	}
	conf_compact(c); /* once the document is gone: a lower peak */
	*out = c;
	return 0;
}

/* The absolute directory of PATH. Caller frees. */
static char *
abs_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir, *real, *cwd, *r;

	if (slash == NULL)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, (size_t)(slash - path));
	real = realpath(dir, NULL);
	if (real != NULL) {
		free(dir);
		return real;
	}
	if (dir[0] == '/')
		return dir;
	cwd = getcwd(NULL, 0);
	r = xasprintf("%s/%s", cwd != NULL ? cwd : "", dir);
	free(cwd);
	free(dir);
	return r;
}

int
conf_load(const char *path, struct conf **out, struct diag *d)
{
	struct diag_pos at = { path, 0, 0 };
	struct stat st;
	struct buf b;
	char *dir, chunk[65536];
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		diag_error(d, at, "cannot read: %s", strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		diag_error(d, at, "cannot read: %s", strerror(-rc));
		close(fd);
		return rc;
	}
	if (S_ISDIR(st.st_mode)) {
		diag_error(d, at, "cannot read: %s", strerror(EISDIR));
		close(fd);
		return -EISDIR;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > BUF_MAX_CONF) {
		char got[32];

		units_format_size((uint64_t)st.st_size, got, sizeof(got));
		diag_error(d, at, "too large (%s): a jobs file may have at most %u MiB", got,
		           BUF_MAX_CONF >> 20);
		close(fd);
		return -EFBIG;
	}
	buf_init(&b, BUF_MAX_CONF);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			diag_error(d, at, "cannot read: %s", strerror(-rc));
			break;
		}
		if (n == 0)
			break;
		if (buf_append(&b, chunk, (size_t)n) < 0) {
			diag_error(d, at, "too large: a jobs file may have at most %u MiB",
			           BUF_MAX_CONF >> 20);
			rc = -EFBIG;
			break;
		}
	}
	close(fd);
	if (rc == 0) {
		dir = abs_dir(path);
		rc = conf_load_mem(path, dir, b.len > 0 ? b.data : "", b.len, out, d);
		free(dir);
	}
	buf_free(&b);
	return rc;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->dir);
	free(c->source.repo);
	free(c->source.branch);
	free(c->source.commit);
	free(c->mail.smtp);
	free(c->mail.from);
	free(c->mail.username);
	free(c->mail.password_file);
	free(c->mail.password_env);
	free(c->mail.ca_file);
	conf_strv_free(&c->mail.admin);
	if (c->pool == NULL) { /* not compacted: each job owns its own */
		for (size_t i = 0; i < c->njobs; i++)
			conf_job_clear(&c->jobs[i]);
	}
	for (size_t i = 0; i < c->ncrons; i++)
		cronexpr_free(c->crons[i]);
	free(c->crons);
	conf_pool_free(c->pool);
	free(c->jobs);
	for (size_t i = 0; i < c->nzones; i++)
		tz_free(c->zones[i]);
	free(c->zones);
	free(c);
}

static int
job_key_cmp(const void *key, const void *elem)
{
	const struct conf_job *j = elem;

	return strcmp(key, j->name);
}

const struct conf_job *
conf_job_find(const struct conf *c, const char *name)
{
	if (c == NULL || c->njobs == 0)
		return NULL;
	return bsearch(name, c->jobs, c->njobs, sizeof(*c->jobs), job_key_cmp);
}
