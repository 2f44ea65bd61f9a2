/*
 * fuzz_claim.c - the consumer's on-disk inputs: a work file's progress
 * file ({work}.state) read by claim_state_load (claim.h), and the names
 * in a spool directory read by layout_parse (layout.h).
 *
 * claim_state_load: whatever a regular progress file holds, loading
 * succeeds, and the state is either exactly "offset 0, no retries"
 * (damaged or foreign) or an offset within the work file's size with
 * retries at strictly ascending offsets below it, attempts at most
 * CLAIM_ATTEMPTS_MAX and a last_error string; what claim_state_save
 * writes, claim_state_load reads back unchanged.
 *
 * layout_parse: a name is a pending file only as "{type}.jsonl" and a
 * work file only as "{type}.jsonl.claim-{digits and '-'}" (the last
 * claim mark ends the type), with a well-formed type that does not start
 * with '.'; the type it gives is that prefix.
 *
 * Input: byte 0 picks the mode (even: progress file, odd: a name); for a
 * progress file, (byte 0 / 2) % 4 picks the work file's size (1 MiB, 0,
 * 100 or 1000 bytes) and the rest is the file; for a name, the rest up to
 * its first NUL.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "fuzz_util.h"
#include "layout.h"

static char dir[4096];
static int spool_fd = -1;
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
	if (spool_fd >= 0)
		close(spool_fd);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof dir, "%s", fz_tempdir("claim"));
	snprintf(state_path, sizeof state_path, "%s/%s%s", dir, work.name,
		 LAYOUT_STATE_SUFFIX);
	snprintf(again_path, sizeof again_path, "%s/%s%s", dir, again.name,
		 LAYOUT_STATE_SUFFIX);
	spool_fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (spool_fd < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static void check_state(const struct claim_state *st, off_t size)
{
	CHECK(st->offset >= 0 && st->offset <= size,
	      "offset %lld outside [0, %lld]", (long long)st->offset,
	      (long long)size);
	CHECK(st->n_retry == 0 || st->retry != NULL, "n_retry %zu, no retry",
	      st->n_retry);
	for (size_t i = 0; i < st->n_retry; i++) {
		const struct claim_retry *r = &st->retry[i];
		CHECK(r->off >= 0 && r->off < st->offset,
		      "retry %zu at %lld outside [0, %lld)", i,
		      (long long)r->off, (long long)st->offset);
		CHECK(i == 0 || st->retry[i - 1].off < r->off,
		      "retry %zu not ascending", i);
		CHECK(r->attempts <= CLAIM_ATTEMPTS_MAX,
		      "retry %zu attempts %u", i, r->attempts);
		CHECK(r->last_error != NULL, "retry %zu without last_error", i);
	}
}

static void same_state(const struct claim_state *a, const struct claim_state *b)
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

static void fuzz_state(uint8_t mode, const uint8_t *data, size_t size)
{
	static const off_t sizes[] = {1 << 20, 0, 100, 1000};
	off_t wsize = sizes[(mode / 2) % 4];
	struct claim_state st;
	struct claim_state back;
	char err[CLAIM_ERR_MAX];
	fz_write_file(state_path, data, size);
	int rc = claim_state_load(spool_fd, dir, &work, wsize, &st, err);
	CHECK(rc == 0, "loading a regular progress file failed: %s", err);
	check_state(&st, wsize);
	if (claim_state_save(spool_fd, dir, &again, &st, 0, err) == 0) {
		rc = claim_state_load(spool_fd, dir, &again, wsize, &back, err);
		CHECK(rc == 0, "loading what was saved failed: %s", err);
		same_state(&st, &back);
		claim_state_free(&back);
	}
	claim_state_free(&st);
	CHECK(st.n_retry == 0 && st.retry == NULL && st.offset == 0,
	      "claim_state_free left something behind");
}

/* The SPEC's grammar for names, restated. */
static enum layout_kind ref_name(const char *name, char *type)
{
	static const char mark[] = ".jsonl.claim-";
	size_t n = strlen(name);
	if (n > 6 && strcmp(name + n - 6, ".jsonl") == 0) {
		if (!fz_type_ok(name, n - 6))
			return LAYOUT_OTHER;
		memcpy(type, name, n - 6);
		type[n - 6] = '\0';
		return LAYOUT_PENDING;
	}
	/* The last mark ends the type. */
	const char *last = NULL;
	for (const char *p = strstr(name, mark); p != NULL;
	     p = strstr(p + 1, mark))
		last = p;
	if (last == NULL)
		return LAYOUT_OTHER;
	const char *stamp = last + sizeof mark - 1;
	size_t tlen = (size_t)(last - name);
	if (stamp[0] == '\0' || strspn(stamp, "0123456789-") != strlen(stamp) ||
	    !fz_type_ok(name, tlen))
		return LAYOUT_OTHER;
	memcpy(type, name, tlen);
	type[tlen] = '\0';
	return LAYOUT_WORK;
}

static void fuzz_name(const uint8_t *data, size_t size)
{
	char name[512];
	char type[EVENT_TYPE_MAX + 1];
	char rtype[EVENT_TYPE_MAX + 1];
	if (size >= sizeof name)
		size = sizeof name - 1;
	memcpy(name, data, size);
	name[size] = '\0';
	memset(type, 0x55, sizeof type);
	enum layout_kind kind = layout_parse(name, type);
	enum layout_kind ref = ref_name(name, rtype);
	CHECK(kind == ref, "layout_parse(\"%s\") = %d, the grammar says %d",
	      name, (int)kind, (int)ref);
	if (kind == LAYOUT_OTHER)
		return;
	CHECK(memchr(type, '\0', sizeof type) != NULL, "type not terminated");
	CHECK(strcmp(type, rtype) == 0, "type '%s', the grammar says '%s'",
	      type, rtype);
	CHECK(fz_type_ok(type, strlen(type)), "type '%s'", type);
	CHECK(strncmp(name, type, strlen(type)) == 0,
	      "type is not a prefix of the name");
	CHECK(name[0] != '.', "a dotfile taken for a spool file");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0)
		fuzz_state(data[0], data + 1, size - 1);
	else
		fuzz_name(data + 1, size - 1);
	return 0;
}
