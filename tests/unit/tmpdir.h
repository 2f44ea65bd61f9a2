/*
 * tmpdir.h - a scratch directory per test, for the unit tests that touch
 * files.  Header-only: each test program includes it once.
 */
#ifndef PODIO_TEST_TMPDIR_H
#define PODIO_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Makes /tmp/<prefix>.XXXXXX into dir (size >= 64); 0 or -1. */
static inline int tmpdir_make(char *dir, size_t size, const char *prefix)
{
	snprintf(dir, size, "/tmp/%s.XXXXXX", prefix);
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static inline int tmpdir_rm_one(const char *path, const struct stat *st,
				int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes dir and everything below it; 0 or -1. */
static inline int tmpdir_remove(const char *dir)
{
	return nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
