/* src/agent/outlog.c: output.log's writer (records, continuation, escaping). */
#include "agent/outlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/utf8.h"
#include "util/xalloc.h"

static const char *const stream_tag[2][2] = {
	{ " out ", " out+ " },
	{ " err ", " err+ " },
};

size_t
outlog_utf8_tail(const void *p, size_t n)
{
	const unsigned char *s = p;

	/* a sequence is at most 4 bytes: its lead is among the last 3 */
	for (size_t k = 1; k <= 3 && k <= n; k++) {
		unsigned char c = s[n - k];

		if ((c & 0xc0) != 0x80) {
			int r = c >= 0x80 ? utf8_seq(s + n - k, k) : 1;

			return r < 0 ? k : 0;
		}
	}
	return 0;
}

static bool
plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

/* Escapes one unit (a plain byte, a UTF-8 sequence, or one byte to escape) of P[0..N) into
 * OUT (room for 4 bytes); returns the bytes written, *ADV the bytes consumed. */
static size_t
esc_unit(const unsigned char *p, size_t n, char *out, size_t *adv)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c = p[0];
	int l;

	*adv = 1;
	if (plain(c) || c == '\t') {
		out[0] = (char)c;
		return 1;
	}
	if (c == '\\') {
		out[0] = '\\';
		out[1] = '\\';
		return 2;
	}
	if (c >= 0x80 && (l = utf8_seq(p, n)) > 0) {
		memcpy(out, p, (size_t)l);
		*adv = (size_t)l;
		return (size_t)l;
	}
	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[c >> 4];
	out[3] = hex[c & 15];
	return 4;
}

int
outlog_escape(struct buf *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	char tmp[4];
	size_t i = 0, adv, w;
	int rc;

	while (i < n) {
		w = esc_unit(s + i, n - i, tmp, &adv);
		if ((rc = buf_append(b, tmp, w)) < 0)
			return rc;
		i += adv;
	}
	return 0;
}

void
outlog_timestamp(int64_t real_ms, char out[25])
{
	time_t t = (time_t)(real_ms / 1000);
	char tmp[96];
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(real_ms % 1000));
	memcpy(out, tmp, 24);
	out[24] = '\0';
}

void
outlog_init(struct outlog *o, int fd)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->wbuf = xmalloc(OUTLOG_WBUF);
}

int
outlog_sync(struct outlog *o)
{
	size_t off = 0;

	while (off < o->wlen && o->err == 0) {
		ssize_t w = write(o->fd, o->wbuf + off, o->wlen - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			o->err = -errno;
			break;
		}
		off += (size_t)w;
	}
	o->wlen = 0;
	return o->err;
}

void
outlog_free(struct outlog *o)
{
	if (o == NULL)
		return;
	if (o->wbuf != NULL)
		(void)outlog_sync(o);
	free(o->wbuf);
	free(o->pend[0].data);
	free(o->pend[1].data);
	memset(o, 0, sizeof(*o));
	o->fd = -1;
}

static void
wput(struct outlog *o, const char *p, size_t n)
{
	while (n > 0) {
		size_t room = OUTLOG_WBUF - o->wlen, c = n < room ? n : room;

		memcpy(o->wbuf + o->wlen, p, c);
		o->wlen += c;
		p += c;
		n -= c;
		if (o->wlen == OUTLOG_WBUF)
			(void)outlog_sync(o);
	}
}

/* One record: timestamp, tag, escaped TEXT[0..N), newline. CONT: no newline followed TEXT. */
static void
emit(struct outlog *o, enum outlog_stream s, const unsigned char *p, size_t n, bool cont,
     int64_t real_ms)
{
	char ts[25];
	size_t i = 0;

	outlog_timestamp(real_ms, ts);
	wput(o, ts, 24);
	wput(o, stream_tag[s][cont], strlen(stream_tag[s][cont]));
	while (i < n) {
		size_t run = 0, adv;

		while (i + run < n && plain(p[i + run]))
			run++;
		if (run > 0) {
			wput(o, (const char *)p + i, run);
			i += run;
			continue;
		}
		if (OUTLOG_WBUF - o->wlen < 4)
			(void)outlog_sync(o);
		o->wlen += esc_unit(p + i, n - i, o->wbuf + o->wlen, &adv);
		i += adv;
	}
	wput(o, "\n", 1);
	o->records++;
}

int
outlog_feed(struct outlog *o, enum outlog_stream s, const void *data, size_t n, int64_t real_ms,
            int64_t mono_ms)
{
	struct outlog_pending *pd = &o->pend[s];
	const unsigned char *p = data;

	while (n > 0) {
		const unsigned char *nl = memchr(p, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - p) : n, c;

		if (pd->len == 0 && nl != NULL && take <= OUTLOG_LINE_MAX) {
			emit(o, s, p, take, false, real_ms);
			p += take + 1;
			n -= take + 1;
			continue;
		}
		if (pd->data == NULL)
			pd->data = xmalloc(OUTLOG_LINE_MAX);
		c = OUTLOG_LINE_MAX - pd->len;
		if (c > take)
			c = take;
		if (pd->len == 0)
			pd->since_ms = mono_ms;
		memcpy(pd->data + pd->len, p, c);
		pd->len += c;
		p += c;
		n -= c;
		if (c == take && nl != NULL) {
			emit(o, s, pd->data, pd->len, false, real_ms);
			pd->len = 0;
			p++;
			n--;
		} else if (pd->len == OUTLOG_LINE_MAX) {
			size_t keep = outlog_utf8_tail(pd->data, pd->len);

			emit(o, s, pd->data, pd->len - keep, true, real_ms);
			memmove(pd->data, pd->data + pd->len - keep, keep);
			pd->len = keep;
			pd->since_ms = mono_ms;
		}
	}
	return outlog_sync(o);
}

int64_t
outlog_flush_partial(struct outlog *o, enum outlog_stream s, int64_t real_ms, int64_t mono_ms,
                     int64_t min_age_ms)
{
	struct outlog_pending *pd = &o->pend[s];
	size_t keep;

	if (pd->len == 0)
		return -1;
	if (mono_ms - pd->since_ms < min_age_ms)
		return min_age_ms - (mono_ms - pd->since_ms);
	keep = min_age_ms > 0 ? outlog_utf8_tail(pd->data, pd->len) : 0;
	if (keep == pd->len) {
		/* only the start of a UTF-8 sequence: wait for the rest, or the end of stream */
		pd->since_ms = mono_ms;
		return min_age_ms;
	}
	emit(o, s, pd->data, pd->len - keep, true, real_ms);
	memmove(pd->data, pd->data + pd->len - keep, keep);
	pd->len = keep;
	pd->since_ms = mono_ms;
	(void)outlog_sync(o);
	return 0;
}
