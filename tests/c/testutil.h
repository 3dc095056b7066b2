/* SPDX-License-Identifier: MIT */
/*
 * Helpers the C test programs share. Header-only, so that each program stays
 * one source file plus libcando: the kernel lane links them statically into
 * an initramfs, the sanitizer jobs rebuild them per flavour.
 */
#ifndef CANDO_TESTUTIL_H
#define CANDO_TESTUTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>

/* Why the running case failed, for its result line. */
static char why[1024];

/* Record why a case failed; returns 1 so a case can `return fail(...)`. */
__attribute__((format(printf, 1, 2), unused))
static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return 1;
}

/* This process's open fds, not counting the one that lists them. */
__attribute__((unused))
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

#endif /* CANDO_TESTUTIL_H */
