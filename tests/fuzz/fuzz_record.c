/*
 * fuzz_record.c - record_encode on parameters decoded by form_parse
 * (SPEC section 5): the line is one JSON object ending in exactly one
 * '\n', with no raw control characters, valid UTF-8, keys in the SPEC's
 * order, and every parameter but "secret" round-trips byte for byte and
 * in arrival order.
 *
 * Input: byte 0 picks remote_addr and the verification status; the rest
 * is a form body.  Its "type" value (if any) is the record's type and a
 * "detail" value (if any) the verification detail.  Fields decoded before
 * a bad one count too: form.h promises they are valid.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "form.h"
#include "fuzz_util.h"
#include "jsoncheck.h"
#include "record.h"

static const char *const addrs[] = {"", "127.0.0.1", "::1", "2001:db8::7",
				    "203.0.113.250"};
static const char *const verify[] = {NULL, "validated", "failed", "skipped"};

static int digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
	}
	return 1;
}

/* "<16 digits>-<pid>" and "YYYY-MM-DDTHH:MM:SS.uuuuuuZ". */
static void check_stamp(const struct stamp *st)
{
	static char last[RECORD_ID_MAX];
	char want[32];
	const char *r = st->received;
	snprintf(want, sizeof want, "-%ld", (long)getpid());
	CHECK(strlen(st->id) == 16 + strlen(want) && digits(st->id, 16) &&
		  strcmp(st->id + 16, want) == 0,
	      "id '%s'", st->id);
	CHECK(strcmp(st->id, last) > 0, "id '%s' after '%s'", st->id, last);
	memcpy(last, st->id, sizeof last);
	CHECK(strlen(r) == 27 && digits(r, 4) && r[4] == '-' &&
		  digits(r + 5, 2) && r[7] == '-' && digits(r + 8, 2) &&
		  r[10] == 'T' && digits(r + 11, 2) && r[13] == ':' &&
		  digits(r + 14, 2) && r[16] == ':' && digits(r + 17, 2) &&
		  r[19] == '.' && digits(r + 20, 6) && r[26] == 'Z',
	      "received '%s'", r);
}

static void check_str(json_t *v, const char *want, size_t wlen,
		      const char *what)
{
	CHECK(json_is_string(v), "%s is not a string", what);
	CHECK(json_string_length(v) == wlen &&
		  memcmp(json_string_value(v), want, wlen) == 0,
	      "%s differs", what);
}

static void check_line(const char *line, size_t len, const struct record *r)
{
	json_error_t jerr;
	CHECK(len >= 2 && line[len - 1] == '\n', "line does not end in \\n");
	for (size_t i = 0; i + 1 < len; i++) {
		CHECK((unsigned char)line[i] >= 0x20,
		      "raw control byte 0x%02x at %zu", (unsigned char)line[i],
		      i);
	}
	CHECK(fz_utf8_ok((const unsigned char *)line, len),
	      "line is not UTF-8");
	CHECK(jsoncheck_object(line, len - 1) == 1,
	      "drain's jsoncheck refuses the line");
	json_t *root = json_loadb(line, len - 1, 0, &jerr);
	CHECK(json_is_object(root), "line is not a JSON object: %s", jerr.text);

	static const char *const order[] = {
	    "id", "received", "type", "remote_addr", "params", "verification"};
	size_t nkeys = r->verify_status != NULL ? 6 : 5;
	size_t k = 0;
	for (void *it = json_object_iter(root); it != NULL;
	     it = json_object_iter_next(root, it), k++) {
		CHECK(k < nkeys &&
			  strcmp(json_object_iter_key(it), order[k]) == 0,
		      "key %zu is '%s'", k, json_object_iter_key(it));
	}
	CHECK(k == nkeys, "%zu top-level keys, want %zu", k, nkeys);
	check_str(json_object_get(root, "id"), r->stamp->id,
		  strlen(r->stamp->id), "id");
	check_str(json_object_get(root, "received"), r->stamp->received,
		  strlen(r->stamp->received), "received");
	check_str(json_object_get(root, "type"), r->type, strlen(r->type),
		  "type");
	check_str(json_object_get(root, "remote_addr"), r->remote_addr,
		  strlen(r->remote_addr), "remote_addr");

	json_t *params = json_object_get(root, "params");
	CHECK(json_is_object(params), "params is not an object");
	void *it = json_object_iter(params);
	for (size_t i = 0; i < r->params->n; i++) {
		const struct form_field *f = &r->params->f[i];
		if (strcmp(f->key, RECORD_SECRET_KEY) == 0)
			continue;
		CHECK(it != NULL, "param %zu missing", i);
		CHECK(json_object_iter_key_len(it) == f->key_len &&
			  memcmp(json_object_iter_key(it), f->key,
				 f->key_len) == 0,
		      "param key %zu differs or is out of order", i);
		check_str(json_object_iter_value(it), f->val, f->val_len,
			  "param value");
		it = json_object_iter_next(params, it);
	}
	CHECK(it == NULL, "extra params in the line");

	if (r->verify_status != NULL) {
		json_t *v = json_object_get(root, "verification");
		const char *d =
		    r->verify_detail != NULL ? r->verify_detail : "";
		CHECK(json_is_object(v) && json_object_size(v) == 2,
		      "verification is not a two-key object");
		check_str(json_object_get(v, "status"), r->verify_status,
			  strlen(r->verify_status), "verification.status");
		check_str(json_object_get(v, "detail"), d, strlen(d),
			  "verification.detail");
	}
	json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct form f;
	struct stamp st;
	if (size < 1)
		return 0;
	char *buf = malloc(size);
	CHECK(buf != NULL, "out of memory");
	memcpy(buf, data + 1, size - 1);
	form_init(&f);
	(void)form_parse(&f, buf, size - 1);

	const struct form_field *type = form_get(&f, "type");
	const struct form_field *detail = form_get(&f, "detail");
	CHECK(record_stamp(&st) == 0, "record_stamp failed");
	check_stamp(&st);
	struct record r = {
	    .stamp = &st,
	    .type = type != NULL ? type->val : "item.create",
	    .remote_addr = addrs[data[0] % 5],
	    .params = &f,
	    .verify_status = verify[(data[0] / 5) % 4],
	    .verify_detail = detail != NULL ? detail->val : NULL,
	};
	size_t len = 0;
	char *line = record_encode(&r, &len);
	CHECK(line != NULL, "record_encode failed");
	check_line(line, len, &r);
	free(line);
	free(buf);
	return 0;
}
