#!/usr/bin/env python3
"""The command line's conventions, command by command.

    python3 tests/cli/run.py [--bin PATH] [-k SUBSTR]... [--keep] [--list] [-v]

As git, curl and systemctl do it: --config PATH and -v before or after the
command; every long option as "--opt value" or "--opt=value"; -h/--help
after any command prints that command's usage on standard output, exit 0,
and `help COMMAND` prints the same; -V/--version; an unknown option or
command is one line on standard error naming it, exit 2; numeric options
are digits in a range, never a wrapped value.  Runs the real binary
against a spool of its own; no server, no network.  Prints "ok - name" or
"FAIL - name: why" per case and, last, "N passed, M failed, K skipped"
(tests/lib/harness.py's Suite, which also gives the options).
"""

import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, 'tests', 'lib'))
import harness  # noqa: E402  (tests/lib/harness.py)
from harness import Failure, check  # noqa: E402


# Every command (and hook subcommand) with the first line of its usage.
COMMANDS = [
    (['drain'], 'usage: podio-hook drain '),
    (['status'], 'usage: podio-hook status '),
    (['check'], 'usage: podio-hook check '),
    (['hook'], 'usage: podio-hook hook '),
    (['hook', 'create'], 'usage: podio-hook hook '),
    (['hook', 'sync'], 'usage: podio-hook hook '),
    (['api'], 'usage: podio-hook api '),
]

# Options that take a value, per command, with a valid value.
VALUED = {
    'drain': [('--type', 'item.*'), ('--exec', 'true'),
              ('--max-attempts', '3'), ('--timeout', '5'),
              ('--limit', '10'), ('--rescan', '7')],
    'status': [],
}

# Numeric options: (command, option, min, max).
NUMBERS = [('drain', '--max-attempts', 1, 1000000),
           ('drain', '--timeout', 1, 86400),
           ('drain', '--limit', 0, 1000000000000),
           ('drain', '--rescan', 1, 86400)]


class Env:
    def __init__(self, binary, tmp):
        self.bin = binary
        self.dir = tmp
        self.spool = os.path.join(tmp, 'spool')
        os.mkdir(self.spool)
        self.ini = os.path.join(tmp, 'podio-hook.ini')
        with open(self.ini, 'w') as f:
            f.write('[spool]\ndir = %s\nsync = no\n' % self.spool)
        os.chmod(self.ini, 0o600)

    def run(self, *args, env_config=False):
        env = {'PATH': '/usr/bin:/bin', 'LANG': 'C'}
        for k in ('ASAN_OPTIONS', 'UBSAN_OPTIONS'):
            if k in os.environ:
                env[k] = os.environ[k]
        if env_config:
            env['PODIO_HOOK_CONFIG'] = self.ini
        return subprocess.run([self.bin] + list(args), env=env,
                              capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30)


def one_line_error(r, *words):
    check(r.returncode == 2, 'exit %d, want 2 (stderr %r)', r.returncode,
          r.stderr)
    check(r.stdout == '', 'stdout %r on an error', r.stdout)
    lines = r.stderr.splitlines()
    check(len(lines) == 1, 'stderr is %d lines, want 1: %r', len(lines),
          r.stderr)
    for w in words:
        check(w in lines[0], 'stderr %r does not name %r', lines[0], w)
    check(lines[0].startswith('podio-hook: '), 'stderr %r', lines[0])


def case_help_per_command(env):
    for words, head in COMMANDS:
        texts = []
        for flag in ('--help', '-h'):
            r = env.run(*(words + [flag]))
            check(r.returncode == 0, '%s %s: exit %d (stderr %r)',
                  ' '.join(words), flag, r.returncode, r.stderr)
            check(r.stdout.startswith(head), '%s %s printed %r',
                  ' '.join(words), flag, r.stdout[:80])
            check(r.stderr == '', '%s %s: stderr %r', ' '.join(words), flag,
                  r.stderr)
            texts.append(r.stdout)
        r = env.run('help', *words)
        check(r.returncode == 0 and r.stdout == texts[0],
              'help %s differs from %s --help', ' '.join(words),
              ' '.join(words))
        check(texts[0] == texts[1], '-h and --help differ for %s', words)


def case_help_and_version(env):
    for args in (['help'], ['--help'], ['-h']):
        r = env.run(*args)
        check(r.returncode == 0 and r.stdout.startswith('usage: podio-hook'),
              '%s: exit %d, %r', args, r.returncode, r.stdout[:60])
        for cmd in ('drain', 'status', 'check', 'hook', 'api', 'help'):
            check(re.search(r'^  %s\b' % cmd, r.stdout, re.M),
                  'usage does not list %s', cmd)
    for args in (['-V'], ['--version']):
        r = env.run(*args)
        check(r.returncode == 0 and
              re.fullmatch(r'podio-hook \d+\.\d+\.\d+\n', r.stdout),
              '%s printed %r', args, r.stdout)
    r = env.run('help', 'nope')
    one_line_error(r, "'nope'")


def case_config_anywhere(env):
    """--config before the command, after it, as --config=PATH, and
    through $PODIO_HOOK_CONFIG: the same answer each time."""
    want = None
    for args, via_env in ((['--config', env.ini, 'status', '--json'], False),
                          (['status', '--config', env.ini, '--json'], False),
                          (['status', '--json', '--config=' + env.ini], False),
                          (['--config=' + env.ini, 'status', '--json'], False),
                          (['status', '--json'], True)):
        r = env.run(*args, env_config=via_env)
        check(r.returncode == 0, '%s: exit %d (stderr %r)', args,
              r.returncode, r.stderr)
        want = want or r.stdout
        check(r.stdout == want, '%s printed %r, want %r', args, r.stdout,
              want)
    r = env.run('status', '--config', env.ini, '--config', env.ini)
    one_line_error(r, '--config', 'twice')
    r = env.run('status', '--config')
    one_line_error(r, '--config', 'value')
    r = env.run('status', '--config', os.path.join(env.dir, 'missing.ini'))
    check(r.returncode == 2, 'a missing --config: exit %d', r.returncode)


def case_verbose_anywhere(env):
    for args in (['-v', 'drain'], ['drain', '-v'], ['drain', '--verbose'],
                 ['--config', env.ini, '-v', 'drain']):
        r = env.run(*args, env_config=True)
        check(r.returncode == 0, '%s: exit %d (stderr %r)', args,
              r.returncode, r.stderr)
        check('handled' in r.stderr, '%s: -v printed no counts: %r', args,
              r.stderr)
    r = env.run('drain', '-v=1', env_config=True)
    one_line_error(r, '-v')


def case_equals_form(env):
    """Every valued option of drain takes --opt value and --opt=value."""
    for opt, val in VALUED['drain']:
        for args in ([opt, val], ['%s=%s' % (opt, val)]):
            r = env.run('drain', *args, env_config=True)
            check(r.returncode == 0, 'drain %s: exit %d (stderr %r)',
                  ' '.join(args), r.returncode, r.stderr)
    r = env.run('drain', '--exec=true', '--batch=true', env_config=True)
    one_line_error(r, '--exec', '--batch')
    r = env.run('drain', '--wait=yes', env_config=True)
    one_line_error(r, '--wait', 'no value')


def case_unknown_options_and_commands(env):
    cases = [(['--bogus'], ["'--bogus'"]),
             (['bogus'], ["'bogus'"]),
             (['drain', '--bogus'], ["'--bogus'", 'drain']),
             (['drain', '--bogus=1'], ["'--bogus'"]),
             (['status', '-x'], ["'-x'", 'status']),
             (['check', '--json'], ["'--json'", 'check']),
             (['hook', 'nope'], ["'nope'", 'hook']),
             (['hook', 'list', '--bogus', 'app', '1'], ["'--bogus'"]),
             (['api', '--bogus', 'GET', '/x'], ["'--bogus'", 'api']),
             (['drain', 'extra'], ["'extra'", 'drain']),
             (['status', 'extra'], ["'extra'"]),
             (['drain', '--exec'], ["'--exec'", 'value'])]
    for args, words in cases:
        r = env.run(*args, env_config=True)
        try:
            one_line_error(r, *words)
        except Failure as e:
            raise Failure('%s: %s' % (' '.join(args), e))
    r = env.run()
    check(r.returncode == 2 and 'usage:' in r.stderr and r.stdout == '',
          'no command: exit %d, stderr %r', r.returncode, r.stderr[:80])


def case_numbers(env):
    for cmd, opt, lo, hi in NUMBERS:
        for bad in ('%d' % (hi + 1), '%d' % (hi + 2 ** 32),
                    '18446744073709551617', '-1', '+1', ' 1', '1 ', '0x10',
                    '1e3', '', 'abc'):
            r = env.run(cmd, '%s=%s' % (opt, bad), env_config=True)
            try:
                one_line_error(r, opt)
            except Failure as e:
                raise Failure('%s %s=%r: %s' % (cmd, opt, bad, e))
        if lo > 0:
            r = env.run(cmd, opt, str(lo - 1), env_config=True)
            one_line_error(r, opt)
        for good in (str(lo), str(hi)):
            r = env.run(cmd, opt, good, env_config=True)
            check(r.returncode == 0, '%s %s %s: exit %d (stderr %r)', cmd,
                  opt, good, r.returncode, r.stderr)


def case_double_dash(env):
    """'--' ends the options: a later word is an argument."""
    r = env.run('drain', '--', '--limit', env_config=True)
    one_line_error(r, "'--limit'", 'unexpected argument')


CASES = [
    ('-h, --help and help COMMAND print each command\'s usage',
     case_help_per_command),
    ('help, -h, -V, --version', case_help_and_version),
    ('--config before or after the command, --config=PATH, environment',
     case_config_anywhere),
    ('-v before or after the command', case_verbose_anywhere),
    ('--opt value and --opt=value', case_equals_form),
    ('unknown options and commands are named, exit 2',
     case_unknown_options_and_commands),
    ('numeric options: digits only, range-checked', case_numbers),
    ('-- ends the options', case_double_dash),
]


def main():
    suite = harness.Suite(__doc__, CASES)
    suite.parse()
    if not suite.ready():
        return suite.finish()
    suite.tmp = tempfile.mkdtemp(prefix='podio-cli.')
    suite.run(start=lambda case: Env(suite.bin,
                                     tempfile.mkdtemp(dir=suite.tmp)))
    return suite.finish()


if __name__ == '__main__':
    sys.exit(main())
