/* placeholder: being written */
#include "conf/conf.h"

#include <errno.h>
#include <stddef.h>

int
conf_load(const char *path, struct conf **out, struct diag *d)
{
	(void)path;
	(void)d;
	*out = NULL;
	return -ENOSYS;
}

int
conf_load_mem(const char *name, const char *dir, const char *text, size_t len, struct conf **out,
              struct diag *d)
{
	(void)name;
	(void)dir;
	(void)text;
	(void)len;
	(void)d;
	*out = NULL;
	return -ENOSYS;
}

void
conf_free(struct conf *c)
{
	(void)c;
}

const struct conf_job *
conf_job_find(const struct conf *c, const char *name)
{
	(void)c;
	(void)name;
	return NULL;
}
