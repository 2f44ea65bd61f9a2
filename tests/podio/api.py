#!/usr/bin/env python3
"""tests/podio/api.py - `podio-hook api METHOD PATH [--data ...]` against
the fake Podio API over HTTPS (tests/podio/fake_podio.py, driven by
tests/lib/fakepodio.py).

    python3 tests/podio/api.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                               [-v]

Each case runs the binary as a handler script would, with a config whose
[podio] points at a fake of its own, and checks what it printed, its exit
status and the exact requests the fake saw: the body sent byte for byte,
Content-Type, the OAuth2 token, how many token requests (the token cache in
the spool is shared by every call and by verification), renewal once,
Podio's rate limit (420 with X-Rate-Limit-*, 429 with Retry-After) as exit
3 with the reset time, other errors as exit 1, usage errors as exit 2 with
nothing sent.  No token or secret may reach standard error.

Prints "ok - NAME" / "FAIL - NAME: WHY" per case and, as the very last
line, "N passed, M failed, K skipped" (tests/lib/harness.py's Suite, which
also gives the options).  Exit status 1 when anything failed.
"""

import json
import os
import re
import stat
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import check, eq  # noqa: E402
# The fake's wrapper, the test CA, the credentials the fake accepts and
# the checks of what it saw.
import fakepodio as P  # noqa: E402  (tests/lib/fakepodio.py)
from fakepodio import ITEM_1, TASK_2  # noqa: E402


def scenario(**over):
    sc = P.base_scenario(objects={"/item/1": ITEM_1, "/task/2": TASK_2},
                         gone={"/item/404": 404, "/item/410": 410})
    sc.update(over)
    return sc


class Env(P.Env):
    """fakepodio's Env with this suite's scenario."""

    def __init__(self, top, certs, binary, **over):
        super().__init__(top, "api", certs, binary, scenario(**over))

    def api(self, *args, stdin=None, ini=None):
        return self.cli("api", *args, ini=ini, timeout=60,
                        stdin=stdin if stdin is not None else b"")

    def token_requests(self):
        return [e for e in self.fake.requests()
                if e["path"] == "/oauth/token"]


def answered(log, i):
    """The fake's answer to request i, as the bytes it sent."""
    return log[i]["response"].encode("utf-8")


CASES = []
case = harness.registrar(CASES)


# ---------------------------------------------------------------------------

@case("GET /item/1: the body as received plus a final newline, exit 0; "
      "one token request (app grant), then OAuth2 on the call")
def t_get(env):
    r = env.api("GET", "/item/1")
    P.check_exit(r, 0, "api GET /item/1")
    log = env.fake.requests()
    P.check_sequence(log, [("POST", "/oauth/token", 200),
                           ("GET", "/item/1", 200)])
    tok = P.check_token_request(log[0], "app")["access_token"]
    P.check_api_request(log[1], "GET", "/item/1", tok, status=200)
    eq(log[1]["body"], "", "GET body")
    check("content-type" not in log[1]["headers"],
          "GET sent a Content-Type: %r" % log[1]["headers"])
    body = answered(log, 1)
    check(not body.endswith(b"\n"), "the fake's answer ends in a newline")
    eq(r.out, body + b"\n", "stdout")
    eq(json.loads(r.out), ITEM_1, "printed object")
    eq(r.err, b"", "stderr")


@case("a second call reuses the cached token: no new token request; "
      "{spool}/.podio-token has mode 0600")
def t_reuse(env):
    P.check_exit(env.api("GET", "/item/1"), 0, "first call")
    r = env.api("get", "/task/2")
    P.check_exit(r, 0, "second call (method in lower case)")
    eq(json.loads(r.out), TASK_2, "second call's output")
    log = env.fake.requests()
    P.check_sequence(log, [("POST", "/oauth/token", 200),
                           ("GET", "/item/1", 200),
                           ("GET", "/task/2", 200)])
    tok = json.loads(log[0]["response"])["access_token"]
    P.check_api_request(log[2], "GET", "/task/2", tok, status=200)
    st = os.stat(os.path.join(env.spool, ".podio-token"))
    eq(stat.S_IMODE(st.st_mode), 0o600, "token file mode")


@case("a symbolic link or a FIFO planted as {spool}/.podio-token is "
      "never read, written through or replaced: the call gets a token of "
      "its own, says why on stderr, and the plant stays as it was")
def t_planted_cache(env):
    P.check_exit(env.api("GET", "/item/1"), 0, "first call")
    cache = os.path.join(env.spool, ".podio-token")
    with open(cache) as f:
        real = json.load(f)
    planted = os.path.join(env.dir, "planted.json")
    with open(planted, "w") as f:
        json.dump(dict(real, access_token="PLANTED-TOKEN"), f)
    with open(planted, "rb") as f:
        before = f.read()
    os.unlink(cache)
    os.symlink(planted, cache)
    r = env.api("GET", "/task/2")
    P.check_exit(r, 0, "api with the token cache a symbolic link")
    log = env.fake.requests()
    P.check_sequence(log[2:], [("POST", "/oauth/token", 200),
                               ("GET", "/task/2", 200)])
    tok = json.loads(log[2]["response"])["access_token"]
    P.check_api_request(log[3], "GET", "/task/2", tok, status=200)
    check(os.path.islink(cache), "the link was replaced")
    with open(planted, "rb") as f:
        eq(f.read(), before, "the link's target")
    check(b"token cache %s not read: is a symbolic link" % cache.encode()
          in r.err, "no warning naming the link: %r" % r.err[-300:])
    os.unlink(cache)
    os.mkfifo(cache, 0o600)
    r = env.api("GET", "/item/1")  # a FIFO opened blocking would hang
    P.check_exit(r, 0, "api with the token cache a FIFO")
    check(stat.S_ISFIFO(os.lstat(cache).st_mode), "the FIFO was replaced")
    check(b"not read: is not a regular file" in r.err,
          "no warning: %r" % r.err[-300:])


@case("the token cache is shared with verification: a CGI hook.verify, "
      "then api, one token request in all")
def t_shared_with_verify(env):
    P.check_ok(env.cgi(P.verify_body(42, P.CODE42)))
    r = env.api("GET", "/item/1")
    P.check_exit(r, 0, "api after hook.verify")
    P.check_sequence(env.fake.requests(),
                     [("POST", "/oauth/token", 200),
                      ("POST", "/hook/42/verify/validate", 204),
                      ("GET", "/item/1", 200)])


@case("POST --data JSON: sent byte for byte with Content-Type: "
      "application/json; the answer printed")
def t_post(env):
    data = '{"fields": {"title": "New \\u00e9 item"}, "tags": ["a"]}'
    r = env.api("POST", "/item/app/55/", "--data", data)
    P.check_exit(r, 0, "api POST")
    log = env.fake.requests()
    P.check_sequence(log, [("POST", "/oauth/token", 200),
                           ("POST", "/item/app/55/", 200)])
    eq(log[1]["body"], data, "body sent")
    eq(P.media(log[1]["headers"]), "application/json", "Content-Type")
    eq(r.out, answered(log, 1) + b"\n", "stdout")
    eq(json.loads(r.out), {"item_id": 5001, "revision": 0}, "answer")


@case("PUT --data @FILE, then GET shows the change; --data=- reads "
      "standard input")
def t_put(env):
    path = os.path.join(env.dir, "change.json")
    with open(path, "w") as f:
        f.write('{"title": "Renamed"}\n')
    r = env.api("PUT", "/item/1", "--data", "@" + path)
    P.check_exit(r, 0, "api PUT --data @FILE")
    eq(json.loads(r.out), {"revision": 4}, "PUT answer")
    r = env.api("PUT", "/item/1", "--data=-", stdin=b'{"title": "Again"}')
    P.check_exit(r, 0, "api PUT --data=-")
    eq(json.loads(r.out), {"revision": 5}, "second PUT answer")
    r = env.api("GET", "/item/1")
    got = json.loads(r.out)
    eq((got["title"], got["revision"]), ("Again", 5), "item after PUTs")
    log = env.fake.requests()
    eq(log[1]["body"], '{"title": "Renamed"}\n', "file sent byte for byte")
    eq(log[2]["body"], '{"title": "Again"}', "stdin sent byte for byte")
    eq([e["method"] for e in log], ["POST", "PUT", "PUT", "GET"], "methods")


@case("DELETE -> 204: nothing on stdout, exit 0; GET then -> 410: the "
      "body on stdout, exit 1, status and Podio's error on stderr")
def t_delete_then_gone(env):
    r = env.api("DELETE", "/item/1")
    P.check_exit(r, 0, "api DELETE")
    eq(r.out, b"", "stdout of a 204")
    r = env.api("GET", "/item/1")
    P.check_exit(r, 1, "api GET of a deleted item")
    eq(json.loads(r.out)["error"], "gone", "stdout")
    lines = r.err.decode().splitlines()
    eq(len(lines), 1, "stderr lines %r" % lines)
    check("GET /item/1" in lines[0] and "HTTP 410" in lines[0] and
          "gone: Object has been deleted" in lines[0],
          "stderr: %r" % lines[0])


@case("404 and 410 objects the scenario declares deleted -> exit 1, "
      "'HTTP 404: not_found: Object not found' on stderr")
def t_not_found(env):
    for path, status, err in (("/item/404", 404, "not_found"),
                              ("/item/410", 410, "gone"),
                              ("/form/77", 404, "not_found")):
        r = env.api("GET", path)
        P.check_exit(r, 1, "api GET " + path)
        e = r.err.decode()
        check(("HTTP %d: %s: " % (status, err)) in e, "stderr: %r" % e)
        eq(json.loads(r.out)["error"], err, "stdout of " + path)


@case("expired token: 401 expired_token, refresh_token grant once, the "
      "call repeated -> exit 0")
def t_expired(env):
    P.check_exit(env.api("GET", "/item/1"), 0, "first call")
    env.fake.update(expire_all_tokens_now=1)
    r = env.api("GET", "/task/2")
    P.check_exit(r, 0, "call with an expired token")
    eq(json.loads(r.out), TASK_2, "output after renewal")
    log = env.fake.requests()
    P.check_sequence(log, [("POST", "/oauth/token", 200),
                           ("GET", "/item/1", 200),
                           ("GET", "/task/2", 401),
                           ("POST", "/oauth/token", 200),
                           ("GET", "/task/2", 200)])
    first = json.loads(log[0]["response"])
    new = P.check_token_request(log[3], "refresh_token",
                                first["refresh_token"])
    P.check_api_request(log[4], "GET", "/task/2", new["access_token"])


@case("token rejected again after renewal -> exit 1, renewed only once")
def t_rejected_twice(env):
    env.fake.update(reject_all_tokens=True)
    r = env.api("GET", "/item/1")
    P.check_exit(r, 1, "api GET")
    check("expired_token" in r.err.decode(), "stderr: %r" % r.err)
    P.check_sequence(env.fake.requests(),
                     [("POST", "/oauth/token", 200),
                      ("GET", "/item/1", 401),
                      ("POST", "/oauth/token", 200),
                      ("GET", "/item/1", 401)])


@case("420 after 1 call -> exit 3, the limit figures and when it resets "
      "(Podio's 'wait 3600 seconds') on stderr, the body on stdout")
def t_rate_420(env):
    env.fake.update(rate_limit={"after": 1, "limit": 250})
    r = env.api("GET", "/item/1")
    P.check_exit(r, 0, "first call (under the limit)")
    log = env.fake.requests()
    eq(log[1]["response_headers"], {"X-Rate-Limit-Limit": "250",
                                    "X-Rate-Limit-Remaining": "249"},
       "rate-limit headers of an answered call")
    r = env.api("GET", "/item/1")
    P.check_exit(r, 3, "second call (rate-limited)")
    eq(json.loads(r.out)["error"], "rate_limit", "stdout")
    e = r.err.decode()
    m = re.search(r"podio-hook: api: Podio's rate limit \(limit 250, "
                  r"remaining 0\): HTTP 420: rate_limit: .*; it resets in "
                  r"3600 s, at (\S+)Z", e)
    check(m is not None, "stderr: %r" % e)
    P.check_sequence(env.fake.requests(), [("POST", "/oauth/token", 200),
                                           ("GET", "/item/1", 200),
                                           ("GET", "/item/1", 420)])


@case("429 with Retry-After: 120 -> exit 3, 'it resets in 120 s' on "
      "stderr")
def t_rate_429(env):
    env.fake.update(rate_limit={"status": 429, "retry_after": 120})
    r = env.api("POST", "/item/app/55/", "--data", "{}")
    P.check_exit(r, 3, "api POST")
    e = r.err.decode()
    check("it resets in 120 s, at " in e and "HTTP 429" in e,
          "stderr: %r" % e)
    P.check_sequence(env.fake.requests(), [("POST", "/oauth/token", 200),
                                           ("POST", "/item/app/55/", 429)])


@case("420 on the token request -> exit 3, nothing else sent")
def t_rate_token(env):
    env.fake.update(rate_limit={"on": ["token"]})
    r = env.api("GET", "/item/1")
    P.check_exit(r, 3, "api GET")
    eq(r.out, b"", "stdout")
    check("rate limit" in r.err.decode(), "stderr: %r" % r.err)
    P.check_sequence(env.fake.requests(), [("POST", "/oauth/token", 420)])


@case("HTML error page 500 -> exit 1, the page on stdout as received, "
      "'HTTP 500: non-JSON' on stderr")
def t_html(env):
    env.fake.update(html_error={"on": ["object"]})
    r = env.api("GET", "/item/1")
    P.check_exit(r, 1, "api GET")
    log = env.fake.requests()
    eq(r.out, answered(log, 1), "stdout (the page ends in a newline)")
    check("HTTP 500: non-JSON answer" in r.err.decode(), "stderr: %r" % r.err)


@case("no answer (api_url on a closed port) -> exit 1, the failure on "
      "stderr")
def t_network(env):
    port = P.harness.free_port()
    ini = env.config("closed.ini", api_url="https://127.0.0.1:%d" % port)
    r = env.api("GET", "/item/1", ini=ini)
    P.check_exit(r, 1, "api GET")
    eq(r.out, b"", "stdout")
    check("127.0.0.1:%d" % port in r.err.decode(), "stderr: %r" % r.err)


@case("--data that is not JSON is a usage error (exit 2), nothing sent")
def t_bad_json(env):
    missing = os.path.join(env.dir, "missing.json")
    empty = os.path.join(env.dir, "empty.json")
    open(empty, "w").close()
    for args, stdin in ((("--data", "{"), None),
                        (("--data", "{'a': 1}"), None),
                        (("--data", ""), None),
                        (("--data", "@" + empty), None),
                        (("--data", "@" + missing), None),
                        (("--data", "-"), b"not json"),
                        (("--data", "{} x"), None)):
        r = env.api("POST", "/item/app/55/", *args, stdin=stdin)
        P.check_exit(r, 2, "api POST %r" % (args,))
        check(r.err.startswith(b"podio-hook: api: "), "stderr: %r" % r.err)
    eq(env.fake.requests(), [], "requests at the fake")


@case("usage errors (method, path, --data with GET, arguments, options) "
      "exit 2, nothing sent")
def t_usage(env):
    for args in (("PATCH", "/item/1"), ("GET", "item/1"),
                 ("GET", "/item/1 2"), ("GET", "/item/\x01"),
                 ("GET", "/item/1", "--data", "{}"), ("GET",),
                 ("GET", "/item/1", "extra"), ("GET", "/item/1", "--bogus"),
                 ("POST", "/x", "--data", "{}", "--data", "{}"),
                 ("GET", "/" + "x" * 1024)):
        r = env.api(*args)
        P.check_exit(r, 2, "api %r" % (args,))
        eq(len(r.err.decode().splitlines()), 1, "stderr lines of %r: %r"
           % (args, r.err))
    r = env.api("--help")
    P.check_exit(r, 0, "api --help")
    check(r.out.startswith(b"usage: podio-hook api METHOD PATH"),
          "usage: %r" % r.out)
    eq(env.fake.requests(), [], "requests at the fake")


@case("--data @FILE of exactly 4 MiB is sent whole; one byte more is "
      "refused with exit 2 and nothing sent")
def t_data_limit(env):
    limit = 4 * 1024 * 1024
    path = os.path.join(env.dir, "big.json")
    body = b'{"a":"' + b"x" * (limit - 8) + b'"}'
    eq(len(body), limit, "test body size")
    with open(path, "wb") as f:
        f.write(body)
    r = env.api("POST", "/item/app/55/", "--data", "@" + path)
    P.check_exit(r, 0, "api POST of 4 MiB")
    log = env.fake.requests()
    P.check_sequence(log, [("POST", "/oauth/token", 200),
                           ("POST", "/item/app/55/", 200)])
    eq(len(log[1]["body"]), limit, "bytes sent")
    with open(path, "ab") as f:
        f.write(b" ")
    r = env.api("POST", "/item/app/55/", "--data", "@" + path)
    P.check_exit(r, 2, "api POST of 4 MiB + 1")
    check(b"larger than 4 MiB" in r.err, "stderr: %r" % r.err)
    eq(len(env.fake.requests()), 2, "requests at the fake")


@case("no credentials -> exit 2, nothing sent")
def t_no_creds(env):
    ini = env.config("nocreds.ini", creds=None)
    r = env.api("GET", "/item/1", ini=ini)
    P.check_exit(r, 2, "api GET")
    check("credentials" in r.err.decode(), "stderr: %r" % r.err)
    eq(env.fake.requests(), [], "requests at the fake")


def readme_handler():
    """The sh block of the README's section on podio-hook api."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("### `podio-hook api`: one call for a script", 1)[1]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    check(m is not None, "no sh block in the README's section")
    return m.group(1)


@case("the README's handler, run by drain --exec on a spooled item.create, "
      "reads the item and updates it through podio-hook api")
def t_readme_handler(env):
    script = os.path.join(env.dir, "on-item.sh")
    with open(script, "w") as f:
        f.write(readme_handler())
    os.chmod(script, 0o755)
    bindir = os.path.join(env.dir, "bin")
    os.mkdir(bindir)
    os.symlink(env.binary, os.path.join(bindir, "podio-hook"))
    P.check_ok(env.cgi("type=item.create&item_id=1&hook_id=9"))
    penv = {"PATH": bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"),
            "PODIO_HOOK_CONFIG": env.ini}
    p = subprocess.run(["podio-hook", "drain", "--exec", script], env=penv,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    P.record_stderr("drain --exec README handler", p.stderr)
    check(p.returncode == 0, "drain: exit %s, stderr %r"
          % (p.returncode, p.stderr))
    check(b"item 1: Quarterly report" in p.stderr,
          "the handler's line is missing: %r" % p.stderr)
    log = env.fake.requests()
    P.check_sequence(log, [("POST", "/oauth/token", 200),
                           ("GET", "/item/1", 200),
                           ("PUT", "/item/1", 200)])
    eq(json.loads(log[2]["body"]), {"fields": {"status": "seen"}},
       "PUT body")
    r = env.api("GET", "/item/1")
    eq(json.loads(r.out)["revision"], ITEM_1["revision"] + 1,
       "the item's revision after the handler")


def main():
    return P.run_suite(
        __doc__, CASES, "podio-hook-api-",
        lambda case, top, certs, binary: Env(top, certs, binary),
        last="no token, code or secret on the binary's stderr (all runs)")


if __name__ == "__main__":
    sys.exit(main())
