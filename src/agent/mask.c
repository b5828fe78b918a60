/* src/agent/mask.c: secrets masked in a stream, with a carried tail. */
#include "agent/mask.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

void
mask_init(struct mask *m, const char *const *vals, size_t n, mask_out_fn *out, void *arg)
{
	memset(m, 0, sizeof(*m));
	m->vals = vals;
	m->n = n;
	m->out = out;
	m->arg = arg;
	m->lens = n > 0 ? xcalloc(n, sizeof(*m->lens)) : NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)vals[i][0];

		m->lens[i] = strlen(vals[i]);
		if (m->lens[i] > m->maxlen)
			m->maxlen = m->lens[i];
		m->first[c >> 3] |= (unsigned char)(1u << (c & 7));
	}
}

static void
mask_emit(struct mask *m, const char *p, size_t n)
{
	if (n > 0)
		m->out(m->arg, p, n);
}

/* Scans m->work[0..len): what is decided goes out, what could still begin a value (unless
 * FINAL) stays at the start of m->work as the tail. */
static void
mask_scan(struct mask *m, size_t len, bool final)
{
	const char *b = m->work;
	size_t i = 0, from = 0;

	while (i < len) {
		unsigned char c = (unsigned char)b[i];
		size_t avail = len - i, best = 0;
		bool pending = false;

		if ((m->first[c >> 3] & (1u << (c & 7))) != 0) {
			for (size_t k = 0; k < m->n; k++) {
				size_t l = m->lens[k];

				if (l <= avail) {
					if (l > best && memcmp(b + i, m->vals[k], l) == 0)
						best = l;
				} else if (!final && memcmp(b + i, m->vals[k], avail) == 0) {
					pending = true; /* a longer one may still come whole */
				}
			}
		}
		if (pending)
			break;
		if (best > 0) {
			mask_emit(m, b + from, i - from);
			mask_emit(m, MASK_TEXT, strlen(MASK_TEXT));
			i += best;
			from = i;
		} else {
			i++;
		}
	}
	mask_emit(m, b + from, i - from);
	/* i > len - maxlen here: the tail is shorter than the longest value */
	memmove(m->work, b + i, len - i);
	explicit_bzero(m->work + (len - i), i);
	m->tail = len - i;
}

void
mask_feed(struct mask *m, const void *p, size_t n)
{
	size_t need;

	if (n == 0)
		return;
	if (m->n == 0) {
		mask_emit(m, p, n);
		return;
	}
	need = m->tail + n;
	if (need > m->cap) {
		/* grown by hand, so that no copy of the bytes is left in freed memory */
		char *w = xmalloc(need);

		if (m->work != NULL) {
			memcpy(w, m->work, m->tail);
			explicit_bzero(m->work, m->cap);
			free(m->work);
		}
		m->work = w;
		m->cap = need;
	}
	memcpy(m->work + m->tail, p, n);
	mask_scan(m, need, false);
}

void
mask_finish(struct mask *m)
{
	if (m->tail > 0)
		mask_scan(m, m->tail, true);
}

size_t
mask_held(const struct mask *m)
{
	return m->tail;
}

void
mask_free(struct mask *m)
{
	if (m == NULL)
		return;
	if (m->work != NULL) {
		explicit_bzero(m->work, m->cap);
		free(m->work);
	}
	free(m->lens);
	memset(m, 0, sizeof(*m));
}
