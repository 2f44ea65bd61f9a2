#!/usr/bin/env python3
"""tests/podio/run.py - podio-hook against a fake Podio API over HTTPS.

    python3 tests/podio/run.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                               [-v]

Runs the binary directly, without a web server: as CGI (environment and
stdin), as a FastCGI responder (--listen, requests sent with cgi-fcgi from
libfcgi-bin) and as the command-line tool, against tests/podio/fake_podio.py
with a test CA made by the openssl CLI.  Checks the spooled hook.verify
record, its "verification" object and the exact requests the fake saw
(SPEC sections 1, 6 and 8).

The fake, the CA and the checks of what the fake saw are
tests/lib/fakepodio.py's, shared with the other suites that use the fake.
Prints "ok - NAME" or "FAIL - NAME: WHY" per case and, as the very last
line, "N passed, M failed, K skipped" (tests/lib/harness.py's Suite, which
also gives the options).  Exit status 1 when anything failed.
Needs python3, openssl, strace and cgi-fcgi (apt-get install -y strace
libfcgi-bin).
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import Failure, check, eq  # noqa: E402
from fakepodio import (  # noqa: E402  (tests/lib/fakepodio.py)
    APP_ID, CLIENT_ID, CODE42, CODE43, CODE77, PROCS, TIMEOUT, WRONG_CODE,
    Env, Fake, Result, base_scenario, check_api_request, check_exit, check_ok,
    check_sequence, check_token_request, check_verify_record, form_of,
    run_suite, secret, short, stop_pid, verify_body)

LIBCURL_MISSING = "libcurl-does-not-exist.so.4"


# ---------------------------------------------------------------------------
# Cases

CASES = []
case = harness.registrar(CASES)


@case("a. CGI hook.verify: /oauth/token (form, app grant, no "
      "Authorization) then validate -> validated")
def t_cgi_verify(env):
    r = env.cgi(verify_body(42, CODE42))
    check_ok(r)
    recs = env.spooled("hook.verify")
    eq(len(recs), 1, "spooled lines")
    v = check_verify_record(recs[0], "42", CODE42, "validated")
    eq(v["detail"], "", "detail of a validated hook")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204)])
    tok = check_token_request(log[0], "app")
    check_api_request(log[1], "POST", "/hook/42/verify/validate",
                      tok["access_token"], {"code": CODE42}, 204)
    check(log[1]["body"] == '{"code":"abc"}' or
          json.loads(log[1]["body"]) == {"code": "abc"}, "validate body")


@case("b. FastCGI: two verifies in one process share one token "
      "(in memory); SIGTERM exits 0")
def t_fcgi_reuse(env):
    s = env.fastcgi()
    check_ok(s.request(verify_body(42, CODE42)))
    # Without the cache file, only the process's memory holds the token.
    cache = os.path.join(env.spool, ".podio-token")
    if os.path.exists(cache):
        os.unlink(cache)
    check_ok(s.request(verify_body(43, CODE43)))
    recs = env.spooled("hook.verify")
    eq(len(recs), 2, "spooled lines")
    check_verify_record(recs[0], "42", CODE42, "validated")
    check_verify_record(recs[1], "43", CODE43, "validated")
    check(dict(recs[0])["id"] < dict(recs[1])["id"],
          "ids do not sort in arrival order")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204),
                         ("POST", "/hook/43/verify/validate", 204)])
    tok = check_token_request(log[0], "app")["access_token"]
    check_api_request(log[1], "POST", "/hook/42/verify/validate", tok,
                      {"code": CODE42}, 204)
    check_api_request(log[2], "POST", "/hook/43/verify/validate", tok,
                      {"code": CODE43}, 204)
    rc = s.stop()
    eq(rc, 0, "exit status after SIGTERM")


@case("b. CGI: a second run reuses the token cached in "
      "{spool}/.podio-token (mode 0600, not *.jsonl)")
def t_cgi_cache(env):
    check_ok(env.cgi(verify_body(42, CODE42)))
    cache = os.path.join(env.spool, ".podio-token")
    check(os.path.isfile(cache), "no token cache %s; spool holds %r"
          % (cache, sorted(os.listdir(env.spool))))
    mode = stat.S_IMODE(os.stat(cache).st_mode)
    eq(oct(mode), oct(0o600), "mode of .podio-token")
    check_ok(env.cgi(verify_body(43, CODE43)))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204),
                         ("POST", "/hook/43/verify/validate", 204)])
    tok = check_token_request(log[0], "app")
    check_api_request(log[2], "POST", "/hook/43/verify/validate",
                      tok["access_token"], {"code": CODE43}, 204)
    recs = env.spooled("hook.verify")
    check_verify_record(recs[1], "43", CODE43, "validated")
    names = sorted(os.listdir(env.spool))
    # The inline verification slot (SPEC section 14): an empty lock file.
    eq(names, [".podio-token", ".verify-slot-0", "hook.verify.jsonl"],
       "spool directory")
    eq(os.path.getsize(os.path.join(env.spool, ".verify-slot-0")), 0,
       "size of .verify-slot-0")
    # No token in anything a consumer reads.
    with open(os.path.join(env.spool, "hook.verify.jsonl")) as f:
        text = f.read()
    for t in (tok["access_token"], tok["refresh_token"]):
        check(t not in text, "a token is in hook.verify.jsonl")
    with open(cache) as f:
        check(tok["access_token"] in f.read(),
              ".podio-token does not hold the issued token")


@case("c. CGI: expired token -> validate 401, refresh_token grant, "
      "validate again -> validated; the new token is cached")
def t_cgi_expired(env):
    check_ok(env.cgi(verify_body(42, CODE42)))
    first = check_token_request(env.fake.requests()[0], "app")
    env.fake.update(expire_all_tokens_now=1)
    check_ok(env.cgi(verify_body(43, CODE43)))
    log = env.fake.requests()
    check_sequence(log[2:], [("POST", "/hook/43/verify/validate", 401),
                             ("POST", "/oauth/token", 200),
                             ("POST", "/hook/43/verify/validate", 204)])
    check_api_request(log[2], "POST", "/hook/43/verify/validate",
                      first["access_token"], {"code": CODE43}, 401)
    eq(json.loads(log[2]["response"])["error_description"], "expired_token",
       "the fake's 401")
    new = check_token_request(log[3], "refresh_token",
                              refresh=first["refresh_token"])
    check(new["access_token"] != first["access_token"], "same token")
    check_api_request(log[4], "POST", "/hook/43/verify/validate",
                      new["access_token"], {"code": CODE43}, 204)
    recs = env.spooled("hook.verify")
    check_verify_record(recs[1], "43", CODE43, "validated")
    # A third run picks the renewed token from the cache file.
    check_ok(env.cgi(verify_body(42, CODE42)))
    log = env.fake.requests()
    check_sequence(log[5:], [("POST", "/hook/42/verify/validate", 204)])
    check_api_request(log[5], "POST", "/hook/42/verify/validate",
                      new["access_token"], {"code": CODE42}, 204)


@case("c. FastCGI: expired token refreshed once in memory, then reused")
def t_fcgi_expired(env):
    s = env.fastcgi()
    check_ok(s.request(verify_body(42, CODE42)))
    env.fake.update(expire_all_tokens_now="x1")
    check_ok(s.request(verify_body(43, CODE43)))
    check_ok(s.request(verify_body(42, CODE42)))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204),
                         ("POST", "/hook/43/verify/validate", 401),
                         ("POST", "/oauth/token", 200),
                         ("POST", "/hook/43/verify/validate", 204),
                         ("POST", "/hook/42/verify/validate", 204)])
    first = check_token_request(log[0], "app")
    new = check_token_request(log[3], "refresh_token",
                              refresh=first["refresh_token"])
    check_api_request(log[5], "POST", "/hook/42/verify/validate",
                      new["access_token"], {"code": CODE42}, 204)
    statuses = [dict(dict(r)["verification"])["status"]
                for r in env.spooled("hook.verify")]
    eq(statuses, ["validated"] * 3, "verification statuses")
    eq(s.stop(), 0, "exit status after SIGTERM")


@case("d. hanging validate (hang 30 s, timeout 3): 200 within timeout+1 s, "
      "failed, not retried")
def t_hang(env):
    env.fake.update(hang_seconds=30)
    r = env.cgi(verify_body(42, CODE42), timeout=40)
    check_ok(r)
    check(r.elapsed <= TIMEOUT + 1,
          "answered after %.2f s, bound %d s" % (r.elapsed, TIMEOUT + 1))
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check(re.search(r"time[d ]?out|timeout", v["detail"], re.I),
          "detail does not say it timed out: %r" % v["detail"])
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204)])
    eq(log[1].get("hang_seconds"), 30, "the validate call hung")


@case("e. no credentials: skipped, code kept in params, no request")
def t_no_creds(env):
    ini = env.config("nocreds.ini", creds=None)
    r = env.cgi(verify_body(42, CODE42), ini=ini)
    check_ok(r)
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "skipped")
    check("credentials" in v["detail"],
          "detail does not name the missing credentials: %r" % v["detail"])
    log = env.fake.requests()
    eq(log, [], "requests at the fake")


@case("f. wrong code: failed with Podio's error (invalid_value / "
      "Invalid code), not retried; the code kept out of the log")
def t_wrong_code(env):
    r = env.cgi(verify_body(42, WRONG_CODE))
    check_ok(r)
    # The fake's error text repeats the code: logged without it.
    check(WRONG_CODE.encode() not in r.err and b"Invalid code [code]" in r.err,
          "the code in the log: %r" % r.err)
    v = check_verify_record(env.spooled("hook.verify")[0], "42", WRONG_CODE,
                            "failed")
    check("invalid_value" in v["detail"] and "Invalid code" in v["detail"],
          "detail lacks Podio's error: %r" % v["detail"])
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 400)])
    tok = check_token_request(log[0], "app")
    check_api_request(log[1], "POST", "/hook/42/verify/validate",
                      tok["access_token"], {"code": WRONG_CODE}, 400)


@case("g. libcurl absent (PODIO_HOOK_LIBCURL): skipped, 'libcurl not "
      "available', still spooled 200 (CGI and FastCGI)")
def t_no_libcurl(env):
    r = env.cgi(verify_body(42, CODE42),
                extra={"PODIO_HOOK_LIBCURL": LIBCURL_MISSING})
    check_ok(r)
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "skipped")
    check(re.search(r"libcurl (is )?not available", v["detail"]),
          "detail does not say libcurl is not available: %r" % v["detail"])
    eq(env.fake.requests(), [], "requests at the fake")
    # The same in a FastCGI process, twice (the failed dlopen is kept).
    s = env.fastcgi(extra={"PODIO_HOOK_LIBCURL": LIBCURL_MISSING})
    check_ok(s.request(verify_body(43, CODE43)))
    check_ok(s.request(verify_body(42, CODE42)))
    recs = env.spooled("hook.verify")
    eq(len(recs), 3, "spooled lines")
    for rec, hook, code in ((recs[1], "43", CODE43), (recs[2], "42", CODE42)):
        v = check_verify_record(rec, hook, code, "skipped")
        check(re.search(r"libcurl (is )?not available", v["detail"]),
              "FastCGI detail: %r" % v["detail"])
    eq(env.fake.requests(), [], "requests at the fake")
    eq(s.stop(), 0, "exit status after SIGTERM")


@case("h. strace: item.create (CGI) opens no libcurl; hook.verify opens "
      "libcurl.so.4")
def t_strace(env):
    if shutil.which("strace") is None:
        raise Failure("strace is not installed (apt-get install -y strace)")
    trace = os.path.join(env.dir, "trace-item.txt")
    wrap = ["strace", "-f", "-qq", "-e", "trace=openat", "-o", trace]
    r = env.cgi("type=item.create&item_id=1&item_revision_id=2", wrap=wrap)
    check_ok(r)
    with open(trace) as f:
        t = f.read()
    check("item.create.jsonl" in t,
          "the trace does not show the spool file opened: %r" % short(t))
    hits = [l for l in t.splitlines() if "libcurl" in l]
    check(not hits, "item.create opened libcurl: %r" % hits[:3])
    eq(len(env.spooled("item.create")), 1, "item.create lines")
    trace = os.path.join(env.dir, "trace-verify.txt")
    wrap[-1] = trace
    r = env.cgi(verify_body(42, CODE42), wrap=wrap)
    check_ok(r)
    with open(trace) as f:
        t = f.read()
    opened = re.findall(r'openat\([^"]*"([^"]*libcurl\.so\.4)"[^)]*\)\s*=\s*'
                        r'(\d+)', t)
    check(opened, "hook.verify did not open libcurl.so.4: %r" %
          [l for l in t.splitlines() if "curl" in l][:5])
    check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                        "validated")


# -- more of SPEC section 6 --

ODD_CODE = 'a"b\\c&d=e+f%g h/\u00e9\u00fc;#'
secret(ODD_CODE, "odd code")


@case("a. a code with JSON and form special characters reaches Podio "
      "and the spool intact")
def t_odd_code(env):
    env.fake.update(codes={"44": ODD_CODE})
    check_ok(env.cgi(verify_body(44, ODD_CODE)))
    check_verify_record(env.spooled("hook.verify")[0], "44", ODD_CODE,
                        "validated")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/44/verify/validate", 204)])
    check_api_request(log[1], "POST", "/hook/44/verify/validate",
                      check_token_request(log[0], "app")["access_token"],
                      {"code": ODD_CODE}, 204)


@case("verify: a hook_id that is not a number -> failed, nothing sent")
def t_bad_hook_id(env):
    check_ok(env.cgi("type=hook.verify&hook_id=42%2F..%2F..%2Foauth"
                     "&code=" + CODE42))
    recs = env.spooled("hook.verify")
    v = dict(dict(recs[0])["verification"])
    eq(v["status"], "failed", "verification.status")
    eq(env.fake.requests(), [], "requests at the fake")


@case("c. CGI: a cached token inside the expiry margin (expires_in 30) "
      "is refreshed before use, no 401")
def t_cgi_near_expiry(env):
    env.fake.update(expires_in=30)
    check_ok(env.cgi(verify_body(42, CODE42)))
    check_ok(env.cgi(verify_body(43, CODE43)))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204),
                         ("POST", "/oauth/token", 200),
                         ("POST", "/hook/43/verify/validate", 204)])
    first = check_token_request(log[0], "app")
    new = check_token_request(log[2], "refresh_token",
                              refresh=first["refresh_token"])
    check_api_request(log[3], "POST", "/hook/43/verify/validate",
                      new["access_token"], {"code": CODE43}, 204)


@case("c. CGI: expired token and a refused refresh token -> a new app "
      "grant, validated")
def t_cgi_refresh_refused(env):
    check_ok(env.cgi(verify_body(42, CODE42)))
    first = check_token_request(env.fake.requests()[0], "app")
    env.fake.update(expire_all_tokens_now=1, reject_refresh_tokens=True)
    check_ok(env.cgi(verify_body(43, CODE43)))
    log = env.fake.requests()
    check_sequence(log[2:], [("POST", "/hook/43/verify/validate", 401),
                             ("POST", "/oauth/token", 400),
                             ("POST", "/oauth/token", 200),
                             ("POST", "/hook/43/verify/validate", 204)])
    eq(form_of(log[3]).get("refresh_token"), first["refresh_token"],
       "refresh_token sent")
    new = check_token_request(log[4], "app")
    check_api_request(log[5], "POST", "/hook/43/verify/validate",
                      new["access_token"], {"code": CODE43}, 204)
    check_verify_record(env.spooled("hook.verify")[1], "43", CODE43,
                        "validated")


@case("c. CGI: a token rejected again after renewal -> failed, retried "
      "exactly once")
def t_cgi_reject_twice(env):
    env.fake.update(reject_all_tokens=True)
    check_ok(env.cgi(verify_body(42, CODE42)))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 401),
                         ("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 401)])
    first = check_token_request(log[0], "app")
    check_token_request(log[2], "refresh_token",
                        refresh=first["refresh_token"])
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check("401" in v["detail"] and "expired_token" in v["detail"],
          "detail: %r" % v["detail"])


@case("c. CGI: expired token without a refresh token -> a new app grant, "
      "validated")
def t_cgi_no_refresh(env):
    env.fake.update(no_refresh_token=True)
    check_ok(env.cgi(verify_body(42, CODE42)))
    env.fake.update(expire_all_tokens_now=1)
    check_ok(env.cgi(verify_body(43, CODE43)))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204),
                         ("POST", "/hook/43/verify/validate", 401),
                         ("POST", "/oauth/token", 200),
                         ("POST", "/hook/43/verify/validate", 204)])
    check_token_request(log[0], "app")
    new = check_token_request(log[3], "app")
    check_api_request(log[4], "POST", "/hook/43/verify/validate",
                      new["access_token"], {"code": CODE43}, 204)
    check_verify_record(env.spooled("hook.verify")[1], "43", CODE43,
                        "validated")


@case("c. CGI: 401 with invalid_token in 'error' renews once, then fails")
def t_cgi_invalid_token(env):
    env.fake.update(json_error={"status": 401, "on": ["validate"], "body": {
        "error": "invalid_token", "error_description": "Token is invalid"}})
    check_ok(env.cgi(verify_body(42, CODE42)))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 401),
                         ("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 401)])
    first = check_token_request(log[0], "app")
    new = check_token_request(log[2], "refresh_token",
                              refresh=first["refresh_token"])
    check_api_request(log[3], "POST", "/hook/42/verify/validate",
                      new["access_token"], {"code": CODE42}, 401)
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check("invalid_token" in v["detail"], "detail: %r" % v["detail"])


@case("c. CGI: a corrupt token cache is ignored and replaced (0600)")
def t_cgi_corrupt_cache(env):
    cache = os.path.join(env.spool, ".podio-token")
    with open(cache, "w") as f:
        f.write('{"owner": garbage')
    os.chmod(cache, 0o600)
    check_ok(env.cgi(verify_body(42, CODE42)))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204)])
    tok = check_token_request(log[0], "app")
    with open(cache) as f:
        j = json.load(f)
    eq(j.get("access_token"), tok["access_token"], "cached token")
    eq(oct(stat.S_IMODE(os.stat(cache).st_mode)), oct(0o600),
       "mode of .podio-token")


@case("c. CGI: a token cached for other credentials is not used")
def t_cgi_cache_owner(env):
    check_ok(env.cgi(verify_body(42, CODE42)))
    ini = env.config("pw.ini", creds="password")
    check_ok(env.cgi(verify_body(43, CODE43), ini=ini))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204),
                         ("POST", "/oauth/token", 200),
                         ("POST", "/hook/43/verify/validate", 204)])
    check_token_request(log[0], "app")
    pw = check_token_request(log[2], "password")
    check_api_request(log[3], "POST", "/hook/43/verify/validate",
                      pw["access_token"], {"code": CODE43}, 204)


@case("d. hanging token request: 200 within timeout+1 s, failed, "
      "not retried")
def t_hang_token(env):
    env.fake.update(hang_seconds=30, hang_on=["token"])
    r = env.cgi(verify_body(42, CODE42), timeout=40)
    check_ok(r)
    check(r.elapsed <= TIMEOUT + 1,
          "answered after %.2f s, bound %d s" % (r.elapsed, TIMEOUT + 1))
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check("token" in v["detail"], "detail: %r" % v["detail"])
    log = env.fake.requests()
    eq([(e["method"], e["path"]) for e in log],
       [("POST", "/oauth/token")], "requests at the fake")


@case("d. FastCGI: after a timed-out verify the same process validates "
      "the next one")
def t_fcgi_after_hang(env):
    s = env.fastcgi()
    env.fake.update(hang_seconds=30)
    r = s.request(verify_body(42, CODE42), timeout=40)
    check_ok(r)
    check(r.elapsed <= TIMEOUT + 1, "answered after %.2f s" % r.elapsed)
    env.fake.update(hang_seconds=0)
    check_ok(s.request(verify_body(43, CODE43)))
    recs = env.spooled("hook.verify")
    check_verify_record(recs[0], "42", CODE42, "failed")
    check_verify_record(recs[1], "43", CODE43, "validated")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204),
                         ("POST", "/hook/43/verify/validate", 204)])
    eq(s.stop(), 0, "exit status after SIGTERM")


@case("FastCGI: SIGTERM during a verify finishes the request (200, "
      "spooled), then exits 0")
def t_fcgi_sigterm_inflight(env):
    s = env.fastcgi()
    env.fake.update(hang_seconds=30)
    body = verify_body(42, CODE42).encode()
    cenv = env.cgi_env(body)
    del cenv["PODIO_HOOK_CONFIG"]
    body_path = os.path.join(env.dir, "body")
    with open(body_path, "wb") as f:
        f.write(body)
    with open(body_path, "rb") as stdin:
        client = subprocess.Popen(["cgi-fcgi", "-bind", "-connect",
                                   "127.0.0.1:%d" % s.port], stdin=stdin,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=cenv)
    PROCS[client.pid] = client
    try:
        deadline = time.monotonic() + 5
        while not any(e.get("path") == "/hook/42/verify/validate"
                      for e in env.fake.requests()):
            check(time.monotonic() < deadline, "validate never arrived")
            time.sleep(0.05)
        os.kill(s.proc.pid, signal.SIGTERM)
        out, err = client.communicate(timeout=TIMEOUT + 5)
    finally:
        stop_pid(client)
    r = Result(client.returncode, out, err, 0).parse_cgi()
    check_ok(r)
    check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                        "failed")
    try:
        s.proc.wait(5)
    except subprocess.TimeoutExpired:
        raise Failure("the server did not exit after SIGTERM")
    eq(s.stop(), 0, "exit status after SIGTERM")


@case("TLS: without ca_file the test CA is not trusted -> failed, no "
      "HTTP request")
def t_tls_untrusted(env):
    ini = env.config("noca.ini", ca_file=None)
    check_ok(env.cgi(verify_body(42, CODE42), ini=ini))
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check(re.search(r"SSL|certificate|TLS", v["detail"], re.I),
          "detail: %r" % v["detail"])
    log = env.fake.requests()
    eq([e for e in log if e.get("method")], [], "HTTP requests at the fake")


@case("TLS: a certificate from the trusted CA for another host name is "
      "refused -> failed, no HTTP request")
def t_tls_wrong_host(env):
    d = os.path.join(env.dir, "wrong")
    os.mkdir(d)
    other = Fake(d, env.certs, base_scenario(), env.certs.wrong_cert,
                 env.certs.wrong_key)
    env.servers.append(other)
    ini = env.config("wrong.ini", api_url=other.url)
    check_ok(env.cgi(verify_body(42, CODE42), ini=ini))
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check(re.search(r"SSL|certificate|host ?name|TLS", v["detail"], re.I),
          "detail: %r" % v["detail"])
    eq([e for e in other.requests() if e.get("method")], [],
       "HTTP requests at the fake with the wrong name")
    eq(env.fake.requests(), [], "requests at the good fake")
    # Control: the certificate itself is good, for the other name.
    ctx = ssl.create_default_context(cafile=env.certs.ca)
    with socket.create_connection(("127.0.0.1", other.port), 5) as raw:
        with ctx.wrap_socket(raw, server_hostname="wrong.example"):
            pass


ODD_SECRET = "s&e=c+r t%2Fx?\u00e9/"
ODD_TOKEN = "a+b&c=d %41"
secret(ODD_SECRET, "odd client_secret")
secret(ODD_TOKEN, "odd app_token")


@case("token request: credentials with form special characters are "
      "encoded and decode to the exact values")
def t_odd_credentials(env):
    env.fake.update(client_secret=ODD_SECRET, app_token=ODD_TOKEN)
    ini = env.config("odd.ini", client_secret=ODD_SECRET,
                     app_token=ODD_TOKEN)
    check_ok(env.cgi(verify_body(42, CODE42), ini=ini))
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/42/verify/validate", 204)])
    eq(form_of(log[0]), {"grant_type": "app", "app_id": APP_ID,
                         "app_token": ODD_TOKEN, "client_id": CLIENT_ID,
                         "client_secret": ODD_SECRET}, "token request form")
    check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                        "validated")


@case("verify: a 401 that is not about the token is not renewed or "
      "retried")
def t_verify_other_401(env):
    env.fake.update(json_error={"status": 401, "on": ["validate"], "body": {
        "error": "unauthorized",
        "error_description": "The app does not have access to this hook"}})
    check_ok(env.cgi(verify_body(42, CODE42)))
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check("401" in v["detail"] and "does not have access" in v["detail"],
          "detail: %r" % v["detail"])
    check_sequence(env.fake.requests(),
                   [("POST", "/oauth/token", 200),
                    ("POST", "/hook/42/verify/validate", 401)])


@case("TLS: a relative ca_file is found beside the config file")
def t_ca_relative(env):
    sub = os.path.join(env.dir, "etc")
    os.mkdir(sub)
    shutil.copy(env.certs.ca, os.path.join(sub, "test-ca.pem"))
    ini = env.config(os.path.join("etc", "rel.ini"), ca_file="test-ca.pem")
    check_ok(env.cgi(verify_body(42, CODE42), ini=ini))
    check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                        "validated")


@case("verify: rate limit 420 -> failed with 420 in detail, headers "
      "logged")
def t_verify_rate_limit(env):
    env.fake.update(rate_limit={"limit": 250, "remaining": 0,
                                "on": ["validate"]})
    r = env.cgi(verify_body(42, CODE42))
    check_ok(r)
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check("420" in v["detail"], "detail: %r" % v["detail"])
    check(b"limit=250" in r.err and b"remaining=0" in r.err,
          "stderr: %r" % r.err)
    check_sequence(env.fake.requests(),
                   [("POST", "/oauth/token", 200),
                    ("POST", "/hook/42/verify/validate", 420)])


@case("verify: HTML 500 on /oauth/token -> failed, detail says non-JSON "
      "token request")
def t_verify_token_html(env):
    env.fake.update(html_error={"on": ["token"]})
    check_ok(env.cgi(verify_body(42, CODE42)))
    v = check_verify_record(env.spooled("hook.verify")[0], "42", CODE42,
                            "failed")
    check("HTTP 500" in v["detail"] and "non-JSON" in v["detail"] and
          "token" in v["detail"], "detail: %r" % v["detail"])
    check_sequence(env.fake.requests(), [("POST", "/oauth/token", 500)])


# -- the command line --

@case("cli: hook create prints the id; create then verify/request")
def t_cli_create(env):
    url = "https://example.com/hook?secret=s"
    r = env.cli("hook", "create", "app", "123", "item.create", url)
    check_exit(r, 0, "hook create")
    eq(r.out.decode(), "1001\n", "stdout")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/app/123/", 200),
                         ("POST", "/hook/1001/verify/request", 204)])
    tok = check_token_request(log[0], "app")["access_token"]
    check_api_request(log[1], "POST", "/hook/app/123/", tok,
                      {"url": url, "type": "item.create"}, 200)
    check_api_request(log[2], "POST", "/hook/1001/verify/request", tok,
                      status=204)
    r = env.cli("hook", "list", "--json", "app", "123")
    check_exit(r, 0, "hook list --json")
    ids = [h["hook_id"] for h in json.loads(r.out)]
    eq(ids, [501, 502, 1001], "hooks after create")


@case("cli: hook list prints a header and one row per hook")
def t_cli_list(env):
    r = env.cli("hook", "list", "app", "123")
    check_exit(r, 0, "hook list")
    lines = r.out.decode().splitlines()
    eq(len(lines), 3, "lines (header + 2 hooks) in %r" % lines)
    eq(lines[0].split(), ["HOOK_ID", "STATUS", "TYPE", "URL"], "header")
    rows = [l.split(None, 3) for l in lines[1:]]
    eq(rows, [["501", "active", "item.create",
               "https://example.com/hook?secret=s1"],
              ["502", "inactive", "comment.create",
               "https://example.com/hook2"]], "rows")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("GET", "/hook/app/123/", 200)])
    tok = check_token_request(log[0], "app")["access_token"]
    check_api_request(log[1], "GET", "/hook/app/123/", tok, status=200)
    eq(log[1]["body"], "", "GET body")


@case("cli: hook list --json prints the fake's array")
def t_cli_list_json(env):
    r = env.cli("hook", "list", "--json", "space", "9")
    check_exit(r, 0, "hook list --json")
    got = json.loads(r.out)
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("GET", "/hook/space/9/", 200)])
    eq(got, json.loads(log[1]["response"]), "printed JSON")
    eq(got, [{"hook_id": 503, "status": "active", "type": "task.create",
              "url": "https://example.com/elsewhere"}], "printed JSON")


@case("cli: hook delete ID -> DELETE /hook/ID")
def t_cli_delete(env):
    r = env.cli("hook", "delete", "502")
    check_exit(r, 0, "hook delete")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("DELETE", "/hook/502", 204)])
    tok = check_token_request(log[0], "app")["access_token"]
    check_api_request(log[1], "DELETE", "/hook/502", tok, status=204)
    r = env.cli("hook", "list", "--json", "app", "123")
    eq([h["hook_id"] for h in json.loads(r.out)], [501], "hooks left")
    r = env.cli("hook", "delete", "502")
    check_exit(r, 1, "deleting it again (404)")
    check("not_found" in r.err.decode(), "stderr: %r" % r.err)


@case("cli: hook verify ID -> POST /hook/ID/verify/request (api_url "
      "with a trailing /)")
def t_cli_verify(env):
    # A trailing '/' on api_url must not double the path's slash.
    ini = env.config("slash.ini", api_url=env.fake.url + "/")
    r = env.cli("hook", "verify", "501", ini=ini)
    check_exit(r, 0, "hook verify")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/501/verify/request", 204)])
    tok = check_token_request(log[0], "app")["access_token"]
    check_api_request(log[1], "POST", "/hook/501/verify/request", tok,
                      status=204)


@case("cli: hook validate right code -> 0; wrong -> 1 with invalid_value, "
      "the code itself never on stderr")
def t_cli_validate(env):
    r = env.cli("hook", "validate", "77", CODE77)
    check_exit(r, 0, "hook validate (right code)")
    r = env.cli("hook", "validate", "77", WRONG_CODE)
    check_exit(r, 1, "hook validate (wrong code)")
    e = r.err.decode()
    check("invalid_value" in e and "Invalid code" in e,
          "stderr lacks Podio's error: %r" % e)
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/77/verify/validate", 204),
                         ("POST", "/hook/77/verify/validate", 400)])
    tok = check_token_request(log[0], "app")["access_token"]
    check_api_request(log[1], "POST", "/hook/77/verify/validate", tok,
                      {"code": CODE77}, 204)
    check_api_request(log[2], "POST", "/hook/77/verify/validate", tok,
                      {"code": WRONG_CODE}, 400)
    # A code so long that the repeated error text is cut inside it: not
    # even its first bytes reach stderr.
    long_code = "L" + "0123456789abcdef" * 40
    r = env.cli("hook", "validate", "77", long_code)
    check_exit(r, 1, "hook validate (long wrong code)")
    check(long_code[:12].encode() not in r.err and b"[code]" in r.err,
          "the start of the code on stderr: %r" % r.err[-200:])


@case("cli: Podio JSON error 404 -> exit 1, one stderr line with not_found")
def t_cli_json_error(env):
    env.fake.update(json_error={"status": 404, "body": {
        "error": "not_found", "error_description": "Object not found"}})
    r = env.cli("hook", "list", "app", "123")
    check_exit(r, 1, "hook list")
    lines = r.err.decode().splitlines()
    eq(len(lines), 1, "stderr lines %r" % lines)
    check("not_found" in lines[0], "stderr: %r" % lines[0])
    check("404" in lines[0], "stderr does not give the status: %r"
          % lines[0])
    eq(r.out, b"", "stdout")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("GET", "/hook/app/123/", 404)])


@case("cli: HTML error page -> exit 1, stderr says HTTP 500, non-JSON")
def t_cli_html_error(env):
    env.fake.update(html_error=True)
    r = env.cli("hook", "delete", "501")
    check_exit(r, 1, "hook delete")
    lines = r.err.decode().splitlines()
    eq(len(lines), 1, "stderr lines %r" % lines)
    check("HTTP 500" in lines[0] and "non-JSON" in lines[0],
          "stderr: %r" % lines[0])
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("DELETE", "/hook/501", 500)])


@case("cli: rate limit 420 -> exit 1, limit and remaining logged")
def t_cli_rate_limit(env):
    env.fake.update(rate_limit={"limit": 5000, "remaining": 0})
    r = env.cli("hook", "list", "app", "123")
    check_exit(r, 1, "hook list")
    e = r.err.decode()
    check("420" in e, "stderr does not give the status: %r" % e)
    check("limit=5000" in e and "remaining=0" in e,
          "rate-limit headers not logged: %r" % e)
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("GET", "/hook/app/123/", 420)])


@case("cli: usage errors exit 2 and send nothing")
def t_cli_usage(env):
    for args in (("hook", "create", "app", "x", "item.create", "u"),
                 ("hook", "frobnicate", "1"),
                 ("hook", "create", "app", "123", "item.create"),
                 ("hook", "list", "nope", "123"),
                 ("hook", "delete", "12a"),
                 ("hook",)):
        r = env.cli(*args)
        check_exit(r, 2, " ".join(args))
        check(r.err.strip(), "%s: nothing on stderr" % " ".join(args))
    eq(env.fake.requests(), [], "requests at the fake")


@case("cli: no credentials -> exit 2, nothing sent")
def t_cli_no_creds(env):
    ini = env.config("nocreds.ini", creds=None)
    for args in (("hook", "list", "app", "123"), ("hook", "verify", "501"),
                 ("hook", "validate", "77", CODE77)):
        r = env.cli(*args, ini=ini)
        check_exit(r, 2, " ".join(args))
        check("credentials" in r.err.decode(), "stderr: %r" % r.err)
    eq(env.fake.requests(), [], "requests at the fake")


@case("cli: check with good credentials -> 0, 'authenticated'")
def t_cli_check_ok(env):
    r = env.cli("check")
    check_exit(r, 0, "check")
    check(b"authenticated" in r.out, "stdout: %r" % r.out)
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200)])
    check_token_request(log[0], "app")


@case("cli: check with a wrong client_secret -> 1")
def t_cli_check_bad(env):
    ini = env.config("bad.ini", client_secret="cs-wrong-1a2b3c")
    secret("cs-wrong-1a2b3c", "wrong client_secret")
    r = env.cli("check", ini=ini)
    check_exit(r, 1, "check")
    check(b"authenticated" not in r.out, "stdout: %r" % r.out)
    check("invalid_client" in r.err.decode(), "stderr: %r" % r.err)
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 401)])


@case("cli: password grant (username + password) works for hook verify")
def t_cli_password(env):
    ini = env.config("pw.ini", creds="password")
    r = env.cli("hook", "verify", "501", ini=ini)
    check_exit(r, 0, "hook verify")
    log = env.fake.requests()
    check_sequence(log, [("POST", "/oauth/token", 200),
                         ("POST", "/hook/501/verify/request", 204)])
    check_token_request(log[0], "password")


def main():
    return run_suite(
        __doc__, CASES, "podio-hook-podio-",
        lambda case, top, certs, binary: Env(top, case[0], certs, binary),
        tools=("openssl", "cgi-fcgi"),
        last="i. no verification code, token or secret in the binary's "
        "stderr (all runs above)")


if __name__ == "__main__":
    sys.exit(main())
