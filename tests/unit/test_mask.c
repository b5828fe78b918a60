/* tests/unit/test_mask.c: secrets masked in a stream (agent/mask.h): every way a value can be
 * cut across reads, values that overlap or are prefixes of one another, and the end of the
 * stream. Each case is checked against masking the whole stream at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/mask.h"
#include "util/buf.h"
#include "util/xalloc.h"

static void
collect(void *arg, const char *p, size_t n)
{
	struct buf *b = arg;

	assert_true(n > 0); /* nothing empty is handed on */
	assert_int_equal(buf_append(b, p, n), 0);
}

/* TEXT fed in pieces cut at CUTS (NCUTS ascending offsets), masked with VALS. Caller frees. */
static char *
masked_cut(const char *const *vals, size_t nvals, const char *text, const size_t *cuts,
           size_t ncuts)
{
	struct buf out;
	struct mask m;
	size_t len = strlen(text), at = 0;
	char *got;

	buf_init(&out, BUF_MAX_UNLIMITED);
	mask_init(&m, vals, nvals, collect, &out);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		mask_feed(&m, text + at, end - at);
		at = end;
	}
	mask_finish(&m);
	assert_int_equal(mask_held(&m), 0);
	mask_free(&m);
	got = xstrdup(buf_cstr(&out));
	buf_free(&out);
	return got;
}

static char *
masked(const char *const *vals, size_t nvals, const char *text)
{
	return masked_cut(vals, nvals, text, NULL, 0);
}

/* Every cut of TEXT in two, three (every pair of positions) and bytes one by one gives WANT. */
static void
assert_every_cut(const char *const *vals, size_t nvals, const char *text, const char *want)
{
	size_t len = strlen(text);
	size_t *ones = xcalloc(len + 1, sizeof(*ones));
	char *got = masked(vals, nvals, text);

	assert_string_equal(got, want);
	free(got);
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			size_t cuts[2] = { i, j };

			got = masked_cut(vals, nvals, text, cuts, 2);
			if (strcmp(got, want) != 0)
				fail_msg("cut at %zu and %zu: \"%s\", not \"%s\"", i, j, got, want);
			free(got);
		}
	}
	for (size_t i = 0; i < len; i++)
		ones[i] = i + 1;
	got = masked_cut(vals, nvals, text, ones, len > 0 ? len - 1 : 0);
	assert_string_equal(got, want);
	free(got);
	free(ones);
}

static void
a_value_is_masked_wherever_it_is_cut(void **state)
{
	const char *const v[] = { "hunter22" };

	(void)state;
	assert_every_cut(v, 1, "password=hunter22 ok", "password=*** ok");
	assert_every_cut(v, 1, "hunter22", "***");
	assert_every_cut(v, 1, "hunter22hunter22", "******");
	assert_every_cut(v, 1, "hunter2 hunter222 hhunter22", "hunter2 ***2 h***");
	assert_every_cut(v, 1, "no secret here\n", "no secret here\n");
}

static void
a_prefix_that_never_completes_comes_out_whole(void **state)
{
	const char *const v[] = { "hunter22" };

	(void)state;
	/* held back while it could still be the value, then given out as it was */
	assert_every_cut(v, 1, "hunter2", "hunter2");
	assert_every_cut(v, 1, "huhunhunthunter22", "huhunhunt***");
	assert_every_cut(v, 1, "hunte\nhunter22\n", "hunte\n***\n");
}

static void
a_value_that_is_a_prefix_of_another_masks_the_longest(void **state)
{
	const char *const v[] = { "pass", "password" };

	(void)state;
	assert_every_cut(v, 2, "password", "***");
	assert_every_cut(v, 2, "passwd", "***wd");
	assert_every_cut(v, 2, "passwor", "***wor");
	assert_every_cut(v, 2, "pass password passpassword", "*** *** ******");
}

static void
overlapping_values_mask_the_first_then_go_on(void **state)
{
	const char *const v[] = { "abcd", "cdef" };
	const char *const w[] = { "aaaa" };
	const char *const x[] = { "abab", "babc" };

	(void)state;
	assert_every_cut(v, 2, "abcdef", "***ef");
	assert_every_cut(v, 2, "xxcdefabcd", "xx******");
	assert_every_cut(w, 1, "aaaaaaaaa", "******a");
	assert_every_cut(x, 2, "ababc ababab", "***c ***ab");
}

static void
values_with_line_ends_and_any_byte_are_masked(void **state)
{
	const char *const v[] = { "line1\nline2", "\xff\x01\x7f\\" };

	(void)state;
	assert_every_cut(v, 2, "key:\nline1\nline2\nend", "key:\n***\nend");
	assert_every_cut(v, 2, "[\xff\x01\x7f\\]", "[***]");
}

static void
no_value_passes_everything_through_at_once(void **state)
{
	struct buf out;
	struct mask m;

	(void)state;
	buf_init(&out, BUF_MAX_UNLIMITED);
	mask_init(&m, NULL, 0, collect, &out);
	mask_feed(&m, "abc", 3);
	assert_int_equal(mask_held(&m), 0);
	assert_string_equal(buf_cstr(&out), "abc");
	mask_finish(&m);
	mask_free(&m);
	buf_free(&out);
}

static void
what_is_held_back_is_shorter_than_the_longest_value(void **state)
{
	const char *const v[] = { "abcd", "abcdefgh" };
	struct buf out;
	struct mask m;

	(void)state;
	buf_init(&out, BUF_MAX_UNLIMITED);
	mask_init(&m, v, 2, collect, &out);
	mask_feed(&m, "xxabcdefg", 9);
	/* "abcdefg" may still be "abcdefgh": held */
	assert_int_equal(mask_held(&m), 7);
	assert_string_equal(buf_cstr(&out), "xx");
	mask_feed(&m, "X", 1);
	assert_int_equal(mask_held(&m), 0);
	assert_string_equal(buf_cstr(&out), "xx***efgX");
	mask_feed(&m, "abc", 3);
	assert_int_equal(mask_held(&m), 3);
	mask_finish(&m);
	assert_string_equal(buf_cstr(&out), "xx***efgXabc");
	mask_free(&m);
	buf_free(&out);
}

static void
large_reads_are_masked_as_small_ones(void **state)
{
	const char *const v[] = { "s3cr3t-v4lu3" };
	size_t n = 200000, cuts[3] = { 65536, 65540, 131072 };
	char *text = xmalloc(n + 1), *want = xmalloc(n + 1), *got;
	size_t k = 0;

	(void)state;
	for (size_t i = 0; i < n; i++)
		text[i] = (char)('a' + i % 26);
	/* one across the first cut, one across the third */
	memcpy(text + 65530, "s3cr3t-v4lu3", 12);
	memcpy(text + 131070, "s3cr3t-v4lu3", 12);
	text[n] = '\0';
	for (size_t i = 0; i < n;) {
		if (i == 65530 || i == 131070) {
			memcpy(want + k, "***", 3);
			k += 3;
			i += 12;
		} else {
			want[k++] = text[i++];
		}
	}
	want[k] = '\0';
	got = masked_cut(v, 1, text, cuts, 3);
	assert_string_equal(got, want);
	free(got);
	free(text);
	free(want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_value_is_masked_wherever_it_is_cut),
		cmocka_unit_test(a_prefix_that_never_completes_comes_out_whole),
		cmocka_unit_test(a_value_that_is_a_prefix_of_another_masks_the_longest),
		cmocka_unit_test(overlapping_values_mask_the_first_then_go_on),
		cmocka_unit_test(values_with_line_ends_and_any_byte_are_masked),
		cmocka_unit_test(no_value_passes_everything_through_at_once),
		cmocka_unit_test(what_is_held_back_is_shorter_than_the_longest_value),
		cmocka_unit_test(large_reads_are_masked_as_small_ones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
