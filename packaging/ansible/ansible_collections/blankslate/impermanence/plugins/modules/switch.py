#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: switch
short_description: Build a declaration and switch a host to it, on trial if asked
description:
  - Activates a generation on a blankslate root and makes it the boot default (C(blankslate switch)).
    The generation is given by number, or as a declaration file on the host, which is built first.
  - With O(confirm_within) the switch is on trial. Unless M(blankslate.impermanence.confirm) runs within
    that time, the host activates the generation it had before by itself, even when the play (or the ssh
    connection) is gone. The boot default moves only once confirmed, so a reboot meanwhile falls back too.
  - Idempotent. A dry run (C(switch --dry-run)) says which generation the switch leads to. When that
    generation is already active (and the boot default, as O(mode) asks), no switch is on trial and the
    root needs nothing, the module changes nothing and starts no trial.
version_added: 0.1.0
author: blankslate contributors (!UNKNOWN)
extends_documentation_fragment:
  - blankslate.impermanence.target
  - ansible.builtin.action_common_attributes
options:
  declaration:
    description:
      - A declaration file on the host, built into a generation before the switch.
    type: path
  generation:
    description:
      - The number of a generation already built.
    type: int
  mode:
    description:
      - V(switch) activates now and makes it the boot default.
      - V(test) activates now but leaves the boot default alone, so that a reboot returns to it.
      - V(boot) makes it the boot default without activating it.
    type: str
    choices: [switch, test, boot]
    default: switch
  confirm_within:
    description:
      - Put the switch on trial. It falls back by itself unless confirmed within this duration
        (C(90), C(90s), C(5m), C(1h)).
    type: str
  tries:
    description:
      - Put the new boot default on trial for this many boots. After that many boots without a confirm, boot
        falls back to the last generation confirmed good.
    type: int
  refuse_conflicts:
    description:
      - Refuse to activate, changing nothing, when a file blankslate did not put there sits at a declared
        path. By default such a file is moved to C(NAME.blankslate-backup).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Runs the binary's own dry run and changes nothing.
  diff_mode:
    support: full
    details: The marks (active, boot default) before and after, and the dry run's comparison.
'''

EXAMPLES = r'''
- name: Switch to the declaration, on trial for ten minutes
  blankslate.impermanence.switch:
    declaration: /run/blankslate-rollout/declaration.toml
    confirm_within: 10m
  register: switched

- name: Only try generation 7 until the next reboot
  blankslate.impermanence.switch:
    generation: 7
    mode: test
'''

RETURN = r'''
generation:
  description: The generation switched to (in check mode, the one it would be).
  returned: always
  type: int
  sample: 2
previous:
  description: The generation that was active before, which a trial falls back to.
  returned: always
  type: int
  sample: 1
on_trial:
  description: Whether the switch waits for a confirm, and falls back by itself without one.
  returned: always
  type: bool
marks:
  description: The generations carrying each mark after the switch, and whether one is on trial.
  returned: always
  type: dict
  sample: {active: 2, boot_default: 1, booted: null, good: null, on_trial: true}
generations:
  description: The binary's C(generations list --json) after the switch.
  returned: always
  type: list
  elements: dict
report:
  description: >-
    What C(switch --json) printed: the switch (its marks after, what the activation did to /etc and to the
    persisted paths, the trials), or the dry run (the generations compared, the /etc plan counted) in check
    mode or when nothing was to change.
  returned: always
  type: dict
commands:
  description: The command lines run.
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.blankslate.impermanence.plugins.module_utils.blankslate import (
    MODE_FLAGS,
    Blankslate,
    add_marks_diff,
    activation_changed,
    marks,
    merged_argument_spec,
    preview_changes_nothing,
    preview_target,
    prepared_text,
    settled,
)


def switch_arguments(params, dry_run):
    """The switch's own arguments: how, then (after `--`, so that no file name is
    taken for an option) what to switch to."""
    arguments = list(MODE_FLAGS[params['mode']])
    if params['refuse_conflicts']:
        arguments.append('--refuse-conflicts')
    arguments.append('--json')
    if dry_run:
        arguments.append('--dry-run')
    else:
        if params['confirm_within'] is not None:
            arguments += ['--confirm-within', params['confirm_within']]
        if params['tries'] is not None:
            arguments += ['--tries', str(params['tries'])]
    return arguments + ['--', params['declaration'] or str(params['generation'])]


def main():
    module = AnsibleModule(
        argument_spec=merged_argument_spec(
            declaration=dict(type='path'),
            generation=dict(type='int'),
            mode=dict(type='str', default='switch', choices=list(MODE_FLAGS)),
            confirm_within=dict(type='str'),
            tries=dict(type='int'),
            refuse_conflicts=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('declaration', 'generation')],
        required_one_of=[('declaration', 'generation')],
        supports_check_mode=True,
    )
    params = module.params
    blankslate = Blankslate(module)
    before = marks(blankslate.generations())
    dry_run = blankslate.run_json(['switch'], switch_arguments(params, dry_run=True))[1]
    target = preview_target(dry_run)
    result = dict(changed=True, generation=target, previous=before['active'], report=dry_run)
    if target is not None and preview_changes_nothing(dry_run) and settled(before, target, params['mode']):
        result['changed'] = False
    if module.check_mode or not result['changed']:
        after = dict(before)
        if result['changed']:
            after.update(active=target if params['mode'] != 'boot' else before['active'],
                         boot_default=target if params['mode'] != 'test' and not params['confirm_within']
                         else before['boot_default'],
                         on_trial=bool(params['confirm_within']) and params['mode'] != 'boot')
        generations = blankslate.generations()
    else:
        result['report'] = blankslate.run_json(['switch'], switch_arguments(params, dry_run=False))[1]
        generations = blankslate.generations()
        after = marks(generations)
        result['changed'] = after != before or activation_changed(result['report'])
        if target is None:
            result['generation'] = after['boot_default'] if params['mode'] == 'boot' else after['active']
    result.update(on_trial=after['on_trial'], marks=after, generations=generations, commands=blankslate.commands)
    add_marks_diff(module, result, before, after, prepared_text(dry_run))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
