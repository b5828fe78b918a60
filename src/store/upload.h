/* src/store/upload.h: the uploads of runs' results to the results_store bucket (schema
 * version 7, migrate_7.sql; docs/results.md). A run's upload is written here when the run is
 * recorded terminal, before anything is sent; eph-upload claims a due one, sends the files
 * not yet recorded sent, and records each file and the outcome. So a store that is down
 * delays the upload (backoff, resumed by the next pass or the next start), a restart resumes
 * it where it stopped, and no file accepted once is sent again. */
#ifndef EPH_STORE_UPLOAD_H
#define EPH_STORE_UPLOAD_H
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/attr.h"

enum upload_state { UPLOAD_QUEUED, UPLOAD_DONE, UPLOAD_REFUSED };

/* One row of `uploads`, with what upload_files holds of it. Strings owned (upload_clear). */
struct store_upload {
	int64_t run_id;
	char *url; /* s3://BUCKET/PREFIX/JOB/RUN/ */
	enum upload_state state;
	double created_at;
	int attempts; /* passes that failed */
	double next_at;
	int64_t files;            /* the files of results/, -1 until a pass listed them */
	int64_t sent, sent_bytes; /* files accepted by the store so far, and their bytes */
	char *last_error;
	double done_at; /* 0 = not yet */
};

const char *upload_state_name(enum upload_state st); /* "queued", "done", "refused" */
void store_upload_init(struct store_upload *u);
void store_upload_clear(struct store_upload *u); /* frees the strings, re-initialises */

/* As store.h's functions, these return 0 or -errno (-EBUSY, -ENOSPC, -EROFS, -EIO). */

/* Queues the upload of run RUN_ID's results to URL, due at once. 1 queued; 0 when the run has
 * one already (nothing written). Durable on return. */
EPH_MUST_CHECK int store_upload_queue(struct store *s, int64_t run_id, const char *url);
/* Queues run RUN_ID's upload again, to URL, due at once (`eph results RUN --upload`): a refused
 * one as new (its attempts and error cleared), a queued one now; the files recorded sent are
 * forgotten when URL is not where they went. 1 queued, 0 when it is done already (nothing
 * written). With no upload, as store_upload_queue. */
EPH_MUST_CHECK int store_upload_requeue(struct store *s, int64_t run_id, const char *url);
/* The queued uploads due by DUE_BY and not leased at NOW, oldest first: *IDS a new array of
 * *N run ids (free(); NULL when none). RUN > 0: that run's only, due or not. */
EPH_MUST_CHECK int store_upload_due(struct store *s, double now, double due_by, int64_t run,
                                    int64_t **ids, size_t *n);
/* The earliest time a queued upload becomes due (the later of its next_at and its lease's
 * end) into *AT; -ENOENT when none is queued. */
EPH_MUST_CHECK int store_upload_next_due(struct store *s, double *at);
/* Leases queued upload RUN_ID until UNTIL if it is not leased at NOW: 0; -EALREADY when another
 * pass holds it or it is no longer queued. */
EPH_MUST_CHECK int store_upload_claim(struct store *s, int64_t run_id, double now, double until);
/* Extends the lease of queued upload RUN_ID that this pass holds until HELD (what its claim or
 * its last renewal set) to UNTIL. 0; -EALREADY when the pass no longer holds it (it lapsed and
 * another pass took it, or it ended); another -errno (the lease is then as it was). */
EPH_MUST_CHECK int store_upload_renew(struct store *s, int64_t run_id, double held, double until);
/* Records that the pass found FILES files in the run's results/ (what eph show counts
 * against; its failure is harmless). */
int store_upload_files(struct store *s, int64_t run_id, int64_t files);
/* Whether PATH of run RUN_ID was accepted by the store: 1 yes, 0 no, or -errno. */
EPH_MUST_CHECK int store_upload_file_sent(struct store *s, int64_t run_id, const char *path);
/* Records that the store accepted PATH (BYTES) of run RUN_ID. Durable on return. */
EPH_MUST_CHECK int store_upload_file_done(struct store *s, int64_t run_id, const char *path,
                                          int64_t bytes);
/* Ends upload RUN_ID's lease with its outcome: UPLOAD_DONE at AT; UPLOAD_REFUSED at AT with
 * ERROR; UPLOAD_QUEUED: a failed pass, attempts + 1, ERROR, the next at NEXT_AT. */
EPH_MUST_CHECK int store_upload_end(struct store *s, int64_t run_id, enum upload_state st,
                                    double at, double next_at, const char *error);
/* The terminal runs that ended at SINCE or later, and not before the first upload ever queued,
 * with no upload: those whose recording and queueing a crash came between (or recorded while
 * the configuration had no results_store), oldest first: *IDS a new array of *N (free()). */
EPH_MUST_CHECK int store_upload_unqueued(struct store *s, double since, int64_t **ids, size_t *n);
/* Reads upload RUN_ID into *OUT (initialised here; store_upload_clear it); -ENOENT if none. */
EPH_MUST_CHECK int store_upload_get(struct store *s, int64_t run_id, struct store_upload *out);

#endif
