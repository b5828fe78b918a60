/* src/upload/s3.h: PUT of one file to an S3-compatible bucket through libcurl, signed by
 * libcurl's own AWS Signature V4 (CURLOPT_AWS_SIGV4), with the body's SHA-256 in
 * x-amz-content-sha256 (without it libcurl 7.88 signs the body as if it were empty, and a
 * verifying server refuses every request). The file is streamed, never read whole. Linked
 * into eph-upload only (lib_s3): nothing else of ephemeron maps libcurl. */
#ifndef EPH_UPLOAD_S3_H
#define EPH_UPLOAD_S3_H
#include <stdbool.h>
#include <stdint.h>

#include "util/attr.h"

struct s3;

enum s3_outcome {
	S3_OK,      /* the store has the object */
	S3_RETRY,   /* the store is unreachable or failing (5xx, 429, a timeout): try later */
	S3_REFUSED, /* the store said no (a wrong key, a missing bucket, no permission) */
};

/* A client for ENDPOINT ("https://HOST[:PORT]") signing for REGION with the keys ACCESS and
 * SECRET (copied; wiped on s3_free). Its connection is kept between puts. 0, or -ENOMEM when
 * libcurl cannot be had. */
EPH_MUST_CHECK int s3_new(const char *endpoint, const char *region, const char *access,
                          const char *secret, struct s3 **out);
void s3_free(struct s3 *c); /* NULL is fine */
/* Puts the SIZE bytes of the regular file open as FD (read from offset 0, twice: once for its
 * SHA-256, once to send) to BUCKET at KEY (unencoded; each "/"-separated part is
 * percent-encoded here). On anything but S3_OK, *WHY (caller frees) says why in one line:
 * the store's own code and message when it sent them. */
enum s3_outcome s3_put_fd(struct s3 *c, const char *bucket, const char *key, int fd, uint64_t size,
                          char **why);
/* Has FN(ARG) called every S3_TICK_S seconds or so while a put goes on (a lease renewed);
 * FN NULL: nothing. When FN returns nonzero, the put is abandoned (S3_RETRY, "abandoned"). */
#define S3_TICK_S 30.0
void s3_set_tick(struct s3 *c, int (*fn)(void *arg), void *arg);
/* From a signal handler: the put going on is abandoned (S3_RETRY), and so is every later one. */
void s3_stop(void);
/* Whether s3_stop was called. */
bool s3_stopped(void);
/* KEY with every byte but A-Z a-z 0-9 - . _ ~ and "/" percent-encoded, as S3 wants an object
 * key in a path. Caller frees. */
char *s3_key_encode(const char *key);

#endif
