/* src/util/attr.h: compiler attributes and small macros shared by every module. */
#ifndef EPH_UTIL_ATTR_H
#define EPH_UTIL_ATTR_H
#include <stddef.h>

#define EPH_MUST_CHECK                __attribute__((warn_unused_result))
#define EPH_PRINTF(f, a)              __attribute__((format(printf, f, a)))
#define EPH_NORETURN                  __attribute__((noreturn))
#define EPH_ARRAY_LEN(a)              (sizeof(a) / sizeof((a)[0]))
#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

#endif
