/* src/util/fsio.h: small file-system helpers shared by every component. */
#ifndef EPH_UTIL_FSIO_H
#define EPH_UTIL_FSIO_H
#include <sys/types.h>

#include "util/attr.h"

/* Makes DIR and each missing parent with MODE (as mkdir -p). 0, or -errno of the first
 * mkdir(2) that failed for another reason than EEXIST. */
EPH_MUST_CHECK int fsio_mkdirs(const char *dir, mode_t mode);

#endif
