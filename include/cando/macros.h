/* SPDX-License-Identifier: MIT */
#ifndef CANDO_MACROS_H
#define CANDO_MACROS_H

/*
 * UDO_API marks what libcando exports. Everything else is built with
 * -fvisibility=hidden, so the ABI is exactly the functions carrying this mark.
 * In C++ it also gives C linkage, so C++ programs link against the C ABI.
 */
#ifdef __cplusplus
# define UDO_API extern "C" __attribute__((visibility("default")))
#else
# define UDO_API __attribute__((visibility("default")))
#endif

/* Number of elements of a true array (not a pointer). */
#define UDO_ARRAY_LEN(array) (sizeof(array) / sizeof((array)[0]))

/* printf-style format checking for the log functions. */
#define UDO_PRINTF(fmt_idx, args_idx) \
	__attribute__((format(printf, fmt_idx, args_idx)))

#define UDO_UNUSED __attribute__((unused))

#endif /* CANDO_MACROS_H */
