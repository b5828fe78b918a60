/* src/daemon/evheap.c: the daemon's event heap. */
#include "daemon/evheap.h"

#include <stdlib.h>

#include "util/xalloc.h"

static bool
evheap_less(const struct evheap_node *a, const struct evheap_node *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void
evheap_set(struct evheap *h, size_t i, struct evheap_node *n)
{
	h->v[i] = n;
	n->idx = i;
}

static void
evheap_up(struct evheap *h, size_t i)
{
	struct evheap_node *n = h->v[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!evheap_less(n, h->v[p]))
			break;
		evheap_set(h, i, h->v[p]);
		i = p;
	}
	evheap_set(h, i, n);
}

static void
evheap_down(struct evheap *h, size_t i)
{
	struct evheap_node *n = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && evheap_less(h->v[c + 1], h->v[c]))
			c++;
		if (!evheap_less(h->v[c], n))
			break;
		evheap_set(h, i, h->v[c]);
		i = c;
	}
	evheap_set(h, i, n);
}

void
evheap_init(struct evheap *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
	h->seq = 0;
}

void
evheap_free(struct evheap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->idx = SIZE_MAX;
	free(h->v);
	evheap_init(h);
}

void
evheap_node_init(struct evheap_node *n, int kind)
{
	n->at = 0;
	n->seq = 0;
	n->idx = SIZE_MAX;
	n->kind = kind;
}

bool
evheap_contains(const struct evheap_node *n)
{
	return n->idx != SIZE_MAX;
}

void
evheap_push(struct evheap *h, struct evheap_node *n, int64_t at)
{
	if (h->n == h->cap) {
		h->cap = h->cap == 0 ? 16 : h->cap * 2;
		h->v = xreallocarray(h->v, h->cap, sizeof(*h->v));
	}
	n->at = at;
	n->seq = h->seq++;
	h->v[h->n] = n;
	n->idx = h->n++;
	evheap_up(h, n->idx);
}

struct evheap_node *
evheap_top(const struct evheap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

void
evheap_remove(struct evheap *h, struct evheap_node *n)
{
	size_t i = n->idx;
	struct evheap_node *last;

	if (i == SIZE_MAX)
		return;
	n->idx = SIZE_MAX;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	evheap_set(h, i, last);
	if (i > 0 && evheap_less(last, h->v[(i - 1) / 2]))
		evheap_up(h, i);
	else
		evheap_down(h, i);
}

struct evheap_node *
evheap_pop(struct evheap *h)
{
	struct evheap_node *top = evheap_top(h);

	if (top != NULL)
		evheap_remove(h, top);
	return top;
}
