#!/usr/bin/env python3
"""The consumer engine as an attacker and a careless operator meet it.

    python3 tests/engine/run.py [--bin PATH] [-k SUBSTR]... [--keep] [--list]
                                [-v]

Each case proves one rule of the consumer side (drain, status, check):
dead letters never deleted, one rule for a valid line in every mode, one
bad file never blocking the rest, any number of types, a handler
environment that event data cannot escape, a root cron job that drops to
the spool's owner and follows no symbolic link, range-checked numbers;
and a stress run (receivers through lighttpd FastCGI and plain CGI,
drains in all three modes killed at random, handlers killed, a third
party claiming files) that must end with every acknowledged event handed
over at least once or in failed/.

Spools from tests/lib/spool.py, shared with the drain suite.  Prints
"ok - name", "FAIL - name: why" or "skip - name: why" per case and, last,
"N passed, M failed, K skipped" (tests/lib/harness.py's Suite, which also
gives the options).
"""

import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import SYS_PATH, Failure, Skip, check, eq, form  # noqa: E402
from spool import (OLD, Lighttpd, Spool, Workspace, lines_of,  # noqa: E402
                   make_line, post_many, read_calls, recorder, run_suite,
                   script, wait_for)


def need_root():
    if os.geteuid() != 0:
        raise Skip('needs root (a root cron job is what it tests)')


def give_to_run_user(sp):
    """The spool as production has it: owned by the web server's user."""
    need_root()
    ids = harness.run_ids()
    os.chmod(sp.dir, 0o755)
    for root, dirs, files in os.walk(sp.spool):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), ids[0], ids[1])
    os.chown(sp.spool, ids[0], ids[1])
    os.chmod(sp.spool, 0o750)
    return ids


def owners_in(path):
    """{relative name: (uid, gid)} of everything below path."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_uid, st.st_gid)
    return out


def stderr_of(r):
    return r.stderr.decode(errors='replace')


# --------------------------------------------------------------------------
# Dead letters and the one rule for a valid line

def case_retry_failed_never_deletes(h):
    """--retry-failed: a torn dead letter, one with \\u0000 and one that is
    not JSON go to bad/ byte for byte; the good one is handed over as it
    was spooled; the run says so and exits 1."""
    sp = Spool(h, 'retry-failed-bad')
    good = sp.post([('type', 'item.create'), ('item_id', '1')])
    r = sp.drain('--exec', 'exit 4', '--max-attempts', '1')
    eq(r.returncode, 1, 'first drain exit status')
    dead = sp.read('failed', 'item.create.jsonl')
    check(b'"attempts":1,"last_error":"exit status 4"}\n' in dead,
          'dead letter %r', dead)
    nul = b'{"id":"n","type":"item.create","params":{"x":"\\u0000"}}\n'
    junk = b'this is not json\n'
    torn = b'{"id":"t","type":"item.create"'
    with open(sp.path('failed', 'item.create.jsonl'), 'ab') as f:
        f.write(nul + junk + torn)
    r = sp.drain('--retry-failed', '-v')
    eq(r.returncode, 1, 'exit status (quarantined lines)')
    eq(lines_of(r.stdout), [good], 'handed over: the spooled line exactly')
    eq(sp.read('bad', 'item.create.jsonl'), nul + junk + torn + b'\n',
       'bad/ holds the three lines byte for byte')
    check(not os.path.exists(sp.path('failed', 'item.create.jsonl')) or
          sp.read('failed', 'item.create.jsonl') == b'',
          'failed/ emptied')
    check(b'3 quarantined' in r.stderr, 'summary: %r', r.stderr[-300:])
    c = sp.counts('item.create', want_exit=1)
    eq((c['pending'], c['in_progress'], c['failed'], c['quarantined']),
       (0, 0, 0, 3), 'status after')


def case_batch_one_rule(h):
    """--batch: lines jansson refuses (a lone surrogate, an integer too
    large) are quarantined once, the rest handed over once, progress
    saved: the next run sends nothing again."""
    sp = Spool(h, 'batch-rule')
    a = make_line('a', 'item.create', {'item_id': '1'})
    sur = b'{"id":"s","type":"item.create","params":{"x":"\\ud800"}}\n'
    b = make_line('b', 'item.create', {'item_id': '2'})
    big = b'{"id":"g","type":"item.create","n":123456789012345678901234}\n'
    sp.write('item.create.jsonl', a + sur + b + big)
    out = os.path.join(sp.dir, 'out')
    r = sp.drain('--batch', 'cat >> %s' % out)
    eq(r.returncode, 1, 'exit status (quarantined)')
    with open(out, 'rb') as f:
        eq(f.read(), a + b, 'batch input')
    eq(sp.read('bad', 'item.create.jsonl'), sur + big, 'quarantined')
    eq(sp.leftovers(), ['bad/item.create.jsonl'], 'files left')
    r = sp.drain('--batch', 'cat >> %s' % out)
    eq(r.returncode, 0, 'second run exit status')
    with open(out, 'rb') as f:
        eq(f.read(), a + b, 'nothing sent twice')
    eq(sp.read('bad', 'item.create.jsonl'), sur + big, 'quarantined once')
    check(not os.path.exists(sp.path('failed')) or
          os.listdir(sp.path('failed')) == [], 'nothing in failed/')


def case_directory_blocks_nothing(h):
    """A directory named like a type file (and one like a work file) is
    reported by name and left; every other type is drained, run after
    run."""
    sp = Spool(h, 'dir-named-jsonl')
    os.mkdir(sp.path('aaa.bbb.jsonl'))
    os.mkdir(sp.path('aaa.ccc.jsonl.claim-0000000000000001'))
    l1 = make_line('1', 'item.create', {'item_id': '1'})
    l2 = make_line('2', 'task.create', {'task_id': '2'})
    sp.write('item.create.jsonl', l1)
    sp.write('task.create.jsonl', l2)
    for run in (1, 2):
        r = sp.drain()
        eq(r.returncode, 1, 'run %d exit status' % run)
        err = stderr_of(r)
        check('aaa.bbb.jsonl' in err and 'not a regular file' in err,
              'run %d stderr %r', run, err[-400:])
        check('aaa.ccc.jsonl.claim-0000000000000001' in err,
              'the work-file-named directory is reported: %r', err[-400:])
        if run == 1:
            eq(sorted(lines_of(r.stdout)), sorted([l1, l2]), 'handed over')
            l3 = make_line('3', 'item.create', {'item_id': '3'})
            sp.write('item.create.jsonl', l3)
        else:
            eq(lines_of(r.stdout), [l3], 'second run handed over')
    check(os.path.isdir(sp.path('aaa.bbb.jsonl')), 'directory left alone')


def case_status_any_number_of_types(h):
    """status lists every type: 600 junk types do not hide a failed
    item.create, and exit is 1."""
    sp = Spool(h, 'many-types')
    for i in range(600):
        t = 'junk%03d.x' % i
        sp.write(t + '.jsonl', make_line('j%d' % i, t))
    os.mkdir(sp.path('failed'))
    dead = make_line('d', 'item.create', {'item_id': '9'})[:-2] + \
        b',"attempts":5,"last_error":"exit status 1"}\n'
    sp.write(os.path.join('failed', 'item.create.jsonl'), dead)
    j, rc = sp.status()
    eq(rc, 1, 'status exit status')
    eq(len(j['types']), 601, 'types listed')
    eq(j['types']['item.create']['failed'], 1, 'item.create failed')
    eq(j['types']['junk599.x']['pending'], 1, 'the last junk type')
    r = sp.run(['status'])
    check(b'item.create' in r.stdout and r.returncode == 1,
          'table: exit %d', r.returncode)
    r = sp.run(['status', '--prometheus'])
    eq(r.returncode, 0, '--prometheus exit status')
    check(b'podio_hook_failed{type="item.create"} 1' in r.stdout,
          'prometheus failed gauge')


# --------------------------------------------------------------------------
# The handler environment

def case_exec_environment_namespace(h):
    """Event data sets PODIO_PARAM_* only: no PODIO_HOOK_CONFIG, no
    PATH; colliding names and values over 4 KiB are left out and named
    in PODIO_PARAMS_OMITTED; a 130 KiB param no longer breaks execve."""
    sp = Spool(h, 'env-namespace', extra='[receiver]\nmax_body = 400000\n')
    calls, handler = recorder(sp)
    pairs = [('type', 'item.create'), ('item_id', '1'), ('item-id', '2'),
             ('hook_config', '/tmp/evil.ini'),
             ('hook_libcurl', '/tmp/evil.so'), ('path', '/evil'),
             ('ld_preload', '/tmp/evil.so'), ('big', 'x' * 4097),
             ('ok', 'y' * 4096), ('huge', 'z' * (130 * 1024)),
             ('caf\u00e9', 'v')]
    line = sp.post(pairs)
    long_stale = 'PODIO_PARAM_' + 'X' * 300
    env = sp.env(PODIO_PARAM_STALE='from cron', PODIO_EVENT_ID='stale',
                 **{long_stale: 'from cron, a long name'})
    # The handler gets the drain's own config, whatever cron had set.
    env['PODIO_HOOK_CONFIG'] = '/nonexistent/other.ini'
    r = subprocess.run([h.bin, '--config', sp.ini, 'drain', '--exec',
                        handler], env=env, capture_output=True, timeout=60)
    eq(r.returncode, 0, 'exit status (stderr %r)' % r.stderr[-300:])
    got = read_calls(calls)
    eq(len(got), 1, 'calls')
    stdin, e = got[0]
    eq(stdin, line, 'stdin: the whole line')
    eq(e.get('PODIO_HOOK_CONFIG'), sp.ini, "PODIO_HOOK_CONFIG: the drain's")
    check('PODIO_HOOK_LIBCURL' not in e, 'PODIO_HOOK_LIBCURL set by data')
    eq(e.get('PATH'), SYS_PATH, 'PATH untouched')
    check('LD_PRELOAD' not in e, 'LD_PRELOAD set by data')
    eq(e.get('PODIO_PARAM_HOOK_CONFIG'), '/tmp/evil.ini', 'namespaced')
    eq(e.get('PODIO_PARAM_PATH'), '/evil', 'namespaced path')
    eq(e.get('PODIO_PARAM_OK'), 'y' * 4096, '4096 bytes exported')
    eq(e.get('PODIO_PARAM_CAF__'), 'v', 'non-ASCII bytes become _')
    for gone in ('PODIO_PARAM_ITEM_ID', 'PODIO_PARAM_BIG',
                 'PODIO_PARAM_HUGE', 'PODIO_PARAM_STALE', long_stale):
        check(gone not in e, '%s is set', gone)
    eq(e.get('PODIO_PARAMS_OMITTED'), 'item_id,item-id,big,huge',
       'PODIO_PARAMS_OMITTED')
    eq(e.get('PODIO_EVENT_ID'), json.loads(line)['id'], 'PODIO_EVENT_ID')
    eq(e.get('PODIO_EVENT_TYPE'), 'item.create', 'PODIO_EVENT_TYPE')
    sp.expect_empty()


def case_numbers_are_range_checked(h):
    sp = Spool(h, 'numbers')
    for args, opt in ((['--max-attempts', '4294967297'], '--max-attempts'),
                      (['--max-attempts=0'], '--max-attempts'),
                      (['--timeout', '0'], '--timeout'),
                      (['--limit', '-1'], '--limit'),
                      (['--limit=1e3'], '--limit'),
                      (['--timeout', ' 5'], '--timeout')):
        r = sp.drain(*args)
        eq(r.returncode, 2, 'exit status of %r' % args)
        err = stderr_of(r)
        check(opt in err and err.count('\n') == 1,
              '%r: stderr %r does not name %s in one line', args, err, opt)
    r = sp.drain('--max-attempts', '1000000', '--limit=0')
    eq(r.returncode, 0, 'largest --max-attempts and --limit=0')


def case_type_filter_leaves_verify_visible(h):
    """drain --type 'item.*' leaves hook.verify pending, and status shows
    its age."""
    sp = Spool(h, 'type-filter')
    sp.write('hook.verify.jsonl',
             make_line('v', 'hook.verify', {'hook_id': '1', 'code': 'c'},
                       OLD))
    a = sp.post([('type', 'item.create'), ('item_id', '1')])
    r = sp.drain('--type', 'item.*')
    eq((r.returncode, lines_of(r.stdout)), (0, [a]), 'drained item.*')
    c = sp.counts('hook.verify', want_exit=0)
    eq(c['pending'], 1, 'hook.verify pending')
    check(c['oldest_pending_age_s'] > 86400, 'age %r',
          c['oldest_pending_age_s'])


# --------------------------------------------------------------------------
# Root

def case_root_drops_to_owner(h):
    """Run as root, drain, status and check become the spool's owner:
    every file they create belongs to it, -v says so, and the web user
    can go on draining afterwards."""
    sp = Spool(h, 'root-owner')
    ids = give_to_run_user(sp)
    os.chmod(sp.ini, 0o600)  # root-only config: read before the switch
    calls, handler = recorder(sp)
    os.chown(calls, ids[0], ids[1])
    ok = make_line('ok', 'item.create', {'item_id': '1'})
    fail = make_line('fail', 'task.create', {'task_id': '2'})
    sp.write('item.create.jsonl', ok + b'not json\n')
    sp.write('task.create.jsonl', fail)
    for n in ('item.create.jsonl', 'task.create.jsonl'):
        os.chown(sp.path(n), ids[0], ids[1])
    r = sp.drain('--exec', handler + '; test "$PODIO_EVENT_ID" = ok',
                 '--max-attempts', '1', '-v')
    eq(r.returncode, 1, 'exit status (stderr %r)' % r.stderr[-300:])
    check(b'running as %s' % harness.RUN_USER.encode() in r.stderr,
          '-v does not say who it runs as: %r', r.stderr[-400:])
    owners = owners_in(sp.spool)
    check(set(owners) >= {'.drain.lock', 'failed', 'bad',
                          'failed/task.create.jsonl', 'bad/item.create.jsonl'},
          'files: %r', sorted(owners))
    wrong = {n: o for n, o in owners.items() if o != ids}
    eq(wrong, {}, 'files not owned by the spool owner')
    got = read_calls(calls)
    eq(got[0][1].get('USER'), harness.RUN_USER, 'handler USER')
    eq(got[0][1].get('HOME'), pwd.getpwuid(ids[0]).pw_dir, 'handler HOME')
    # The web user can run the next drain and a check.
    more = make_line('more', 'item.create', {'item_id': '3'})
    sp.write('item.create.jsonl', more)
    os.chown(sp.path('item.create.jsonl'), ids[0], ids[1])
    os.chmod(sp.ini, 0o644)
    r = sp.run(['drain'], **harness.run_as(ids))
    eq((r.returncode, lines_of(r.stdout)), (0, [more]),
       'drain as %s (stderr %r)' % (harness.RUN_USER, r.stderr[-300:]))
    r = sp.run(['check'], **harness.run_as(ids))
    eq(r.returncode, 0, 'check as the web user: %s' % stderr_of(r))
    r = sp.run(['check'])
    eq(r.returncode, 0, 'check as root: %s' % stderr_of(r))
    r = sp.run(['status', '--json'])
    eq(r.returncode, 1, 'status as root (failed and quarantined)')


def case_root_follows_no_symlink(h):
    """Symbolic links planted in the spool by its (less trusted) owner: a
    root drain reports each by name, never reads, writes or creates
    through it, and drains the rest."""
    sp = Spool(h, 'root-symlinks')
    ids = give_to_run_user(sp)
    secret = os.path.join(sp.dir, 'secret')
    with open(secret, 'wb') as f:
        f.write(b'root only\n')
    os.chmod(secret, 0o644)
    before = os.stat(secret)
    nologin = os.path.join(sp.dir, 'nologin')
    elsewhere = os.path.join(sp.dir, 'elsewhere')
    os.mkdir(elsewhere)
    os.symlink(nologin, sp.path('.drain.lock'))
    r = sp.drain()
    eq(r.returncode, 1, 'exit status with a symlinked lock')
    check(b'.drain.lock' in r.stderr and b'symbolic link' in r.stderr,
          'stderr %r', r.stderr[-300:])
    check(not os.path.exists(nologin), 'the lock symlink was followed')
    os.unlink(sp.path('.drain.lock'))
    os.symlink(secret, sp.path('item.create.jsonl'))
    os.symlink(secret, sp.path('task.create.jsonl.claim-0000000000000001'))
    os.symlink(elsewhere, sp.path('failed'))
    good = make_line('g', 'item.update', {'item_id': '1'})
    sp.write('item.update.jsonl', good)
    os.chown(sp.path('item.update.jsonl'), ids[0], ids[1])
    r = sp.drain('--exec', 'exit 1', '--max-attempts', '1')
    eq(r.returncode, 1, 'exit status')
    err = stderr_of(r)
    for name in ('item.create.jsonl', 'task.create.jsonl.claim-',
                 '/failed'):
        check(name in err, 'stderr does not name %s: %r', name, err[-600:])
    eq(os.listdir(elsewhere), [], 'written through the failed/ symlink')
    with open(secret, 'rb') as f:
        eq(f.read(), b'root only\n', 'the symlink target')
    after = os.stat(secret)
    eq((after.st_mtime_ns, after.st_uid), (before.st_mtime_ns, 0),
       'target mtime/owner')
    check(os.path.islink(sp.path('item.create.jsonl')), 'symlink removed')
    check(not os.path.exists(sp.path('bad', 'item.create.jsonl')),
          'the symlink target was copied into bad/')
    # The event that could not become a dead letter is kept for later.
    c = sp.counts('item.update')
    eq(c['in_progress'], 1, 'the event kept (no usable failed/)')
    r = sp.run(['check'])
    eq(r.returncode, 1, 'check reports the links')
    for name in ('item.create.jsonl', 'failed'):
        check(name in stderr_of(r), 'check does not name %s', name)


def case_check_reports_root_leftovers(h):
    """Files an old root cron job left (root-owned failed/, bad/,
    .drain.lock) are reported by check with the chown that fixes them;
    a world-writable spool and a group-writable file_mode too."""
    sp = Spool(h, 'leftovers', extra='file_mode = 0660\n')
    ids = give_to_run_user(sp)
    for d in ('failed', 'bad'):
        os.mkdir(sp.path(d), 0o700)
    with open(sp.path('.drain.lock'), 'w'):
        pass
    os.chmod(sp.path('.drain.lock'), 0o600)
    os.chmod(sp.spool, 0o777)
    r = sp.run(['check'])
    eq(r.returncode, 1, 'check exit status')
    err = stderr_of(r)
    user = harness.RUN_USER
    for fix in ('chown %s:' % user + '%s %s' % (
                    __import__('grp').getgrgid(ids[1]).gr_name,
                    sp.path('failed')),
                'chown %s:' % user, 'chmod o-w %s' % sp.spool,
                'file_mode = 0640'):
        check(fix in err, 'check does not suggest %r: %s', fix, err)
    for name in ('/failed', '/bad', '/.drain.lock'):
        check(name in err, 'check does not name %s', name)
    # Fixed as told: check is clean and the web user drains.
    for p in ('failed', 'bad', '.drain.lock'):
        os.chown(sp.path(p), ids[0], ids[1])
    os.chmod(sp.spool, 0o750)
    with open(sp.ini, 'w') as f:
        f.write('[spool]\ndir = %s\nsync = no\n' % sp.spool)
    r = sp.run(['check'])
    eq(r.returncode, 0, 'check after the fixes: %s' % stderr_of(r))


def case_check_names_rotated_spool_files(h):
    """Spool files renamed by a log rotation (or copied aside) are never
    drained: check names them, each with the mv that makes it a work file
    stamped with its mtime; done as told, drain hands the events over
    oldest first (.2 before .1) and check is clean."""
    sp = Spool(h, 'rotated')
    older = [sp.post([('type', 'item.create'), ('item_id', str(i))])
             for i in range(2)]
    os.rename(sp.path('item.create.jsonl'), sp.path('item.create.jsonl.2'))
    newer = [sp.post([('type', 'item.create'), ('item_id', str(i))])
             for i in range(2, 4)]
    os.rename(sp.path('item.create.jsonl'), sp.path('item.create.jsonl.1'))
    odd = sp.post([('type', 'x.jsonl'), ('item_id', '9')])
    os.rename(sp.path('x.jsonl.jsonl'), sp.path('x.jsonl.jsonl.1'))
    stamps = {'item.create.jsonl.2': 1764200000000001,
              'item.create.jsonl.1': 1764200000000002,
              'x.jsonl.jsonl.1': 1764200000000003}
    for name, us in stamps.items():
        os.utime(sp.path(name), ns=(us * 1000, us * 1000))
    with open(sp.path('item.create.jsonl-20261127.gz'), 'wb') as f:
        f.write(b'\x1f\x8b')
    r = sp.run(['check'])
    eq(r.returncode, 1, 'check exit status')
    err = stderr_of(r)
    check('item.create.jsonl-20261127.gz is not a spool file' in err,
          'check does not name the .gz: %s', err)
    moves = []
    for name, us in stamps.items():
        work = '%s.claim-%016d' % (name[:name.rindex('.jsonl') + 6], us)
        fix = 'mv %s %s' % (sp.path(name), sp.path(work))
        check(fix in err, 'check does not suggest %r: %s', fix, err)
        moves.append((name, work))
    eq(sp.drain().stdout, b'', 'drain before the fix')
    for name, work in moves:
        os.rename(sp.path(name), sp.path(work))
    os.unlink(sp.path('item.create.jsonl-20261127.gz'))
    r = sp.drain()
    eq(r.stdout, b''.join(older + newer) + odd,
       'drain after the mv: oldest first')
    r = sp.run(['check'])
    eq(r.returncode, 0, 'check after the fix: %s' % stderr_of(r))
    sp.expect_empty()


# --------------------------------------------------------------------------
# Stress

def cgi_post(h, sp, marker, ids):
    body = ('type=item.create&item_id=1&hook_id=7&marker=%s' % marker
            ).encode()
    env = sp.env(GATEWAY_INTERFACE='CGI/1.1', REQUEST_METHOD='POST',
                 CONTENT_TYPE='application/x-www-form-urlencoded',
                 CONTENT_LENGTH=str(len(body)), QUERY_STRING='',
                 REMOTE_ADDR='127.0.0.1', SCRIPT_NAME='/hook')
    r = subprocess.run([h.bin], input=body, env=env, capture_output=True,
                       timeout=30, **harness.run_as(ids))
    return r.stdout.startswith(b'Status: 200')


def markers_of(data):
    """Markers of the complete lines in data (a killed handler may leave a
    torn one: its event is handed over again)."""
    out = []
    for l in lines_of(data):
        if not l.endswith(b'\n'):
            continue
        try:
            j = json.loads(l)
        except ValueError:
            continue
        m = j.get('params', {}).get('marker')
        if m is not None:
            out.append(m)
    return out


def case_stress(h):
    """Receivers (lighttpd FastCGI and plain CGI) append while drains in
    print, --exec and --batch mode run as root and as the web user and
    are killed at random, handlers are killed and fail, and a third party
    claims type files itself.  Every acknowledged event ends handed over
    at least once or in failed/; duplicates are counted."""
    sp = Spool(h, 'stress')
    server = Lighttpd(h, sp)  # gives the spool to the web user
    ids = harness.run_ids()
    server.start()
    out = os.path.join(sp.dir, 'out')
    third = os.path.join(sp.dir, 'third')
    pidfile = os.path.join(sp.dir, 'handler.pid')
    for p in (out, third):
        open(p, 'wb').close()
        if ids is not None:
            os.chown(p, ids[0], ids[1])
    os.chmod(sp.dir, 0o777)  # the handler's pid file, as either user
    # Appends its input at once; fails one time in eight.
    handler = script(sp, 'h.sh',
                     'echo $$ > %s\n'
                     'sleep 0.005\n'
                     'cat >> %s || exit 9\n'
                     '[ $(( $(od -An -N1 -tu1 /dev/urandom) %% 8 )) -ne 0 ]\n'
                     % (pidfile, out))
    done = threading.Event()
    acked = []
    lock = threading.Lock()
    errors = []
    stats = {'drains': 0, 'drain_kills': 0, 'handler_kills': 0,
             'claims': 0}
    rnd = random.Random(os.getpid())

    def writer_fcgi():
        codes = post_many(h, server, 'f', 1000, rounds=25)
        with lock:
            acked.extend('f%04d' % i for i, c in enumerate(codes)
                         if c == '200')

    def writer_cgi():
        for i in range(400):
            if cgi_post(h, sp, 'c%04d' % i, ids):
                with lock:
                    acked.append('c%04d' % i)
            time.sleep(0.01)

    def drainer():
        modes = [[], ['--exec', handler], ['--batch', handler]]
        while not done.is_set():
            args = ['drain', '--max-attempts', '3', '--timeout', '5'] + \
                rnd.choice(modes)
            kw = harness.run_as(ids) if rnd.random() < 0.5 else {}
            with open(out, 'ab') as o:
                p = subprocess.Popen([h.bin] + args, env=sp.env(),
                                     stdin=subprocess.DEVNULL, stdout=o,
                                     stderr=subprocess.DEVNULL, **kw)
                h.procs.append(p)
                time.sleep(rnd.uniform(0, 0.05))
                if p.poll() is None and rnd.random() < 0.5:
                    try:
                        with open(pidfile) as f:
                            os.kill(int(f.read()), signal.SIGKILL)
                        stats['handler_kills'] += 1
                    except (OSError, ValueError):
                        pass
                if p.poll() is None and rnd.random() < 0.7:
                    p.send_signal(signal.SIGKILL)
                    stats['drain_kills'] += 1
                p.wait()
            stats['drains'] += 1

    def third_party():
        """Another consumer using the claim protocol by hand."""
        import fcntl
        k = 0
        while not done.is_set():
            time.sleep(rnd.uniform(0.05, 0.2))
            src = sp.path('item.create.jsonl')
            dst = os.path.join(sp.dir, 'third-%d' % k)
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                continue
            k += 1
            with open(dst, 'rb') as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                fcntl.flock(f, fcntl.LOCK_UN)
                data = f.read()
            with open(third, 'ab') as f:
                f.write(data)
            os.unlink(dst)
            stats['claims'] += 1

    threads = [threading.Thread(target=f) for f in
               (writer_fcgi, writer_cgi)]
    others = [threading.Thread(target=f) for f in (drainer, third_party)]
    t0 = time.monotonic()
    for t in threads + others:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in others:
        t.join()
    # Settle everything: plain drains until nothing is pending.
    for _ in range(20):
        with open(out, 'ab') as o:
            r = subprocess.run([h.bin, 'drain', '--max-attempts', '3',
                                '--exec', 'cat >> %s' % out], env=sp.env(),
                               stdout=o, stderr=subprocess.PIPE, timeout=120)
        j, _ = sp.status()
        if all(c['pending'] == 0 and c['in_progress'] == 0
               for c in j['types'].values()):
            break
    else:
        errors.append('the spool never emptied: %r' % j)
    server.stop()
    took = time.monotonic() - t0
    check(not errors, '%s', errors)
    with open(out, 'rb') as f:
        handed = markers_of(f.read())
    with open(third, 'rb') as f:
        handed += markers_of(f.read())
    failed = []
    if os.path.exists(sp.path('failed', 'item.create.jsonl')):
        failed = markers_of(sp.read('failed', 'item.create.jsonl'))
    seen = set(handed) | set(failed)
    lost = sorted(set(acked) - seen)
    eq(lost, [], 'acknowledged events lost')
    check(len(acked) >= 1300, 'only %d of 1400 posts acknowledged',
          len(acked))
    dups = len(handed) - len(set(handed))
    if os.path.exists(sp.path('bad')):
        eq(os.listdir(sp.path('bad')), [], 'quarantined lines')
    h.note('stress: %d acknowledged in %.1f s; %d drains, %d drains and %d '
           'handlers killed, %d third-party claims; %d handed over, %d '
           'duplicates, %d in failed/, 0 lost'
           % (len(acked), took, stats['drains'], stats['drain_kills'],
              stats['handler_kills'], stats['claims'], len(handed), dups,
              len(failed)))

# --------------------------------------------------------------------------
# drain --follow

class Follow:
    """drain --follow in the background, as the spool's user."""

    def __init__(self, h, sp, *args, ids=None, cmd=None):
        self.h = h
        self.log = open(os.path.join(sp.dir, 'follow.log'), 'wb')
        argv = cmd or [h.bin, 'drain', '--follow'] + list(args)
        self.proc = subprocess.Popen(
            argv, env=sp.env(), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=self.log, **harness.run_as(ids))
        h.procs.append(self.proc)
        self.path = os.path.join(sp.dir, 'follow.log')
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if b'following' in self.text():
                return
            check(self.proc.poll() is None, 'drain --follow exited %r: %r',
                  self.proc.returncode, self.text())
            time.sleep(0.02)
        raise Failure('drain --follow did not start: %r' % self.text())

    def text(self):
        with open(self.path, 'rb') as f:
            return f.read()

    def stop(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        self.log.close()
        return rc


def post_now(h, sp, pairs):
    """A CGI post that a following drain may claim at once: checks the
    200 only."""
    body = form(pairs).encode()
    env = sp.env(GATEWAY_INTERFACE='CGI/1.1', REQUEST_METHOD='POST',
                 CONTENT_TYPE='application/x-www-form-urlencoded',
                 CONTENT_LENGTH=str(len(body)), QUERY_STRING='',
                 REMOTE_ADDR='127.0.0.1', SCRIPT_NAME='/hook')
    r = subprocess.run([h.bin], input=body, env=env, capture_output=True,
                       timeout=20)
    check(r.stdout.startswith(b'Status: 200'), 'post answered %r',
          r.stdout[:100])


def params_of(data):
    return [json.loads(l)['params'] for l in lines_of(data)]


def stamp_handler(sp, out, starts, extra=''):
    """--exec handler: notes when it started (ns), then appends stdin."""
    return script(sp, 'stamp.sh',
                  'date +%%s%%N >> %s\n%scat >> %s\n' % (starts, extra, out))


def case_follow(h):
    """Events posted to lighttpd one by one reach the handler without a
    cron run, each once, in order; a cron drain meanwhile exits 0 at once
    and hands over nothing."""
    sp = Spool(h, 'follow')
    server = Lighttpd(h, sp)
    ids = harness.run_ids()
    server.start()
    out = os.path.join(sp.dir, 'out')
    starts = os.path.join(sp.dir, 'starts')
    for p in (out, starts):
        open(p, 'wb').close()
        if ids is not None:
            os.chown(p, ids[0], ids[1])
    f = Follow(h, sp, '--exec', stamp_handler(sp, out, starts), ids=ids)
    lat = []
    for i in range(40):
        t0 = time.time_ns()
        code = subprocess.run(
            ['curl', '-s', '-o', '/dev/null', '--max-time', '10', '-w',
             '%{http_code}', '-d', 'type=item.create&item_id=%d&marker=m%02d'
             % (i, i), server.url()], capture_output=True, text=True).stdout
        t1 = time.time_ns()
        eq(code, '200', 'post %d' % i)
        wait_for(lambda: os.path.getsize(starts) > 0 and
                 open(starts).read().count('\n') == i + 1,
                 10, 'event %d handed over' % i)
        lat.append((int(open(starts).read().split()[-1]) - t1) / 1e6)
        del t0
        if i == 20:
            r = sp.drain()
            eq((r.returncode, r.stdout), (0, b''),
               'a cron drain while following')
    eq(f.stop(), 0, 'exit status after SIGTERM')
    with open(out, 'rb') as o:
        eq(markers_of(o.read()), ['m%02d' % i for i in range(40)],
           'handed over once each, in order')
    server.stop()
    lat.sort()
    h.note('follow: 2xx to handler start p50 %.1f ms, max %.1f ms (40 '
           'events, test machine, not a benchmark)' % (lat[20], lat[-1]))


def case_follow_sigterm_lets_the_handler_finish(h):
    """SIGTERM while a handler runs: it finishes, progress is saved, exit
    0; the next drain hands over nothing again."""
    sp = Spool(h, 'follow-term')
    out = os.path.join(sp.dir, 'out')
    started = os.path.join(sp.dir, 'started')
    handler = script(sp, 'slow.sh', 'touch %s\nsleep 1\ncat >> %s\n'
                     % (started, out))
    f = Follow(h, sp, '--exec', handler)
    post_now(h, sp, [('type', 'item.create'), ('item_id', '1')])
    wait_for(lambda: os.path.exists(started), 10, 'the handler to start')
    t0 = time.monotonic()
    eq(f.stop(), 0, 'exit status')
    check(time.monotonic() - t0 > 0.5, 'exited before the handler ended')
    with open(out, 'rb') as o:
        eq(params_of(o.read()), [{'type': 'item.create', 'item_id': '1'}],
           'the handler in flight finished')
    r = sp.drain()
    eq((r.returncode, r.stdout), (0, b''), 'the next drain')
    sp.expect_empty()


def case_follow_sigterm_while_waiting_for_the_lock(h):
    """SIGTERM while --follow waits for the drain lock (held by a handler
    that a cron drain left running in the background): exit 0 at once,
    no pass made."""
    sp = Spool(h, 'follow-term-lock')
    pidfile = os.path.join(sp.dir, 'bg.pid')
    handler = script(sp, 'bg.sh', 'cat >/dev/null\n'
                     'setsid sleep 60 </dev/null >/dev/null 2>&1 &\n'
                     'echo $! > %s\n' % pidfile)
    post_now(h, sp, [('type', 'item.create'), ('item_id', '1')])
    r = sp.drain('--exec', handler)
    eq(r.returncode, 0, 'the cron drain (stderr %r)' % r.stderr[-300:])
    with open(pidfile) as f:
        bg = int(f.read())
    try:
        post_now(h, sp, [('type', 'item.create'), ('item_id', '2')])
        log = open(os.path.join(sp.dir, 'follow.log'), 'wb')
        proc = subprocess.Popen(
            [h.bin, 'drain', '--follow', '--exec', 'cat >/dev/null'],
            env=sp.env(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, **harness.run_as(None))
        h.procs.append(proc)
        time.sleep(0.5)
        check(proc.poll() is None, '--follow did not wait for the lock')
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise Failure('--follow still waiting 5 s after SIGTERM')
        log.close()
        eq(rc, 0, 'exit status')
        check(time.monotonic() - t0 < 2, 'slow to stop')
        with open(os.path.join(sp.dir, 'follow.log'), 'rb') as f:
            check(b'following' not in f.read(), 'a pass ran after SIGTERM')
        with open(sp.path('item.create.jsonl'), 'rb') as f:
            eq(len(lines_of(f.read())), 1, 'the second event still pending')
    finally:
        os.kill(bg, signal.SIGKILL)


def case_follow_failing_handler_waits_for_rescan(h):
    """A failing event is not run again at each new arrival, only at the
    full pass every --rescan seconds."""
    sp = Spool(h, 'follow-rescan')
    calls = os.path.join(sp.dir, 'calls')
    handler = script(sp, 'f.sh', 'echo "$PODIO_PARAM_ITEM_ID" >> %s\n'
                     'test "$PODIO_PARAM_ITEM_ID" != 1\n' % calls)
    f = Follow(h, sp, '--exec', handler, '--rescan', '2',
               '--max-attempts', '10')
    post_now(h, sp, [('type', 'item.create'), ('item_id', '1')])
    wait_for(lambda: os.path.exists(calls), 10, 'the first call')
    for i in range(2, 6):
        post_now(h, sp, [('type', 'item.create'), ('item_id', str(i))])
        wait_for(lambda: str(i) in open(calls).read().split(),
                 10, 'event %d' % i)
    got = open(calls).read().split()
    eq(got.count('1'), 1, 'attempts of the failing event before a rescan')
    wait_for(lambda: open(calls).read().split().count('1') >= 2,
             6, 'the rescan to offer it again')
    eq(f.stop(), 0, 'exit status')
    c = sp.counts('item.create')
    eq(c['in_progress'], 1, 'the failing event stays')


def unit_fields(path):
    """key -> value of a systemd unit's [Service] and [Unit] lines."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if '=' in line and not line.startswith(('#', ';', '[')):
                k, v = line.split('=', 1)
                out[k] = v
    return out


def case_follow_systemd_unit(h):
    """systemd/podio-hook-drain.service: systemd-analyze verify finds
    nothing, and its ExecStart, run as systemd would (its user,
    KillSignal to the main process only: KillMode=mixed) hands events
    over and stops within TimeoutStopSec with exit 0."""
    src = os.path.join(REPO, 'systemd', 'podio-hook-drain.service')
    u = unit_fields(src)
    eq(u.get('KillMode'), 'mixed', 'KillMode')
    eq(u.get('KillSignal'), 'SIGTERM', 'KillSignal')
    check(int(u['TimeoutStopSec']) > 60, 'TimeoutStopSec %s is not above '
          'the handler --timeout', u['TimeoutStopSec'])
    argv = u['ExecStart'].split()
    eq(argv[:2], ['/usr/local/bin/podio-hook', '--config'], 'ExecStart')
    check('--follow' in argv, 'ExecStart without --follow')
    sp = Spool(h, 'follow-unit')
    ids = give_to_run_user(sp) if os.geteuid() == 0 else None
    out = os.path.join(sp.dir, 'out')
    open(out, 'wb').close()
    if ids is not None:
        os.chown(out, ids[0], ids[1])
    handler = script(sp, 'on-event', 'cat >> %s\n' % out)
    sub = {'/usr/local/bin/podio-hook': h.bin, '/etc/podio-hook.ini': sp.ini,
           '/srv/podio/on-event.sh': handler}
    cmd = [sub.get(a, a) for a in argv]
    if shutil.which('systemd-analyze'):
        unit = os.path.join(sp.dir, 'podio-hook-drain.service')
        with open(src) as f:
            text = f.read()
        for k, v in sub.items():
            text = text.replace(k, v)
        user = harness.RUN_USER if ids is not None else 'root'
        text = text.replace('User=podio-hook', 'User=' + user)
        text = text.replace('Group=podio-hook', 'Group=' + user)
        with open(unit, 'w') as f:
            f.write(text)
        r = subprocess.run(['systemd-analyze', 'verify', '--man=no', unit],
                           capture_output=True, text=True, timeout=60)
        eq((r.returncode, r.stdout + r.stderr), (0, ''),
           'systemd-analyze verify')
    if ids is not None:
        os.chown(sp.ini, ids[0], ids[1])
    f = Follow(h, sp, ids=ids, cmd=cmd)
    line = make_line('u1', 'item.create', {'item_id': '1'})
    tmp = sp.path('.incoming')
    with open(tmp, 'wb') as o:
        o.write(line)
    if ids is not None:
        os.chown(tmp, ids[0], ids[1])
    os.rename(tmp, sp.path('item.create.jsonl'))
    wait_for(lambda: os.path.getsize(out) > 0, 10,
             'the event handed over')
    eq(f.stop(timeout=int(u['TimeoutStopSec'])), 0, 'exit status')
    with open(out, 'rb') as o:
        eq(o.read(), line, 'handed over')

# --------------------------------------------------------------------------
# drain --coalesce

def case_coalesce(h):
    """100 item.update of 10 items and repeated deliveries: each item
    handed over once, the latest at its own place, with "coalesced"
    naming the others in spool order; a failing group is retried whole;
    without --coalesce every event is handed over."""
    sp = Spool(h, 'coalesce')
    lines = []
    for i in range(100):
        lines.append(make_line('u%03d' % i, 'item.update',
                               {'item_id': str(i % 10),
                                'item_revision_id': str(i)}))
    rep = make_line('r1', 'item.create', {'item_id': '77'})
    other = make_line('r2', 'item.create', {'item_id': '78'})
    sp.write('item.update.jsonl', b''.join(lines))
    sp.write('item.create.jsonl', rep + other + rep.replace(b'"r1"',
                                                            b'"r3"'))
    calls, handler = recorder(sp)
    r = sp.drain('--coalesce', '--exec',
                 handler + '; test "$PODIO_PARAM_ITEM_ID" != 3')
    eq(r.returncode, 1, 'exit status (one group failed)')
    got = read_calls(calls)
    updates = [json.loads(x[0]) for x in got if b'item.update' in x[0]]
    eq([u['id'] for u in updates], ['u%03d' % i for i in range(90, 100)],
       'the latest of each item, in spool order')
    for u in updates:
        k = int(u['params']['item_id'])
        eq(u['coalesced'], ['u%03d' % i for i in range(k, 90, 10)],
           'coalesced ids of item %d' % k)
        eq(list(u)[-1], 'coalesced', 'coalesced is the last key')
    creates = [json.loads(x[0]) for x in got if b'item.create' in x[0]]
    eq([(c['id'], c.get('coalesced')) for c in creates],
       [('r2', None), ('r3', ['r1'])], 'repeated delivery')
    # Handed bytes: the spooled line with the key added, nothing else.
    eq([x[0] for x in got if b'"r3"' in x[0]][0],
       rep.replace(b'"r1"', b'"r3"')[:-2] + b',"coalesced":["r1"]}\n',
       'the handed line')
    c = sp.counts('item.update', want_exit=0)
    eq(c['in_progress'], 10, 'the failed group (10 events) kept')
    shutil.rmtree(calls)
    calls, handler = recorder(sp)
    r = sp.drain('--exec', handler)
    eq(r.returncode, 0, 'second drain without --coalesce')
    again = sorted(json.loads(x[0])['id'] for x in read_calls(calls))
    eq(again, ['u%03d' % i for i in range(3, 100, 10)],
       'the failed group offered again, each event')
    sp.expect_empty()

# --------------------------------------------------------------------------
# status --prometheus

def case_status_prometheus(h):
    """status --prometheus: every figure per type with HELP and TYPE,
    valid for promtool, 0 age when nothing is pending, last received from
    the files' mtime; exit 0 even with failed events; 2 without a spool."""
    sp = Spool(h, 'prometheus')
    sp.write('item.create.jsonl', make_line('a', 'item.create', {}, OLD) +
             make_line('b', 'item.create', {}))
    os.utime(sp.path('item.create.jsonl'), (1700000000, 1700000000))
    work = 'task.create.jsonl.claim-0000000000000001'
    sp.write(work, make_line('c', 'task.create', {}) * 3)
    sp.write(work + '.state', b'offset 0\n')
    os.utime(sp.path(work), (1800000000.5, 1800000000.5))
    os.mkdir(sp.path('failed'))
    os.mkdir(sp.path('bad'))
    sp.write('failed/task.create.jsonl', make_line('d', 'task.create', {}))
    sp.write('bad/item.create.jsonl', b'junk\n' * 2)
    r = sp.run(['status', '--prometheus'])
    eq(r.returncode, 0, 'exit status')
    text = r.stdout.decode()
    names = ['podio_hook_pending', 'podio_hook_oldest_pending_age_seconds',
             'podio_hook_in_progress', 'podio_hook_failed',
             'podio_hook_quarantined',
             'podio_hook_last_received_timestamp_seconds']
    samples = {}
    for line in text.splitlines():
        if line.startswith('#'):
            continue
        k, v = line.rsplit(' ', 1)
        samples[k] = float(v)
    for n in names:
        check('# HELP %s ' % n in text and '# TYPE %s gauge\n' % n in text,
              'HELP/TYPE of %s', n)
    want = {
        'podio_hook_pending{type="item.create"}': 2,
        'podio_hook_pending{type="task.create"}': 0,
        'podio_hook_in_progress{type="task.create"}': 3,
        'podio_hook_failed{type="task.create"}': 1,
        'podio_hook_quarantined{type="item.create"}': 2,
        'podio_hook_oldest_pending_age_seconds{type="task.create"}': 0,
        'podio_hook_last_received_timestamp_seconds{type="item.create"}':
            1700000000,
        'podio_hook_last_received_timestamp_seconds{type="task.create"}':
            1800000000.5,
    }
    for k, v in want.items():
        eq(samples.get(k), v, k)
    check(samples['podio_hook_oldest_pending_age_seconds{type="item.create"}']
          > 365 * 86400, 'age of a 2020 event')
    saved = r.stdout
    shutil.rmtree(sp.spool)
    r = sp.run(['status', '--prometheus'])
    eq((r.returncode, r.stdout), (2, b''), 'exit status without a spool')
    if shutil.which('promtool'):
        p = subprocess.run(['promtool', 'check', 'metrics'], input=saved,
                           capture_output=True, timeout=60)
        eq((p.returncode, p.stdout + p.stderr), (0, b''),
           'promtool check metrics')
    else:
        raise Skip('promtool (Debian package prometheus) is not installed; '
                   'the format was checked by this test only')


CASES = [
    ('--retry-failed quarantines what it cannot parse, never deletes',
     case_retry_failed_never_deletes),
    ('--batch: one rule for a valid line, quarantined once, not re-sent',
     case_batch_one_rule),
    ('a directory named like a spool file blocks nothing',
     case_directory_blocks_nothing),
    ('status: any number of types', case_status_any_number_of_types),
    ('status --prometheus: figures, format (promtool), exit status',
     case_status_prometheus),
    ('--exec: event data stays in PODIO_PARAM_*',
     case_exec_environment_namespace),
    ('numeric options: digits only, range-checked, exit 2',
     case_numbers_are_range_checked),
    ('--type leaves hook.verify pending and visible in status',
     case_type_filter_leaves_verify_visible),
    ('root: commands become the spool owner', case_root_drops_to_owner),
    ('root: symbolic links in the spool are never followed',
     case_root_follows_no_symlink),
    ('check: root leftovers, world-writable spool, file_mode',
     case_check_reports_root_leftovers),
    ('check: rotated copies of spool files named, with the mv for drain',
     case_check_names_rotated_spool_files),
    ('stress: writers, killed drains and handlers, a third party',
     case_stress),
    ('--coalesce: updates of one object and repeats handed over once',
     case_coalesce),
    ('--follow: events handed over as they arrive; cron drain stays quiet',
     case_follow),
    ('--follow: SIGTERM lets the handler in flight finish',
     case_follow_sigterm_lets_the_handler_finish),
    ('--follow: SIGTERM while waiting for the drain lock: exit 0 at once',
     case_follow_sigterm_while_waiting_for_the_lock),
    ('--follow: a failing event waits for the rescan',
     case_follow_failing_handler_waits_for_rescan),
    ('--follow: the systemd unit, verified and run as systemd would',
     case_follow_systemd_unit),
]


def main():
    suite = harness.Suite(__doc__, CASES)
    suite.parse()
    if not suite.ready():
        return suite.finish()
    return run_suite(suite, Workspace(suite.bin, 'podio-engine.'))


if __name__ == '__main__':
    sys.exit(main())
