/*
 * fuzz_util.h - small helpers shared by the fuzz targets.  Deliberately
 * independent of lib/: a check that reused the code under test would
 * prove nothing.
 */
#ifndef PODIO_FUZZ_UTIL_H
#define PODIO_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fails the run with a message libFuzzer shows next to the stack. */
#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr,                                        \
				"fuzz check failed: %s (%s:%d): ", #cond,      \
				__FILE__, __LINE__);                           \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/*
 * 1 when FUZZ_SKIP (a comma-separated list) names this check: lets a
 * developer keep fuzzing past a known, reported failure.  Never set in
 * tests/fuzz/run.
 */
static inline int fz_skip(const char *name)
{
	const char *s = getenv("FUZZ_SKIP");
	size_t n = strlen(name);
	while (s != NULL && *s != '\0') {
		size_t k = strcspn(s, ",");
		if (k == n && strncmp(s, name, n) == 0)
			return 1;
		s += k + (s[k] == ',');
	}
	return 0;
}

/* CHECK unless FUZZ_SKIP names the check. */
#define CHECK_NAMED(name, cond, ...)                                           \
	do {                                                                   \
		if (!fz_skip(name))                                            \
			CHECK(cond, __VA_ARGS__);                              \
	} while (0)

/*
 * Well-formed UTF-8 after the Unicode Standard's table 3-7: each lead
 * byte names the exact range its first continuation byte may take, which
 * rules out overlongs, surrogates and code points above U+10FFFF.
 */
static inline int fz_utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		unsigned char lo = 0x80;
		unsigned char hi = 0xbf;
		size_t more;
		if (c <= 0x7f) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
		} else if (c == 0xe0) {
			more = 2;
			lo = 0xa0;
		} else if (c == 0xed) {
			more = 2;
			hi = 0x9f;
		} else if (c >= 0xe1 && c <= 0xef) {
			more = 2;
		} else if (c == 0xf0) {
			more = 3;
			lo = 0x90;
		} else if (c == 0xf4) {
			more = 3;
			hi = 0x8f;
		} else if (c >= 0xf1 && c <= 0xf3) {
			more = 3;
		} else {
			return 0;
		}
		if (n - i - 1 < more)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= more; k++) {
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		}
		i += more + 1;
	}
	return 1;
}

/* [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+, at most 64 characters. */
static inline int fz_type_ok(const char *t, size_t n)
{
	size_t dots = 0;
	int seg_start = 1;
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (seg_start) {
			if (c < 'a' || c > 'z')
				return 0;
			seg_start = 0;
		} else if (c == '.') {
			dots++;
			seg_start = 1;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			     c == '_')) {
			return 0;
		}
	}
	return dots > 0 && !seg_start;
}

/* Makes a private temporary folder under $TMPDIR (or /tmp). */
static inline char *fz_tempdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	static char path[4096];
	snprintf(path, sizeof path, "%s/podio-fuzz-%s-XXXXXX",
		 base != NULL && base[0] != '\0' ? base : "/tmp", tag);
	if (mkdtemp(path) == NULL) {
		perror("mkdtemp");
		abort();
	}
	/* Absolute: a relative spool dir would be read against the INI's. */
	char *abs = realpath(path, NULL);
	if (abs == NULL) {
		perror("realpath");
		abort();
	}
	snprintf(path, sizeof path, "%s", abs);
	free(abs);
	return path;
}

/* Writes data to path (truncating); aborts on I/O errors. */
static inline void fz_write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL || (n > 0 && fwrite(data, 1, n, f) != n) ||
	    fclose(f) != 0) {
		perror(path);
		abort();
	}
}

#endif
