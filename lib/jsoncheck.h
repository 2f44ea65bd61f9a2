/*
 * jsoncheck.h - is a spool line one JSON object?  Without building it.
 *
 * drain's print and batch modes hand lines over byte for byte and only need
 * to know that a line is valid JSON (else it is quarantined).  Parsing each
 * line into a jansson tree costs most of such a run; this validator reads
 * the bytes once and allocates nothing.
 */
#ifndef PODIO_JSONCHECK_H
#define PODIO_JSONCHECK_H

#include <stddef.h>

/* Nesting deeper than this is refused (spool lines nest 3 deep). */
#define JSONCHECK_DEPTH_MAX 64

/*
 * 1 when s[0..n) is exactly one JSON object (RFC 8259; surrounding blanks
 * allowed), with valid UTF-8 throughout; else 0.
 */
int jsoncheck_object(const char *s, size_t n);

#endif
