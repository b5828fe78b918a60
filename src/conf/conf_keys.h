/* src/conf/conf_keys.h: the keys of the jobs file, as tables (name, type, bounds, default,
 * help), as redis keeps its config keys: the parser, the unknown-key suggestions and
 * docs/jobs-file.md all read the same table. Internal to src/conf. */
#ifndef EPH_CONF_CONF_KEYS_H
#define EPH_CONF_CONF_KEYS_H
#include <stddef.h>
#include <stdint.h>

#define CONF_PRICE_MAX 10000000 /* the largest price_monthly */

enum conf_ktype {
	CK_STR,     /* char *, a non-empty string */
	CK_BOOL,    /* bool: true/false */
	CK_INT,     /* int within [min, max] */
	CK_INT64,   /* int64_t within [min, max] */
	CK_SIZE,    /* uint64_t bytes within [min, max] */
	CK_DUR,     /* int64_t seconds within [min, max] */
	CK_ENUM,    /* an enum, the index of the value in values[] */
	CK_PRICE,   /* double, a price: a decimal number within [min, max], at most 4 decimals */
	CK_STRV,    /* struct conf_strv, a list of non-empty strings */
	CK_SPECIAL, /* parsed by the section's own code */
};

enum conf_kid {
	/* top level */
	K_SOURCE,
	K_DEFAULTS,
	K_PYTHON,
	K_MAIL,
	K_EXECUTORS,
	K_RETENTION,
	K_MAX_PARALLEL,
	K_SECRETS,
	K_RESULTS_STORE,
	K_JOBS,
	/* a job */
	K_SCHEDULE,
	K_RUN,
	K_COMMAND,
	K_MEMORY,
	K_TIMEOUT,
	K_KILL_GRACE,
	K_TIMEZONE,
	K_EXECUTOR,
	K_RETRIES,
	K_RETRY_BACKOFF,
	K_RETRY_ON_OOM,
	K_CONCURRENCY,
	K_CATCHUP,
	K_STARTING_DEADLINE,
	K_JITTER,
	K_ENV,
	K_WORKDIR,
	K_NOTIFY,
	K_REQUIREMENTS,
	K_INTERPRETER,
	K_JOB_SECRETS,
	K_RESULTS,
	/* a secret */
	K_SECRET_FILE,
	K_SECRET_ENV,
	/* results_store */
	K_STORE_URL,
	K_STORE_ENDPOINT,
	K_STORE_REGION,
	K_STORE_ACCESS_KEY,
	K_STORE_SECRET_KEY,
	/* notify */
	K_NOTIFY_EMAIL,
	K_NOTIFY_ON,
	K_NOTIFY_EACH,
	/* mail */
	K_SMTP,
	K_FROM,
	K_USERNAME,
	K_PASSWORD_FILE,
	K_PASSWORD_ENV,
	K_CA_FILE,
	K_STARTTLS,
	K_ADMIN,
	K_MAX_AGE,
	K_SOURCE_ALARM,
	K_MAIL_TIMEOUT,
	/* anything else: a section's keys parsed generically */
	K_OTHER,
};

struct conf_key {
	const char *name;
	enum conf_ktype type;
	enum conf_kid id;
	size_t off;                /* into the section's struct, for the generic types */
	int64_t min, max;          /* CK_INT, CK_SIZE, CK_DUR */
	const char *const *values; /* CK_ENUM: NULL-terminated */
	const char *def;           /* the default, as the documentation says it */
	const char *help;
};

struct conf_section {
	const char *name; /* as it is written in messages: "jobs.NAME", "mail" */
	const struct conf_key *keys;
	size_t n;
};

extern const struct conf_section conf_sec_top, conf_sec_source, conf_sec_python, conf_sec_mail,
        conf_sec_executors, conf_sec_local, conf_sec_retention, conf_sec_job, conf_sec_notify,
        conf_sec_memory, conf_sec_secret, conf_sec_results_store;

extern const char *const conf_notify_on_names[]; /* bit i = 1 << i; NULL-terminated */

/* The key NAME (LEN bytes) of section S, or NULL. */
const struct conf_key *conf_key_find(const struct conf_section *s, const char *name, size_t len);
/* The key of S closest to NAME within an edit distance of 2 (Damerau: insertions, deletions,
 * substitutions, transpositions), or NULL. */
const char *conf_key_suggest(const struct conf_section *s, const char *name, size_t len);
/* The optimal-string-alignment distance between A and B, or a value above MAX as soon as it
 * is certain to exceed MAX. */
size_t conf_edit_distance(const char *a, size_t alen, const char *b, size_t blen, size_t max);

#endif
