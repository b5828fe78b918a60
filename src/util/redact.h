/* src/util/redact.h: credentials out of text meant for people (messages, logs, records). */
#ifndef EPH_UTIL_REDACT_H
#define EPH_UTIL_REDACT_H

/* Returns a copy of TEXT in which every "SCHEME://USERINFO@" has lost its USERINFO@, so that
 * "https://user:token@host/x" reads "https://host/x", wherever it occurs in TEXT (a message
 * may quote several URLs). Caller frees. NULL gives NULL. */
char *redact_url(const char *text);
/* Returns a copy of TEXT in which every occurrence of SECRET (a key, a token; NULL or "" is
 * none) reads MARK instead ("[token]"): for a message that quotes what a server said, should a
 * server ever echo a credential. Caller frees. NULL gives NULL. */
char *redact_value(const char *text, const char *secret, const char *mark);

#endif
