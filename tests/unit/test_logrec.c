/* tests/unit/test_logrec.c: output.log's reader: what is a record, what is skipped, the
 * escapes, and a round trip through the agent's own writer (agent/outlog.h). */
#include <errno.h>
#include <fcntl.h>
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
#include "rundir/logrec.h"
#include "util/buf.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define TS "2026-11-24T18:00:01.123Z"

static int
parse(const char *line, struct logrec *r)
{
	return logrec_parse(line, strlen(line), r);
}

static void
a_record_has_a_timestamp_a_tag_and_a_text(void **state)
{
	struct logrec r;

	(void)state;
	assert_int_equal(parse(TS " out hello world", &r), 0);
	assert_memory_equal(r.ts, TS, LOGREC_TS_LEN);
	assert_int_equal(r.stream, LOGREC_OUT);
	assert_false(r.more);
	assert_int_equal(r.len, 11);
	assert_memory_equal(r.text, "hello world", 11);
	assert_int_equal(parse(TS " err+ h\xc3\xa9\tx ", &r), 0);
	assert_int_equal(r.stream, LOGREC_ERR);
	assert_true(r.more);
	assert_int_equal(r.len, 6);
	/* an empty line, and a text that starts with a space */
	assert_int_equal(parse(TS " out ", &r), 0);
	assert_int_equal(r.len, 0);
	assert_int_equal(parse(TS " out  done", &r), 0);
	assert_int_equal(r.len, 5);
}

static void
anything_else_is_not_a_record(void **state)
{
	static const char *const bad[] = {
		"",
		"hello",
		TS,
		TS " out",                        /* no space after the tag */
		TS " our x",                      /* unknown tag */
		TS " out++ x",                    /* unknown tag */
		TS " outx x",                     /* unknown tag */
		TS "  out x",                     /* two spaces */
		"2026-11-24T18:00:01Z out x",     /* not the agent's timestamp */
		"2026-11-24 18:00:01.123Z out x", /* not the agent's timestamp */
		"2026-1a-24T18:00:01.123Z out x", /* not the agent's timestamp */
		TS " out a\x1b[31mred",           /* a raw control byte */
		TS " out a\rb",                   /* a raw control byte */
		TS " out a\x7f",                  /* DEL */
		TS " out \xff",                   /* invalid UTF-8 */
		TS " err \xe2\x82",               /* truncated UTF-8 */
	};
	struct logrec r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &r), -EINVAL);
	/* a NUL in the middle */
	assert_int_equal(logrec_parse(TS " out a\0b", sizeof(TS " out a\0b") - 1, &r), -EINVAL);
}

struct seen {
	struct buf out; /* "S|M|TEXT\n" per record */
};

static int
collect(const struct logrec *r, void *arg)
{
	struct seen *s = arg;

	assert_int_equal(buf_printf(&s->out, "%c%s|%.*s\n", r->stream == LOGREC_ERR ? 'e' : 'o',
	                            r->more ? "+" : "", (int)r->len, r->text),
	                 0);
	return 0;
}

static int
stop_at_err(const struct logrec *r, void *arg)
{
	(void)arg;
	return r->stream == LOGREC_ERR ? 7 : 0;
}

static void
foreach_skips_and_counts_bad_lines_and_waits_for_the_last(void **state)
{
	const char data[] =
	        TS " out one\n"
	           "garbage\n"
	           "\n" TS " err+ two\n" TS " out three \xff\n" TS " err  four\n" TS " out fi";
	struct seen s;
	size_t used = 0, skipped = 0;

	(void)state;
	buf_init(&s.out, BUF_MAX_UNLIMITED);
	assert_int_equal(logrec_foreach(data, sizeof(data) - 1, collect, &s, &used, &skipped), 0);
	assert_string_equal(buf_cstr(&s.out), "o|one\ne+|two\ne| four\n");
	assert_int_equal(skipped, 3);
	/* the last line has no newline yet: a follower resumes at its start */
	assert_int_equal(used, sizeof(data) - 1 - strlen(TS " out fi"));
	buf_free(&s.out);
	/* FN's nonzero return stops the walk */
	used = 0;
	assert_int_equal(logrec_foreach(data, sizeof(data) - 1, stop_at_err, NULL, &used, NULL), 7);
	assert_int_equal(used, strlen(TS " out one\ngarbage\n\n" TS " err+ two\n"));
}

static void
unescape_decodes_backslashes_and_hex_only_when_asked(void **state)
{
	const char text[] = "a\\\\b \\x1b[31m \\xff \\xZZ \\q \\x4";
	char out[sizeof(text)];
	size_t n;

	(void)state;
	n = logrec_unescape(text, sizeof(text) - 1, false, out);
	assert_int_equal(n, strlen("a\\b \\x1b[31m \\xff \\xZZ \\q \\x4"));
	assert_memory_equal(out, "a\\b \\x1b[31m \\xff \\xZZ \\q \\x4", n);
	n = logrec_unescape(text, sizeof(text) - 1, true, out);
	assert_int_equal(n, strlen("a\\b \x1b[31m \xff \\xZZ \\q \\x4"));
	assert_memory_equal(out, "a\\b \x1b[31m \xff \\xZZ \\q \\x4", n);
}

static int
rebuild(const struct logrec *r, void *arg)
{
	struct buf *streams = arg;
	char *text = xmalloc(r->len + 1);
	size_t n = logrec_unescape(r->text, r->len, true, text);

	assert_int_equal(buf_append(&streams[r->stream], text, n), 0);
	if (!r->more)
		assert_int_equal(buf_putc(&streams[r->stream], '\n'), 0);
	free(text);
	return 0;
}

static void
what_the_agent_writes_reads_back_to_the_same_bytes(void **state)
{
	char tmpl[] = "/tmp/eph-logrec-XXXXXX";
	int fd = mkstemp(tmpl);
	struct buf want[2], got[2], file;
	struct outlog o;
	size_t skipped = 0, used = 0;
	int64_t ms = INT64_C(1764007201123);
	unsigned seed = 12345;

	(void)state;
	assert_true(fd >= 0);
	for (int s = 0; s < 2; s++) {
		buf_init(&want[s], BUF_MAX_UNLIMITED);
		buf_init(&got[s], BUF_MAX_UNLIMITED);
	}
	outlog_init(&o, fd);
	/* every byte value, UTF-8 split across reads, a line past OUTLOG_LINE_MAX, partial
	 * lines flushed early, and both streams interleaved */
	for (int round = 0; round < 400; round++) {
		char chunk[512];
		size_t n = (size_t)(rand_r(&seed) % sizeof(chunk));
		enum outlog_stream s = rand_r(&seed) % 3 == 0 ? OUTLOG_ERR : OUTLOG_OUT;

		for (size_t i = 0; i < n; i++) {
			int k = rand_r(&seed) % 10;

			chunk[i] = k == 0   ? '\n'
			           : k < 3  ? (char)(rand_r(&seed) % 256)
			           : k == 3 ? "\xc3\xa9\xe2\x82\xac"[rand_r(&seed) % 5]
			                    : (char)('a' + rand_r(&seed) % 26);
		}
		if (round == 200) {
			memset(chunk, 'x', sizeof(chunk));
			for (int j = 0; j < 300; j++) {
				assert_int_equal(outlog_feed(&o, s, chunk, sizeof(chunk), ms, ms),
				                 0);
				assert_int_equal(buf_append(&want[s], chunk, sizeof(chunk)), 0);
			}
			continue;
		}
		assert_int_equal(outlog_feed(&o, s, chunk, n, ms, ms), 0);
		assert_int_equal(buf_append(&want[s], chunk, n), 0);
		if (round % 7 == 0) { /* a second later, the partial line is due */
			ms += 1000;
			(void)outlog_flush_partial(&o, s, ms, ms, 1000);
		}
		ms += 3;
	}
	for (int s = 0; s < 2; s++) /* a stream that ends without a newline: "+", and no '\n' */
		(void)outlog_flush_partial(&o, (enum outlog_stream)s, ms, ms, 0);
	assert_int_equal(outlog_sync(&o), 0);
	outlog_free(&o);
	close(fd);
	buf_init(&file, BUF_MAX_UNLIMITED);
	assert_int_equal(fsio_read_file(tmpl, &file), 0);
	assert_int_equal(logrec_foreach(file.data, file.len, rebuild, got, &used, &skipped), 0);
	assert_int_equal(skipped, 0);
	assert_int_equal(used, file.len);
	for (int s = 0; s < 2; s++) {
		assert_int_equal(got[s].len, want[s].len);
		assert_memory_equal(got[s].data, want[s].data, want[s].len);
		buf_free(&want[s]);
		buf_free(&got[s]);
	}
	buf_free(&file);
	unlink(tmpl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_record_has_a_timestamp_a_tag_and_a_text),
		cmocka_unit_test(anything_else_is_not_a_record),
		cmocka_unit_test(foreach_skips_and_counts_bad_lines_and_waits_for_the_last),
		cmocka_unit_test(unescape_decodes_backslashes_and_hex_only_when_asked),
		cmocka_unit_test(what_the_agent_writes_reads_back_to_the_same_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
