#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ from the SPEC's cases.

Run from anywhere: python3 tests/fuzz/mkseeds.py.  Seeds stay small; the
framing of each target is described at the top of its fuzz_<target>.c.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

BODIES = [
    b"type=item.create&hook_id=11&item_id=123&item_revision_id=4&external_id=x-1",
    b"type=item.update&item_id=123&item_revision_id=5&external_id=",
    b"type=comment.create&item_id=7&comment_id=99",
    b"type=file.change&item_id=7&action_type=file_created&file_ids=1%2C2%2C3",
    b"type=app.update&app_id=42",
    b"type=form.create&form_id=3&app_id=42",
    b"type=tag.add&item_id=7&target_type=item",
    b"type=task.create&task_id=8",
    b"type=member.add&space_id=5&user_id=6",
    b"type=hook.verify&hook_id=12345&code=a1b2c3",
    b"type=status.update&status_id=4&note=caf%C3%A9+au+lait",
    b"type=contact.update&profile_id=2&x=%e2%82%ac",
]
BAD = [
    b"type=item.create&item_id=%zz",
    b"type=item.create&item_id=%4",
    b"type=item.create&item_id=%00",
    b"type=item.create&item_id=%C3%28",
    b"type=item.create&item_id=%ED%A0%80",
    b"type=item.create&item_id=%F4%90%80%80",
    b"a=1&&b=2&",
    b"=x&type=a.b",
    b"type=a.b&a=1&a=2",
    b"type=Item.Create",
    b"type=hook.verify&hook_id=1",
    b"flag&type=a.b&empty=",
    b"&".join(b"k%d=v" % i for i in range(65)),
]


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def form():
    for i, b in enumerate(BODIES[:8] + BAD[:8]):
        put("form", "body-%02d" % i, b)
    put("form", "merge-same", b"type=item.create&secret=s3#type=item.create&item_id=1")
    put("form", "merge-conflict", b"a=1#a=2")
    put("form", "merge-many", b"&".join(b"q%d" % i for i in range(40)) + b"#" +
        b"&".join(b"b%d" % i for i in range(30)))
    put("form", "utf8-4byte", b"k=%F0%9F%98%80&%E2%82%AC=euro")


def request():
    # byte 0: method (0 POST, 3 GET), bit 3 secret, bits 4-7 length variant
    # byte 1: content type, REMOTE_ADDR, read mode; byte 2: query length
    def req(b0, b1, query, body):
        return bytes([b0, b1, len(query)]) + query + body
    n = 0
    for body in BODIES[:6] + BODIES[9:10]:
        put("request", "ok-%02d" % n, req(0x00, 0x08, b"", body))
        n += 1
    put("request", "secret-query", req(0x08, 0x09, b"secret=s3", BODIES[0]))
    put("request", "secret-body", req(0x08, 0x11, b"", b"secret=s3&" + BODIES[2]))
    put("request", "secret-wrong", req(0x08, 0x08, b"secret=s4", BODIES[0]))
    put("request", "get", req(0x03, 0x08, b"type=a.b", b""))
    put("request", "no-length", req(0x80, 0x08, b"", BODIES[1]))
    put("request", "too-large", req(0xf0, 0x08, b"", BODIES[1]))
    put("request", "json", req(0x00, 0x0c, b"", b'{"type":"item.create"}'))
    put("request", "short", req(0xa0, 0x08, b"", BODIES[3]))
    put("request", "query-type", req(0x00, 0x4a, b"type=item.delete&hook_id=1", b"item_id=5"))
    put("request", "conflict", req(0x00, 0x08, b"item_id=1", b"type=a.b&item_id=2"))
    put("request", "bad-escape", req(0x00, 0x08, b"", BAD[0]))
    put("request", "bad-utf8", req(0x00, 0x08, b"", BAD[3]))
    put("request", "verify-missing", req(0x00, 0x08, b"", BAD[10]))
    put("request", "chunked-read", req(0xb0, 0x88, b"", BODIES[10]))
    # SPEC: a body of exactly max_body (4096 in fuzz_request.c) is accepted.
    pad = b"type=item.create&pad="
    put("request", "max-body", req(0x00, 0x08, b"", pad + b"x" * (4096 - len(pad))))


def record():
    for i, b in enumerate(BODIES[:6]):
        put("record", "body-%02d" % i, bytes([i * 3]) + b)
    put("record", "secret", b"\x01type=item.create&secret=s3&item_id=1")
    put("record", "controls", b"\x02type=a.b&c=%01%1F%7F&nl=a%0Ab%0D&q=%22%5C")
    put("record", "verify", b"\x05type=hook.verify&hook_id=1&code=x&detail=no+creds")
    put("record", "unicode", b"\x0atype=a.b&%E2%82%AC=%F0%9F%98%80&k=%C2%A0")
    put("record", "empty-values", b"\x0ftype=a.b&x&y=&z")
    put("record", "partial", b"\x10type=a.b&ok=1&bad=%zz&lost=1")


def config():
    with open(os.path.join(ROOT, "cgi-bin", "podio-hook.ini.example"), "rb") as f:
        put("config", "example", f.read())
    put("config", "minimal", b"[spool]\ndir = /tmp/spool\n")
    put("config", "relative", b"[spool]\ndir = spool\nsync = no\nfile_mode = 0600\n")
    put("config", "full", b"[spool]\ndir=/s\nsync=yes\nfile_mode=0640\n"
        b"[receiver]\nsecret=\"a;b\"\nallowed_hooks = 1, 22 ,333\nmax_body=1\n"
        b"unknown_types=reject\n[podio]\napi_url=https://h/\nclient_id=c\n"
        b"client_secret=s\napp_id=1\napp_token=t\ntimeout=14\nca_file=ca.pem\n"
        b"[log]\nlevel=DEBUG\n")
    put("config", "unknown-key", b"[spool]\ndir=/s\ncolour=blue\n")
    put("config", "unknown-section", b"[spool]\ndir=/s\n[extra]\n")
    put("config", "bad-mode", b"[spool]\ndir=/s\nfile_mode=0400\n")
    put("config", "bad-timeout", b"[spool]\ndir=/s\n[podio]\ntimeout=15\n")
    put("config", "bad-url", b"[spool]\ndir=/s\n[podio]\napi_url=http://x\n")
    put("config", "no-dir", b"[receiver]\nmax_body=100\n")
    put("config", "outside", b"dir=/s\n[spool]\ndir=/s\n")
    put("config", "syntax", b"[spool]\ndir=/s\nthis is not ini\n")
    put("config", "hooks-bad", b"[spool]\ndir=/s\n[receiver]\nallowed_hooks=1,,2\n")
    put("config", "colon-section", b"[spool:x]\n[spool]\ndir=/s\n")


def podio():
    # byte 0: call (0 validate, 1 GET, 2 authenticate, 3 DELETE), bit 2
    # password grant, bits 3-4 memory token; byte 1: cache length.
    def ans(status, body, ctl=0, headers=b""):
        return bytes([ctl, status, len(headers)]) + headers + \
            struct.pack("<H", len(body)) + body
    tok = b'{"access_token":"A","token_type":"bearer","expires_in":28800,' \
          b'"refresh_token":"R","scope":"app:42","ref":{"type":"app","id":42}}'
    def seed(b0, script, cache=b""):
        return bytes([b0, len(cache)]) + cache + script
    put("podio", "validate-ok", seed(0, ans(0, tok) + ans(2, b"")))
    put("podio", "list", seed(1, ans(0, tok) + ans(0, b'[{"hook_id":1,"status":"active","type":"item.create","url":"https://x/"}]')))
    put("podio", "auth-password", seed(6, ans(0, tok)))
    put("podio", "delete-204", seed(3, ans(0, tok) + ans(2, b"")))
    put("podio", "expired-retry", seed(0x10, ans(4, b'{"error":"invalid_token","error_description":"expired_token"}') + ans(0, tok) + ans(0, b"{}")))
    put("podio", "refresh-refused", seed(0x10, ans(3, b'{"error":"invalid_grant"}') + ans(0, tok) + ans(0, b"{}")))
    put("podio", "html-error", seed(0, ans(9, b"<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>")))
    put("podio", "utf8-error", seed(0, ans(0, tok) + ans(6, b'{"error":"forbidden","error_description":"Zugriff verweigert \xc3\xa4\xc3\xb6\xc3\xbc"}')))
    put("podio", "rate-limit", seed(1, ans(0, tok) + ans(8, b'{"error":"rate_limit"}', headers=b"X-Rate-Limit-Limit: 1000\r\nX-Rate-Limit-Remaining: 0\r\n")))
    put("podio", "timeout", seed(0, bytes([5])))
    put("podio", "chunked", seed(1, ans(0x18, tok) + ans(0x08, b'{"hook_id":77}')))
    cache = b'{"owner":"cid app 42","access_token":"C","refresh_token":"R","expires_at":99999999999}'
    put("podio", "cached", seed(1, ans(0, b"[]"), cache))
    put("podio", "cache-expired", seed(1, ans(0, tok) + ans(0, b"[]"), cache.replace(b"99999999999", b"1")))
    put("podio", "no-answer", seed(2, bytes([7, 0, 0, 0, 0])))
    err = b"SSL: certificate subject name 'api.podio.test' does not match target host name"
    put("podio", "tls-error", seed(0, bytes([6, len(err)]) + err))


def claim():
    # byte 0 even: state file; odd: a spool file name.
    put("claim", "state-empty", b"\x00")
    put("claim", "state-offset", b"\x00offset 1234\n")
    put("claim", "state-retries", b"\x00offset 900\nretry 0 1 \"exit 1\"\nretry 300 4 \"timed out\\n\\u00e9\"\n")
    put("claim", "state-unordered", b"\x00offset 900\nretry 300 2 \"b\"\nretry 10 1 \"a\"\nretry 300 3 \"c\"\n")
    put("claim", "state-beyond", b"\x00offset 10\nretry 10 1 \"x\"\n")
    put("claim", "state-torn", b"\x00offset 50\nretry 1 1 \"x")
    put("claim", "state-negative", b"\x00offset -1\n")
    put("claim", "state-bad-json", b"\x00offset 5\nretry 1 1 {\"a\":1}\n")
    put("claim", "name-pending", b"\x01item.create.jsonl")
    put("claim", "name-work", b"\x01item.create.jsonl.claim-1700000000000000")
    put("claim", "name-jsonl-type", b"\x01a.jsonl.b.jsonl.claim-12-3")
    put("claim", "name-state", b"\x01item.create.jsonl.claim-1.state")
    put("claim", "name-bad", b"\x01Item.jsonl")
    put("claim", "name-nodot", b"\x01item.jsonl")


def jsoncheck():
    line = (b'{"id":"1795767406062085-5873","received":"2026-11-27T05:48:19.123456Z",'
            b'"type":"item.create","remote_addr":"127.0.0.1","params":{"type":"item.create",'
            b'"hook_id":"11","item_id":"123"}}')
    put("jsoncheck", "spool-line", line)
    put("jsoncheck", "verify-line", b'{"id":"1-2","received":"x","type":"hook.verify",'
        b'"remote_addr":"","params":{"type":"hook.verify","hook_id":"1","code":"c"},'
        b'"verification":{"status":"skipped","detail":"no Podio credentials configured"}}')
    put("jsoncheck", "failed-line", b'{"id":"a","params":{},"attempts":5,"last_error":"exit 1\\n"}')
    put("jsoncheck", "escapes", b'{"a":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"}')
    put("jsoncheck", "numbers", b' {"n":[0,-0,1.5,-2e10,3E+2,4e-1,123456789012345678901234567890]} ')
    put("jsoncheck", "literals", b'{"t":true,"f":false,"n":null,"o":{},"a":[]}')
    put("jsoncheck", "utf8", '{"\u20ac":"€😀é"}'.encode())
    put("jsoncheck", "bad-utf8", b'{"a":"\xc3\x28"}')
    put("jsoncheck", "nul", b'{"a":"\\u0000"}')
    put("jsoncheck", "surrogate", b'{"a":"\\ud800"}')
    put("jsoncheck", "deep", b'{"a":' * 70 + b'1' + b'}' * 70)
    put("jsoncheck", "torn", line[:60])
    put("jsoncheck", "array", b'[1,2]')
    put("jsoncheck", "trailing", b'{"a":1},')
    put("jsoncheck", "leading-zero", b'{"a":01}')


for fn in (form, request, record, config, podio, claim, jsoncheck):
    fn()
