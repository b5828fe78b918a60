/* src/util/fsio.c: small file-system helpers. */
#include "util/fsio.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "util/xalloc.h"

int
fsio_mkdirs(const char *dir, mode_t mode)
{
	char *p = xstrdup(dir);
	int rc = 0;

	for (char *s = p + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			rc = -errno;
		*s = c;
		if (c == '\0' || rc < 0)
			break;
	}
	free(p);
	return rc;
}
