#!/usr/bin/env python3
"""tests/podio/sync.py - hooks as configuration: `podio-hook hook sync`
against the fake Podio API, with the receiver behind a real lighttpd.

    python3 tests/podio/sync.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                                [-v]

The loop closes as in production: [hook NAME] sections in the config,
`hook sync` lists each declared ref, creates what is missing and requests
verification; the fake (deliver_verify) then posts type=hook.verify with a
fresh code to the hook's url, which is lighttpd on 127.0.0.1 running the
shipped lighttpd/podio-hook-fastcgi.conf (the url's ?secret= moved into the
body, as Podio does); the receiver validates inline against the same fake,
and the next `hook sync` reports the hook active.  Also: a hook the fake
set inactive behind our back is re-verified; with the receiver down the
hook stays inactive (exit 1, the line says so); --prune deletes only
undeclared hooks on declared urls; --dry-run sends only the token request
and GETs (the fake's call log says so); --json; Podio's rate limit stops
the run at once (exit 3); a failing call is a "failed" line and exit 1;
usage and config errors exit 2 with nothing sent.

As root, lighttpd runs the receiver as www-data and the command line runs
as www-data too (the spool's owner).  Prints "ok - NAME" / "FAIL - NAME:
WHY" / "skip - NAME: WHY" per case and, as the very last line, "N passed,
M failed, K skipped" (tests/lib/harness.py's Suite, which also gives the
options).  Exit status 1 when anything failed.  The fake and the checks of
what it saw: tests/lib/fakepodio.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import Failure, check, eq  # noqa: E402
# The fake's wrapper, the test CA, the credentials the fake accepts and
# the checks of what it saw.
import fakepodio as P  # noqa: E402  (tests/lib/fakepodio.py)

SECRET = "sync-5ecret-1d9f"
# [podio] timeout: a verify/request waits for the fake's post to the
# receiver and the receiver's validate, on a machine busy with other tests.
TIMEOUT = 10
OTHER_URL = "https://other.example.org/hook"
LIGHTTPD_CONF = os.path.join(ROOT, "lighttpd", "podio-hook-fastcgi.conf")

P.secret(SECRET, "receiver secret")


def hook_section(name, ref_type, ref_id, type_, url):
    return ("[hook %s]\nref_type = %s\nref_id = %s\ntype = %s\nurl = %s\n\n"
            % (name, ref_type, ref_id, type_, url))


class World:
    """One case: a fake Podio, a spool, a config with [hook] sections and,
    when asked, lighttpd running the receiver on the hooks' url."""

    def __init__(self, top, certs, binary):
        self.dir = tempfile.mkdtemp(prefix="sync-", dir=top)
        os.chmod(self.dir, 0o755)
        self.certs = certs
        self.binary = binary
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        harness.chown_run(self.spool, 0o755)
        self.port = harness.free_port()
        self.url = "http://127.0.0.1:%d/hook?secret=%s" % (self.port, SECRET)
        self.fake = None
        self.server = None
        self.ini = os.path.join(self.dir, "podio-hook.ini")

    def start_fake(self, hooks=(), **sc):
        """hooks: (hook_id, ref_type, ref_id, status, type, url or None
        for this world's url)."""
        seeds = [{"hook_id": h[0], "ref_type": h[1], "ref_id": str(h[2]),
                  "status": h[3], "type": h[4],
                  "url": h[5] if h[5] is not None else self.url}
                 for h in hooks]
        scenario = P.base_scenario(hooks=seeds, codes={}, **sc)
        self.fake = P.Fake(self.dir, self.certs, scenario)

    def write_config(self, hooks, extra=""):
        """hooks: (name, ref_type, ref_id, type, url or None)."""
        text = ("[spool]\ndir = %s\nsync = no\n\n[receiver]\nsecret = %s\n\n"
                "[podio]\napi_url = %s\nclient_id = %s\nclient_secret = %s\n"
                "app_id = %s\napp_token = %s\nca_file = %s\ntimeout = %d\n\n"
                % (self.spool, SECRET, self.fake.url, P.CLIENT_ID,
                   P.CLIENT_SECRET, P.APP_ID, P.APP_TOKEN, self.certs.ca,
                   TIMEOUT))
        for h in hooks:
            text += hook_section(h[0], h[1], h[2], h[3],
                                 h[4] if h[4] is not None else self.url)
        text += extra + "[log]\nlevel = info\n"
        with open(self.ini, "w") as f:
            f.write(text)
        harness.give_config(self.ini)

    def start_receiver(self):
        run = os.path.join(self.dir, "run")
        os.mkdir(run)
        harness.chown_run(run, 0o755)
        docroot = os.path.join(self.dir, "docroot")
        os.mkdir(docroot, 0o755)
        self.error_log = os.path.join(run, "error.log")
        self.pid_file = os.path.join(run, "lighttpd.pid")
        conf = harness.write_lighttpd_conf(
            self.dir, LIGHTTPD_CONF,
            {"bin": self.binary, "config": self.ini,
             "socket": os.path.join(run, "podio-hook.sock"),
             "log": os.path.join(run, "breakage.log")},
            docroot, self.port, self.pid_file, self.error_log,
            harness.run_ids() is not None)
        self.server_err = open(os.path.join(self.dir, "lighttpd.stderr"),
                               "wb")
        self.server = subprocess.Popen(
            ["lighttpd", "-D", "-f", conf], stdin=subprocess.DEVNULL,
            stdout=self.server_err, stderr=self.server_err,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
            start_new_session=True)
        P.PROCS[self.server.pid] = self.server
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError("lighttpd exited with %s: %s" % (
                    self.server.returncode, self.logs()))
            code = harness.http_code("http://127.0.0.1:%d/ready" % self.port)
            if code.strip() not in ("", "000"):
                return
            time.sleep(0.05)
        raise RuntimeError("lighttpd did not answer within 15 s")

    def logs(self):
        paths = [os.path.join(self.dir, "run", "error.log"),
                 os.path.join(self.dir, "lighttpd.stderr")]
        return P.short(harness.read_logs(paths), 2000)

    def sync(self, *args, ini=None):
        """`hook sync ARGS` as the spool's owner; a P.Result."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        t0 = time.monotonic()
        p = subprocess.run([self.binary, "--config", ini or self.ini, "hook",
                            "sync"] + list(args), env=env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=120, **harness.run_as(harness.run_ids()))
        P.record_stderr("hook sync " + " ".join(args), p.stderr)
        return P.Result(p.returncode, p.stdout, p.stderr,
                        time.monotonic() - t0)

    def close(self):
        if self.server is not None and self.server.poll() is None:
            harness.terminate(self.server, 15)
            P.PROCS.pop(self.server.pid, None)
            self.server_err.close()
            # The receiver's log lines (lighttpd -D leaves them on its
            # stderr), for the secrets check.
            P.record_stderr("lighttpd + receiver", harness.read_logs(
                [self.error_log, os.path.join(self.dir, "lighttpd.stderr")]))
        if self.fake is not None:
            self.fake.stop()

    # -- what the fake saw --

    def calls(self):
        """The fake's requests other than token requests, as (method,
        path, status)."""
        return [(e["method"], e["path"], e["status"])
                for e in self.fake.requests()
                if e["path"] != "/oauth/token"]

    def token_requests(self):
        return [e for e in self.fake.requests()
                if e["path"] == "/oauth/token"]

    def hook_states(self):
        return {h["hook_id"]: h["status"] for h in self.fake.hooks()}

    def spooled_verifications(self):
        path = os.path.join(self.spool, "hook.verify.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f]


def lines(r):
    return r.out.decode().splitlines()


def check_delivery(w, d, hook_id, status):
    """One hook.verify post of the fake: to the url without its query, the
    secret moved into the form body, then type, hook_id, code."""
    eq(d["url"], "http://127.0.0.1:%d/hook" % w.port, "delivery url")
    form = urllib.parse.parse_qsl(d["body"], strict_parsing=True)
    eq([k for k, _ in form], ["secret", "type", "hook_id", "code"],
       "delivered form keys")
    eq(form[0][1], SECRET, "delivered secret")
    eq(form[1][1], "hook.verify", "delivered type")
    eq(form[2][1], str(hook_id), "delivered hook_id")
    P.secret(form[3][1], "fake's code for hook %s" % hook_id)
    eq(d.get("status"), status, "delivery answer (%s)"
       % (d.get("error") or d.get("response")))
    return form[3][1]


CASES = []


def case(name, receiver=False):
    def reg(fn):
        CASES.append((name, fn, receiver))
        return fn
    return reg


# ---------------------------------------------------------------------------

@case("a fresh config: both hooks created and verification requested "
      "(exit 1), the fake posts hook.verify to lighttpd, the receiver "
      "validates inline; the next sync says active ok (exit 0)",
      receiver=True)
def t_fresh(w):
    r = w.sync()
    P.check_exit(r, 1, "first sync")
    eq(lines(r), ["item-create 1001 inactive created",
                  "task-update 1002 inactive created"], "first sync's lines")
    eq(w.calls(), [("GET", "/hook/app/100/", 200),
                   ("GET", "/hook/space/7/", 200),
                   ("POST", "/hook/app/100/", 200),
                   ("POST", "/hook/1001/verify/validate", 204),
                   ("POST", "/hook/1001/verify/request", 204),
                   ("POST", "/hook/space/7/", 200),
                   ("POST", "/hook/1002/verify/validate", 204),
                   ("POST", "/hook/1002/verify/request", 204)],
       "the fake's calls (validate: by the receiver)")
    log = w.fake.requests()
    create = [e for e in log if e["path"] == "/hook/app/100/"
              and e["method"] == "POST"][0]
    eq(json.loads(create["body"]), {"url": w.url, "type": "item.create"},
       "create body")
    deliveries = w.fake.deliveries()
    eq(len(deliveries), 2, "deliveries")
    codes = [check_delivery(w, d, h, 200)
             for d, h in zip(deliveries, (1001, 1002))]
    spooled = w.spooled_verifications()
    eq([(s["params"]["hook_id"], s["params"]["code"],
         s["verification"]["status"]) for s in spooled],
       [("1001", codes[0], "validated"), ("1002", codes[1], "validated")],
       "spooled hook.verify events")
    eq(w.hook_states(), {1001: "active", 1002: "active"}, "hooks at the fake")
    before = len(log)
    r = w.sync()
    P.check_exit(r, 0, "second sync")
    eq(lines(r), ["item-create 1001 active ok",
                  "task-update 1002 active ok"], "second sync's lines")
    eq([(e["method"], e["path"]) for e in w.fake.requests()[before:]],
       [("GET", "/hook/app/100/"), ("GET", "/hook/space/7/")],
       "second sync's calls (the cached token, no new one)")


@case("a hook the fake set inactive behind our back ('50 failures') is "
      "re-verified: verify-requested (exit 1), then active ok (exit 0)",
      receiver=True)
def t_reverify(w):
    eq(w.fake.set_hook_status(1001, "inactive")["status"], "inactive",
       "control answer")
    r = w.sync()
    P.check_exit(r, 1, "sync")
    eq(lines(r), ["item-create 1001 inactive verify-requested",
                  "task-update 1002 active ok"], "lines")
    eq(w.calls(), [("GET", "/hook/app/100/", 200),
                   ("GET", "/hook/space/7/", 200),
                   ("POST", "/hook/1001/verify/validate", 204),
                   ("POST", "/hook/1001/verify/request", 204)], "calls")
    (d,) = w.fake.deliveries()
    check_delivery(w, d, 1001, 200)
    eq(w.hook_states(), {1001: "active", 1002: "active"}, "hooks after")
    r = w.sync()
    P.check_exit(r, 0, "next sync")
    eq(lines(r), ["item-create 1001 active ok",
                  "task-update 1002 active ok"], "next sync's lines")


@case("the receiver down: the hook stays inactive, the line says so, "
      "exit 1, twice; the fake's post found nobody")
def t_receiver_down(w):
    for run in ("first", "second"):
        r = w.sync()
        P.check_exit(r, 1, run + " sync")
        eq(lines(r), ["item-create 1001 inactive verify-requested",
                      "task-update 1002 active ok"], run + " sync's lines")
    eq(w.hook_states(), {1001: "inactive", 1002: "active"}, "hooks after")
    ds = w.fake.deliveries()
    eq(len(ds), 2, "deliveries")
    for d in ds:
        check(d["status"] is None and d.get("error"),
              "a delivery got an answer: %r" % d)
    eq(w.spooled_verifications(), [], "spooled hook.verify events")


@case("the README's cron line for hook gauges: valid for promtool, 0 for "
      "the inactive hook, 1 for the active one")
def t_readme_gauges(w):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"/usr/local/bin/podio-hook --config /etc/podio-hook.ini "
                  r"(hook sync --json \| jq [^>]*)>", text)
    check(m is not None, "no hook gauge line in the README")
    cmd = "%s --config %s %s" % (w.binary, w.ini, m.group(1))
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=120,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                       **harness.run_as(harness.run_ids()))
    eq(p.returncode, 0, "the pipeline's exit status (stderr %r)" % p.stderr)
    out = p.stdout.decode()
    eq([l for l in out.splitlines() if not l.startswith("#")],
       ['podio_hook_hook_active{name="item-create"} 0',
        'podio_hook_hook_active{name="task-update"} 1'], "gauges")
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=p.stdout,
                           capture_output=True, timeout=60)
        eq((r.returncode, r.stdout + r.stderr), (0, b""), "promtool")


@case("--prune deletes the undeclared hooks on declared urls (a second "
      "copy of a declared one too) and nothing else; without it nothing "
      "is deleted")
def t_prune(w):
    r = w.sync()
    P.check_exit(r, 0, "sync without --prune")
    eq(lines(r), ["item-create 1001 active ok",
                  "task-update 1005 active ok"], "lines without --prune")
    check(all(c[0] == "GET" for c in w.calls()), "calls: %r" % w.calls())
    r = w.sync("--prune")
    P.check_exit(r, 0, "sync --prune")
    eq(lines(r), ["item-create 1001 active ok",
                  "task-update 1005 active ok",
                  "- 1002 active deleted",
                  "- 1004 inactive deleted",
                  "- 1006 active deleted"], "lines with --prune")
    eq([c for c in w.calls() if c[0] != "GET"],
       [("DELETE", "/hook/1002", 204), ("DELETE", "/hook/1004", 204),
        ("DELETE", "/hook/1006", 204)], "deletions")
    eq(sorted(w.hook_states()), [1001, 1003, 1005, 1007], "hooks left")


PRUNE_SEEDS = [
    (1001, "app", 100, "active", "item.create", None),     # declared
    (1002, "app", 100, "active", "item.delete", None),     # undeclared
    (1003, "app", 100, "active", "item.create", OTHER_URL),  # not ours
    (1004, "app", 100, "inactive", "item.create", None),   # a second copy
    (1005, "space", 7, "active", "task.update", None),     # declared
    (1006, "space", 7, "active", "task.delete", None),     # undeclared
    (1007, "app", 200, "active", "item.delete", None),     # undeclared ref
]


@case("--prune --json: a listed hook on our url without a type (Podio "
      "lists null) is deleted and reported with type null")
def t_prune_untyped(w):
    r = w.sync("--prune", "--json")
    P.check_exit(r, 0, "sync --prune --json (stderr %r)" % r.err)
    got = json.loads(r.out)
    eq([(o["name"], o["hook_id"], o["action"], o["type"]) for o in got],
       [("item-create", 1001, "ok", "item.create"),
        ("task-update", 1002, "ok", "task.update"),
        (None, 1009, "deleted", None)], "reported")
    eq([c for c in w.calls() if c[0] == "DELETE"],
       [("DELETE", "/hook/1009", 204)], "deletions")


@case("--dry-run --prune changes nothing: would-verify, would-create, "
      "would-delete; only the token request and GETs reach the fake")
def t_dry_run(w):
    before = w.fake.hooks()
    r = w.sync("--dry-run", "--prune")
    P.check_exit(r, 1, "sync --dry-run --prune")
    eq(lines(r), ["item-create 1001 active ok",
                  "item-update 1008 inactive would-verify",
                  "comment-create - - would-create",
                  "- 1002 active would-delete"], "lines")
    log = w.fake.requests()
    eq([(e["method"], e["path"]) for e in log],
       [("POST", "/oauth/token"), ("GET", "/hook/app/100/")],
       "the fake's call log")
    eq(w.fake.deliveries(), [], "deliveries")
    eq(w.fake.hooks(), before, "hooks at the fake")


@case("--json: an array of name, hook_id, status, action, ref_type, "
      "ref_id, type, url (null where unknown)")
def t_json(w):
    r = w.sync("--json", "--dry-run", "--prune")
    P.check_exit(r, 1, "sync --json")
    eq(r.out.count(b"\n"), 1, "one line of JSON")
    got = json.loads(r.out)
    u = w.url
    eq(got, [
        {"name": "item-create", "hook_id": 1001, "status": "active",
         "action": "ok", "ref_type": "app", "ref_id": 100,
         "type": "item.create", "url": u},
        {"name": "item-update", "hook_id": 1008, "status": "inactive",
         "action": "would-verify", "ref_type": "app", "ref_id": 100,
         "type": "item.update", "url": u},
        {"name": "comment-create", "hook_id": None, "status": None,
         "action": "would-create", "ref_type": "app", "ref_id": 100,
         "type": "comment.create", "url": u},
        {"name": None, "hook_id": 1002, "status": "active",
         "action": "would-delete", "ref_type": "app", "ref_id": 100,
         "type": "item.delete", "url": u},
    ], "--json output")


@case("420 while listing: exit 3 at once, nothing printed, no call after "
      "the 420; stderr gives the limit and when it resets")
def t_rate_list(w):
    r = w.sync()
    P.check_exit(r, 3, "sync")
    eq(r.out, b"", "stdout")
    e = r.err.decode()
    check(re.search(r"hook sync: Podio's rate limit \(limit 250, remaining "
                    r"0\): .*it resets in 3600 s", e), "stderr: %r" % e)
    eq(w.calls(), [("GET", "/hook/app/100/", 200),
                   ("GET", "/hook/space/7/", 420)], "calls")


@case("420 on a create: the lines before it printed, exit 3, nothing sent "
      "after the 420")
def t_rate_create(w):
    r = w.sync()
    P.check_exit(r, 3, "sync")
    eq(lines(r), ["item-create 1001 active ok"], "lines")
    eq(w.calls(), [("GET", "/hook/app/100/", 200),
                   ("GET", "/hook/space/7/", 200),
                   ("POST", "/hook/space/7/", 420)], "calls")


@case("429 with Retry-After on verify/request: exit 3, 'it resets in "
      "120 s', the --json array holds what was done")
def t_rate_429(w):
    r = w.sync("--json")
    P.check_exit(r, 3, "sync --json")
    got = json.loads(r.out)
    eq([(o["name"], o["action"]) for o in got], [("item-create", "ok")],
       "what was done")
    check("it resets in 120 s" in r.err.decode(), "stderr: %r" % r.err)
    eq(w.calls(), [("GET", "/hook/app/100/", 200),
                   ("GET", "/hook/space/7/", 200),
                   ("POST", "/hook/1002/verify/request", 429)], "calls")


@case("a create answered 500: 'NAME - - failed' and Podio's error on "
      "stderr, the other hooks still synced, exit 1")
def t_failed(w):
    r = w.sync()
    P.check_exit(r, 1, "sync")
    eq(lines(r), ["item-create - - failed", "task-update 1002 active ok"],
       "lines")
    e = r.err.decode()
    check("hook sync: item-create: creating it: HTTP 500" in e,
          "stderr: %r" % e)


@case("usage and config errors exit 2 and send nothing")
def t_usage(w):
    for args in (("--bogus",), ("extra",), ("--json=yes",)):
        r = w.sync(*args)
        P.check_exit(r, 2, "hook sync %s" % " ".join(args))
        check(r.err.strip(), "nothing on stderr")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for args in (("list", "--dry-run", "app", "1"), ("verify", "--prune",
                                                     "1")):
        p = subprocess.run([w.binary, "--config", w.ini, "hook"] +
                           list(args), env=env, capture_output=True,
                           **harness.run_as(harness.run_ids()))
        check(p.returncode == 2 and b"applies to sync" in p.stderr,
              "hook %s: exit %s, %r" % (" ".join(args), p.returncode,
                                        p.stderr))
    nohooks = os.path.join(w.dir, "nohooks.ini")
    with open(w.ini) as f:
        text = f.read()
    with open(nohooks, "w") as f:
        f.write(text.split("[hook ")[0] + "[log]\nlevel = info\n")
    os.chmod(nohooks, 0o644)
    r = w.sync(ini=nohooks)
    P.check_exit(r, 2, "sync without [hook] sections")
    check(b"no [hook NAME] section" in r.err, "stderr: %r" % r.err)
    bad = os.path.join(w.dir, "bad.ini")
    with open(bad, "w") as f:
        f.write(text.replace("type = item.create", "type = item.created"))
    os.chmod(bad, 0o644)
    r = w.sync(ini=bad)
    P.check_exit(r, 2, "sync with a bad [hook] section")
    check(re.search(r"bad\.ini:\d+: \[hook item-create\] type: ",
                    r.err.decode()), "stderr: %r" % r.err)
    eq(w.fake.requests(), [], "requests at the fake")


# What each case declares and seeds.
TWO_HOOKS = [("item-create", "app", 100, "item.create", None),
             ("task-update", "space", 7, "task.update", None)]
ACTIVE_PAIR = [(1001, "app", 100, "active", "item.create", None),
               (1002, "space", 7, "active", "task.update", None)]
DRY_HOOKS = [("item-create", "app", 100, "item.create", None),
             ("item-update", "app", 100, "item.update", None),
             ("comment-create", "app", 100, "comment.create", None)]
DRY_SEEDS = [(1001, "app", 100, "active", "item.create", None),
             (1002, "app", 100, "active", "item.delete", None),
             (1003, "app", 100, "active", "item.create", OTHER_URL),
             (1008, "app", 100, "inactive", "item.update", None)]

SETUPS = {
    t_fresh: (TWO_HOOKS, [], {"deliver_verify": True}),
    t_reverify: (TWO_HOOKS, ACTIVE_PAIR, {"deliver_verify": True}),
    t_receiver_down: (TWO_HOOKS,
                      [(1001, "app", 100, "inactive", "item.create", None),
                       ACTIVE_PAIR[1]], {"deliver_verify": True}),
    t_readme_gauges: (TWO_HOOKS,
                      [(1001, "app", 100, "inactive", "item.create", None),
                       ACTIVE_PAIR[1]], {}),
    t_prune: (TWO_HOOKS, PRUNE_SEEDS, {}),
    t_prune_untyped: (TWO_HOOKS,
                      ACTIVE_PAIR + [(1009, "app", 100, "inactive", None,
                                      None)], {}),
    t_dry_run: (DRY_HOOKS, DRY_SEEDS, {"deliver_verify": True}),
    t_json: (DRY_HOOKS, DRY_SEEDS, {}),
    t_rate_list: (TWO_HOOKS, [], {"rate_limit": {"after": 1}}),
    t_rate_create: (TWO_HOOKS, ACTIVE_PAIR[:1], {"rate_limit": {"after": 2}}),
    t_rate_429: (TWO_HOOKS,
                 [ACTIVE_PAIR[0],
                  (1002, "space", 7, "inactive", "task.update", None)],
                 {"rate_limit": {"after": 2, "status": 429,
                                 "retry_after": 120}}),
    t_failed: (TWO_HOOKS, ACTIVE_PAIR[1:],
               {"json_error": {"status": 500, "on": ["create"],
                               "body": {"error": "server_error",
                                        "error_description": "Boom"}}}),
    t_usage: (TWO_HOOKS, [], {}),
}


def start(case, top, certs, binary):
    """A World with the case's fake, config and (when it asks) receiver."""
    name, fn, receiver = case
    hooks, seeds, sc = SETUPS[fn]
    w = World(top, certs, binary)
    try:
        w.start_fake(seeds, **sc)
        w.write_config(hooks)
        if receiver:
            w.start_receiver()
    except BaseException:
        w.close()
        raise
    return w


def call(case, w):
    """Runs the case; a failure shows the receiver's log when it ran."""
    try:
        case[1](w)
    except Failure as e:
        if w.server is None:
            raise
        raise Failure(e.why + "; server log: " + w.logs(), e.evidence)


def main():
    return P.run_suite(
        __doc__, CASES, "podio-hook-sync-", start, stop=World.close, call=call,
        tools=("openssl", "lighttpd", "curl"),
        last="no token, code or secret on stderr (the command's and the "
        "receiver's)")


if __name__ == "__main__":
    sys.exit(main())
