/* src/upload/upload.c: which runs are uploaded and where, eph-upload's JSON, the keys, and the
 * mail about a refused upload. No curl here: this is lib_upload. */
#include "upload/upload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf/conf.h"
#include "notify/mailproc.h"
#include "notify/notify.h"
#include "rundir/results.h"
#include "store/store.h"
#include "store/upload.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

#define UPLOAD_KEY_MAX (4u << 10) /* bytes of a key's file */

char *
upload_run_url(const struct conf_results_store *s, const char *job, int64_t run)
{
	return xasprintf("s3://%s/%s%s%s/%lld/", s->bucket, s->prefix,
	                 s->prefix[0] != '\0' ? "/" : "", job, (long long)run);
}

double
upload_backoff(int attempts)
{
	double d = UPLOAD_RETRY_MIN;

	for (int i = 1; i < attempts && d < UPLOAD_RETRY_MAX; i++)
		d *= 2;
	return d < UPLOAD_RETRY_MAX ? d : UPLOAD_RETRY_MAX;
}

int
upload_queue_run(struct store *st, const struct conf *c, int64_t run_id, struct diag *d)
{
	struct results_file *f = NULL;
	struct store_run r;
	size_t n = 0;
	char *url;
	int rc;

	if (c == NULL || c->results_store.url == NULL || run_id <= 0)
		return 0;
	store_run_init(&r);
	if ((rc = store_run_get(st, run_id, &r)) < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "upload: cannot read run %lld: %s",
		           (long long)run_id, strerror(-rc));
		goto out;
	}
	if (r.run_dir == NULL || r.job == NULL || (rc = results_list(r.run_dir, &f, &n)) < 0 ||
	    n == 0) {
		rc = 0; /* no results (a skipped run, one that never started): nothing to send */
		goto out;
	}
	url = upload_run_url(&c->results_store, r.job, run_id);
	if ((rc = store_upload_queue(st, run_id, url)) < 0)
		diag_error(d, (struct diag_pos){ 0 }, "upload of run %lld: cannot queue it: %s",
		           (long long)run_id, store_errmsg(st));
	free(url);
out:
	results_files_free(f, n);
	store_run_clear(&r);
	return rc;
}

int
upload_mail_refused(struct store *st, const struct conf *c, int64_t run_id, const char *error,
                    struct diag *d)
{
	const struct conf_strv *to;
	const struct conf_job *j;
	struct store_upload u;
	struct store_run r;
	struct buf body;
	char *subject = NULL, *dedup = NULL, *what = NULL;
	int rc = 0;

	store_run_init(&r);
	store_upload_init(&u);
	buf_init(&body, BUF_MAX_MSG);
	if (c->mail.smtp == NULL || store_run_get(st, run_id, &r) < 0 || r.job == NULL)
		goto out;
	j = conf_job_find(c, r.job);
	to = j != NULL && j->notify.email.n > 0 ? &j->notify.email : &c->mail.admin;
	if (to->n == 0)
		goto out;
	if (store_upload_get(st, run_id, &u) < 0)
		store_upload_init(&u); /* the mail names the store's URL instead */
	rc = buf_printf(&body,
	                "The results of run %lld of job %s were not uploaded, and nothing more is "
	                "tried: the store refused them (or they could not be read).\n\n"
	                "Store:      %s\n"
	                "Error:      %s\n"
	                "Outcome:    %s\n\n"
	                "The results are kept in the run directory:\n  %s/results\n"
	                "Copy them out with: eph results %lld --to DIR\n\n"
	                "Check results_store's keys, bucket and permissions; then upload them "
	                "with: eph results %lld --upload\nThe whole run: eph show %lld\n",
	                (long long)run_id, r.job, u.url != NULL ? u.url : c->results_store.url,
	                error != NULL ? error : "?", store_state_name(r.state),
	                r.run_dir != NULL ? r.run_dir : "?", (long long)run_id, (long long)run_id,
	                (long long)run_id);
	what = xasprintf("mail about run %lld's upload", (long long)run_id);
	if (rc < 0) {
		diag_error(d, (struct diag_pos){ 0 }, "%s: cannot build it: %s", what,
		           strerror(-rc));
		goto out;
	}
	subject = xasprintf("%s: results of run %lld not uploaded (refused)", r.job,
	                    (long long)run_id);
	dedup = xasprintf("upload:%lld", (long long)run_id);
	rc = notify_queue(st, c, to, run_id, dedup, subject, buf_cstr(&body), what, d);
out:
	buf_free(&body);
	free(subject);
	free(dedup);
	free(what);
	store_upload_clear(&u);
	store_run_clear(&r);
	return rc;
}

/* ---- eph-upload's input ---- */

static json_t *
key_json(const struct conf_secret *k)
{
	return json_pack("{s:s, s:s, s:o}", "name", k->name != NULL ? k->name : "key", "kind",
	                 k->kind == CONF_SECRET_ENV ? "env" : "file", "from",
	                 mailproc_jstr(k->from));
}

char *
upload_conf_json(const struct conf_results_store *s)
{
	json_t *o = json_object();

	json_object_set_new(o, "url", mailproc_jstr(s->url));
	json_object_set_new(o, "bucket", mailproc_jstr(s->bucket));
	json_object_set_new(o, "prefix", mailproc_jstr(s->prefix));
	json_object_set_new(o, "endpoint", mailproc_jstr(s->endpoint));
	json_object_set_new(o, "region", mailproc_jstr(s->region));
	json_object_set_new(o, "access_key", key_json(&s->access_key));
	json_object_set_new(o, "secret_key", key_json(&s->secret_key));
	return mailproc_dump(o);
}

void
upload_conf_clear(struct conf_results_store *s)
{
	conf_results_store_clear(s);
}

static char *
get_str(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? xstrdup(v) : NULL;
}

static bool
key_parse(const json_t *o, struct conf_secret *k)
{
	const char *kind = json_string_value(json_object_get(o, "kind"));

	if (!json_is_object(o) || kind == NULL)
		return false;
	k->kind = strcmp(kind, "env") == 0 ? CONF_SECRET_ENV : CONF_SECRET_FILE;
	k->name = get_str(o, "name");
	k->from = get_str(o, "from");
	return k->name != NULL && k->from != NULL;
}

int
upload_conf_parse(const char *text, size_t len, struct conf_results_store *out, struct diag *d)
{
	json_error_t err;
	json_t *o = json_loadb(text, len, 0, &err);
	bool ok;

	memset(out, 0, sizeof(*out));
	if (o == NULL || !json_is_object(o)) {
		diag_error(d, (struct diag_pos){ 0 },
		           "results_store settings: not a JSON object: %s",
		           o == NULL ? err.text : "");
		json_decref(o);
		return -EINVAL;
	}
	out->url = get_str(o, "url");
	out->bucket = get_str(o, "bucket");
	out->prefix = get_str(o, "prefix");
	out->endpoint = get_str(o, "endpoint");
	out->region = get_str(o, "region");
	ok = out->url != NULL && out->bucket != NULL && out->prefix != NULL &&
	     out->endpoint != NULL && out->region != NULL &&
	     key_parse(json_object_get(o, "access_key"), &out->access_key) &&
	     key_parse(json_object_get(o, "secret_key"), &out->secret_key);
	json_decref(o);
	if (!ok) {
		upload_conf_clear(out);
		diag_error(d, (struct diag_pos){ 0 },
		           "results_store settings: a member is missing");
		return -EINVAL;
	}
	return 0;
}

int
upload_key_read(const struct conf_secret *k, char **out, char **why)
{
	char *w = NULL;
	int rc;

	*out = NULL;
	*why = NULL;
	if (k->kind == CONF_SECRET_ENV) {
		const char *v = getenv(k->from);

		if (v == NULL || *v == '\0') {
			*why = xasprintf("%s: the variable %s is %s", k->name, k->from,
			                 v == NULL ? "not set" : "empty");
			return -ENOENT;
		}
		*out = xstrdup(v);
		return 0;
	}
	if ((rc = fsio_read_secret_line(k->from, UPLOAD_KEY_MAX, out, &w)) < 0) {
		*why = xasprintf("%s: %s", k->name, w);
		free(w);
	}
	return rc;
}

/* ---- eph-upload's output ---- */

char *
upload_line_done(int64_t run, int64_t sent, int64_t files, int64_t bytes, const char *url)
{
	return mailproc_dump(json_pack("{s:I, s:s, s:I, s:I, s:I, s:o}", "run", (json_int_t)run,
	                               "state", "done", "sent", (json_int_t)sent, "files",
	                               (json_int_t)files, "bytes", (json_int_t)bytes, "url",
	                               mailproc_jstr(url)));
}

char *
upload_line_failed(int64_t run, bool refused, const char *error, double next_at)
{
	json_t *o = json_pack("{s:I, s:s, s:o}", "run", (json_int_t)run, "state",
	                      refused ? "refused" : "queued", "error", mailproc_jstr(error));

	if (!refused)
		json_object_set_new(o, "next_at", json_real(next_at));
	return mailproc_dump(o);
}

char *
upload_line_error(const char *error)
{
	return mailproc_dump(json_pack("{s:o}", "error", mailproc_jstr(error)));
}

char *
upload_line_last(int64_t done, int64_t retried, int64_t refused)
{
	return mailproc_dump(json_pack("{s:I, s:I, s:I}", "done", (json_int_t)done, "retried",
	                               (json_int_t)retried, "refused", (json_int_t)refused));
}

static int64_t
jint(const json_t *o, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(o, key));
}

int
upload_line_parse(const char *line, size_t len, struct upload_line *out)
{
	json_t *o = json_loadb(line, len, 0, NULL);

	memset(out, 0, sizeof(*out));
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	out->run = jint(o, "run");
	out->state = get_str(o, "state");
	out->error = get_str(o, "error");
	out->url = get_str(o, "url");
	out->sent = jint(o, "sent");
	out->files = jint(o, "files");
	out->bytes = jint(o, "bytes");
	out->last = json_object_get(o, "done") != NULL;
	out->ndone = jint(o, "done");
	out->nretried = jint(o, "retried");
	out->nrefused = jint(o, "refused");
	json_decref(o);
	if (!out->last && out->state == NULL && out->error == NULL) {
		upload_line_clear(out);
		return -EINVAL;
	}
	return 0;
}

void
upload_line_clear(struct upload_line *l)
{
	free(l->state);
	free(l->error);
	free(l->url);
	memset(l, 0, sizeof(*l));
}

char *
upload_proc_path(void)
{
	return fsio_exe_sibling(UPLOADPROC_NAME);
}
