/* src/util/diag.c: collected diagnostics. */
#include "util/diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/xalloc.h"

void
diag_init(struct diag *d)
{
	memset(d, 0, sizeof(*d));
	d->max = DIAG_MAX_DEFAULT;
}

void
diag_free(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->items[i].file);
		free(d->items[i].msg);
	}
	free(d->items);
	memset(d, 0, sizeof(*d));
}

void
diag_error(struct diag *d, struct diag_pos at, const char *fmt, ...)
{
	struct diag_item *it;
	va_list ap;

	if (d->n >= d->max) {
		d->dropped++;
		return;
	}
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->items = xreallocarray(d->items, d->cap, sizeof(*d->items));
	}
	it = &d->items[d->n];
	it->file = at.file != NULL ? xstrdup(at.file) : NULL;
	it->line = at.line;
	it->col = at.col;
	it->seq = d->n;
	va_start(ap, fmt);
	if (vasprintf(&it->msg, fmt, ap) < 0)
		it->msg = xstrdup("(message lost: out of memory)");
	va_end(ap);
	d->n++;
}

size_t
diag_nerrors(const struct diag *d)
{
	return d->n + d->dropped;
}

static int
diag_cmp(const void *a, const void *b)
{
	const struct diag_item *x = a, *y = b;
	int c;

	if (x->file != NULL && y->file != NULL) {
		c = strcmp(x->file, y->file);
		if (c != 0)
			return c;
	} else if (x->file != y->file) {
		return x->file == NULL ? -1 : 1;
	}
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

char *
diag_format(const struct diag *d, size_t i)
{
	const struct diag_item *it = &d->items[i];

	if (it->file == NULL)
		return xasprintf("eph: %s", it->msg);
	if (it->line <= 0)
		return xasprintf("%s: %s", it->file, it->msg);
	if (it->col <= 0)
		return xasprintf("%s:%d: %s", it->file, it->line, it->msg);
	return xasprintf("%s:%d:%d: %s", it->file, it->line, it->col, it->msg);
}

void
diag_sort(struct diag *d)
{
	if (d->n > 1)
		qsort(d->items, d->n, sizeof(*d->items), diag_cmp);
}

void
diag_print(struct diag *d, FILE *f)
{
	diag_sort(d);
	for (size_t i = 0; i < d->n; i++) {
		char *s = diag_format(d, i);

		fprintf(f, "%s\n", s);
		free(s);
	}
	if (d->dropped > 0)
		fprintf(f, "eph: %zu more errors not shown\n", d->dropped);
}

char *
diag_joined(const struct diag *d, const char *fallback)
{
	struct buf b;
	char *s;

	buf_init(&b, BUF_MAX_MSG);
	for (size_t k = 0; k < d->n; k++)
		if (buf_printf(&b, "%s%s", k > 0 ? "; " : "", d->items[k].msg) < 0)
			break;
	s = b.len > 0 ? buf_steal(&b) : xstrdup(fallback);
	buf_free(&b);
	return s;
}
