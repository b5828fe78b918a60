/* src/upload/upload.h: uploading runs' results to the results_store bucket (docs/results.md),
 * the part without libcurl: which runs are uploaded and where, talking to eph-upload (the
 * process that sends, src/eph_upload.c), reading the keys, and the mail about a refusal.
 *
 * eph and the daemon write the results_store settings on eph-upload's stdin as one JSON
 * object (where the keys are, never the keys); eph-upload reports one JSON object a line:
 *   {"run":12,"state":"done","sent":3,"files":3,"bytes":1024,"url":"s3://b/p/job/12/"}
 *   {"run":12,"state":"queued","error":"...","next_at":1765000000.5}   to be tried again
 *   {"run":12,"state":"refused","error":"http://...: said 403 InvalidAccessKeyId: ..."}
 *   {"error":"cannot open the store: ..."}                               it could not work
 * and last {"done":1,"retried":0,"refused":0}. */
#ifndef EPH_UPLOAD_UPLOAD_H
#define EPH_UPLOAD_UPLOAD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/attr.h"

struct conf;
struct conf_results_store;
struct conf_secret;
struct diag;
struct store;

#define UPLOADPROC_NAME "eph-upload"

/* The first retry of a failed upload after this many seconds, doubling each attempt up to
 * UPLOAD_RETRY_MAX. */
#define UPLOAD_RETRY_MIN 5.0
#define UPLOAD_RETRY_MAX 900.0

/* "s3://BUCKET/PREFIX/JOB/RUN/" (no PREFIX/ when the prefix is empty): where the run's
 * upload goes, recorded when it is queued; the object of results/PATH is PREFIX/JOB/RUN/PATH.
 * Caller frees. */
char *upload_run_url(const struct conf_results_store *s, const char *job, int64_t run);
/* The delay before the next pass after ATTEMPTS failed ones. */
double upload_backoff(int attempts);

/* Run RUN_ID of store ST was recorded terminal: queues its upload when C has a results_store
 * and the run has results. 1 queued, 0 nothing to upload (or queued already), -errno (why in
 * D). */
EPH_MUST_CHECK int upload_queue_run(struct store *st, const struct conf *c, int64_t run_id,
                                    struct diag *d);
/* Queues mail about run RUN_ID's upload refused (ERROR) to its job's notify.email, else to
 * mail.admin, once per run. 1 queued, 0 nothing to send, -errno (why in D). */
EPH_MUST_CHECK int upload_mail_refused(struct store *st, const struct conf *c, int64_t run_id,
                                       const char *error, struct diag *d);

/* The settings S as one line of JSON (no line end). Caller frees. */
char *upload_conf_json(const struct conf_results_store *s);
/* Parses TEXT[0..LEN) (upload_conf_json's) into *OUT, whose strings it owns
 * (upload_conf_clear). 0, or -EINVAL with a message in D (OUT then cleared). */
EPH_MUST_CHECK int upload_conf_parse(const char *text, size_t len, struct conf_results_store *out,
                                     struct diag *d);
void upload_conf_clear(struct conf_results_store *s);
/* Reads key K (a file of mode 600, or a variable) into *OUT (wipe and free it), its value less
 * one trailing newline. 0, or -errno with *WHY (caller frees) naming the key, never its value. */
EPH_MUST_CHECK int upload_key_read(const struct conf_secret *k, char **out, char **why);

/* One line of eph-upload's output. */
struct upload_line {
	int64_t run; /* 0: the last line, or an error */
	char *state; /* "done", "queued", "refused"; NULL on the last line and an error */
	char *error; /* why it failed, or NULL */
	char *url;   /* done: where */
	int64_t sent, files, bytes;
	int64_t ndone, nretried, nrefused; /* the last line */
	bool last;
};

/* The lines, each without its line end. Caller frees. */
char *upload_line_done(int64_t run, int64_t sent, int64_t files, int64_t bytes, const char *url);
char *upload_line_failed(int64_t run, bool refused, const char *error, double next_at);
char *upload_line_error(const char *error);
char *upload_line_last(int64_t done, int64_t retried, int64_t refused);
/* Parses LINE[0..LEN) into *OUT (upload_line_clear). 0, or -EINVAL for anything else. */
EPH_MUST_CHECK int upload_line_parse(const char *line, size_t len, struct upload_line *out);
void upload_line_clear(struct upload_line *l);

/* The path of eph-upload next to the running executable; NULL if that is unknown. Caller
 * frees. */
char *upload_proc_path(void);

#endif
