/* src/conf/conf_dupkeys.c: duplicate keys, found by sorting each mapping's keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "conf/conf_int.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/xalloc.h"

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

void
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
