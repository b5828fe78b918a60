/* tests/unit/test_secrets.c: a run's secrets: the jobs file's "secrets" (conf_secrets.c), the
 * names in spec.json, and the values read right before a start (exec/exec_secrets.h). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "exec/exec_secrets.h"
#include "rundir/rundir.h"
#include "tmpfx.h"
#include "util/diag.h"
#include "util/xalloc.h"

static void
write_file(const char *dir, const char *name, const char *text, size_t len, mode_t mode)
{
	char *p = xasprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static struct conf *
load_ok(const char *dir, const char *text)
{
	struct conf *c = NULL;
	struct diag d;
	int rc;

	diag_init(&d);
	rc = conf_load_mem("t.yaml", dir, text, strlen(text), &c, &d);
	if (rc != 0) {
		diag_print(&d, stderr);
		fail_msg("conf_load_mem failed: %d", rc);
	}
	diag_free(&d);
	return c;
}

/* Every problem as "LINE:COL: msg" lines. */
static char *
load_err(const char *dir, const char *text)
{
	struct conf *c = NULL;
	struct diag d;
	char *out = xstrdup("");

	diag_init(&d);
	assert_int_equal(conf_load_mem("t.yaml", dir, text, strlen(text), &c, &d), -EINVAL);
	assert_null(c);
	diag_sort(&d);
	for (size_t i = 0; i < d.n; i++) {
		char *s = xasprintf("%s%d:%d: %s\n", out, d.items[i].line, d.items[i].col,
		                    d.items[i].msg);

		free(out);
		out = s;
	}
	diag_free(&d);
	return out;
}

static void
jobs_get_secrets_by_name_merged_over_the_defaults(void **state)
{
	const char *dir = *state;
	struct conf *c;
	const struct conf_job *j, *k;
	const struct conf_secret *s;

	write_file(dir, "smtp", "hunter22\n", 9, 0600);
	unsetenv("EPH_TEST_UNSET_DB");
	c = load_ok(dir, "secrets:\n"
	                 "  smtp_password: { file: smtp }\n"
	                 "  db_url: { env: EPH_TEST_UNSET_DB }\n" /* not set: not an error */
	                 "defaults:\n"
	                 "  secrets: { DATABASE_URL: db_url, SMTP_PASSWORD: smtp_password }\n"
	                 "jobs:\n"
	                 "  report:\n"
	                 "    schedule: '0 7 * * *'\n"
	                 "    run: python report.py\n"
	                 "    secrets: { SMTP_PASSWORD: db_url, EXTRA: smtp_password }\n"
	                 "  plain:\n"
	                 "    schedule: '0 7 * * *'\n"
	                 "    run: true\n");
	assert_int_equal(c->nsecrets, 2);
	s = conf_secret_find(c, "smtp_password");
	assert_non_null(s);
	assert_int_equal(s->kind, CONF_SECRET_FILE);
	assert_true(strncmp(s->from, dir, strlen(dir)) == 0);
	assert_string_equal(s->from + strlen(dir), "/smtp");
	s = conf_secret_find(c, "db_url");
	assert_int_equal(s->kind, CONF_SECRET_ENV);
	assert_string_equal(s->from, "EPH_TEST_UNSET_DB");
	assert_null(conf_secret_find(c, "smtp"));
	j = conf_job_find(c, "report");
	assert_int_equal(j->secrets.n, 3);
	assert_string_equal(j->secrets.v[0], "DATABASE_URL=db_url");
	assert_string_equal(j->secrets.v[1], "SMTP_PASSWORD=db_url"); /* the job's wins */
	assert_string_equal(j->secrets.v[2], "EXTRA=smtp_password");
	k = conf_job_find(c, "plain");
	assert_int_equal(k->secrets.n, 2);
	conf_free(c);
}

static void
every_problem_with_secrets_is_reported_at_once(void **state)
{
	const char *dir = *state;
	char *e;

	write_file(dir, "ok", "value\n", 6, 0600);
	write_file(dir, "open", "value\n", 6, 0644);
	e = load_err(dir, "secrets:\n"
	                  "  smtp_password: { file: ok }\n"
	                  "  readable: { file: open }\n"
	                  "  gone: { file: missing }\n"
	                  "  both: { file: ok, env: X }\n"
	                  "  neither: { }\n"
	                  "  typo: { flie: ok }\n"
	                  "  Bad: { env: X }\n"
	                  "  badvar: { env: 1X }\n"
	                  "  scalar: x\n"
	                  "jobs:\n"
	                  "  a:\n"
	                  "    schedule: '@hourly'\n"
	                  "    run: true\n"
	                  "    env: { SMTP_PASSWORD: x }\n"
	                  "    secrets: { SMTP_PASSWORD: smtp_password, B: smtp_pasword, 9X: "
	                  "smtp_password, EPH_JOB: smtp_password, C: nothing_like_it }\n");
	assert_non_null(strstr(e, "3:21: secret \"readable\": "));
	assert_non_null(strstr(e, "can be read by group or others (mode 0644); refusing to use "
	                          "it: chmod 600 "));
	assert_non_null(strstr(e, "4:17: secret \"gone\": cannot read "));
	assert_non_null(strstr(e, "/missing: No such file or directory\n"));
	assert_non_null(
	        strstr(e, "5:3: secret \"both\" has both \"file\" and \"env\": keep one\n"));
	assert_non_null(strstr(
	        e,
	        "6:3: secret \"neither\" needs \"file\" (a path) or \"env\" (a variable's name)\n"));
	assert_non_null(strstr(e, "7:3: secret \"typo\" needs \"file\""));
	assert_non_null(strstr(e, "7:11: unknown key \"flie\" (did you mean \"file\"?)\n"));
	assert_non_null(strstr(e, "8:3: bad secret name \"Bad\": "));
	assert_non_null(strstr(e, "9:18: secret \"badvar\": \"1X\" is not a valid environment "
	                          "variable name"));
	assert_non_null(strstr(e, "10:11: secret \"scalar\" must be a mapping, { file: PATH } or "
	                          "{ env: VAR }, not a scalar\n"));
	assert_non_null(
	        strstr(e, "16:5: job \"a\" sets SMTP_PASSWORD both in \"env\" and in \"secrets\": "
	                  "keep one\n"));
	assert_non_null(strstr(
	        e, "16:49: unknown secret \"smtp_pasword\" (did you mean \"smtp_password\"?)\n"));
	assert_non_null(strstr(e, "16:63: \"9X\" is not a valid environment variable name"));
	assert_non_null(strstr(e, "16:82: environment variable \"EPH_JOB\" is reserved"));
	assert_non_null(strstr(e, "16:109: unknown secret \"nothing_like_it\": the top-level "
	                          "\"secrets\" has none of that name\n"));
	/* each once, nothing else */
	{
		size_t n = 0;

		for (const char *p = e; (p = strchr(p, '\n')) != NULL; p++)
			n++;
		if (n != 14)
			fail_msg("%zu errors:\n%s", n, e);
	}
	free(e);
	e = load_err(dir, "jobs:\n  a: { schedule: '@hourly', run: true, secrets: { A: x } }\n");
	assert_non_null(strstr(e, "unknown secret \"x\": the top-level \"secrets\" names none\n"));
	free(e);
	/* a slurm job has no private channel to its node */
	e = load_err(dir, "secrets:\n  db: { env: X }\nexecutors:\n  hpc: { type: slurm }\n"
	                  "jobs:\n  a: { schedule: '@hourly', run: 'true', executor: hpc, "
	                  "secrets: { DB: db } }\n");
	assert_non_null(strstr(e, "6:57: job \"a\" has secrets, which the slurm executor cannot "
	                          "carry (a batch job has no private channel to its node)\n"));
	free(e);
}

static void
spec_json_carries_only_the_names_in_version_3(void **state)
{
	const char *dir = *state;
	struct rundir_spec s = { 0 }, r;
	struct diag d;
	char *p, text[4096];
	FILE *f;
	size_t n;

	s.run_id = 7;
	s.job = xstrdup("report");
	s.shell = xstrdup("true");
	s.secrets = xcalloc(3, sizeof(char *));
	s.secrets[0] = xstrdup("SMTP_PASSWORD");
	s.secrets[1] = xstrdup("DATABASE_URL");
	s.nsecrets = 2;
	assert_int_equal(rundir_spec_write(dir, &s), 0);
	diag_init(&d);
	assert_int_equal(rundir_spec_read(dir, &r, &d), 0);
	assert_int_equal(r.version, 3);
	assert_int_equal(r.nsecrets, 2);
	assert_string_equal(r.secrets[0], "SMTP_PASSWORD");
	assert_string_equal(r.secrets[1], "DATABASE_URL");
	rundir_spec_free(&r);
	p = xasprintf("%s/spec.json", dir);
	f = fopen(p, "r");
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_non_null(strstr(text, "\"secrets\":"));
	/* without secrets: as before, version 1, no field */
	for (size_t i = 0; i < s.nsecrets; i++)
		free(s.secrets[i]);
	s.nsecrets = 0;
	assert_int_equal(rundir_spec_write(dir, &s), 0);
	assert_int_equal(rundir_spec_read(dir, &r, &d), 0);
	assert_int_equal(r.version, 1);
	assert_int_equal(r.nsecrets, 0);
	rundir_spec_free(&r);
	f = fopen(p, "r");
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_null(strstr(text, "secrets"));
	/* names only: an entry with '=' is refused */
	assert_int_equal(rundir_spec_parse("{\"version\":3,\"run_id\":1,\"job\":\"j\",\"shell\":"
	                                   "\"true\",\"secrets\":[\"A=b\"]}",
	                                   78, "x", &r, &d),
	                 -EINVAL);
	diag_free(&d);
	free(p);
	rundir_spec_free(&s);
}

/* A job with secrets of a configuration loaded from DIR. */
static void
secrets_of(const char *dir, const char *secrets, const char *job, struct exec_secrets *out)
{
	char *text = xasprintf("secrets:\n%sjobs:\n  j:\n    schedule: '@hourly'\n    run: true\n"
	                       "    secrets: %s\n",
	                       secrets, job);
	struct conf *c = load_ok(dir, text);

	exec_secrets_of_job(out, c, conf_job_find(c, "j"));
	conf_free(c);
	free(text);
}

static void
values_are_read_at_each_start_less_one_newline(void **state)
{
	const char *dir = *state;
	struct exec_secrets s;
	char *blob, *why;
	size_t len;
	static const char want1[] = "PW=hunter22\n\0DB=postgres://u:p@h/db\0";
	static const char want2[] = "PW=rotated!\0DB=postgres://u:p@h/db\0";

	write_file(dir, "pw", "hunter22\n\n", 10, 0600);
	setenv("EPH_TEST_DB", "postgres://u:p@h/db", 1);
	secrets_of(dir, "  pw: { file: pw }\n  db: { env: EPH_TEST_DB }\n", "{ PW: pw, DB: db }",
	           &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(exec_secrets_read(&s, &blob, &len, &why), 0);
	assert_null(why);
	assert_int_equal(len, sizeof(want1) - 1);
	assert_memory_equal(blob, want1, len);
	exec_secrets_wipe(blob, len);
	/* rotated: the next read has it, nothing reloaded */
	write_file(dir, "pw", "rotated!", 8, 0600);
	assert_int_equal(exec_secrets_read(&s, &blob, &len, &why), 0);
	assert_int_equal(len, sizeof(want2) - 1);
	assert_memory_equal(blob, want2, len);
	exec_secrets_wipe(blob, len);
	exec_secrets_clear(&s);
	unsetenv("EPH_TEST_DB");
}

/* The read of S fails with the reason WANT, which never shows VALUE. */
static void
assert_read_fails(const struct exec_secrets *s, const char *want, const char *value)
{
	char *blob = (char *)1, *why = NULL;
	size_t len = 1;

	assert_true(exec_secrets_read(s, &blob, &len, &why) < 0);
	assert_null(blob);
	assert_int_equal(len, 0);
	assert_non_null(why);
	if (strstr(why, want) == NULL)
		fail_msg("\"%s\" not in \"%s\"", want, why);
	assert_true(strncmp(why, "secrets: ", 9) == 0);
	assert_int_equal(rundir_failure_of_reason(why), RUNDIR_FAILURE_SECRETS);
	if (value != NULL)
		assert_null(strstr(why, value));
	free(why);
}

static void
a_secret_that_cannot_be_had_fails_naming_it_not_its_value(void **state)
{
	const char *dir = *state;
	struct exec_secrets s;
	char big[CONF_SECRETS_MAX];

	write_file(dir, "pw", "hunter22", 8, 0600);
	unsetenv("EPH_TEST_UNSET");
	secrets_of(dir, "  pw: { file: pw }\n  db: { env: EPH_TEST_UNSET }\n", "{ PW: pw, DB: db }",
	           &s);
	assert_read_fails(&s, "secrets: db (for DB): the variable EPH_TEST_UNSET is not set", NULL);
	setenv("EPH_TEST_UNSET", "abc", 1);
	assert_read_fails(&s, "db (for DB): shorter than 4 bytes", "abc");
	setenv("EPH_TEST_UNSET", "abcd", 1);
	write_file(dir, "pw", "hunter22", 8, 0640);
	assert_read_fails(&s, "pw (for PW): ", "hunter22");
	assert_read_fails(&s, "/pw can be read by group or others (mode 0640)", "hunter22");
	write_file(dir, "pw", "hun\0ter22", 9, 0600);
	assert_read_fails(&s, "pw (for PW): ", NULL);
	assert_read_fails(&s, "/pw holds a NUL byte", NULL);
	write_file(dir, "pw", "abc\n", 4, 0600);
	assert_read_fails(&s, "pw (for PW): shorter than 4 bytes", NULL);
	memset(big, 'x', sizeof(big));
	write_file(dir, "pw", big, sizeof(big) - 8, 0600);
	assert_read_fails(&s, "secrets: more than 32 KiB in all", NULL);
	{
		char *p = xasprintf("%s/pw", dir);

		assert_int_equal(unlink(p), 0);
		free(p);
	}
	assert_read_fails(&s, "pw (for PW): ", NULL);
	assert_read_fails(&s, "/pw: No such file or directory", NULL);
	exec_secrets_clear(&s);
	unsetenv("EPH_TEST_UNSET");
}

static void
the_variables_secrets_come_from_are_hidden_from_every_run(void **state)
{
	const char *dir = *state;
	struct exec_secrets s;
	char *env[] = { (char *)"PATH=/bin",        (char *)"REPORTS_DB=x", (char *)"REPORTS_DB2=y",
		        (char *)"OTHER=REPORTS_DB", (char *)"API=z",        NULL };
	char **out;
	struct conf *c;

	write_file(dir, "pw", "hunter22", 8, 0600);
	c = load_ok(dir, "secrets:\n  db: { env: REPORTS_DB }\n  api: { env: API }\n"
	                 "  pw: { file: pw }\n"
	                 "jobs:\n  plain: { schedule: '@hourly', run: 'true' }\n");
	/* a job without secrets: nothing to read, the sources hidden all the same */
	exec_secrets_of_job(&s, c, conf_job_find(c, "plain"));
	assert_int_equal(s.n, 0);
	assert_int_equal(s.nhide, 2);
	out = exec_secrets_environ(&s, env);
	assert_non_null(out);
	assert_string_equal(out[0], "PATH=/bin");
	assert_string_equal(out[1], "REPORTS_DB2=y");
	assert_string_equal(out[2], "OTHER=REPORTS_DB");
	assert_null(out[3]);
	free(out);
	exec_secrets_clear(&s);
	conf_free(c);
	/* nor the variable of mail's password */
	c = load_ok(dir, "mail:\n  smtp: smtp://127.0.0.1:2525\n  from: eph@example.com\n"
	                 "  username: eph\n  password_env: SMTP_PW\n"
	                 "jobs:\n  plain: { schedule: '@hourly', run: 'true' }\n");
	exec_secrets_of_job(&s, c, conf_job_find(c, "plain"));
	assert_int_equal(s.nhide, 1);
	assert_string_equal(s.hide[0], "SMTP_PW");
	exec_secrets_clear(&s);
	conf_free(c);
	/* nor the variable of a cloud executor's token */
	c = load_ok(dir, "executors:\n  cloud:\n    type: digitalocean\n    token_env: DO_TOKEN\n"
	                 "    region: fra1\n"
	                 "jobs:\n  plain: { schedule: '@hourly', run: 'true' }\n");
	exec_secrets_of_job(&s, c, conf_job_find(c, "plain"));
	assert_int_equal(s.nhide, 1);
	assert_string_equal(s.hide[0], "DO_TOKEN");
	exec_secrets_clear(&s);
	conf_free(c);
	/* no env secret: the environment is inherited as it is */
	c = load_ok(dir, "secrets:\n  pw: { file: pw }\n"
	                 "jobs:\n  plain: { schedule: '@hourly', run: 'true' }\n");
	exec_secrets_of_job(&s, c, conf_job_find(c, "plain"));
	assert_null(exec_secrets_environ(&s, env));
	exec_secrets_clear(&s);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(jobs_get_secrets_by_name_merged_over_the_defaults,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(every_problem_with_secrets_is_reported_at_once,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(spec_json_carries_only_the_names_in_version_3,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(values_are_read_at_each_start_less_one_newline,
		                                tmpfx_setup, tmpfx_teardown),
		cmocka_unit_test_setup_teardown(
		        a_secret_that_cannot_be_had_fails_naming_it_not_its_value, tmpfx_setup,
		        tmpfx_teardown),
		cmocka_unit_test_setup_teardown(
		        the_variables_secrets_come_from_are_hidden_from_every_run, tmpfx_setup,
		        tmpfx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
