/* src/conf/conf_yaml.c: walking the YAML document: positions, messages (each error once,
 * and a bound on them), the work budget, aliases, and mappings with their merge keys. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "conf/conf_keys.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/redact.h"
#include "util/xalloc.h"

/* ---- positions and messages ---- */

struct diag_pos
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

struct diag_pos
conf_pos_or(const struct pctx *p, struct fy_node *n, struct diag_pos fallback)
{
	struct diag_pos at = conf_pos(p, n);

	return at.line > 0 ? at : fallback;
}

char *
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

char *
conf_quote_redacted(const char *s)
{
	char *clean = redact_url(s), *q = conf_quote(clean, strlen(clean));

	free(clean);
	return q;
}

void
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

size_t
conf_nerrors(const struct pctx *p)
{
	return p->nraised;
}

struct fy_node *
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

const char *
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

bool
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

bool
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

/* ---- mappings, with merge keys ---- */

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

/* The mappings that MERGE, the value of a "<<", brings in (itself, or the items of a list of
 * them), into SRCS; returns how many. */
static size_t
merge_sources(struct pctx *p, struct fy_node *merge, struct fy_node **srcs)
{
	struct fy_node *mv = conf_deref(p, merge), *item;
	void *it = NULL;
	size_t nsrc = 0;

	if (mv == NULL)
		return 0;
	if (fy_node_is_mapping(mv)) {
		srcs[0] = mv;
		return 1;
	}
	if (!fy_node_is_sequence(mv)) {
		conf_err(p, conf_pos(p, merge),
		         "\"<<\" merges a mapping or a list of mappings, not %s",
		         conf_node_kind(mv));
		return 0;
	}
	while ((item = fy_node_sequence_iterate(mv, &it)) != NULL) {
		struct fy_node *iv;

		if (!conf_visit(p, item))
			return 0;
		if ((iv = conf_deref(p, item)) == NULL)
			continue;
		if (!fy_node_is_mapping(iv)) {
			conf_err(p, conf_pos(p, item), "\"<<\" merges mappings, not %s",
			         conf_node_kind(iv));
		} else if (nsrc == CONF_MERGE_MAX) {
			conf_err(p, conf_pos(p, item), "\"<<\" merges at most %d mappings",
			         CONF_MERGE_MAX);
			break;
		} else {
			srcs[nsrc++] = iv;
		}
	}
	return nsrc;
}

/* Calls FN for each key of the NSRC mappings SRCS merged into M that neither M nor an
 * earlier one of SRCS has. */
static void
walk_merged(struct pctx *p, struct fy_node *m, struct fy_node **srcs, size_t nsrc, conf_pair_fn fn,
            void *arg)
{
	struct fy_node_pair *pr;
	const char *k;
	size_t klen;

	for (size_t i = 0; i < nsrc; i++) {
		void *it = NULL;

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

void
conf_map_walk(struct pctx *p, struct fy_node *m, conf_pair_fn fn, void *arg)
{
	struct fy_node *merge = NULL, *srcs[CONF_MERGE_MAX];
	struct fy_node_pair *pr;
	size_t klen;
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
	if (merge != NULL)
		walk_merged(p, m, srcs, merge_sources(p, merge, srcs), fn, arg);
}

void
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

struct fy_node *
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
