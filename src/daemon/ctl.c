/* src/daemon/ctl.c: the control socket's client side. */
#include "daemon/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/xalloc.h"

#define CTL_TIMEOUT_S 30

char *
ctl_socket_path(const char *state_dir)
{
	struct sockaddr_un sa;
	char *p = xasprintf("%s/%s", state_dir, CTL_SOCKET);

	if (strlen(p) >= sizeof(sa.sun_path)) {
		free(p);
		return NULL;
	}
	return p;
}

static int
ctl_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
ctl_request(const char *state_dir, json_t *req, json_t **resp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
	char *path = ctl_socket_path(state_dir), *line = NULL, chunk[4096];
	struct buf in;
	json_error_t jerr;
	int fd = -1, rc;

	*resp = NULL;
	buf_init(&in, BUF_MAX_JSON);
	if (path == NULL)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	free(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto out;
	}
	line = json_dumps(req, JSON_COMPACT);
	if (line == NULL) {
		rc = -EINVAL;
		goto out;
	}
	if ((rc = ctl_write_all(fd, line, strlen(line))) < 0 ||
	    (rc = ctl_write_all(fd, "\n", 1)) < 0)
		goto out;
	for (;;) {
		ssize_t got = recv(fd, chunk, sizeof(chunk), 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
			goto out;
		}
		if (got == 0) {
			rc = -EPROTO; /* closed before a whole line */
			goto out;
		}
		if ((rc = buf_append(&in, chunk, (size_t)got)) < 0)
			goto out;
		if (memchr(chunk, '\n', (size_t)got) != NULL)
			break;
	}
	*resp = json_loadb(in.data, in.len, JSON_DISABLE_EOF_CHECK, &jerr);
	rc = *resp != NULL && json_is_object(*resp) ? 0 : -EPROTO;
	if (rc < 0) {
		json_decref(*resp);
		*resp = NULL;
	}
out:
	free(line);
	buf_free(&in);
	close(fd);
	return rc;
}

int
ctl_lock_holder(const char *state_dir, pid_t *pid)
{
	char *path = xasprintf("%s/%s", state_dir, CTL_LOCK), text[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;
	ssize_t got;

	free(path);
	*pid = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return 0;
	}
	if (errno != EWOULDBLOCK) {
		rc = -errno;
		close(fd);
		return rc;
	}
	got = pread(fd, text, sizeof(text) - 1, 0);
	if (got > 0) {
		text[got] = '\0';
		*pid = (pid_t)strtol(text, NULL, 10);
	}
	close(fd);
	return 1;
}
