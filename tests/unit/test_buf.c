/* tests/unit/test_buf.c: the capped buffer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"

static void
append_grows_and_terminates(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1 << 20);
	assert_string_equal(buf_cstr(&b), "");
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_puts(&b, "abc"), 0);
	assert_int_equal(b.len, 3000);
	assert_int_equal(strlen(buf_cstr(&b)), 3000);
	assert_memory_equal(b.data + 2997, "abc", 4);
	buf_free(&b);
}

static void
append_past_limit_is_e2big_and_appends_nothing(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "12345"), 0);
	assert_int_equal(buf_puts(&b, "6789"), -E2BIG);
	assert_string_equal(buf_cstr(&b), "12345");
	assert_int_equal(buf_puts(&b, "678"), 0);
	assert_int_equal(buf_putc(&b, 'x'), -E2BIG);
	assert_int_equal(buf_printf(&b, "%d", 1), -E2BIG);
	assert_string_equal(buf_cstr(&b), "12345678");
	buf_free(&b);
}

static void
printf_formats_and_respects_limit(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 16);
	assert_int_equal(buf_printf(&b, "%s-%d", "ab", 42), 0);
	assert_string_equal(buf_cstr(&b), "ab-42");
	assert_int_equal(buf_printf(&b, "%020d", 1), -E2BIG);
	assert_string_equal(buf_cstr(&b), "ab-42");
	buf_free(&b);
}

static void
steal_hands_over_and_empties(void **state)
{
	struct buf b;
	char *s;

	(void)state;
	buf_init(&b, 64);
	s = buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	s = buf_steal(&b);
	assert_memory_equal(s, "a\0b", 4);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
	buf_reset(&b);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(append_grows_and_terminates),
		cmocka_unit_test(append_past_limit_is_e2big_and_appends_nothing),
		cmocka_unit_test(printf_formats_and_respects_limit),
		cmocka_unit_test(steal_hands_over_and_empties),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
