/* tests/unit/test_outlog.c: output.log records: escaping, splitting, partial lines. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/outlog.h"
#include "util/buf.h"

#define T0 INT64_C(1795604885123) /* 2026-11-25T11:08:05.123Z */

#define ESC(lit) escaped(lit, sizeof(lit) - 1)

static char *
escaped(const void *p, size_t n)
{
	struct buf b;

	buf_init(&b, BUF_MAX_UNLIMITED);
	assert_int_equal(outlog_escape(&b, p, n), 0);
	(void)buf_cstr(&b);
	if (b.data == NULL)
		return calloc(1, 1);
	return buf_steal(&b);
}

static void
valid_utf8_is_copied_and_the_rest_escaped(void **state)
{
	char *s;

	(void)state;
	s = ESC("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\t");
	assert_string_equal(s, "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\t");
	free(s);
	s = ESC("a\\b\x01\x7f\xff\r");
	assert_string_equal(s, "a\\\\b\\x01\\x7f\\xff\\x0d");
	free(s);
	/* overlong, surrogate, above U+10FFFF, truncated: each byte escaped */
	s = ESC("\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x82");
	assert_string_equal(s, "\\xc0\\xaf|\\xed\\xa0\\x80|\\xf4\\x90\\x80\\x80|\\xe2\\x82");
	free(s);
	s = ESC("a\0b");
	assert_string_equal(s, "a\\x00b");
	free(s);
}

static void
incomplete_utf8_tail_is_detected(void **state)
{
	(void)state;
	assert_int_equal(outlog_utf8_tail("ab", 2), 0);
	assert_int_equal(outlog_utf8_tail("a\xe2\x82", 3), 2);
	assert_int_equal(outlog_utf8_tail("a\xe2", 2), 1);
	assert_int_equal(outlog_utf8_tail("a\xe2\x82\xac", 4), 0);
	assert_int_equal(outlog_utf8_tail("a\xf0\x9f\x98", 4), 3);
	assert_int_equal(outlog_utf8_tail("a\xff", 2), 0);
	assert_int_equal(outlog_utf8_tail("\xe0\x80", 2), 0); /* can never be valid */
}

static void
timestamps_are_utc_with_milliseconds(void **state)
{
	char ts[25];

	(void)state;
	outlog_timestamp(T0, ts);
	assert_string_equal(ts, "2026-11-25T11:08:05.123Z");
	outlog_timestamp(INT64_C(1764007200000), ts);
	assert_string_equal(ts, "2025-11-24T18:00:00.000Z");
}

/* An outlog writing into a temporary file; returns what was written. */
struct sink {
	FILE *f;
	struct outlog o;
};

static void
sink_open(struct sink *s)
{
	s->f = tmpfile();
	assert_non_null(s->f);
	outlog_init(&s->o, fileno(s->f));
}

static char *
sink_text(struct sink *s, size_t *len)
{
	long n;
	char *p;

	assert_int_equal(outlog_sync(&s->o), 0);
	n = lseek(fileno(s->f), 0, SEEK_END);
	p = malloc((size_t)n + 1);
	assert_int_equal(pread(fileno(s->f), p, (size_t)n, 0), n);
	p[n] = '\0';
	*len = (size_t)n;
	return p;
}

static void
sink_close(struct sink *s)
{
	outlog_free(&s->o);
	fclose(s->f);
}

static void
complete_lines_become_records_of_their_stream(void **state)
{
	struct sink s;
	size_t n;
	char *t;

	(void)state;
	sink_open(&s);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, "one\ntw", 6, T0, 0), 0);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_ERR, "e\n\n", 3, T0, 0), 0);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, "o\n", 2, T0 + 1, 5), 0);
	t = sink_text(&s, &n);
	assert_string_equal(t, "2026-11-25T11:08:05.123Z out one\n"
	                       "2026-11-25T11:08:05.123Z err e\n"
	                       "2026-11-25T11:08:05.123Z err \n"
	                       "2026-11-25T11:08:05.124Z out two\n");
	free(t);
	sink_close(&s);
}

static void
partial_line_is_flushed_as_a_continuation_after_its_age(void **state)
{
	struct sink s;
	size_t n;
	char *t;

	(void)state;
	sink_open(&s);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_OUT, T0, 0, 1000), -1);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, "wait", 4, T0, 100), 0);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_OUT, T0, 600, 1000), 500);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_OUT, T0 + 1000, 1100, 1000), 0);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, "ing\n", 4, T0 + 2000, 2100), 0);
	t = sink_text(&s, &n);
	assert_string_equal(t, "2026-11-25T11:08:06.123Z out+ wait\n"
	                       "2026-11-25T11:08:07.123Z out ing\n");
	free(t);
	sink_close(&s);
}

static void
partial_flush_keeps_an_incomplete_utf8_sequence_for_later(void **state)
{
	struct sink s;
	size_t n;
	char *t;

	(void)state;
	sink_open(&s);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_ERR, "x\xe2\x82", 3, T0, 0), 0);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_ERR, T0, 1000, 1000), 0);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_ERR, "\xac", 1, T0, 1001), 0);
	/* end of stream: whatever is left goes out */
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_ERR, T0, 1002, 0), 0);
	t = sink_text(&s, &n);
	assert_string_equal(t, "2026-11-25T11:08:05.123Z err+ x\n"
	                       "2026-11-25T11:08:05.123Z err+ \xe2\x82\xac\n");
	free(t);
	sink_close(&s);
}

static void
long_line_is_split_at_the_cap_and_stays_reconstructible(void **state)
{
	size_t total = 3 * OUTLOG_LINE_MAX + 10, n, recs = 0, got = 0;
	char *in = malloc(total + 1), *t, *p;
	struct sink s;

	(void)state;
	memset(in, 'a', total);
	in[total] = '\n';
	sink_open(&s);
	/* fed in odd pieces, as pipes deliver it */
	for (size_t off = 0; off < total + 1; off += 7777) {
		size_t c = total + 1 - off < 7777 ? total + 1 - off : 7777;

		assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, in + off, c, T0, 0), 0);
	}
	t = sink_text(&s, &n);
	for (p = t; p < t + n; recs++) {
		char *nl = strchr(p, '\n');
		const char *tag = p + 25;
		bool cont = strncmp(tag, "out+ ", 5) == 0;
		char *text = p + 25 + (cont ? 5 : 4);

		assert_true(cont || strncmp(tag, "out ", 4) == 0);
		assert_true((size_t)(nl - text) <= OUTLOG_LINE_MAX);
		got += (size_t)(nl - text);
		/* only the last record ends the line */
		assert_int_equal(cont, nl + 1 < t + n);
		p = nl + 1;
	}
	assert_int_equal(recs, 4);
	assert_int_equal(got, total);
	free(t);
	free(in);
	sink_close(&s);
}

static void
split_never_cuts_a_utf8_sequence(void **state)
{
	size_t total = OUTLOG_LINE_MAX + 1, n;
	char *in = malloc(total), *t;
	struct sink s;

	(void)state;
	memset(in, 'a', total);
	/* a 2-byte sequence straddling the cap */
	in[OUTLOG_LINE_MAX - 1] = '\xc3';
	in[OUTLOG_LINE_MAX] = '\xa9';
	sink_open(&s);
	assert_int_equal(outlog_feed(&s.o, OUTLOG_OUT, in, total, T0, 0), 0);
	assert_int_equal(outlog_flush_partial(&s.o, OUTLOG_OUT, T0, 0, 0), 0);
	t = sink_text(&s, &n);
	assert_null(strstr(t, "\\x"));
	assert_non_null(strstr(t, "out+ \xc3\xa9\n"));
	free(t);
	free(in);
	sink_close(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_utf8_is_copied_and_the_rest_escaped),
		cmocka_unit_test(incomplete_utf8_tail_is_detected),
		cmocka_unit_test(timestamps_are_utc_with_milliseconds),
		cmocka_unit_test(complete_lines_become_records_of_their_stream),
		cmocka_unit_test(partial_line_is_flushed_as_a_continuation_after_its_age),
		cmocka_unit_test(partial_flush_keeps_an_incomplete_utf8_sequence_for_later),
		cmocka_unit_test(long_line_is_split_at_the_cap_and_stays_reconstructible),
		cmocka_unit_test(split_never_cuts_a_utf8_sequence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
