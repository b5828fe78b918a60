/* src/util/fsio.h: small file-system helpers shared by every component. */
#ifndef EPH_UTIL_FSIO_H
#define EPH_UTIL_FSIO_H
#include <stddef.h>
#include <sys/types.h>

#include "util/attr.h"
#include "util/buf.h"

/* Makes DIR and each missing parent with MODE (as mkdir -p). 0, or -errno of the first
 * mkdir(2) that failed for another reason than EEXIST. */
EPH_MUST_CHECK int fsio_mkdirs(const char *dir, mode_t mode);

/* Appends the whole of the file at PATH to B. 0; -errno of open(2) or read(2) (EINTR is
 * retried); -E2BIG when it does not fit B's limit (B then holds what fitted before). */
EPH_MUST_CHECK int fsio_read_file(const char *path, struct buf *b);

/* Writes the N bytes at P to FD, through short writes and EINTR. 0 or -errno of write(2). */
EPH_MUST_CHECK int fsio_write_all(int fd, const void *p, size_t n);

#endif
