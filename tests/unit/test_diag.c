/* tests/unit/test_diag.c: diagnostics are collected, then printed all at once in file order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "util/diag.h"

static void
printed_in_file_order_with_positions(void **state)
{
	struct diag d;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	diag_init(&d);
	diag_error(&d, (struct diag_pos){ "a.yaml", 14, 5 }, "unknown key \"%s\"", "memroy");
	diag_error(&d, (struct diag_pos){ "a.yaml", 3, 9 }, "second");
	diag_error(&d, (struct diag_pos){ "a.yaml", 3, 2 }, "first");
	diag_error(&d, (struct diag_pos){ "a.yaml", 0, 0 }, "whole file");
	diag_error(&d, (struct diag_pos){ NULL, 0, 0 }, "no file");
	assert_int_equal(diag_nerrors(&d), 5);
	f = open_memstream(&out, &len);
	assert_non_null(f);
	diag_print(&d, f);
	fclose(f);
	assert_string_equal(out, "eph: no file\n"
	                         "a.yaml: whole file\n"
	                         "a.yaml:3:2: first\n"
	                         "a.yaml:3:9: second\n"
	                         "a.yaml:14:5: unknown key \"memroy\"\n");
	free(out);
	diag_free(&d);
}

static void
equal_positions_keep_arrival_order(void **state)
{
	struct diag d;
	char *s;

	(void)state;
	diag_init(&d);
	for (int i = 0; i < 20; i++)
		diag_error(&d, (struct diag_pos){ "f", 1, 1 }, "%d", i);
	diag_sort(&d);
	for (int i = 0; i < 20; i++) {
		char want[16];

		snprintf(want, sizeof(want), "f:1:1: %d", i);
		s = diag_format(&d, (size_t)i);
		assert_string_equal(s, want);
		free(s);
	}
	diag_free(&d);
}

static void
past_the_cap_errors_are_counted_not_kept(void **state)
{
	struct diag d;

	(void)state;
	diag_init(&d);
	d.max = 3;
	for (int i = 0; i < 10; i++)
		diag_error(&d, (struct diag_pos){ "f", i + 1, 1 }, "e%d", i);
	assert_int_equal(d.n, 3);
	assert_int_equal(diag_nerrors(&d), 10);
	diag_free(&d);
}

/* diag_joined: the messages alone, "; " between them, the fallback when there are none. */
static void
joined_gives_the_messages_without_positions(void **state)
{
	struct diag d;
	char *s;

	(void)state;
	diag_init(&d);
	s = diag_joined(&d, "nothing said");
	assert_string_equal(s, "nothing said");
	free(s);
	diag_error(&d, (struct diag_pos){ "f.yaml", 3, 4 }, "first");
	diag_error(&d, (struct diag_pos){ 0 }, "second %d", 2);
	s = diag_joined(&d, "nothing said");
	assert_string_equal(s, "first; second 2");
	free(s);
	diag_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(printed_in_file_order_with_positions),
		cmocka_unit_test(equal_positions_keep_arrival_order),
		cmocka_unit_test(past_the_cap_errors_are_counted_not_kept),
		cmocka_unit_test(joined_gives_the_messages_without_positions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
