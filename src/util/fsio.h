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
/* Appends what FD gives until its end (a helper's stdin) to B, through EINTR. 0, -E2BIG past
 * B's limit, or -errno of read(2). */
EPH_MUST_CHECK int fsio_read_fd(int fd, struct buf *b);

/* As fsio_read_file, for a file that holds a secret (mail.password_file, a secret's file):
 * refused with -EPERM when group or others may read or write it (mode & 077), and *MODE
 * (may be NULL) then says its mode; the mode is checked on the file that is read (fstat of
 * the open descriptor). An empty B gets storage for the whole file at once, so that a
 * value is not left behind in memory a growth freed (the caller wipes B->data, B->cap,
 * before buf_free). */
EPH_MUST_CHECK int fsio_read_private(const char *path, struct buf *b, mode_t *mode);

/* A secret of one line (a key, a token) from the file PATH of at most MAX bytes, read with
 * fsio_read_private: 0 and *OUT (caller wipes and frees) the file less one trailing line end;
 * else -errno and *WHY (caller frees) saying why, naming PATH, never the value: a file group
 * or others may read (-EPERM, with the chmod that fixes it), too large (-E2BIG), empty or
 * holding a NUL byte or more than one line (-EINVAL). Every copy read is wiped. */
EPH_MUST_CHECK int fsio_read_secret_line(const char *path, size_t max, char **out, char **why);

/* Writes the N bytes at P to FD, through short writes and EINTR. 0 or -errno of write(2). */
EPH_MUST_CHECK int fsio_write_all(int fd, const void *p, size_t n);

/* fsio_write_atomic's flags. */
#define FSIO_NOSYNC 1u /* no fsync: readers still see a whole file, a machine crash may lose it */

/* Replaces the file at PATH with the N bytes at P, atomically: writes PATH.tmp (created with
 * MODE), fsyncs it, renames it over PATH and fsyncs PATH's directory, so that a reader sees
 * the old file or the new one whole, even after a machine crash. 0, or -errno of the step that
 * failed (PATH.tmp is then removed, and PATH left as it was unless the directory's fsync
 * failed, after the rename). */
EPH_MUST_CHECK int fsio_write_atomic(const char *path, const void *p, size_t n, mode_t mode,
                                     unsigned flags);
/* The second half of fsio_write_atomic, for a file written some other way (by a child process,
 * too large for memory): PATH.tmp, complete, is fsynced, renamed over PATH, and PATH's
 * directory fsynced (no fsync with FSIO_NOSYNC). 0, or -errno of the step that failed
 * (PATH.tmp is then removed, and PATH left as it was unless the directory's fsync failed). */
EPH_MUST_CHECK int fsio_commit_tmp(const char *path, unsigned flags);

/* The path of NAME in the directory of the running executable (where eph-mail, eph-upload
 * and eph-cloud are installed beside eph), or NULL when that is unknown. Caller frees. */
char *fsio_exe_sibling(const char *name);

#endif
