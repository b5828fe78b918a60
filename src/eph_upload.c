/* src/eph_upload.c: `eph-upload`, the process that uploads runs' results to the results_store
 * bucket (internal: eph and the daemon run it; see docs/results.md).
 *
 *   eph-upload send [--all] [--run ID] [--state DIR]
 *
 * It reads the results_store settings, already validated, as one JSON object on stdin
 * (upload/upload.h): the keys are read here, from their file (mode 600) or variable, never
 * from argv, and are never printed. One pass over the uploads of the state directory's store
 * (--state, else $EPH_STATE): those due now, every queued one with --all, only run ID's with
 * --run; each one's files not yet accepted by the store are PUT to PREFIX/JOB/RUN/PATH, one
 * after the other, each recorded as it is accepted. One JSON line per upload on stdout, then a
 * last line with the counts. Exit 0 whatever the store said (the store records it), 1 when it
 * could not work at all (a JSON line {"error": ...} says why), 2 for bad input.
 *
 * Like eph-mail, it is a process of its own so that eph and its daemon never map libcurl. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "conf/conf.h"
#include "rundir/results.h"
#include "store/store.h"
#include "store/upload.h"
#include "upload/s3.h"
#include "upload/upload.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define EXIT_BROKEN 1
#define EXIT_INPUT  2

/* Seconds a pass holds an upload, renewed as it goes (each file, and every S3_TICK_S during a
 * put): a pass killed (kill -9) leaves an upload that the next pass takes this long after. */
#define UPLOAD_LEASE 120.0

static const char usage[] = "usage: eph-upload send [--all] [--run ID] [--state DIR]\n";

static void
put_line(char *line)
{
	printf("%s\n", line);
	fflush(stdout);
	free(line);
}

/* Reads stdin whole into *S. */
static int
read_conf(struct conf_results_store *s, struct diag *d)
{
	struct buf in;
	int rc;

	memset(s, 0, sizeof(*s));
	buf_init(&in, BUF_MAX_CONF);
	if ((rc = fsio_read_fd(STDIN_FILENO, &in)) == -E2BIG)
		diag_error(d, (struct diag_pos){ 0 }, "results_store settings: more than %zu bytes",
		           in.limit);
	else if (rc < 0)
		diag_error(d, (struct diag_pos){ 0 },
		           "results_store settings: cannot read stdin: %s", strerror(-rc));
	if (rc == 0)
		rc = upload_conf_parse(in.data != NULL ? in.data : "", in.len, s, d);
	buf_free(&in);
	return rc;
}

struct pass {
	struct store *st;
	const struct conf_results_store *cs;
	struct s3 *s3; /* NULL when the keys could not be read */
	char *key_why; /* why not */
	int64_t ndone, nretried, nrefused;
	int64_t run;  /* the upload being sent */
	double lease; /* the end of its lease, as this pass last wrote it */
	bool lost;    /* the lease lapsed and another pass took the upload over */
};

/* Extends the lease of the upload being sent (before each file, and during a put as s3's
 * tick): nonzero when the pass no longer holds it (the put going on is then abandoned; the
 * other pass sends it). A store busy now leaves the lease as it was, to be renewed later. */
static int
lease_renew(void *arg)
{
	struct pass *ps = arg;
	double until = clock_real() + UPLOAD_LEASE;
	int rc = store_upload_renew(ps->st, ps->run, ps->lease, until);

	if (rc == 0)
		ps->lease = until;
	else if (rc == -EALREADY)
		ps->lost = true;
	return ps->lost ? 1 : 0;
}

/* Says that the pass let go of RUN, whose lease another pass took over. */
static void
upload_lost(int64_t run)
{
	char *msg = xasprintf("upload of run %lld: its lease lapsed and another pass took it over",
	                      (long long)run);

	put_line(upload_line_error(msg));
	free(msg);
}

/* Records the failed upload of RUN (ATTEMPTS failed before) and says so. */
static void
upload_failed(struct pass *ps, int64_t run, int attempts, bool refused, const char *why)
{
	double now = clock_real(), next = now + upload_backoff(attempts + 1);
	int rc;

	rc = store_upload_end(ps->st, run, refused ? UPLOAD_REFUSED : UPLOAD_QUEUED, now, next,
	                      why);
	if (rc < 0) {
		char *msg = xasprintf("upload of run %lld: cannot record it: %s", (long long)run,
		                      strerror(-rc));

		put_line(upload_line_error(msg));
		free(msg);
	}
	put_line(upload_line_failed(run, refused, why, next));
	if (refused)
		ps->nrefused++;
	else
		ps->nretried++;
}

/* Uploads run RUN's results not yet sent; what became of it is recorded and said. */
static void
upload_run(struct pass *ps, int64_t run)
{
	struct results_file *f = NULL;
	struct store_upload u;
	struct store_run r;
	size_t n = 0, i;
	int64_t bytes = 0;
	char *why = NULL, *bucket = NULL;
	const char *base = NULL;
	int rc;

	store_run_init(&r);
	store_upload_init(&u);
	ps->run = run;
	ps->lease = clock_real() + UPLOAD_LEASE;
	ps->lost = false;
	if (store_upload_claim(ps->st, run, clock_real(), ps->lease) < 0)
		goto out; /* another pass has it, or it ended meanwhile */
	if ((rc = store_upload_get(ps->st, run, &u)) < 0 ||
	    (rc = store_run_get(ps->st, run, &r)) < 0) {
		why = xasprintf("cannot read run %lld: %s", (long long)run, strerror(-rc));
		upload_failed(ps, run, u.attempts, false, why);
		goto out;
	}
	if (ps->s3 == NULL) {
		upload_failed(ps, run, u.attempts, false, ps->key_why);
		goto out;
	}
	if (r.run_dir == NULL || (rc = results_list(r.run_dir, &f, &n)) < 0) {
		why = xasprintf("cannot list %s/results: %s", r.run_dir != NULL ? r.run_dir : "?",
		                r.run_dir != NULL ? strerror(-rc) : "the run has no directory");
		upload_failed(ps, run, u.attempts, true, why);
		goto out;
	}
	if (u.url == NULL || strncmp(u.url, "s3://", 5) != 0 ||
	    (base = strchr(u.url + 5, '/')) == NULL || base == u.url + 5) {
		why = xasprintf("bad url %s", u.url != NULL ? u.url : "(none)");
		upload_failed(ps, run, u.attempts, true, why);
		goto out;
	}
	bucket = xstrndup(u.url + 5, (size_t)(base - (u.url + 5)));
	s3_set_tick(ps->s3, lease_renew, ps);
	(void)store_upload_files(ps->st, run, (int64_t)n);
	for (i = 0; i < n; i++) {
		enum s3_outcome res;
		char *path, *key;
		struct stat sb;
		int fd;

		if ((rc = store_upload_file_sent(ps->st, run, f[i].path)) != 0) {
			if (rc < 0) {
				why = xasprintf("cannot read the store: %s", strerror(-rc));
				upload_failed(ps, run, u.attempts, false, why);
				goto out;
			}
			bytes += (int64_t)f[i].size;
			continue;
		}
		if (lease_renew(ps) != 0) {
			upload_lost(run);
			goto out;
		}
		path = xasprintf("%s/" RUNDIR_RESULTS "/%s", r.run_dir, f[i].path);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		rc = fd < 0 || fstat(fd, &sb) < 0 ? -errno : S_ISREG(sb.st_mode) ? 0 : -EINVAL;
		if (rc < 0) {
			/* the run's own directory: nothing a later pass would find better */
			why = xasprintf("cannot read %s: %s", path,
			                rc == -EINVAL ? "not a regular file" : strerror(-rc));
			if (fd >= 0)
				close(fd);
			free(path);
			upload_failed(ps, run, u.attempts, true, why);
			goto out;
		}
		free(path);
		/* where the upload was queued for: s3://BUCKET/PREFIX/JOB/RUN/ (a reload that
		 * changed the url takes effect for the runs recorded after it) */
		key = xasprintf("%s%s", base + 1, f[i].path);
		res = s3_put_fd(ps->s3, bucket, key, fd, (uint64_t)sb.st_size, &why);
		close(fd);
		free(key);
		if (res != S3_OK && ps->lost) {
			upload_lost(run); /* the other pass records what becomes of it */
			goto out;
		}
		if (res != S3_OK) {
			char *msg = xasprintf("%s: %s", f[i].path, why);

			free(why);
			why = msg;
			upload_failed(ps, run, u.attempts, res == S3_REFUSED, why);
			goto out;
		}
		if ((rc = store_upload_file_done(ps->st, run, f[i].path, (int64_t)sb.st_size)) <
		    0) {
			why = xasprintf("cannot record %s sent: %s", f[i].path, strerror(-rc));
			upload_failed(ps, run, u.attempts, false, why);
			goto out;
		}
		bytes += (int64_t)sb.st_size;
	}
	if ((rc = store_upload_end(ps->st, run, UPLOAD_DONE, clock_real(), 0, NULL)) < 0) {
		why = xasprintf("upload of run %lld: cannot record it done: %s", (long long)run,
		                strerror(-rc));
		put_line(upload_line_error(why));
		goto out;
	}
	put_line(upload_line_done(run, (int64_t)n, (int64_t)n, bytes, u.url));
	ps->ndone++;
out:
	free(why);
	free(bucket);
	results_files_free(f, n);
	store_upload_clear(&u);
	store_run_clear(&r);
}

/* Reads both keys and makes the client into PS; else PS->key_why says why. */
static void
pass_client(struct pass *ps)
{
	char *access = NULL, *secret = NULL;

	if (upload_key_read(&ps->cs->access_key, &access, &ps->key_why) == 0 &&
	    upload_key_read(&ps->cs->secret_key, &secret, &ps->key_why) == 0 &&
	    s3_new(ps->cs->endpoint, ps->cs->region, access, secret, &ps->s3) < 0)
		ps->key_why = xstrdup("libcurl could not be initialised");
	if (access != NULL) {
		explicit_bzero(access, strlen(access));
		free(access);
	}
	if (secret != NULL) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
}

static int
upload_send(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "run", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *state = getenv("EPH_STATE");
	struct conf_results_store cs;
	struct pass ps = { 0 };
	struct diag d;
	int64_t run = 0, *ids = NULL;
	size_t n = 0;
	char *db = NULL, *end, *msg;
	bool all = false;
	double now;
	int c, rc, ret = EXIT_BROKEN;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a') {
			all = true;
		} else if (c == 's') {
			state = optarg;
		} else if (c == 'r') {
			errno = 0;
			run = strtoll(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || run <= 0) {
				fprintf(stderr, "eph-upload: --run: not a run id: %s\n", optarg);
				return EXIT_INPUT;
			}
		} else {
			fputs(usage, stderr);
			return EXIT_INPUT;
		}
	}
	if (optind != argc || state == NULL || *state == '\0') {
		fputs(optind != argc ? usage
		                     : "eph-upload: no state directory (--state or EPH_STATE)\n",
		      stderr);
		return EXIT_INPUT;
	}
	diag_init(&d);
	if (read_conf(&cs, &d) < 0) {
		msg = diag_joined(&d, "bad results_store settings");
		put_line(upload_line_error(msg));
		free(msg);
		diag_free(&d);
		return EXIT_INPUT;
	}
	db = xasprintf("%s/eph.db", state);
	if (store_open(db, &ps.st, &d) < 0) {
		msg = diag_joined(&d, "cannot open the store");
		put_line(upload_line_error(msg));
		free(msg);
		goto out;
	}
	now = clock_real();
	if ((rc = store_upload_due(ps.st, now, all ? 1e300 : now, run, &ids, &n)) < 0) {
		msg = xasprintf("cannot read the uploads: %s", strerror(-rc));
		put_line(upload_line_error(msg));
		free(msg);
		goto out;
	}
	ps.cs = &cs;
	if (n > 0) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ps.key_why = xstrdup("libcurl could not be initialised");
		else
			pass_client(&ps);
	}
	if (n > 0 && ps.s3 == NULL && ps.key_why == NULL)
		ps.key_why = xstrdup("the keys could not be read");
	/* a stop ends the pass: the uploads not begun stay as they are (not claimed, not counted
	 * as failed), for the next pass */
	for (size_t i = 0; i < n && !s3_stopped(); i++)
		upload_run(&ps, ids[i]);
	put_line(upload_line_last(ps.ndone, ps.nretried, ps.nrefused));
	ret = 0;
out:
	s3_free(ps.s3);
	free(ps.key_why);
	free(ids);
	store_close(ps.st);
	free(db);
	diag_free(&d);
	upload_conf_clear(&cs);
	curl_global_cleanup();
	return ret;
}

static void
upload_stop(int sig)
{
	(void)sig;
	s3_stop();
}

int
main(int argc, char **argv)
{
	struct sigaction sa;

	signal(SIGPIPE, SIG_IGN);
	/* a stop (the daemon's) abandons the put going on: the upload stays queued, resumed by
	 * the next pass from its first file not yet accepted */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = upload_stop;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("%s\nUploads runs' results to results_store; eph and its daemon run it (see "
		       "docs/results.md).\nThe results_store settings come as one JSON object on "
		       "stdin.\n",
		       usage);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "send") == 0)
		return upload_send(argc - 1, argv + 1);
	fputs(usage, stderr);
	return EXIT_INPUT;
}
