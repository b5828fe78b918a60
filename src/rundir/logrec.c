/* src/rundir/logrec.c: output.log's reader: records, and the one rule for other lines. */
#include "rundir/logrec.h"

#include <errno.h>
#include <string.h>

#include "util/utf8.h"

/* Whether P[0..LOGREC_TS_LEN) is "DDDD-DD-DDTDD:DD:DD.DDDZ" (D a digit). */
static bool
is_timestamp(const char *p)
{
	static const char form[] = "0000-00-00T00:00:00.000Z";

	for (size_t i = 0; i < LOGREC_TS_LEN; i++) {
		if (form[i] == '0' ? (p[i] < '0' || p[i] > '9') : p[i] != form[i])
			return false;
	}
	return true;
}

int
logrec_parse(const char *line, size_t n, struct logrec *r)
{
	const char *tag = line + LOGREC_TS_LEN + 1, *end = line + n, *sp;
	size_t tlen;

	if (n < LOGREC_TS_LEN + 1 + 3 + 1 || !is_timestamp(line) || line[LOGREC_TS_LEN] != ' ')
		return -EINVAL;
	sp = memchr(tag, ' ', (size_t)(end - tag));
	if (sp == NULL)
		return -EINVAL;
	tlen = (size_t)(sp - tag);
	if (tlen != 3 && !(tlen == 4 && tag[3] == '+'))
		return -EINVAL;
	if (memcmp(tag, "out", 3) == 0)
		r->stream = LOGREC_OUT;
	else if (memcmp(tag, "err", 3) == 0)
		r->stream = LOGREC_ERR;
	else
		return -EINVAL;
	r->more = tlen == 4;
	r->ts = line;
	r->text = sp + 1;
	r->len = (size_t)(end - r->text);
	for (size_t i = 0; i < r->len; i++) {
		unsigned char c = (unsigned char)r->text[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EINVAL;
	}
	return utf8_valid(r->text, r->len) ? 0 : -EINVAL;
}

int
logrec_foreach(const char *data, size_t len, logrec_fn fn, void *arg, size_t *consumed,
               size_t *skipped)
{
	size_t off = 0;
	int rc = 0;

	while (off < len) {
		const char *nl = memchr(data + off, '\n', len - off);
		struct logrec r;
		size_t n;

		if (nl == NULL)
			break;
		n = (size_t)(nl - (data + off));
		if (logrec_parse(data + off, n, &r) == 0)
			rc = fn(&r, arg);
		else if (skipped != NULL)
			(*skipped)++;
		off += n + 1;
		if (rc != 0)
			break;
	}
	if (consumed != NULL)
		*consumed = off;
	return rc;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
logrec_unescape(const char *text, size_t n, bool all, char *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (text[i] == '\\' && i + 1 < n && text[i + 1] == '\\') {
			out[k++] = '\\';
			i++;
		} else if (all && text[i] == '\\' && i + 3 < n && text[i + 1] == 'x' &&
		           hexval(text[i + 2]) >= 0 && hexval(text[i + 3]) >= 0) {
			out[k++] = (char)(hexval(text[i + 2]) << 4 | hexval(text[i + 3]));
			i += 3;
		} else {
			out[k++] = text[i];
		}
	}
	return k;
}
