/* tests/unit/test_instance.c: the instance id, made once in a real state directory, by one
 * process or by several at once. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/diag.h"
#include "util/instance.h"
#include "util/xalloc.h"

static char *
tmpdir(void)
{
	char tmpl[] = "/tmp/eph-instance-XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void
rmtree(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void
made_once_then_read_back(void **state)
{
	char *root = tmpdir(), *st = xasprintf("%s/state/deeper", root), *path;
	char a[INSTANCE_ID_LEN + 1], b[INSTANCE_ID_LEN + 1], text[64];
	struct diag d;
	struct stat sb;
	FILE *f;

	(void)state;
	diag_init(&d);
	/* reading makes nothing */
	assert_int_equal(instance_read(st, a, &d), -ENOENT);
	assert_int_equal(diag_nerrors(&d), 0);
	assert_int_equal(stat(st, &sb), -1);
	/* the first get makes the directory and the id */
	assert_int_equal(instance_get(st, a, &d), 0);
	assert_true(instance_id_ok(a));
	assert_int_equal(stat(st, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	path = xasprintf("%s/instance", st);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(text, sizeof(text), f));
	fclose(f);
	assert_int_equal(strlen(text), INSTANCE_ID_LEN + 1);
	assert_memory_equal(text, a, INSTANCE_ID_LEN);
	/* then it stays */
	assert_int_equal(instance_get(st, b, &d), 0);
	assert_string_equal(a, b);
	assert_int_equal(instance_read(st, b, &d), 0);
	assert_string_equal(a, b);
	assert_int_equal(diag_nerrors(&d), 0);
	/* another directory, another id */
	free(st);
	st = xasprintf("%s/other", root);
	assert_int_equal(instance_get(st, b, &d), 0);
	assert_string_not_equal(a, b);
	diag_free(&d);
	free(path);
	free(st);
	rmtree(root);
	free(root);
}

static void
a_bad_file_is_an_error_and_never_remade(void **state)
{
	static const char *const bad[] = {
		"", "0123456789abcdef", "0123456789ABCDEF\n", "0123456789abcdef0\n", "not an id\n",
	};
	char *root = tmpdir(), *path = xasprintf("%s/instance", root);
	char id[INSTANCE_ID_LEN + 1], text[64];
	struct diag d;
	FILE *f;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(bad[i], f);
		fclose(f);
		diag_init(&d);
		assert_int_equal(instance_get(root, id, &d), -EINVAL);
		assert_int_equal(diag_nerrors(&d), 1);
		assert_non_null(strstr(d.items[0].msg, "not an instance id"));
		diag_free(&d);
		f = fopen(path, "r");
		assert_non_null(f);
		memset(text, 0, sizeof(text));
		(void)!fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
		assert_string_equal(text, bad[i]);
	}
	free(path);
	rmtree(root);
	free(root);
}

#define NPROC  8
#define ROUNDS 20

/* NPROC processes, released together, each make the id of one fresh directory: all of them
 * return the same one, the one in the file. */
static void
concurrent_first_starts_end_with_one_id(void **state)
{

	(void)state;
	for (int round = 0; round < ROUNDS; round++) {
		char *root = tmpdir(), *st = xasprintf("%s/state", root);
		char ids[NPROC][INSTANCE_ID_LEN + 1], file[INSTANCE_ID_LEN + 1];
		int go[2], out[NPROC][2];
		pid_t pids[NPROC];
		struct diag d;

		assert_int_equal(pipe(go), 0);
		for (int i = 0; i < NPROC; i++) {
			assert_int_equal(pipe(out[i]), 0);
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				char id[INSTANCE_ID_LEN + 1], c;
				struct diag cd;
				int rc;

				close(go[1]);
				(void)!read(go[0], &c, 1); /* EOF: all go */
				diag_init(&cd);
				rc = instance_get(st, id, &cd);
				if (rc != 0 ||
				    write(out[i][1], id, INSTANCE_ID_LEN) != INSTANCE_ID_LEN)
					_exit(1);
				_exit(0);
			}
			close(out[i][1]);
		}
		close(go[0]);
		close(go[1]);
		for (int i = 0; i < NPROC; i++) {
			int ws;

			assert_int_equal(read(out[i][0], ids[i], INSTANCE_ID_LEN), INSTANCE_ID_LEN);
			ids[i][INSTANCE_ID_LEN] = '\0';
			close(out[i][0]);
			assert_int_equal(waitpid(pids[i], &ws, 0), pids[i]);
			assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
		}
		diag_init(&d);
		assert_int_equal(instance_read(st, file, &d), 0);
		diag_free(&d);
		for (int i = 0; i < NPROC; i++)
			assert_string_equal(ids[i], file);
		free(st);
		rmtree(root);
		free(root);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(made_once_then_read_back),
		cmocka_unit_test(a_bad_file_is_an_error_and_never_remade),
		cmocka_unit_test(concurrent_first_starts_end_with_one_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
