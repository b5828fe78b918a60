/* src/notify/mailproc.c: the JSON eph and eph-mail exchange, and where eph-mail is. */
#include "notify/mailproc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf/conf.h"
#include "util/diag.h"
#include "util/fsio.h"
#include "util/xalloc.h"

json_t *
mailproc_jstr(const char *s)
{
	json_t *j;
	char *copy;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	copy = xstrdup(s);
	for (unsigned char *p = (unsigned char *)copy; *p != '\0'; p++)
		if (*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

char *
mailproc_dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	if (s == NULL)
		abort();
	return s;
}

char *
mailproc_conf_json(const struct conf_mail *m)
{
	json_t *o = json_object(), *admin = json_array();

	for (size_t i = 0; i < m->admin.n; i++)
		json_array_append_new(admin, mailproc_jstr(m->admin.v[i]));
	json_object_set_new(o, "smtp", mailproc_jstr(m->smtp));
	json_object_set_new(o, "from", mailproc_jstr(m->from));
	json_object_set_new(o, "username", mailproc_jstr(m->username));
	json_object_set_new(o, "password_file", mailproc_jstr(m->password_file));
	json_object_set_new(o, "password_env", mailproc_jstr(m->password_env));
	json_object_set_new(o, "ca_file", mailproc_jstr(m->ca_file));
	json_object_set_new(o, "starttls", json_boolean(m->starttls));
	json_object_set_new(o, "admin", admin);
	json_object_set_new(o, "max_age", json_integer(m->max_age));
	json_object_set_new(o, "source_alarm", json_integer(m->source_alarm));
	json_object_set_new(o, "timeout", json_integer(m->timeout));
	return mailproc_dump(o);
}

void
mailproc_conf_clear(struct conf_mail *m)
{
	free(m->smtp);
	free(m->from);
	free(m->username);
	free(m->password_file);
	free(m->password_env);
	free(m->ca_file);
	for (size_t i = 0; i < m->admin.n; i++)
		free(m->admin.v[i]);
	free(m->admin.v);
	memset(m, 0, sizeof(*m));
}

/* *OUT = a copy of string member KEY of O (absent or null: NULL). false if not a string. */
static bool
get_str(const json_t *o, const char *key, char **out)
{
	const json_t *v = json_object_get(o, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_string(v))
		return false;
	*out = xstrdup(json_string_value(v));
	return true;
}

static bool
get_int(const json_t *o, const char *key, int64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL)
		return true;
	if (!json_is_integer(v))
		return false;
	*out = (int64_t)json_integer_value(v);
	return true;
}

int
mailproc_conf_parse(const char *text, size_t len, struct conf_mail *out, struct diag *d)
{
	json_error_t je;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
	const char *bad = NULL;

	memset(out, 0, sizeof(*out));
	if (o == NULL || !json_is_object(o)) {
		diag_error(d, (struct diag_pos){ 0 }, "mail settings: not a JSON object%s%s",
		           o == NULL ? ": " : "", o == NULL ? je.text : "");
		json_decref(o);
		return -EINVAL;
	}
	if (!get_str(o, "smtp", &out->smtp))
		bad = "smtp";
	else if (!get_str(o, "from", &out->from))
		bad = "from";
	else if (!get_str(o, "username", &out->username))
		bad = "username";
	else if (!get_str(o, "password_file", &out->password_file))
		bad = "password_file";
	else if (!get_str(o, "password_env", &out->password_env))
		bad = "password_env";
	else if (!get_str(o, "ca_file", &out->ca_file))
		bad = "ca_file";
	else if (!get_int(o, "max_age", &out->max_age))
		bad = "max_age";
	else if (!get_int(o, "source_alarm", &out->source_alarm))
		bad = "source_alarm";
	else if (!get_int(o, "timeout", &out->timeout))
		bad = "timeout";
	if (bad == NULL && (v = json_object_get(o, "starttls")) != NULL) {
		if (json_is_boolean(v))
			out->starttls = json_is_true(v);
		else
			bad = "starttls";
	}
	if (bad == NULL && (v = json_object_get(o, "admin")) != NULL) {
		size_t n = json_is_array(v) ? json_array_size(v) : 0;

		if (!json_is_array(v))
			bad = "admin";
		if (n > 0)
			out->admin.v = xcalloc(n, sizeof(*out->admin.v));
		for (size_t i = 0; i < n && bad == NULL; i++) {
			const json_t *a = json_array_get(v, i);

			if (!json_is_string(a)) {
				bad = "admin";
				break;
			}
			out->admin.v[out->admin.n++] = xstrdup(json_string_value(a));
		}
	}
	json_decref(o);
	if (bad != NULL) {
		diag_error(d, (struct diag_pos){ 0 }, "mail settings: \"%s\" has the wrong type",
		           bad);
		mailproc_conf_clear(out);
		return -EINVAL;
	}
	return 0;
}

char *
mailproc_event_line(bool warn, int64_t run, const char *msg)
{
	json_t *o = json_object();

	json_object_set_new(o, "warn", json_boolean(warn));
	json_object_set_new(o, "run", json_integer(run));
	json_object_set_new(o, "msg", mailproc_jstr(msg));
	return mailproc_dump(o);
}

char *
mailproc_result_line(size_t sent, size_t retried, size_t given_up, const char *last_error)
{
	json_t *o = json_object();

	json_object_set_new(o, "sent", json_integer((json_int_t)sent));
	json_object_set_new(o, "retried", json_integer((json_int_t)retried));
	json_object_set_new(o, "given_up", json_integer((json_int_t)given_up));
	json_object_set_new(o, "last_error", mailproc_jstr(last_error));
	return mailproc_dump(o);
}

char *
mailproc_error_line(const char *msg)
{
	json_t *o = json_object();

	json_object_set_new(o, "error", mailproc_jstr(msg));
	return mailproc_dump(o);
}

void
mailproc_line_clear(struct mailproc_line *l)
{
	free(l->msg);
	memset(l, 0, sizeof(*l));
}

static bool
get_count(const json_t *o, const char *key, size_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (size_t)json_integer_value(v);
	return true;
}

int
mailproc_parse_line(const char *line, size_t len, struct mailproc_line *out)
{
	json_t *o = json_loadb(line, len, 0, NULL);
	const json_t *v;
	bool ok = false;

	memset(out, 0, sizeof(*out));
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	if ((v = json_object_get(o, "error")) != NULL) {
		out->kind = MAILPROC_ERROR;
		ok = get_str(o, "error", &out->msg) && out->msg != NULL;
	} else if (json_object_get(o, "msg") != NULL) {
		int64_t run = 0;

		out->kind = MAILPROC_EVENT;
		v = json_object_get(o, "warn");
		out->warn = json_is_true(v);
		ok = json_is_boolean(v) && get_int(o, "run", &run) &&
		     get_str(o, "msg", &out->msg) && out->msg != NULL;
		out->run = run;
	} else {
		out->kind = MAILPROC_RESULT;
		ok = get_count(o, "sent", &out->sent) && get_count(o, "retried", &out->retried) &&
		     get_count(o, "given_up", &out->given_up) &&
		     get_str(o, "last_error", &out->msg);
	}
	json_decref(o);
	if (!ok) {
		mailproc_line_clear(out);
		return -EINVAL;
	}
	return 0;
}

char *
mailproc_path(void)
{
	return fsio_exe_sibling(MAILPROC_NAME);
}
