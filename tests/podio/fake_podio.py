#!/usr/bin/env python3
"""fake_podio.py - a fake Podio API over HTTPS for podio-hook's tests.

    python3 fake_podio.py --port 0 --cert server.pem --key server.key \
        --log requests.jsonl --scenario scenario.json --port-file port

Binds 127.0.0.1 only, writes the chosen port to --port-file once it
listens, serves each connection in its own thread (the TLS handshake too,
so a stalled client blocks nobody) and stops cleanly on SIGTERM/SIGINT.

It checks what the real Podio checks (SPEC section 1):

  POST   /oauth/token                 form-encoded body, no Authorization;
                                      grant_type app | password | refresh_token
  POST   /hook/{id}/verify/validate   JSON {"code":...}, OAuth2 token
  POST   /hook/{ref_type}/{ref_id}/   JSON {"url","type"} -> {"hook_id":N}
  GET    /hook/{ref_type}/{ref_id}/   -> [{hook_id,status,type,url}, ...]
  DELETE /hook/{id}                   -> 204
  POST   /hook/{id}/verify/request    -> 204; with deliver_verify, first
                                      posts hook.verify to the hook's url
  GET    /{item,task,app,form,status}/{id}
                                      -> the object the scenario gives, or
                                      404/410 (see objects, gone)
  PUT    /{item,task,app,form,status}/{id}
                                      JSON object, merged into the object
                                      -> {"revision": N}
  DELETE /{item,task,app,form,status}/{id}
                                      -> 204; later GETs answer 410
  POST   /item/app/{app_id}/          JSON object -> {"item_id": N}

Paths exactly as written; anything else is a 404 JSON error.  An expired or
unknown token is 401 {"error":"unauthorized","error_description":
"expired_token"}.

Verification as Podio does it: POST /hook/{id}/verify/request (with the
scenario's deliver_verify) makes a fresh code and posts
type=hook.verify&hook_id=ID&code=CODE, form-encoded, to the hook's url
(parameters of the url's query string go into the body, as Podio moves
them), waiting up to 15 s, before it answers; a validate with that code
makes the hook active.  The delivery is logged as an entry with "kind":
"delivery" (url, body, the answer's status or the error).

Control endpoints for tests (no token, never in the log):

  POST   /_fake/hook/{id}/status      JSON {"status": "inactive"}: what
                                      Podio does after 50 failures
  GET    /_fake/hooks                 every hook, with its ref

The scenario file is JSON, re-read on every request (write it atomically,
e.g. a temporary file and os.replace).  Keys, all optional:

  client_id, client_secret     expected client credentials
  app_id, app_token            the app grant's credentials
  username, password           the password grant's credentials
  codes                        {"HOOK_ID": "CODE"} the code each hook expects
  expires_in                   token lifetime in seconds (default 28800)
  expire_all_tokens_now        any new truthy value (true, 1, 2, ...)
                               expires every access token issued so far,
                               once per distinct value
  reject_refresh_tokens        true: the refresh_token grant answers 400
                               invalid_grant (as after a Podio-side revoke)
  no_refresh_token             true: token answers carry no refresh_token
  reject_all_tokens            true: every API call answers 401
                               expired_token, even with a fresh token
  hang_seconds                 sleep this long before answering ...
  hang_on                      ... these endpoints (default ["validate"]);
                               names: token validate create list delete
                               request object
  html_error                   true, or {"status": N, "on": [names]}: answer
                               an HTML page (default 500, every endpoint but
                               token)
  json_error                   {"status": N, "body": {...}, "on": [names]}
                               (default: every endpoint but token)
  rate_limit                   true, or {"limit": N, "remaining": N,
                               "on": [names]}: 420 with X-Rate-Limit-*;
                               with "after": N the first N calls (to the
                               endpoints in "on") are answered, with
                               X-Rate-Limit-Limit and a falling
                               X-Rate-Limit-Remaining, and the later ones
                               get the 420; "status": 429 answers 429
                               with Retry-After instead; "retry_after": S
                               (default 60) its value
  deliver_verify               true: verify/request posts hook.verify to
                               the hook's url (see above)
  objects                      {"/item/1": {...}, "/task/2": {...}}: what
                               GET answers (a missing one is 404)
  gone                         {"/item/3": 410, "/item/4": 404}: deleted
  hooks                        seed hooks, read once at start:
                               [{"ref_type","ref_id","hook_id","status",
                                 "type","url"}]
  next_hook_id                 first id for created hooks (read at start;
                               default 1001)

Error injections apply after the token check, as Podio checks the token
first.  Every request is logged as one JSON line: time, method, path,
query, headers (lower-case names), body, and what was answered (status,
response headers, response body, hang).  A hanging answer is logged before
the sleep, so a test sees it even when the client gave up.
"""

import argparse
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENDPOINTS = ("token", "validate", "create", "list", "delete", "request",
             "object")
REF_TYPES = ("app", "app_field", "space")
OBJECT_KINDS = ("item", "task", "app", "form", "status")
DELIVERY_TIMEOUT = 15  # Podio waits this long for a hook's answer


def is_id(s):
    return s.isdigit() and 0 < len(s) <= 20 and s.isascii()


class State:
    """Tokens and hooks, shared by all handler threads."""

    def __init__(self, scenario_path, log_path):
        self.lock = threading.Lock()
        self.scenario_path = scenario_path
        self.log_path = log_path
        self.tokens = {}  # access token -> {"expires_at", "owner", "refresh"}
        self.refresh = {}  # refresh token -> owner (a dict for "ref")
        self.expire_marker = None
        self.hooks = {}  # hook_id -> {ref_type, ref_id, hook_id, ...}
        self.codes = {}  # hook_id -> the code of its last verify/request
        self.objects = {}  # path -> object changed by PUT, or a status
        self.rate_calls = 0  # calls counted by rate_limit's "after"
        self.next_item_id = 5001
        self.stopping = threading.Event()
        sc = self.scenario()
        self.next_hook_id = int(sc.get("next_hook_id", 1001))
        for h in sc.get("hooks", []):
            h = dict(h)
            h["hook_id"] = int(h["hook_id"])
            h["ref_id"] = str(h["ref_id"])
            self.hooks[h["hook_id"]] = h
            self.next_hook_id = max(self.next_hook_id, h["hook_id"] + 1)
        # Opened once, appended line by line.
        self.log_file = open(log_path, "a", encoding="utf-8")

    def scenario(self):
        """The scenario as it is now; a half-written file is retried."""
        last = None
        for _ in range(50):
            try:
                with open(self.scenario_path, encoding="utf-8") as f:
                    return json.load(f)
            except FileNotFoundError:
                return {}
            except ValueError as e:
                last = e
                time.sleep(0.01)
        raise RuntimeError("scenario %s: %s" % (self.scenario_path, last))

    def log(self, entry):
        line = json.dumps(entry, ensure_ascii=False, sort_keys=False)
        with self.lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()

    def apply_expiry(self, sc):
        mark = sc.get("expire_all_tokens_now")
        with self.lock:
            if mark and mark != self.expire_marker:
                self.expire_marker = mark
                for t in self.tokens.values():
                    t["expires_at"] = 0.0


def injected(sc, key, endpoint):
    """The scenario's injection `key` when it applies to endpoint."""
    v = sc.get(key)
    if not v:
        return None
    if not isinstance(v, dict):
        v = {}
    on = v.get("on")
    if on is None:
        on = [e for e in ENDPOINTS if e != "token"]
    if isinstance(on, str):
        on = [on]
    return v if endpoint in on or "all" in on else None


class Answer(Exception):
    """Raised to answer at once: status, JSON (or text) body, headers."""

    def __init__(self, status, body=None, headers=None, ctype=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.ctype = ctype


def jerr(status, error, description, **extra):
    body = {"error": error, "error_description": description,
            "error_detail": None, "error_parameters": {},
            "error_propagate": False}
    body.update(extra)
    return Answer(status, body)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-podio/1.0"
    timeout = 30

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    # -- plumbing --

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def handle_any(self):
        state = self.server.state
        t = time.time()
        url = urllib.parse.urlsplit(self.path)
        body = self.read_body()
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        entry = {
            "time": t,
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
        hang = 0
        if url.path.startswith("/_fake/"):
            self.control(url.path, body)
            return
        try:
            sc = state.scenario()
            state.apply_expiry(sc)
            endpoint, args = self.route(url.path, url.query)
            hang = float(sc.get("hang_seconds") or 0)
            on = sc.get("hang_on", ["validate"])
            if isinstance(on, str):
                on = [on]
            if endpoint not in on and "all" not in on:
                hang = 0
            ans = self.dispatch(sc, endpoint, args, headers, body)
        except Answer as a:
            ans = a
        except Exception as e:  # a bug here must not look like Podio
            ans = Answer(599, {"error": "fake_podio_bug",
                               "error_description": repr(e)})
        payload, ctype = self.encode(ans)
        entry["status"] = ans.status
        entry["response_headers"] = dict(ans.headers)
        entry["response"] = payload.decode("utf-8", "replace")
        if hang > 0:
            entry["hang_seconds"] = hang
        state.log(entry)
        if hang > 0 and state.stopping.wait(hang):
            self.close_connection = True
            return
        try:
            self.send_response(ans.status)
            for k, v in ans.headers.items():
                self.send_header(k, v)
            if ans.status != 204:
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if ans.status != 204 and self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    @staticmethod
    def encode(ans):
        if ans.status == 204:
            return b"", None
        if ans.ctype is not None:
            return ans.body.encode("utf-8"), ans.ctype
        return (json.dumps(ans.body).encode("utf-8"),
                "application/json; charset=utf-8")

    # -- control (tests only) --

    def control(self, path, body):
        state = self.server.state
        p = path.split("/")
        status, out = 404, {"error": "no such control endpoint"}
        if (len(p) == 5 and p[2] == "hook" and is_id(p[3])
                and p[4] == "status" and self.command == "POST"):
            j = json.loads(body.decode("utf-8"))
            with state.lock:
                h = state.hooks.get(int(p[3]))
                if h is not None:
                    h["status"] = j["status"]
                    status, out = 200, dict(h)
        elif path == "/_fake/hooks" and self.command == "GET":
            with state.lock:
                status, out = 200, [dict(h) for h in sorted(
                    state.hooks.values(), key=lambda h: h["hook_id"])]
        payload = json.dumps(out).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    # -- routing --

    def route(self, path, query):
        p = path.split("/")
        m = self.command
        if path == "/oauth/token" and m == "POST":
            return "token", {}
        # /hook/{id}/verify/validate and /hook/{id}/verify/request
        if (len(p) == 5 and p[1] == "hook" and is_id(p[2])
                and p[3] == "verify" and m == "POST"):
            if p[4] == "validate":
                return "validate", {"hook_id": int(p[2])}
            if p[4] == "request":
                return "request", {"hook_id": int(p[2])}
        # /hook/{ref_type}/{ref_id}/  (with the trailing slash)
        if (len(p) == 5 and p[1] == "hook" and p[2] in REF_TYPES
                and is_id(p[3]) and p[4] == ""):
            if m == "POST":
                return "create", {"ref_type": p[2], "ref_id": p[3]}
            if m == "GET":
                return "list", {"ref_type": p[2], "ref_id": p[3]}
        # /hook/{id}  (no trailing slash)
        if len(p) == 3 and p[1] == "hook" and is_id(p[2]) and m == "DELETE":
            return "delete", {"hook_id": int(p[2])}
        # /{kind}/{id}: the objects a handler fetches and changes
        if (len(p) == 3 and p[1] in OBJECT_KINDS and is_id(p[2])
                and m in ("GET", "PUT", "DELETE")):
            return "object", {"path": path}
        # /item/app/{app_id}/: a new item
        if (len(p) == 5 and p[1] == "item" and p[2] == "app"
                and is_id(p[3]) and p[4] == "" and m == "POST"):
            return "object", {"path": path, "app_id": int(p[3])}
        raise jerr(404, "not_found", "No such endpoint: %s %s" % (m, path))

    def rate_limit(self, inj):
        """Counts a call under rate_limit; raises the limit's answer once
        it applies, else returns the headers of an answered call."""
        state = self.server.state
        limit = int(inj.get("limit", 250))
        after = inj.get("after")
        with state.lock:
            state.rate_calls += 1
            n = state.rate_calls
        if after is not None and n <= int(after):
            return {"X-Rate-Limit-Limit": str(limit),
                    "X-Rate-Limit-Remaining": str(max(limit - n, 0))}
        if int(inj.get("status", 420)) == 429:
            raise Answer(429, {"error": "too_many_requests",
                               "error_description": "Too many requests"},
                         {"Retry-After": str(inj.get("retry_after", 60))})
        raise Answer(
            420,
            {"error": "rate_limit",
             "error_description":
                 "You have hit the rate limit. Please wait 3600 "
                 "seconds before trying again"},
            {"X-Rate-Limit-Limit": str(limit),
             "X-Rate-Limit-Remaining": str(inj.get("remaining", 0))})

    def dispatch(self, sc, endpoint, args, headers, body):
        if endpoint != "token":
            self.authorize(headers)
            if sc.get("reject_all_tokens"):
                raise jerr(401, "unauthorized", "expired_token")
        extra = {}
        for key in ("rate_limit", "json_error", "html_error"):
            inj = injected(sc, key, endpoint)
            if inj is None:
                continue
            if key == "rate_limit":
                extra = self.rate_limit(inj)
                continue
            if key == "json_error":
                raise Answer(int(inj.get("status", 400)),
                             inj.get("body", {"error": "invalid_value",
                                              "error_description": "x"}))
            status = int(inj.get("status", 500))
            page = ("<!DOCTYPE html>\n<html><head><title>%d Internal "
                    "Server Error</title></head>\n<body><h1>Oops</h1>\n"
                    "<p>Something went wrong at Podio.</p></body></html>\n"
                    % status)
            raise Answer(status, page, ctype="text/html; charset=utf-8")
        if endpoint == "token":
            ans = self.token(sc, headers, body)
        else:
            ans = getattr(self, "ep_" + endpoint)(sc, args, headers, body)
        ans.headers.update(extra)
        return ans

    # -- OAuth --

    def token(self, sc, headers, body):
        state = self.server.state
        if "authorization" in headers:
            raise jerr(400, "invalid_request",
                       "No Authorization header allowed on /oauth/token")
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != \
                "application/x-www-form-urlencoded":
            raise jerr(400, "invalid_request",
                       "The body must be application/x-www-form-urlencoded")
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"),
                                           keep_blank_values=True,
                                           strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            raise jerr(400, "invalid_request", "Malformed form body")
        form = {}
        for k, v in pairs:
            if k in form:
                raise jerr(400, "invalid_request", "Duplicate parameter " + k)
            form[k] = v
        if (form.get("client_id") != str(sc.get("client_id"))
                or form.get("client_secret") != str(sc.get("client_secret"))):
            raise jerr(401, "invalid_client",
                       "Invalid client_id or client_secret")
        gt = form.get("grant_type")
        expect = {"app": ("app_id", "app_token"),
                  "password": ("username", "password"),
                  "refresh_token": ("refresh_token",)}
        if gt not in expect:
            raise jerr(400, "unsupported_grant_type",
                       "Unsupported grant_type %r" % gt)
        allowed = set(expect[gt]) | {"grant_type", "client_id",
                                      "client_secret"}
        extra = sorted(set(form) - allowed)
        if extra:
            raise jerr(400, "invalid_request",
                       "Unexpected parameters: " + ", ".join(extra))
        if gt == "app":
            if (sc.get("app_id") is None
                    or form.get("app_id") != str(sc.get("app_id"))
                    or form.get("app_token") != str(sc.get("app_token"))):
                raise jerr(400, "invalid_grant", "Invalid app_id or app_token")
            owner = {"type": "app", "id": int(form["app_id"])}
        elif gt == "password":
            if (sc.get("username") is None
                    or form.get("username") != str(sc.get("username"))
                    or form.get("password") != str(sc.get("password"))):
                raise jerr(400, "invalid_grant",
                           "Invalid username or password")
            owner = {"type": "user", "id": 7}
        else:
            with state.lock:
                owner = state.refresh.get(form.get("refresh_token"))
            if owner is None or sc.get("reject_refresh_tokens"):
                raise jerr(400, "invalid_grant", "Invalid refresh_token")
        ttl = int(sc.get("expires_in", 28800))
        access = "tok-" + secrets.token_hex(12)
        refresh = (form["refresh_token"] if gt == "refresh_token"
                   else "ref-" + secrets.token_hex(12))
        with state.lock:
            state.tokens[access] = {"expires_at": time.time() + ttl,
                                    "owner": owner, "refresh": refresh}
            state.refresh[refresh] = owner
        ans = {"access_token": access, "token_type": "bearer",
               "expires_in": ttl, "refresh_token": refresh,
               "scope": "global:all", "ref": owner}
        if sc.get("no_refresh_token"):
            del ans["refresh_token"]
            with state.lock:
                del state.refresh[refresh]
        return Answer(200, ans)

    def authorize(self, headers):
        state = self.server.state
        auth = headers.get("authorization", "")
        scheme, _, tok = auth.partition(" ")
        if scheme != "OAuth2" or not tok or " " in tok:
            raise jerr(401, "unauthorized",
                       "Missing or malformed Authorization header; expected "
                       "'OAuth2 <access_token>'")
        with state.lock:
            t = state.tokens.get(tok)
            ok = t is not None and t["expires_at"] > time.time()
        if not ok:
            raise jerr(401, "unauthorized", "expired_token")

    @staticmethod
    def json_body(headers, body):
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise jerr(400, "invalid_value",
                       "Content-Type must be application/json, got %r"
                       % ctype)
        try:
            j = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise jerr(400, "invalid_value", "The body is not valid JSON")
        if not isinstance(j, dict):
            raise jerr(400, "invalid_value", "The body must be an object")
        return j

    # -- hooks --

    def ep_validate(self, sc, args, headers, body):
        j = self.json_body(headers, body)
        code = j.get("code")
        if not isinstance(code, str):
            raise jerr(400, "invalid_value", "code is required")
        state = self.server.state
        with state.lock:
            want = state.codes.get(args["hook_id"])
        if want is None:
            want = sc.get("codes", {}).get(str(args["hook_id"]))
        if want is None:
            raise jerr(404, "not_found", "Object not found")
        if code != want:
            # Echoes the code, as an error text may: it must not reach
            # podio-hook's log.
            raise jerr(400, "invalid_value", "Invalid code %s" % code)
        with state.lock:
            h = state.hooks.get(args["hook_id"])
            if h is not None:
                h["status"] = "active"
        return Answer(204)

    def ep_create(self, sc, args, headers, body):
        j = self.json_body(headers, body)
        if not isinstance(j.get("url"), str) or not j["url"]:
            raise jerr(400, "invalid_value", "url is required")
        if not isinstance(j.get("type"), str) or not j["type"]:
            raise jerr(400, "invalid_value", "type is required")
        state = self.server.state
        with state.lock:
            hid = state.next_hook_id
            state.next_hook_id += 1
            state.hooks[hid] = {"ref_type": args["ref_type"],
                                "ref_id": args["ref_id"], "hook_id": hid,
                                "status": "inactive", "type": j["type"],
                                "url": j["url"]}
        return Answer(200, {"hook_id": hid})

    def ep_list(self, sc, args, headers, body):
        state = self.server.state
        with state.lock:
            out = [{"hook_id": h["hook_id"], "status": h["status"],
                    "type": h["type"], "url": h["url"]}
                   for h in sorted(state.hooks.values(),
                                   key=lambda h: h["hook_id"])
                   if h["ref_type"] == args["ref_type"]
                   and h["ref_id"] == args["ref_id"]]
        return Answer(200, out)

    def ep_delete(self, sc, args, headers, body):
        state = self.server.state
        with state.lock:
            if state.hooks.pop(args["hook_id"], None) is None:
                raise jerr(404, "not_found", "Object not found")
        return Answer(204)

    def ep_request(self, sc, args, headers, body):
        state = self.server.state
        hid = args["hook_id"]
        with state.lock:
            h = state.hooks.get(hid)
            url = h["url"] if h is not None else None
        if h is None and str(hid) not in sc.get("codes", {}):
            raise jerr(404, "not_found", "Object not found")
        if url is not None and sc.get("deliver_verify"):
            code = "code-%d-%s" % (hid, secrets.token_hex(6))
            with state.lock:
                state.codes[hid] = code
            self.deliver(url, hid, code)
        return Answer(204)

    def deliver(self, url, hid, code):
        """Posts hook.verify to url as Podio does; logs what came of it."""
        state = self.server.state
        parts = urllib.parse.urlsplit(url)
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        pairs += [("type", "hook.verify"), ("hook_id", str(hid)),
                  ("code", code)]
        body = urllib.parse.urlencode(pairs).encode("ascii")
        target = urllib.parse.urlunsplit(parts._replace(query=""))
        entry = {"kind": "delivery", "time": time.time(), "hook_id": hid,
                 "url": target, "body": body.decode("ascii")}
        req = urllib.request.Request(
            target, data=body, method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "User-Agent": "fake-podio/1.0"})
        try:
            with urllib.request.urlopen(req, timeout=DELIVERY_TIMEOUT) as r:
                entry["status"] = r.status
                entry["response"] = r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            entry["status"] = e.code
            entry["response"] = e.read().decode("utf-8", "replace")
        except (OSError, ValueError) as e:
            entry["status"] = None
            entry["error"] = str(e)
        state.log(entry)

    # -- objects --

    def ep_object(self, sc, args, headers, body):
        state = self.server.state
        path = args["path"]
        if "app_id" in args:  # POST /item/app/{app_id}/
            fields = self.json_body(headers, body)
            with state.lock:
                iid = state.next_item_id
                state.next_item_id += 1
                state.objects["/item/%d" % iid] = dict(
                    fields, item_id=iid, app={"app_id": args["app_id"]},
                    revision=0)
            return Answer(200, {"item_id": iid, "revision": 0})
        with state.lock:
            obj = state.objects.get(path)
        if obj is None:
            gone = sc.get("gone", {}).get(path)
            obj = int(gone) if gone else sc.get("objects", {}).get(path)
        if obj is None or obj == 404:
            raise jerr(404, "not_found", "Object not found")
        if obj == 410:
            raise jerr(410, "gone", "Object has been deleted")
        if self.command == "GET":
            return Answer(200, obj)
        if self.command == "DELETE":
            with state.lock:
                state.objects[path] = 410
            return Answer(204)
        change = self.json_body(headers, body)
        obj = dict(obj)
        obj.update(change)
        obj["revision"] = int(obj.get("revision", 0)) + 1
        with state.lock:
            state.objects[path] = obj
        return Answer(200, {"revision": obj["revision"]})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, state):
        self.ctx = ctx
        self.state = state
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread.
        request.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.state.log({"time": time.time(), "method": None,
                            "path": None, "tls_error": str(e)})
            return
        try:
            tls.settimeout(Handler.timeout)
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--port-file")
    o = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(o.cert, o.key)
    state = State(o.scenario, o.log)
    srv = Server(("127.0.0.1", o.port), ctx, state)

    def stop(signum, frame):
        state.stopping.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = srv.server_address[1]
    if o.port_file:
        tmp = o.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, o.port_file)
    try:
        srv.serve_forever(poll_interval=0.1)
    finally:
        srv.server_close()
        state.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
