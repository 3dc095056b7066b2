/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cando/log.h>

/*
 * Global log settings. They are read on every log call from any thread,
 * so they are plain words accessed atomically rather than under a lock.
 */
static unsigned int p_level = UDO_LOG_NONE;
static int p_write_fd = STDOUT_FILENO;
static bool p_colors = true;

#define P_LINE_MAX 1024

static const char *p_color(enum udo_log_level_type type)
{
	switch (type) {
	case UDO_LOG_SUCCESS: return "\x1b[32m";
	case UDO_LOG_ERROR:   return "\x1b[31m";
	case UDO_LOG_INFO:    return "\x1b[34m";
	case UDO_LOG_WARNING: return "\x1b[33m";
	default:              return "";
	}
}

void udo_log_set_level(enum udo_log_level_type level)
{
	__atomic_store_n(&p_level, (unsigned int) level, __ATOMIC_RELAXED);
}

void udo_log_set_write_fd(int fd)
{
	__atomic_store_n(&p_write_fd, fd, __ATOMIC_RELAXED);
}

void udo_log_remove_colors(void)
{
	__atomic_store_n(&p_colors, false, __ATOMIC_RELAXED);
}

void udo_log_reset_colors(void)
{
	__atomic_store_n(&p_colors, true, __ATOMIC_RELAXED);
}

const char *udo_log_get_error(const void *context)
{
	const struct udo_log_error_struct *err = context;

	return err ? err->buffer : "";
}

unsigned int udo_log_get_error_code(const void *context)
{
	const struct udo_log_error_struct *err = context;

	return err ? err->code : 0;
}

void udo_log_set_error_struct(void *context, unsigned int code, const char *format, ...)
{
	struct udo_log_error_struct *err = context;
	int saved_errno = errno;
	va_list args;

	if (!err || !format)
		return;

	err->code = code;
	va_start(args, format);
	vsnprintf(err->buffer, sizeof(err->buffer), format, args);
	va_end(args);
	errno = saved_errno;
}

/*
 * Format one whole line and hand it to a single write(2), so lines from
 * concurrent threads never interleave. Logging must not change errno: it
 * runs on error paths whose errno the caller is about to read.
 */
static void p_vlog(enum udo_log_level_type type, bool with_time,
                   const char *format, va_list args)
{
	char stamp[16] = "", msg[P_LINE_MAX], line[P_LINE_MAX + 32];
	bool colors = __atomic_load_n(&p_colors, __ATOMIC_RELAXED);
	const char *color = colors ? p_color(type) : "";
	int saved_errno = errno;
	size_t msg_len;
	int len;

	if (!(__atomic_load_n(&p_level, __ATOMIC_RELAXED) & (unsigned int) type) || !format)
		return;

	if (with_time) {
		struct tm tm;
		time_t now = time(NULL);

		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "[%H:%M:%S] ", &tm);
	}

	vsnprintf(msg, sizeof(msg), format, args);
	msg_len = strlen(msg);
	if (msg_len && msg[msg_len - 1] == '\n')
		msg[msg_len - 1] = '\0';

	len = snprintf(line, sizeof(line), "%s%s%s%s\n", stamp, color, msg, *color ? "\x1b[0m" : "");
	if (len > (int) sizeof(line) - 1)
		len = (int) sizeof(line) - 1;
	if (write(__atomic_load_n(&p_write_fd, __ATOMIC_RELAXED), line, (size_t) len) < 0) {
		/* Nowhere left to report a failing log write. */
	}
	errno = saved_errno;
}

void udo_log_time(enum udo_log_level_type type, const char *format, ...)
{
	va_list args;

	va_start(args, format);
	p_vlog(type, true, format, args);
	va_end(args);
}

void udo_log_notime(enum udo_log_level_type type, const char *format, ...)
{
	va_list args;

	va_start(args, format);
	p_vlog(type, false, format, args);
	va_end(args);
}
