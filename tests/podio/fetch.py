#!/usr/bin/env python3
"""tests/podio/fetch.py - `drain --fetch` (and with --coalesce) against the
fake Podio API over HTTPS (tests/podio/fake_podio.py, driven by
tests/lib/fakepodio.py).

    python3 tests/podio/fetch.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                                 [-v]

Each case fills a spool with events by the real binary run as CGI, runs
`drain --fetch` as a cron job would, and checks the lines handed over byte
for byte (the spooled line, "coalesced" when grouped, then "fetched" as the
last key with the fake's answer as it sent it), what the fake saw (one
token request, one GET per object, none for types without one), Podio's
rate limit as exit 3 with nothing counted against the events, other fetch
failures as failed attempts whose last_error starts "fetch:".

Prints "ok - NAME" / "FAIL - NAME: WHY" per case and, as the very last
line, "N passed, M failed, K skipped" (tests/lib/harness.py's Suite, which
also gives the options).  Exit status 1 when anything failed.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import Failure, check, eq  # noqa: E402
# The fake's wrapper, the test CA, the credentials the fake accepts and
# the checks of what it saw.
import fakepodio as P  # noqa: E402  (tests/lib/fakepodio.py)
from fakepodio import ITEM_1, TASK_2  # noqa: E402


def scenario(**over):
    objects = {"/item/1": ITEM_1, "/task/2": TASK_2,
               "/app/55": {"app_id": 55, "config": {"name": "Reports"}},
               "/form/7": {"form_id": 7}, "/status/9": {"status_id": 9}}
    for i in range(10, 20):
        objects["/item/%d" % i] = {"item_id": i, "title": "Item %d" % i}
    sc = P.base_scenario(objects=objects,
                         gone={"/item/404": 404, "/item/410": 410})
    sc.update(over)
    return sc


class Env(P.Env):
    def __init__(self, top, certs, binary, **over):
        super().__init__(top, "fetch", certs, binary, scenario(**over))

    def post(self, **params):
        """One event through the real binary as CGI; its spooled line."""
        body = "&".join("%s=%s" % kv for kv in params.items())
        name = os.path.join(self.spool, params["type"] + ".jsonl")
        before = open(name, "rb").read() if os.path.exists(name) else b""
        P.check_ok(self.cgi(body))
        after = open(name, "rb").read()
        return after[len(before):]

    def drain(self, *args):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        p = subprocess.run([self.binary, "--config", self.ini, "drain"]
                           + list(args), env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120)
        P.record_stderr("CLI drain " + " ".join(args), p.stderr)
        return p

    def gets(self):
        return [e["path"] for e in self.fake.requests()
                if e["method"] == "GET"]

    def tokens(self):
        return [e for e in self.fake.requests()
                if e["path"] == "/oauth/token"]

    def answer_of(self, path):
        """The bytes the fake answered to the last GET of path."""
        for e in reversed(self.fake.requests()):
            if e["method"] == "GET" and e["path"] == path:
                return e["response"].encode("utf-8")
        raise Failure("the fake saw no GET %s" % path)


def fetched(line, path, status, body):
    """The spooled line with the "fetched" key, as drain hands it over."""
    return (line[:-2] + b',"fetched":{"path":"' + path.encode() +
            b'","status":' + str(status).encode() + b',"body":' + body +
            b'}}\n')


CASES = []
case = harness.registrar(CASES)


@case("print mode: each type's object attached as the last key, byte for "
      "byte; 404/410 give body null; deletes, members and hook.verify get "
      "no key; one token request in all")
def t_print(env):
    a = env.post(type="item.create", item_id="1", hook_id="5")
    b = env.post(type="task.update", task_id="2")
    c = env.post(type="app.update", app_id="55")
    d = env.post(type="item.update", item_id="404")
    e = env.post(type="comment.create", item_id="410", comment_id="3")
    f = env.post(type="item.delete", item_id="1")
    g = env.post(type="member.add", space_id="1", user_id="2")
    h = env.post(type="form.update", form_id="7", app_id="55")
    i = env.post(type="status.create", status_id="9")
    v = env.post(type="hook.verify", hook_id="42", code=P.CODE42)
    check(b'"status":"validated"' in v, "hook.verify spooled %r" % v)
    r = env.drain("--fetch")
    eq(r.returncode, 0, "exit status (stderr %r)" % r.stderr[-300:])
    got = r.stdout.splitlines(keepends=True)
    want = [
        fetched(a, "/item/1", 200, env.answer_of("/item/1")),
        fetched(b, "/task/2", 200, env.answer_of("/task/2")),
        fetched(c, "/app/55", 200, env.answer_of("/app/55")),
        fetched(d, "/item/404", 404, b"null"),
        fetched(e, "/item/410", 410, b"null"),
        f, g,
        fetched(h, "/form/7", 200, env.answer_of("/form/7")),
        fetched(i, "/status/9", 200, env.answer_of("/status/9")),
        v,
    ]
    eq(sorted(got), sorted(want), "lines handed over")
    j = json.loads(want[0])
    eq(list(j)[-1], "fetched", "fetched is the last key")
    eq(j["fetched"]["body"], ITEM_1, "the object")
    eq(sorted(env.gets()), sorted(["/item/1", "/task/2", "/app/55",
                                   "/item/404", "/item/410", "/form/7",
                                   "/status/9"]), "GETs")
    eq(len(env.tokens()), 1, "token requests")
    check(b"secret" not in r.stderr and b"token" not in r.stderr.lower(),
          "stderr %r" % r.stderr)


@case("--exec and --batch get the fetched line; PODIO_PARAM_* as without "
      "--fetch; the token cache is reused by the next drain")
def t_exec_batch(env):
    a = env.post(type="item.create", item_id="1")
    out = os.path.join(env.dir, "out")
    r = env.drain("--fetch", "--exec",
                  'test "$PODIO_PARAM_ITEM_ID" = 1 && cat >> %s' % out)
    eq(r.returncode, 0, "--exec exit status (stderr %r)" % r.stderr[-300:])
    b = env.post(type="task.create", task_id="2")
    r = env.drain("--fetch", "--batch", "cat >> %s" % out)
    eq(r.returncode, 0, "--batch exit status")
    with open(out, "rb") as f:
        eq(f.read(), fetched(a, "/item/1", 200, env.answer_of("/item/1")) +
           fetched(b, "/task/2", 200, env.answer_of("/task/2")), "handed")
    eq(len(env.tokens()), 1, "one token request for both drains")


@case("a 420 stops the run: exit 3, the reset time on stderr, that event "
      "and the later ones wait with no attempt counted; the next run after "
      "the limit hands them over")
def t_rate_limit(env):
    lines = [env.post(type="item.create", item_id=str(10 + k))
             for k in range(6)]
    env.fake.update(rate_limit={"after": 3, "limit": 250, "on": ["object"]})
    r = env.drain("--fetch", "--max-attempts", "1")
    eq(r.returncode, 3, "exit status (stderr %r)" % r.stderr[-400:])
    err = r.stderr.decode()
    check("rate limit" in err and "resets in 3600 s" in err,
          "stderr %r" % err)
    got = r.stdout.splitlines(keepends=True)
    eq(len(got), 3, "handed over before the limit")
    st = [n for n in os.listdir(env.spool) if n.endswith(".state")]
    eq(len(st), 1, "progress files")
    with open(os.path.join(env.spool, st[0]), "rb") as f:
        state = f.read()
    check(b"retry" not in state, "an attempt was counted: %r" % state)
    check(not os.path.exists(os.path.join(env.spool, "failed",
                                          "item.create.jsonl")),
          "a rate-limited event was dead-lettered")
    env.fake.update(rate_limit=None)
    r = env.drain("--fetch")
    eq(r.returncode, 0, "second run")
    rest = r.stdout.splitlines(keepends=True)
    eq([json.loads(l)["id"] for l in got + rest],
       [json.loads(l)["id"] for l in lines], "every event once, in order")


@case("a 429 with Retry-After stops the run the same way")
def t_rate_429(env):
    env.post(type="item.create", item_id="1")
    env.fake.update(rate_limit={"status": 429, "retry_after": 90,
                                "on": ["object"]})
    r = env.drain("--fetch")
    eq(r.returncode, 3, "exit status")
    check("resets in 90 s" in r.stderr.decode(), "stderr %r" % r.stderr)
    eq(r.stdout, b"", "nothing handed over")


@case("a 500 is a failed attempt with last_error 'fetch: ...'; after "
      "--max-attempts a dead letter; the events after it still go")
def t_server_error(env):
    a = env.post(type="item.create", item_id="1")
    b = env.post(type="member.add", space_id="1", user_id="2")
    env.fake.update(html_error={"status": 502, "on": ["object"]})
    for n in (1, 2):
        r = env.drain("--fetch", "--max-attempts", "2")
        eq(r.returncode, 1, "run %d exit status" % n)
        if n == 1:
            eq(r.stdout, b, "the event without an object went on")
    dead = open(os.path.join(env.spool, "failed",
                             "item.create.jsonl"), "rb").read()
    j = json.loads(dead)
    eq(j["attempts"], 2, "attempts")
    check(j["last_error"].startswith("fetch: GET /item/1: ") and
          "502" in j["last_error"], "last_error %r" % j["last_error"])
    eq(dead, a[:-2] + b',"attempts":2,"last_error":' +
       json.dumps(j["last_error"], ensure_ascii=False).encode() + b'}\n',
       "dead letter bytes")


@case("an id that is not a number is never put into a path")
def t_bad_id(env):
    env.post(type="item.create", item_id="1%2F..%2Fhook%2F5")
    r = env.drain("--fetch", "--max-attempts", "1")
    eq(r.returncode, 1, "exit status")
    eq(env.gets(), [], "GETs")
    j = json.loads(open(os.path.join(env.spool, "failed",
                                     "item.create.jsonl"), "rb").read())
    eq(j["last_error"], "fetch: item_id is not a number", "last_error")


@case("--coalesce --fetch: 100 item.update of 10 items, 10 GETs; each "
      "line carries coalesced, then fetched last")
def t_coalesce(env):
    lines = [env.post(type="item.update", item_id=str(10 + k % 10),
                      item_revision_id=str(k)) for k in range(100)]
    r = env.drain("--coalesce", "--fetch")
    eq(r.returncode, 0, "exit status (stderr %r)" % r.stderr[-300:])
    got = [json.loads(l) for l in r.stdout.splitlines()]
    eq(len(got), 10, "lines handed over")
    eq(sorted(env.gets()), sorted("/item/%d" % i for i in range(10, 20)),
       "GETs")
    ids = [json.loads(l)["id"] for l in lines]
    for k, j in enumerate(got):
        eq(list(j)[-2:], ["coalesced", "fetched"], "last keys")
        eq(j["id"], ids[90 + k], "the latest of item %d" % (10 + k))
        eq(j["coalesced"], ids[k:90:10], "coalesced ids")
        eq(j["fetched"]["body"]["item_id"], 10 + k, "object")


@case("no credentials: --fetch is a config error, exit 2, nothing claimed")
def t_no_credentials(env):
    env.post(type="item.create", item_id="1")
    env.ini = env.config(creds=None)
    r = env.drain("--fetch")
    eq(r.returncode, 2, "exit status")
    check(b"credentials" in r.stderr, "stderr %r" % r.stderr)
    check(os.path.exists(os.path.join(env.spool, "item.create.jsonl")),
          "the spool file was claimed")


@case("--follow --fetch: a 420 pauses it until the next full pass (no call "
      "per arrival meanwhile), then every event goes, once, in order")
def t_follow_rate_limit(env):
    out = os.path.join(env.dir, "out")
    log = open(os.path.join(env.dir, "follow.log"), "wb")
    env.fake.update(rate_limit={"after": 0, "on": ["object"]})
    p = subprocess.Popen([env.binary, "--config", env.ini, "drain",
                          "--follow", "--fetch", "--rescan", "3", "--exec",
                          "cat >> %s" % out], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    P.PROCS[p.pid] = p
    try:
        time.sleep(0.5)
        P.check_ok(env.cgi("type=item.create&item_id=1&n=0"))
        time.sleep(0.5)
        for k in range(1, 4):
            P.check_ok(env.cgi("type=item.create&item_id=1&n=%d" % k))
            time.sleep(0.2)
        eq(len(env.gets()), 1, "GETs while paused")
        env.fake.update(rate_limit=None)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(out) and open(out).read().count("\n") == 4:
                break
            time.sleep(0.05)
        p.send_signal(15)
        eq(p.wait(timeout=30), 0, "exit status")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()
    with open(out, "rb") as f:
        got = [json.loads(l) for l in f.read().splitlines()]
    eq([j["params"]["n"] for j in got], ["0", "1", "2", "3"],
       "handed over once each, in order")
    eq(got[0]["fetched"]["status"], 200, "fetched")
    text = open(os.path.join(env.dir, "follow.log")).read()
    check("rate limit" in text, "the log says nothing of the limit: %r"
          % text[-500:])


def readme_handler():
    """The README's complete handler (the sh block after its heading)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    at = text.index("### A complete handler")
    start = text.index("```sh\n", at) + len("```sh\n")
    return text[start:text.index("```", start)]


@case("the README's complete handler, run by drain --fetch --coalesce "
      "--exec: the open item gets last-seen through api PUT, a closed one "
      "and a deleted one are left; one token request in all")
def t_readme_handler(env):
    env.fake.update(objects=dict(env.fake.scenario["objects"], **{
        "/item/12": {"item_id": 12, "fields": [
            {"external_id": "status", "values": [{"value": "closed"}]}]}}))
    path = os.path.join(env.dir, "on-item.sh")
    with open(path, "w") as f:
        f.write(readme_handler().replace("/usr/local/bin/podio-hook",
                                         env.binary))
    os.chmod(path, 0o755)
    env.post(type="item.update", item_id="1", item_revision_id="1")
    env.post(type="item.update", item_id="1", item_revision_id="2")
    env.post(type="item.update", item_id="12", item_revision_id="1")
    env.post(type="item.update", item_id="404", item_revision_id="1")
    p = subprocess.run([env.binary, "drain", "--type", "item.*", "--fetch",
                        "--coalesce", "--exec", path],
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                            "PODIO_HOOK_CONFIG": env.ini},
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120)
    eq(p.returncode, 0, "exit status (stderr %r)" % p.stderr[-400:])
    puts = [e for e in env.fake.requests() if e["method"] == "PUT"]
    eq([e["path"] for e in puts], ["/item/1"], "PUTs")
    body = json.loads(puts[0]["body"])
    eq(list(body["fields"]), ["last-seen"], "fields changed")
    eq(body["fields"]["last-seen"]["start_date"],
       time.strftime("%Y-%m-%d", time.gmtime()), "date")
    eq(len(env.tokens()), 1, "token requests (drain and api share it)")
    eq(sorted(env.gets()), ["/item/1", "/item/12", "/item/404"], "GETs")


def main():
    return P.run_suite(
        __doc__, CASES, "podio-hook-fetch-",
        lambda case, top, certs, binary: Env(top, certs, binary))


if __name__ == "__main__":
    sys.exit(main())
