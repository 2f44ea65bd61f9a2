/*
 * fuzz_request.c - the whole receive path (SPEC section 4 and 5): CGI
 * variables and a body in, a one-line answer and at most one spool line
 * out.
 *
 * The SPEC's table is restated as an oracle from the decoded inputs
 * (form_parse + form_merge on copies, the type grammar, the media type
 * table below), and receive() must agree with it:
 *   - 405 exactly when the method is not POST;
 *   - with a secret, 403 exactly when no "secret=s3" is found where the
 *     receiver may look (query, else a readable body);
 *   - 411 / 413 / 415 exactly on their header conditions; 413 reads
 *     nothing; the body is never read past CONTENT_LENGTH;
 *   - 200 exactly when everything is well-formed; then the spool holds one
 *     new file {type}.jsonl with one '\n'-terminated JSON line whose params
 *     (secret excluded) equal the decoded form byte for byte, in order;
 *   - any other answer leaves the spool untouched.
 * Every answer has the SPEC's headers and a one-line body.
 *
 * Input framing:
 *   byte 0: bits 0-2 method, bit 3 secret variant, bits 4-7 CONTENT_LENGTH
 *   byte 1: bits 0-2 content type, bits 3-5 REMOTE_ADDR, bits 6-7 reading
 *   byte 2: query length L (0: QUERY_STRING unset)
 *   L bytes of query (cut at a NUL, as an environment variable would be),
 *   then the body.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../fcgi/receive.h"
#include "form.h"
#include "fuzz_util.h"
#include "jsoncheck.h"
#include "log.h"

#define MAX_BODY 4096
#define SECRET	 "s3"

static char root[4096];
static char spool[4200];
static char ini[2][4200];
static struct app apps[2];

static const char *const methods[8] = {"POST", "POST", "POST", "GET",
				       "post", "PUT",  "",     NULL};
static const struct {
	const char *v;
	int ok;
} ctypes[8] = {
    {"application/x-www-form-urlencoded", 1},
    {"application/x-www-form-urlencoded; charset=UTF-8", 1},
    {"APPLICATION/X-WWW-FORM-URLENCODED", 1},
    {"application/x-www-form-urlencoded ;charset=utf-8", 1},
    {"application/json", 0},
    {"multipart/form-data; boundary=x", 0},
    {"application/x-www-form-urlencodedx", 0},
    {NULL, 0},
};
static const char *const addrs[8] = {NULL,	 "127.0.0.1",	"::1",
				     "",	 "203.0.113.9", "2001:db8::1",
				     "10.0.0.1", "192.0.2.1"};

struct io_ctx {
	const char *method;
	const char *query;
	const char *ctype;
	const char *clen;
	const char *addr;
	const char *body;
	size_t blen;
	size_t pos;
	size_t avail; /* bytes the reader delivers before failing */
	int mode;     /* 0 all, 1 small chunks, 2 one byte, 3 error */
	char out[4096];
	size_t out_len;
};

static const char *io_param(void *ctx, const char *name)
{
	struct io_ctx *c = ctx;
	if (strcmp(name, "REQUEST_METHOD") == 0)
		return c->method;
	if (strcmp(name, "QUERY_STRING") == 0)
		return c->query;
	if (strcmp(name, "CONTENT_TYPE") == 0)
		return c->ctype;
	if (strcmp(name, "CONTENT_LENGTH") == 0)
		return c->clen;
	if (strcmp(name, "REMOTE_ADDR") == 0)
		return c->addr;
	return NULL;
}

static ssize_t io_read(void *ctx, char *buf, size_t len)
{
	struct io_ctx *c = ctx;
	size_t n = c->avail - c->pos;
	if (n == 0)
		return c->mode == 3 ? -1 : 0;
	if (c->mode == 1 && n > 1 + c->pos % 7)
		n = 1 + c->pos % 7;
	if (c->mode == 2)
		n = 1;
	if (n > len)
		n = len;
	memcpy(buf, c->body + c->pos, n);
	c->pos += n;
	return (ssize_t)n;
}

static int io_write(void *ctx, const char *buf, size_t len)
{
	struct io_ctx *c = ctx;
	CHECK(c->out_len + len <= sizeof c->out, "answer too long");
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	return 0;
}

static void quiet(const char *line, size_t len)
{
	(void)line;
	(void)len;
}

static void empty_spool(void)
{
	DIR *d = opendir(spool);
	struct dirent *e;
	char p[4500];
	CHECK(d != NULL, "opendir %s", spool);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", spool, e->d_name);
		unlink(p);
	}
	closedir(d);
}

static void cleanup(void)
{
	empty_spool();
	rmdir(spool);
	unlink(ini[0]);
	unlink(ini[1]);
	rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char text[8192];
	(void)argc;
	(void)argv;
	snprintf(root, sizeof root, "%s", fz_tempdir("request"));
	snprintf(spool, sizeof spool, "%s/spool", root);
	CHECK(mkdir(spool, 0700) == 0, "mkdir %s", spool);
	for (int i = 0; i < 2; i++) {
		snprintf(ini[i], sizeof ini[i], "%s/app%d.ini", root, i);
		int n = snprintf(text, sizeof text,
				 "[spool]\ndir = %s\nsync = no\n"
				 "[receiver]\nmax_body = %d\n%s"
				 "[log]\nlevel = debug\n",
				 spool, MAX_BODY,
				 i == 1 ? "secret = " SECRET "\n" : "");
		fz_write_file(ini[i], text, (size_t)n);
		chmod(ini[i], 0600);
		apps[i].opt.config = ini[i];
	}
	unsetenv("PODIO_HOOK_CONFIG");
	/* FUZZ_LOG=1 shows the receiver's log lines while debugging. */
	if (getenv("FUZZ_LOG") == NULL)
		log_set_sink(quiet);
	atexit(cleanup);
	return 0;
}

/* The names in the spool folder; returns how many (at most max). */
static size_t list_spool(char names[][300], size_t max)
{
	DIR *d = opendir(spool);
	struct dirent *e;
	size_t n = 0;
	CHECK(d != NULL, "opendir %s", spool);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n < max)
			snprintf(names[n], 300, "%s", e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* Status line, the SPEC's headers, a one-line body; returns the status. */
static int check_answer(const struct io_ctx *c)
{
	char a[sizeof c->out + 1];
	int status = 0;
	memcpy(a, c->out, c->out_len);
	a[c->out_len] = '\0';
	CHECK(c->out_len > 16 && strncmp(a, "Status: ", 8) == 0,
	      "no Status line: %s", a);
	status = atoi(a + 8);
	char *hend = strstr(a, "\r\n\r\n");
	CHECK(hend != NULL, "no end of headers: %s", a);
	hend[2] = '\0';
	const char *body = hend + 4;
	size_t blen = c->out_len - (size_t)(body - a);
	char want[64];
	CHECK(strstr(a, "\r\nContent-Type: text/plain\r\n") != NULL,
	      "Content-Type: %s", a);
	CHECK(strstr(a, "\r\nCache-Control: no-store\r\n") != NULL,
	      "Cache-Control: %s", a);
	snprintf(want, sizeof want, "\r\nContent-Length: %zu\r\n", blen);
	CHECK(strstr(a, want) != NULL, "Content-Length: %s", a);
	CHECK((strstr(a, "\r\nAllow: POST\r\n") != NULL) == (status == 405),
	      "Allow with status %d", status);
	CHECK(blen >= 2 && body[blen - 1] == '\n' &&
		  memchr(body, '\n', blen - 1) == NULL,
	      "body is not one line");
	if (status == 200)
		CHECK(blen == 3 && memcmp(body, "OK\n", 3) == 0, "200 body");
	return status;
}

/* The spooled line against the decoded request. */
static void check_line(const char *line, size_t len, const struct form *m,
		       const struct form_field *type, const char *addr)
{
	static char last_id[64];
	json_error_t jerr;
	CHECK(len >= 2 && line[len - 1] == '\n' &&
		  memchr(line, '\n', len - 1) == NULL,
	      "spool file is not exactly one line");
	for (size_t i = 0; i + 1 < len; i++)
		CHECK((unsigned char)line[i] >= 0x20, "raw control byte");
	CHECK(fz_utf8_ok((const unsigned char *)line, len), "not UTF-8");
	CHECK(jsoncheck_object(line, len - 1) == 1,
	      "drain's jsoncheck refuses the line");
	json_t *j = json_loadb(line, len - 1, 0, &jerr);
	CHECK(json_is_object(j), "not a JSON object: %s", jerr.text);
	int verify =
	    type->val_len == 11 && memcmp(type->val, "hook.verify", 11) == 0;
	static const char *const order[] = {
	    "id", "received", "type", "remote_addr", "params", "verification"};
	size_t k = 0;
	for (void *it = json_object_iter(j); it != NULL;
	     it = json_object_iter_next(j, it), k++)
		CHECK(k < 6 && strcmp(json_object_iter_key(it), order[k]) == 0,
		      "key %zu out of order", k);
	CHECK(k == (verify ? 6u : 5u), "%zu keys", k);
	const char *id = json_string_value(json_object_get(j, "id"));
	CHECK(id != NULL && id[0] != '\0' && strlen(id) < sizeof last_id, "id");
	CHECK(strcmp(id, last_id) > 0, "id %s not after %s", id, last_id);
	snprintf(last_id, sizeof last_id, "%s", id);
	json_t *t = json_object_get(j, "type");
	CHECK(json_string_length(t) == type->val_len &&
		  memcmp(json_string_value(t), type->val, type->val_len) == 0,
	      "type");
	const char *ra = json_string_value(json_object_get(j, "remote_addr"));
	CHECK(ra != NULL && strcmp(ra, addr != NULL ? addr : "") == 0,
	      "remote_addr");
	json_t *params = json_object_get(j, "params");
	CHECK(json_is_object(params), "params");
	void *it = json_object_iter(params);
	for (size_t i = 0; i < m->n; i++) {
		const struct form_field *f = &m->f[i];
		if (strcmp(f->key, "secret") == 0)
			continue;
		CHECK(it != NULL, "param %zu missing", i);
		json_t *v = json_object_iter_value(it);
		CHECK(json_object_iter_key_len(it) == f->key_len &&
			  memcmp(json_object_iter_key(it), f->key,
				 f->key_len) == 0,
		      "param key %zu differs or is out of order", i);
		CHECK(json_is_string(v) &&
			  json_string_length(v) == f->val_len &&
			  memcmp(json_string_value(v), f->val, f->val_len) == 0,
		      "param value %zu differs", i);
		it = json_object_iter_next(params, it);
	}
	CHECK(it == NULL, "extra params");
	if (verify) {
		json_t *v = json_object_get(j, "verification");
		const char *s = json_string_value(json_object_get(v, "status"));
		CHECK(s != NULL && strcmp(s, "skipped") == 0,
		      "verification status without credentials");
		CHECK(json_is_string(json_object_get(v, "detail")),
		      "verification detail");
	}
	json_decref(j);
}

/* CONTENT_LENGTH by variant; *valid and *clen say what a server means. */
static const char *pick_length(int v, size_t blen, char *buf, size_t n)
{
	switch (v) {
	case 8:
		return NULL;
	case 9:
		return "";
	case 10:
		snprintf(buf, n, "%zu", blen + 1);
		break;
	case 11:
		snprintf(buf, n, "%zu", blen > 0 ? blen - 1 : 0);
		break;
	case 12:
		return "12x";
	case 13:
		return "184467440737095516160";
	case 14:
		snprintf(buf, n, "00%zu", blen);
		break;
	case 15:
		snprintf(buf, n, "%d", MAX_BODY + 1);
		break;
	default:
		snprintf(buf, n, "%zu", blen);
	}
	return buf;
}

/* A CONTENT_LENGTH of digits: 1 and *val (capped) when it is one. */
static int length_value(const char *cl, size_t *val)
{
	size_t v = 0;
	if (cl == NULL || cl[0] == '\0' ||
	    strspn(cl, "0123456789") != strlen(cl))
		return 0;
	for (const char *p = cl; *p != '\0'; p++) {
		v = v * 10 + (size_t)(*p - '0');
		if (v > 10 * MAX_BODY)
			v = 10 * MAX_BODY;
	}
	*val = v;
	return 1;
}

static int has_secret(const struct form *f, int *found)
{
	const struct form_field *s = form_get(f, "secret");
	if (s == NULL)
		return 0;
	*found = s->val_len == 2 && memcmp(s->val, SECRET, 2) == 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct io_ctx c;
	char clbuf[32];
	char qs[256];
	if (size < 3)
		return 0;
	memset(&c, 0, sizeof c);
	int with_secret = (data[0] >> 3) & 1;
	int ct = data[1] & 7;
	size_t qlen = data[2];
	if (qlen > size - 3)
		qlen = size - 3;
	memcpy(qs, data + 3, qlen);
	qs[qlen] = '\0';
	c.method = methods[data[0] & 7];
	c.query = data[2] != 0 ? qs : NULL;
	c.ctype = ctypes[ct].v;
	c.addr = addrs[(data[1] >> 3) & 7];
	c.body = (const char *)data + 3 + qlen;
	c.blen = size - 3 - qlen;
	c.clen = pick_length(data[0] >> 4, c.blen, clbuf, sizeof clbuf);
	c.mode = data[1] >> 6;
	c.avail = c.mode == 3 ? c.blen / 2 : c.blen;
	struct req_io io = {&c, io_param, io_read, io_write};

	int status = receive(&apps[with_secret], &io);
	CHECK(apps[with_secret].loaded, "config not loaded");
	CHECK(check_answer(&c) == status, "returned %d, answered otherwise",
	      status);

	/* The oracle, from the SPEC's table. */
	int post = c.method != NULL && strcmp(c.method, "POST") == 0;
	size_t clen = 0;
	int digits = length_value(c.clen, &clen);
	int hdr_ok = digits && clen <= MAX_BODY && ctypes[ct].ok;
	int complete = hdr_ok && c.avail >= clen;
	char *qcopy = strdup(qs);
	char *bcopy = malloc(clen + 1);
	struct form q, b, m;
	CHECK(qcopy != NULL && bcopy != NULL, "out of memory");
	form_init(&q);
	form_init(&b);
	form_init(&m);
	enum outcome qrc = form_parse(&q, qcopy, strlen(qcopy));
	enum outcome brc = OUT_SHORT_BODY;
	if (complete) {
		memcpy(bcopy, c.body, clen);
		brc = form_parse(&b, bcopy, clen);
	}
	int found = 0;
	if (!has_secret(&q, &found) && hdr_ok && complete)
		has_secret(&b, &found);
	int authed = !with_secret || found;
	enum outcome mrc = qrc == OUT_OK && brc == OUT_OK
			       ? form_merge(&m, &q, &b)
			       : OUT_BAD_ESCAPE;
	const struct form_field *type = form_get(&m, "type");
	const struct form_field *hook = form_get(&m, "hook_id");
	const struct form_field *code = form_get(&m, "code");
	int type_ok = type != NULL && fz_type_ok(type->val, type->val_len);
	int verify_ok = type == NULL || strcmp(type->val, "hook.verify") != 0 ||
			(hook != NULL && hook->val_len > 0 && code != NULL &&
			 code->val_len > 0);
	int want200 =
	    post && authed && complete && mrc == OUT_OK && type_ok && verify_ok;

	/* regress/request/verify-detail-cut-utf8, while it is open. */
	if (type != NULL && strcmp(type->val, "hook.verify") == 0 &&
	    fz_skip("verify-detail")) {
		free(qcopy);
		free(bcopy);
		empty_spool();
		return 0;
	}
	CHECK(status == 200 || status == 400 || status == 403 ||
		  status == 405 || status == 411 || status == 413 ||
		  status == 415,
	      "status %d", status);
	CHECK((status == 405) == !post, "status %d, method %s", status,
	      c.method != NULL ? c.method : "(unset)");
	if (post) {
		CHECK((status == 403) == !authed, "status %d, secret %s",
		      status, authed ? "accepted" : "refused");
	}
	if (post && authed) {
		int none = c.clen == NULL || c.clen[0] == '\0';
		CHECK((status == 411) == none, "status %d, CONTENT_LENGTH %s",
		      status, c.clen != NULL ? c.clen : "(unset)");
		CHECK((status == 413) == (digits && clen > MAX_BODY),
		      "status %d, CONTENT_LENGTH %s", status, c.clen);
		CHECK((status == 415) ==
			  (digits && clen <= MAX_BODY && !ctypes[ct].ok),
		      "status %d, content type %s", status,
		      c.ctype != NULL ? c.ctype : "(unset)");
	}
	CHECK((status == 200) == want200,
	      "status %d, but the SPEC says %s (q=%d b=%d merge=%d type=%d "
	      "verify=%d)",
	      status, want200 ? "200" : "not 200", (int)qrc, (int)brc, (int)mrc,
	      type_ok, verify_ok);
	if (status == 413)
		CHECK(c.pos == 0, "413 read %zu body bytes", c.pos);
	CHECK(digits ? c.pos <= clen : c.pos == 0,
	      "read %zu bytes with CONTENT_LENGTH %s", c.pos,
	      c.clen != NULL ? c.clen : "(unset)");

	char names[4][300];
	size_t n = list_spool(names, 4);
	if (status != 200) {
		CHECK(n == 0, "status %d changed the spool (%s)", status,
		      names[0]);
	} else {
		char want[300];
		snprintf(want, sizeof want, "%s.jsonl", type->val);
		CHECK(n == 1 && strcmp(names[0], want) == 0,
		      "spool holds %zu files, first %s, want %s", n,
		      n > 0 ? names[0] : "-", want);
		char p[4500];
		snprintf(p, sizeof p, "%s/%s", spool, want);
		FILE *f = fopen(p, "rb");
		CHECK(f != NULL, "open %s", p);
		static char line[64 * 1024];
		size_t len = fread(line, 1, sizeof line, f);
		fclose(f);
		check_line(line, len, &m, type, c.addr);
		empty_spool();
	}
	free(qcopy);
	free(bcopy);
	return 0;
}
