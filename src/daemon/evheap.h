/* src/daemon/evheap.h: a binary min-heap of timed events (job fires, delayed starts, retries),
 * keyed by (time, sequence number) so that events due at the same instant come out in the
 * order they were pushed. Nodes are embedded in their owners; the heap holds pointers. */
#ifndef EPH_DAEMON_EVHEAP_H
#define EPH_DAEMON_EVHEAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evheap_node {
	int64_t at;   /* UTC milliseconds */
	uint64_t seq; /* set by evheap_push */
	size_t idx;   /* position in the heap; SIZE_MAX when not in it */
	int kind;     /* the owner's tag */
};

struct evheap {
	struct evheap_node **v;
	size_t n, cap;
	uint64_t seq;
};

void evheap_init(struct evheap *h);
void evheap_free(struct evheap *h); /* the storage; the nodes belong to their owners */
/* Marks N as in no heap (call once when embedding it). */
void evheap_node_init(struct evheap_node *n, int kind);
bool evheap_contains(const struct evheap_node *n);
/* Inserts N (not in the heap) at time AT. */
void evheap_push(struct evheap *h, struct evheap_node *n, int64_t at);
/* The earliest node, or NULL when empty. */
struct evheap_node *evheap_top(const struct evheap *h);
/* Removes and returns the earliest node, or NULL when empty. */
struct evheap_node *evheap_pop(struct evheap *h);
/* Removes N if it is in the heap. */
void evheap_remove(struct evheap *h, struct evheap_node *n);

#endif
