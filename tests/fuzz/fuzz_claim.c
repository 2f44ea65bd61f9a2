/*
 * fuzz_claim.c - the consumer's on-disk inputs (claim.h): a work file's
 * progress file ({work}.state) read by claim_state_load, and spool file
 * names read by claim_parse_name.
 *
 * claim_state_load: whatever the file holds, the state is either exactly
 * "offset 0, no retries" (damaged) or offset >= 0 with retries at strictly
 * ascending offsets below it, attempts >= 1 and a last_error string; and
 * what claim_state_save writes, claim_state_load reads back unchanged.
 *
 * claim_parse_name: a name is accepted only as "{type}.jsonl" or
 * "{type}.jsonl.claim-{digits and '-'}" with a well-formed type, and the
 * type it gives is that prefix.
 *
 * Input: byte 0 picks the mode (even: state file, odd: file name); the
 * rest is the file's content or the name (up to its first NUL).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "fuzz_util.h"

static char dir[4096];
static const struct claim_work work = {
    .name = "item.create.jsonl.claim-1700000000000000",
    .type = "item.create",
};
static const struct claim_work again = {
    .name = "item.create.jsonl.claim-1700000000000001",
    .type = "item.create",
};
static char state_path[4096 + 300];
static char again_path[4096 + 300];

static void cleanup(void)
{
	unlink(state_path);
	unlink(again_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "%s", fz_tempdir("claim"));
	snprintf(state_path, sizeof state_path, "%s/%s%s", dir, work.name,
		 CLAIM_STATE_SUFFIX);
	snprintf(again_path, sizeof again_path, "%s/%s%s", dir, again.name,
		 CLAIM_STATE_SUFFIX);
	atexit(cleanup);
	return 0;
}

static void check_state(const struct claim_state *st)
{
	CHECK(st->offset >= 0, "offset %lld", (long long)st->offset);
	CHECK(st->n_retry == 0 || st->retry != NULL, "n_retry %zu, no retry",
	      st->n_retry);
	for (size_t i = 0; i < st->n_retry; i++) {
		const struct claim_retry *r = &st->retry[i];
		CHECK(r->off >= 0 && r->off < st->offset,
		      "retry %zu at %lld outside [0, %lld)", i,
		      (long long)r->off, (long long)st->offset);
		CHECK(i == 0 || st->retry[i - 1].off < r->off,
		      "retry %zu not ascending", i);
		CHECK(r->attempts >= 1, "retry %zu attempts 0", i);
		CHECK(r->last_error != NULL, "retry %zu without last_error",
		      i);
	}
}

static void same_state(const struct claim_state *a,
		       const struct claim_state *b)
{
	CHECK(a->offset == b->offset, "offset %lld read back as %lld",
	      (long long)a->offset, (long long)b->offset);
	CHECK(a->n_retry == b->n_retry, "%zu retries read back as %zu",
	      a->n_retry, b->n_retry);
	for (size_t i = 0; i < a->n_retry; i++) {
		CHECK(a->retry[i].off == b->retry[i].off &&
			  a->retry[i].attempts == b->retry[i].attempts &&
			  strcmp(a->retry[i].last_error,
				 b->retry[i].last_error) == 0,
		      "retry %zu read back differently", i);
	}
}

static void fuzz_state(const uint8_t *data, size_t size)
{
	struct claim_state st;
	struct claim_state back;
	char err[CLAIM_ERR_MAX];
	fz_write_file(state_path, data, size);
	claim_state_load(dir, &work, &st);
	check_state(&st);
	if (claim_state_save(dir, &again, &st, 0, err) == 0) {
		claim_state_load(dir, &again, &back);
		same_state(&st, &back);
		claim_state_free(&back);
	}
	claim_state_free(&st);
	CHECK(st.n_retry == 0 && st.retry == NULL && st.offset == 0,
	      "claim_state_free left something behind");
}

/* The SPEC's grammar for names, restated. */
static int ref_name(const char *name, char *type, char *kind)
{
	size_t n = strlen(name);
	if (n > 6 && strcmp(name + n - 6, ".jsonl") == 0 &&
	    fz_type_ok(name, n - 6)) {
		*kind = 'p';
		memcpy(type, name, n - 6);
		type[n - 6] = '\0';
		return 0;
	}
	/* Any occurrence of the mark may end the type. */
	const char *mark = CLAIM_MARK;
	size_t mlen = strlen(mark);
	for (size_t i = 0; i + mlen < n; i++) {
		const char *stamp = name + i + mlen;
		if (memcmp(name + i, mark, mlen) != 0 ||
		    strspn(stamp, "0123456789-") != strlen(stamp) ||
		    !fz_type_ok(name, i))
			continue;
		*kind = 'w';
		memcpy(type, name, i);
		type[i] = '\0';
		return 0;
	}
	return -1;
}

static void fuzz_name(const uint8_t *data, size_t size)
{
	char name[512];
	char type[65];
	char rtype[65];
	char kind = 0;
	char rkind = 0;
	if (size >= sizeof name)
		size = sizeof name - 1;
	memcpy(name, data, size);
	name[size] = '\0';
	memset(type, 0x55, sizeof type);
	int rc = claim_parse_name(name, type, &kind);
	int ref = ref_name(name, rtype, &rkind);
	if (rc == 0) {
		CHECK(memchr(type, '\0', sizeof type) != NULL,
		      "type not terminated");
		CHECK(fz_type_ok(type, strlen(type)), "type '%s'", type);
		CHECK(kind == 'p' || kind == 'w', "kind %d", kind);
		CHECK(ref == 0, "accepted '%s', which the grammar refuses",
		      name);
		CHECK(strncmp(name, type, strlen(type)) == 0,
		      "type is not a prefix of the name");
	} else {
		CHECK(rc == -1, "rc %d", rc);
		CHECK(ref != 0, "refused '%s' (grammar: type '%s' kind %c)",
		      name, rtype, rkind);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_state(data + 1, size - 1);
	else
		fuzz_name(data + 1, size - 1);
	return 0;
}
