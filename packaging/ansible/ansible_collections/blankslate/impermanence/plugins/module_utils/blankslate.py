# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""What every blankslate module shares: the options that say which binary and which
root, running the binary with them, reading its JSON, the generations' marks, and what
a switch's JSON report says it changed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# The options of every module: they map to the binary's own `--root`, `--state-dir`
# and `--lock-timeout`.
COMMON_ARGUMENT_SPEC = dict(
    binary=dict(type='str', default='blankslate'),
    root=dict(type='path', default='/'),
    state_dir=dict(type='str', default='/var/lib/blankslate'),
    lock_timeout=dict(type='int'),
)

# The switch modes, as the binary's flags.
MODE_FLAGS = {'switch': [], 'test': ['--test'], 'boot': ['--boot']}

# What `switch --json` (and `rollback --json`) counts as changes: to /etc, and to the
# persisted paths (what is only "unchanged" or "left alone" is not one).
_ETC_CHANGES = ('added', 'changed', 'fixed', 'removed', 'backed_up', 'static_link')
_PERSIST_CHANGES = ('mounted', 'linked', 'migrated', 'unmounted', 'copied', 'written_back')


def merged_argument_spec(**specific):
    """The common options plus a module's own."""
    spec = dict(COMMON_ARGUMENT_SPEC)
    spec.update(specific)
    return spec


class Blankslate:
    """Runs the blankslate binary on the root the module's options name."""

    def __init__(self, module):
        self.module = module
        binary = module.params['binary']
        self.binary = binary if '/' in binary else module.get_bin_path(binary, required=True)
        self.commands = []

    def target_options(self):
        params = self.module.params
        options = ['--root', params['root'], '--state-dir', params['state_dir']]
        if params['lock_timeout'] is not None:
            options += ['--lock-timeout', str(params['lock_timeout'])]
        return options

    def run(self, command, arguments=(), ok=(0,), target=True):
        """Runs `blankslate COMMAND... [--root ...] ARGUMENTS...`; fails the module
        with the binary's own message when it exits with a code not in `ok`."""
        argv = [self.binary] + list(command) + (self.target_options() if target else []) + list(arguments)
        self.commands.append(argv)
        rc, out, err = self.module.run_command(argv, environ_update={'NO_COLOR': '1'})
        if rc not in ok:
            message = err.strip().splitlines()[-1] if err.strip() else 'no message'
            self.module.fail_json(
                msg='blankslate %s exited %d: %s' % (' '.join(command), rc, message),
                rc=rc, stdout=out, stderr=err, cmd=argv, commands=self.commands)
        return rc, out, err

    def run_json(self, command, arguments=(), ok=(0,), target=True):
        """Runs a command that prints JSON and returns (exit code, document)."""
        rc, out, err = self.run(command, arguments, ok, target)
        try:
            return rc, json.loads(out)
        except ValueError as error:
            self.module.fail_json(
                msg='blankslate %s printed no JSON: %s' % (' '.join(command), error),
                rc=rc, stdout=out, stderr=err, commands=self.commands)

    def generations(self):
        """`generations list --json`: every generation with its marks."""
        return self.run_json(['generations', 'list'], ['--json'])[1]

    def audit(self, arguments=()):
        """`audit --json`: (exit code, report). Exit codes 0 to 3 all come with a
        report; 3 means an incomplete audit (or one that could not run, then with no
        JSON, which fails the module)."""
        return self.run_json(['audit'], ['--json'] + list(arguments), ok=(0, 1, 2, 3))


def marks(generations):
    """The generation numbers that carry each mark (None where none does), and
    whether a switch is on trial: the active generation is not the boot default and
    carries a note (a switch on trial moves the boot default only once confirmed)."""
    def numbered(mark):
        found = [g['generation'] for g in generations if g.get(mark)]
        return found[0] if found else None

    active = numbered('active')
    active_notes = [g.get('notes') for g in generations if g.get('active')]
    return dict(
        active=active,
        boot_default=numbered('boot_default'),
        booted=numbered('booted'),
        good=numbered('good'),
        on_trial=bool(active is not None and active != numbered('boot_default') and active_notes and active_notes[0]),
    )


def preview_target(preview):
    """The generation a dry run (`switch --dry-run --json`) would switch to."""
    return preview.get('to')


def _etc_changed(counts):
    return counts is not None and any(counts.get(what) for what in _ETC_CHANGES)


def preview_changes_nothing(preview):
    """Whether a dry run found no difference between the generations and nothing
    this root adds (no entry created, replaced, removed or backed up)."""
    return not preview.get('differences', True) and not _etc_changed(preview.get('etc'))


def activation_changed(report):
    """Whether a switch's JSON report counts a change to /etc or to the persisted
    paths."""
    persisted = report.get('persisted') or {}
    return _etc_changed(report.get('etc')) or any(persisted.get(what) for what in _PERSIST_CHANGES)


def prepared_text(preview):
    """A dry run's comparison, for diff mode's `prepared`: `generation 1 ->
    generation 2` (`nothing` where there is none), then the differences."""
    def name(number):
        return 'nothing' if number is None else 'generation %d' % number
    return '%s -> %s\n%s\n' % (name(preview.get('from')), name(preview.get('to')),
                               json.dumps(preview.get('diff'), indent=2, sort_keys=True))


def settled(current, target, mode):
    """Whether the marks already say what a switch to `target` in `mode` would make
    them say, with no trial under way."""
    if current['on_trial']:
        return False
    if mode == 'test':
        return current['active'] == target
    if mode == 'boot':
        return current['boot_default'] == target
    return current['active'] == target and current['boot_default'] == target


def marks_text(current):
    """The marks as lines, for diff mode."""
    return ''.join('%s: %s\n' % (name, current[name]) for name in sorted(current))


def add_marks_diff(module, result, before, after, prepared=None):
    """In diff mode, the marks before and after (and a dry run's report)."""
    if module._diff:
        result['diff'] = dict(before=marks_text(before), after=marks_text(after))
        if prepared is not None:
            result['diff']['prepared'] = prepared
