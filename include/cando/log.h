/* SPDX-License-Identifier: MIT */
#ifndef CANDO_LOG_H
#define CANDO_LOG_H

#include <cando/macros.h>

/*
 * Log levels are bit flags: udo_log_set_level(UDO_LOG_ERROR | UDO_LOG_INFO)
 * prints both. The default is UDO_LOG_NONE: the library prints nothing
 * unless asked.
 */
/* UDO_LOG_ALL is 0xFFFFFFFF, as the contract fixes it: outside an int, which
 * ISO C asks of enumerators and -Wpedantic reports. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
enum udo_log_level_type {
	UDO_LOG_NONE    = 0x00000000,
	UDO_LOG_SUCCESS = 0x00000001,
	UDO_LOG_ERROR   = 0x00000002,
	UDO_LOG_INFO    = 0x00000004,
	UDO_LOG_WARNING = 0x00000008,
	UDO_LOG_RESET   = 0x00000010,
	UDO_LOG_ALL     = 0xFFFFFFFF
};
#pragma GCC diagnostic pop

#ifdef __cplusplus
/* In C++ enumerators OR to an integer: give the combined flags their type
 * back, so udo_log_set_level(UDO_LOG_ERROR | UDO_LOG_INFO) works there too. */
inline enum udo_log_level_type operator|(enum udo_log_level_type a, enum udo_log_level_type b)
{
	return static_cast<enum udo_log_level_type>(static_cast<unsigned int>(a) |
	                                            static_cast<unsigned int>(b));
}
#endif

/* Error codes of the library's own; below 0x1000 a code is an errno value. */
enum udo_log_error_type {
	UDO_LOG_ERR_UNCOMMON       = 0x1000,
	UDO_LOG_ERR_INCORRECT_DATA = 0x1001
};

#define UDO_LOG_ERROR_BUFFER_SIZE 512

/*
 * Per-instance error record. Instances embed it as their first member, so
 * a pointer to an instance is also a pointer to its error record. It is not
 * synchronised: threads sharing an instance should read errno or the return
 * value, which are their own.
 */
struct udo_log_error_struct {
	unsigned int code;
	char buffer[UDO_LOG_ERROR_BUFFER_SIZE];
};

/* Which levels are printed (a mask of enum udo_log_level_type). */
UDO_API void udo_log_set_level(enum udo_log_level_type level);

/* Where log lines go (default: standard output, fd 1). */
UDO_API void udo_log_set_write_fd(int fd);

/* Print without ANSI colour escapes. */
UDO_API void udo_log_remove_colors(void);

/* Print with ANSI colour escapes again (the default). */
UDO_API void udo_log_reset_colors(void);

/*
 * The message of the last error recorded in @context, a pointer to any
 * instance whose first member is a struct udo_log_error_struct.
 * Returns "" for NULL.
 */
UDO_API const char *udo_log_get_error(const void *context);

/* The code of the last error recorded in @context (0 for NULL or none). */
UDO_API unsigned int udo_log_get_error_code(const void *context);

/* Record an error in @context: a code and a printf-formatted message. */
UDO_API void udo_log_set_error_struct(void *context, unsigned int code,
                                      const char *format, ...) UDO_PRINTF(3, 4);

/* Print a line at @type if enabled, prefixed with the time of day. */
UDO_API void udo_log_time(enum udo_log_level_type type, const char *format, ...)
	UDO_PRINTF(2, 3);

/* Print a line at @type if enabled, without the time. */
UDO_API void udo_log_notime(enum udo_log_level_type type, const char *format, ...)
	UDO_PRINTF(2, 3);

#define udo_log_error(...)   udo_log_time(UDO_LOG_ERROR, __VA_ARGS__)
#define udo_log_info(...)    udo_log_time(UDO_LOG_INFO, __VA_ARGS__)
#define udo_log_success(...) udo_log_time(UDO_LOG_SUCCESS, __VA_ARGS__)
#define udo_log_warning(...) udo_log_time(UDO_LOG_WARNING, __VA_ARGS__)
#define udo_log_print(...)   udo_log_notime(UDO_LOG_ALL, __VA_ARGS__)
#define udo_log_set_error(context, code, ...) \
	udo_log_set_error_struct((context), (code), __VA_ARGS__)

#endif /* CANDO_LOG_H */
