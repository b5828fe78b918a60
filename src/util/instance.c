/* src/util/instance.c: this scheduler's instance id (util/instance.h). */
#include "util/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

int
instance_id_ok(const char *s)
{
	for (size_t i = 0; i < INSTANCE_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[INSTANCE_ID_LEN] == '\0';
}

int
instance_read(const char *state, char id[INSTANCE_ID_LEN + 1], struct diag *d)
{
	char *path = xasprintf("%s/%s", state, INSTANCE_FILE);
	struct buf b;
	int rc;

	buf_init(&b, BUF_MAX_INSTANCE);
	if ((rc = fsio_read_file(path, &b)) < 0) {
		if (rc != -ENOENT)
			diag_error(d, (struct diag_pos){ 0 }, "%s: %s", path,
			           rc == -E2BIG ? "not an instance id" : strerror(-rc));
		goto out;
	}
	if (b.len != INSTANCE_ID_LEN + 1 || b.data[INSTANCE_ID_LEN] != '\n') {
		rc = -EINVAL;
	} else {
		memcpy(id, b.data, INSTANCE_ID_LEN);
		id[INSTANCE_ID_LEN] = '\0';
		if (!instance_id_ok(id))
			rc = -EINVAL;
	}
	if (rc == -EINVAL)
		diag_error(d, (struct diag_pos){ 0 },
		           "%s: not an instance id (%d lowercase hex digits and a newline); it is "
		           "never remade, as remote run directories are named after it",
		           path, INSTANCE_ID_LEN);
out:
	buf_free(&b);
	free(path);
	return rc;
}

/* A new random id into ID. 0 or -errno of getrandom(2). */
static int
instance_make(char id[INSTANCE_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[INSTANCE_ID_LEN / 2];
	size_t got = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < sizeof(r); i++) {
		id[2 * i] = hex[r[i] >> 4];
		id[2 * i + 1] = hex[r[i] & 15];
	}
	id[INSTANCE_ID_LEN] = '\0';
	return 0;
}

int
instance_get(const char *state, char id[INSTANCE_ID_LEN + 1], struct diag *d)
{
	char *path = NULL, *mine = NULL, line[INSTANCE_ID_LEN + 2];
	int rc, fd;

	if ((rc = instance_read(state, id, d)) != -ENOENT)
		return rc;
	if ((rc = fsio_mkdirs(state, 0700)) < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "%s: %s", state, strerror(-rc));
		return rc;
	}
	if ((rc = instance_make(id)) < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "getrandom: %s", strerror(-rc));
		return rc;
	}
	memcpy(line, id, INSTANCE_ID_LEN);
	line[INSTANCE_ID_LEN] = '\n';
	path = xasprintf("%s/%s", state, INSTANCE_FILE);
	/* written whole under a name of this process's own, then linked to its place: link(2),
	 * unlike rename(2), never replaces, so of two first starts one id is kept */
	mine = xasprintf("%s.%ld", path, (long)getpid());
	if ((rc = fsio_write_atomic(mine, line, INSTANCE_ID_LEN + 1, 0600, 0)) < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "%s: %s", mine, strerror(-rc));
		goto out;
	}
	if (link(mine, path) < 0 && errno != EEXIST) {
		rc = -errno;
		diag_error(d, (struct diag_pos){ 0 }, "%s: %s", path, strerror(-rc));
		(void)unlink(mine);
		goto out;
	}
	(void)unlink(mine);
	/* the link made durable, as fsio_write_atomic makes its rename */
	if ((fd = open(state, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	rc = instance_read(state, id, d); /* ours, or the one that was there first */
	if (rc == -ENOENT)
		diag_error(d, (struct diag_pos){ 0 }, "%s: removed while it was made", path);
out:
	free(mine);
	free(path);
	return rc;
}
