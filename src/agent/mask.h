/* src/agent/mask.h: masks a run's secrets in its command's output, before it is stored: each
 * occurrence of a value in the stream is replaced by "***", also when it is split across two
 * reads or across a partial line flushed meanwhile. At each position the longest value that
 * starts there is masked (a value that is a prefix of another masks only what the longer one
 * does not match), and the scan goes on after it (of two overlapping occurrences, the first
 * wins). Bytes that could still begin a value are held back (a carried tail, shorter than the
 * longest value) until the next bytes tell, or the end of the stream. */
#ifndef EPH_AGENT_MASK_H
#define EPH_AGENT_MASK_H
#include <stdbool.h>
#include <stddef.h>

#define MASK_TEXT "***"

/* Where the masked bytes go: N bytes at P, in order. */
typedef void mask_out_fn(void *arg, const char *p, size_t n);

struct mask {
	const char *const *vals; /* borrowed: outlive the mask */
	size_t *lens;
	size_t n, maxlen;
	unsigned char first[32]; /* bitmap of the values' first bytes */
	char *work;              /* the carried tail, then the bytes being scanned */
	size_t tail, cap;
	mask_out_fn *out;
	void *arg;
};

/* Masks the N values VALS (non-empty, NUL-terminated; borrowed) in a stream whose masked bytes
 * go to OUT(ARG, ...). With N 0 every byte goes through at once. */
void mask_init(struct mask *m, const char *const *vals, size_t n, mask_out_fn *out, void *arg);
/* Feeds N bytes of the stream. */
void mask_feed(struct mask *m, const void *p, size_t n);
/* The end of the stream: what was held back goes out (masked where a value is whole). */
void mask_finish(struct mask *m);
/* Bytes held back now. */
size_t mask_held(const struct mask *m);
/* Wipes and frees what M holds (not the values); NULL is fine. */
void mask_free(struct mask *m);

#endif
