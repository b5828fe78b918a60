/* tests/unit/test_fsio.c: file-system helpers on a real temporary directory. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/buf.h"
#include "util/fsio.h"
#include "util/xalloc.h"

static void
mkdirs_makes_every_missing_parent_with_the_mode(void **state)
{
	char tmpl[] = "/tmp/eph-fsio-XXXXXX";
	char *root = mkdtemp(tmpl), *deep, *mid, *file, *under;
	struct stat st;
	FILE *f;

	(void)state;
	assert_non_null(root);
	deep = xasprintf("%s/a/b/c", root);
	mid = xasprintf("%s/a/b", root);
	assert_int_equal(fsio_mkdirs(deep, 0700), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	/* again: everything exists already */
	assert_int_equal(fsio_mkdirs(deep, 0700), 0);
	/* a file in the way is the error of the mkdir that met it */
	file = xasprintf("%s/a/file", root);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	under = xasprintf("%s/x/y", file);
	assert_int_equal(fsio_mkdirs(under, 0700), -ENOTDIR);
	unlink(file);
	rmdir(deep);
	rmdir(mid);
	free(deep);
	deep = xasprintf("%s/a", root);
	rmdir(deep);
	rmdir(root);
	free(deep);
	free(mid);
	free(file);
	free(under);
}

/* A file of N bytes 'a'..'z' repeated, at a fresh path; caller unlinks and frees. */
static char *
file_of(size_t n)
{
	char *path = xstrdup("/tmp/eph-fsio-file-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	for (size_t i = 0; i < n; i++) {
		char c = (char)('a' + i % 26);

		assert_int_equal(write(fd, &c, 1), 1);
	}
	assert_int_equal(close(fd), 0);
	return path;
}

static void
read_file_reads_a_file_larger_than_one_chunk_whole(void **state)
{
	size_t n = 20000;
	char *path = file_of(n);
	struct buf b;

	(void)state;
	buf_init(&b, n);
	assert_int_equal(fsio_read_file(path, &b), 0);
	assert_int_equal(b.len, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(b.data[i], 'a' + (int)(i % 26));
	buf_free(&b);
	unlink(path);
	free(path);
}

static void
read_file_says_e2big_past_the_limit_and_enoent_when_missing(void **state)
{
	char *path = file_of(100);
	struct buf b;

	(void)state;
	buf_init(&b, 99);
	assert_int_equal(fsio_read_file(path, &b), -E2BIG);
	assert_true(b.len <= 99);
	buf_free(&b);
	buf_init(&b, 100);
	assert_int_equal(fsio_read_file(path, &b), 0);
	assert_int_equal(b.len, 100);
	buf_free(&b);
	unlink(path);
	buf_init(&b, 100);
	assert_int_equal(fsio_read_file(path, &b), -ENOENT);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	free(path);
}

static void
read_private_refuses_a_file_group_or_others_may_read(void **state)
{
	char *path = file_of(20000); /* more than a chunk: storage for it all at once */
	mode_t mode = 0;
	struct buf b;

	(void)state;
	assert_int_equal(chmod(path, 0600), 0);
	buf_init(&b, 1u << 20);
	assert_int_equal(fsio_read_private(path, &b, &mode), 0);
	assert_int_equal(b.len, 20000);
	assert_int_equal(mode, 0600);
	assert_true(b.cap >= 20001);
	buf_free(&b);
	static const mode_t open_modes[] = { 0604, 0640, 0660 };

	for (size_t i = 0; i < sizeof(open_modes) / sizeof(open_modes[0]); i++) {
		mode_t m = open_modes[i];

		assert_int_equal(chmod(path, m), 0);
		buf_init(&b, 1u << 20);
		assert_int_equal(fsio_read_private(path, &b, &mode), -EPERM);
		assert_int_equal(mode, m);
		assert_int_equal(b.len, 0);
		buf_free(&b);
	}
	assert_int_equal(chmod(path, 0400), 0);
	buf_init(&b, 100);
	assert_int_equal(fsio_read_private(path, &b, NULL), -E2BIG);
	buf_free(&b);
	unlink(path);
	buf_init(&b, 100);
	assert_int_equal(fsio_read_private(path, &b, &mode), -ENOENT);
	buf_free(&b);
	free(path);
}

static void
write_all_writes_every_byte_and_reports_a_bad_fd(void **state)
{
	size_t n = 200000; /* many chunks of a regular file */
	char *text = xmalloc(n), *path = file_of(0);
	struct buf b;
	int fd;

	(void)state;
	for (size_t i = 0; i < n; i++)
		text[i] = (char)('0' + i % 10);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fsio_write_all(fd, text, n), 0);
	assert_int_equal(close(fd), 0);
	buf_init(&b, n);
	assert_int_equal(fsio_read_file(path, &b), 0);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, text, n);
	buf_free(&b);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fsio_write_all(fd, text, 1), -EBADF);
	close(fd);
	unlink(path);
	free(path);
	free(text);
}

static void
write_atomic_replaces_the_file_whole_and_leaves_no_tmp(void **state)
{
	char tmpl[] = "/tmp/eph-fsio-XXXXXX";
	char *root = mkdtemp(tmpl), *path, *tmp, *sub, *subtmp;
	char old[16] = { 0 };
	struct buf b;
	struct stat st;
	mode_t um = umask(022);
	int fd;

	(void)state;
	assert_non_null(root);
	path = xasprintf("%s/state.json", root);
	tmp = xasprintf("%s.tmp", path);
	assert_int_equal(fsio_write_atomic(path, "first", 5, 0600, 0), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a reader that opened the old file keeps reading it whole */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fsio_write_atomic(path, "second!", 7, 0600, 0), 0);
	assert_int_equal(read(fd, old, sizeof(old) - 1), 5);
	assert_string_equal(old, "first");
	close(fd);
	buf_init(&b, 64);
	assert_int_equal(fsio_read_file(path, &b), 0);
	assert_string_equal(buf_cstr(&b), "second!");
	buf_free(&b);
	assert_int_equal(access(tmp, F_OK), -1);
	/* without fsync: the same file */
	assert_int_equal(fsio_write_atomic(path, "", 0, 0644, FSIO_NOSYNC), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(access(tmp, F_OK), -1);
	/* a directory in the way: the rename's error, and no PATH.tmp left behind */
	sub = xasprintf("%s/sub", root);
	subtmp = xasprintf("%s.tmp", sub);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(fsio_write_atomic(sub, "x", 1, 0600, 0), -EISDIR);
	assert_int_equal(access(subtmp, F_OK), -1);
	assert_int_equal(stat(sub, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	rmdir(sub);
	/* no directory: open's error */
	free(sub);
	sub = xasprintf("%s/none/state.json", root);
	assert_int_equal(fsio_write_atomic(sub, "x", 1, 0600, 0), -ENOENT);
	unlink(path);
	rmdir(root);
	umask(um);
	free(sub);
	free(subtmp);
	free(tmp);
	free(path);
}

static void
commit_tmp_puts_a_file_or_a_directory_in_place(void **state)
{
	char tmpl[] = "/tmp/eph-fsio-XXXXXX";
	char *root = mkdtemp(tmpl), *path, *tmp, *dir, *dirtmp, *inner;
	struct buf b;
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(root);
	path = xasprintf("%s/a.tar", root);
	tmp = xasprintf("%s.tmp", path);
	/* written some other way (git archive --output) */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fsio_write_all(fd, "archive", 7), 0);
	close(fd);
	assert_int_equal(fsio_commit_tmp(path, 0), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	buf_init(&b, 64);
	assert_int_equal(fsio_read_file(path, &b), 0);
	assert_string_equal(buf_cstr(&b), "archive");
	buf_free(&b);
	/* no PATH.tmp: its error, and PATH as it was */
	assert_int_equal(fsio_commit_tmp(path, 0), -ENOENT);
	assert_int_equal(fsio_commit_tmp(path, FSIO_NOSYNC), -ENOENT);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 7);
	/* a directory made aside (a set of wheels) */
	dir = xasprintf("%s/wheels", root);
	dirtmp = xasprintf("%s.tmp", dir);
	assert_int_equal(mkdir(dirtmp, 0755), 0);
	inner = xasprintf("%s/x.whl", dirtmp);
	assert_int_equal(fsio_write_atomic(inner, "w", 1, 0644, 0), 0);
	assert_int_equal(fsio_commit_tmp(dir, 0), 0);
	free(inner);
	inner = xasprintf("%s/x.whl", dir);
	assert_int_equal(stat(inner, &st), 0);
	assert_int_equal(access(dirtmp, F_OK), -1);
	unlink(inner);
	rmdir(dir);
	unlink(path);
	rmdir(root);
	free(inner);
	free(dir);
	free(dirtmp);
	free(tmp);
	free(path);
}

static void
write_atomic_takes_a_name_without_a_directory(void **state)
{
	char tmpl[] = "/tmp/eph-fsio-XXXXXX";
	char *root = mkdtemp(tmpl), *here = getcwd(NULL, 0);
	struct stat st;

	(void)state;
	assert_non_null(root);
	assert_int_equal(chdir(root), 0);
	assert_int_equal(fsio_write_atomic("plain", "abc", 3, 0600, 0), 0);
	assert_int_equal(stat("plain", &st), 0);
	assert_int_equal(st.st_size, 3);
	unlink("plain");
	assert_int_equal(chdir(here), 0);
	rmdir(root);
	free(here);
}

static void
a_helper_is_found_beside_the_running_executable(void **state)
{
	char *p = fsio_exe_sibling("eph-helper"), *self = fsio_exe_sibling("test_fsio");
	bool ok = p != NULL && self != NULL && p[0] == '/' &&
	          strcmp(strrchr(p, '/'), "/eph-helper") == 0 &&
	          strncmp(p, self, (size_t)(strrchr(p, '/') - p + 1)) == 0;
	struct stat st;

	(void)state;
	/* the directory is this test's own: this test is found there */
	ok = ok && stat(self, &st) == 0 && S_ISREG(st.st_mode);
	free(p);
	free(self);
	assert_true(ok);
}

/* Writes TEXT to PATH with MODE, then reads it as a secret: its return code; *OUT, *WHY as
 * fsio_read_secret_line's. */
static int
secret_of(const char *path, const char *text, mode_t mode, size_t max, char **out, char **why)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(fsio_write_all(fd, text, strlen(text)), 0);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
	return fsio_read_secret_line(path, max, out, why);
}

static void
a_secret_is_one_line_of_a_private_file(void **state)
{
	char tmpl[] = "/tmp/eph-fsio-XXXXXX";
	char *root = mkdtemp(tmpl), *path, *out = NULL, *why = NULL;

	(void)state;
	assert_non_null(root);
	path = xasprintf("%s/key", root);
	assert_int_equal(secret_of(path, "s3cr3t\n", 0600, 64, &out, &why), 0);
	assert_string_equal(out, "s3cr3t");
	free(out);
	assert_int_equal(secret_of(path, "s3cr3t\r\n", 0400, 64, &out, &why), 0);
	assert_string_equal(out, "s3cr3t");
	free(out);
	assert_int_equal(secret_of(path, "s3cr3t", 0600, 64, &out, &why), 0);
	assert_string_equal(out, "s3cr3t");
	free(out);
	/* refused, saying why, never the value */
	assert_int_equal(secret_of(path, "s3cr3t\n", 0640, 64, &out, &why), -EPERM);
	assert_null(out);
	assert_non_null(strstr(why, "can be read by group or others (mode 0640)"));
	assert_non_null(strstr(why, "chmod 600"));
	assert_null(strstr(why, "s3cr3t"));
	free(why);
	assert_int_equal(secret_of(path, "s3cr3t\nmore\n", 0600, 64, &out, &why), -EINVAL);
	assert_null(strstr(why, "s3cr3t"));
	free(why);
	assert_int_equal(secret_of(path, "\n", 0600, 64, &out, &why), -EINVAL);
	free(why);
	assert_int_equal(secret_of(path, "0123456789", 0600, 4, &out, &why), -E2BIG);
	assert_non_null(strstr(why, "larger than 4 bytes"));
	free(why);
	unlink(path);
	assert_int_equal(fsio_read_secret_line(path, 64, &out, &why), -ENOENT);
	free(why);
	free(path);
	assert_int_equal(rmdir(root), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mkdirs_makes_every_missing_parent_with_the_mode),
		cmocka_unit_test(read_file_reads_a_file_larger_than_one_chunk_whole),
		cmocka_unit_test(read_file_says_e2big_past_the_limit_and_enoent_when_missing),
		cmocka_unit_test(read_private_refuses_a_file_group_or_others_may_read),
		cmocka_unit_test(write_all_writes_every_byte_and_reports_a_bad_fd),
		cmocka_unit_test(write_atomic_replaces_the_file_whole_and_leaves_no_tmp),
		cmocka_unit_test(write_atomic_takes_a_name_without_a_directory),
		cmocka_unit_test(commit_tmp_puts_a_file_or_a_directory_in_place),
		cmocka_unit_test(a_helper_is_found_beside_the_running_executable),
		cmocka_unit_test(a_secret_is_one_line_of_a_private_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
