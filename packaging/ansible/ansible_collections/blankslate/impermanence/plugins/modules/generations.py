#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: generations
short_description: List, roll back, delete and garbage-collect a blankslate host's generations
description:
  - V(list) returns every generation with its marks (C(blankslate generations list --json)).
  - V(rollback) switches to the generation before the active one (C(blankslate rollback)), in the modes of
    M(blankslate.impermanence.switch). Each run goes one generation further back, so it always reports a change.
    To go back to a known generation idempotently, switch to it by number.
  - V(delete) removes the profile links of O(numbers) (never the current or the booted one). Numbers that are no
    generation are already gone, so deleting them changes nothing.
  - V(gc) removes store objects that no generation reaches, and debris (C(blankslate generations gc)).
version_added: 0.1.0
author: blankslate contributors (!UNKNOWN)
extends_documentation_fragment:
  - blankslate.impermanence.target
  - ansible.builtin.action_common_attributes
options:
  action:
    description:
      - What to do.
    type: str
    choices: [list, rollback, delete, gc]
    default: list
  numbers:
    description:
      - The generations to delete, by number. Required with O(action=delete).
    type: list
    elements: int
  mode:
    description:
      - With O(action=rollback), as in M(blankslate.impermanence.switch).
    type: str
    choices: [switch, test, boot]
    default: switch
  confirm_within:
    description:
      - With O(action=rollback), put the rollback on trial for this duration.
    type: str
attributes:
  check_mode:
    support: full
    details: V(rollback) and V(gc) run the binary's dry run; V(delete) says which numbers exist.
  diff_mode:
    support: full
    details: The marks before and after (and a rollback's dry run).
'''

EXAMPLES = r'''
- name: Drop generations 1 to 3 and collect their store objects
  blankslate.impermanence.generations:
    action: delete
    numbers: [1, 2, 3]
- name: Collect
  blankslate.impermanence.generations:
    action: gc

- name: List
  blankslate.impermanence.generations:
  register: listed
- name: The boot default is confirmed
  ansible.builtin.assert:
    that: listed.marks.active == listed.marks.boot_default
'''

RETURN = r'''
generations:
  description: The binary's C(generations list --json) (after the action).
  returned: always
  type: list
  elements: dict
  sample: [{generation: 1, active: true, boot_default: true, booted: false, good: false, current: true,
            created: '2026-12-05 11:59:29', notes: [], path: /var/lib/blankslate/store/...-generation}]
marks:
  description: The generations carrying each mark (after the action), and whether a switch is on trial.
  returned: always
  type: dict
  sample: {active: 1, boot_default: 1, booted: null, good: null, on_trial: false}
collected:
  description: With O(action=gc), the binary's JSON (C(removed), C(debris), C(kept), C(dry_run)).
  returned: when O(action=gc)
  type: dict
deleted:
  description: With O(action=delete), the numbers that were (or, in check mode, would be) deleted.
  returned: when O(action=delete)
  type: list
  elements: int
report:
  description: What C(rollback --json) printed (the dry run's, in check mode), for O(action=rollback).
  returned: when O(action=rollback)
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
    prepared_text,
)


def rollback(module, blankslate, result):
    arguments = MODE_FLAGS[module.params['mode']] + ['--json']
    prepared = blankslate.run_json(['rollback'], arguments + ['--dry-run'])[1]
    result['report'] = prepared
    # Going back moves the active generation (or the boot default) even where the
    # two generations hold the same /etc.
    result['changed'] = True
    if not module.check_mode:
        if module.params['confirm_within'] is not None:
            arguments = arguments + ['--confirm-within', module.params['confirm_within']]
        result['report'] = blankslate.run_json(['rollback'], arguments)[1]
        result['changed'] = activation_changed(result['report']) or marks(blankslate.generations()) != result['before']
    return prepared_text(prepared)


def delete(module, blankslate, result):
    existing = set(g['generation'] for g in result['listed'])
    result['deleted'] = sorted(n for n in set(module.params['numbers']) if n in existing)
    result['changed'] = bool(result['deleted'])
    if result['deleted'] and not module.check_mode:
        blankslate.run(['generations', 'delete'], [str(n) for n in result['deleted']])


def gc(module, blankslate, result):
    arguments = ['--json'] + (['--dry-run'] if module.check_mode else [])
    result['collected'] = blankslate.run_json(['generations', 'gc'], arguments)[1]
    result['changed'] = bool(result['collected']['removed'] or result['collected']['debris'])


def main():
    module = AnsibleModule(
        argument_spec=merged_argument_spec(
            action=dict(type='str', default='list', choices=['list', 'rollback', 'delete', 'gc']),
            numbers=dict(type='list', elements='int'),
            mode=dict(type='str', default='switch', choices=list(MODE_FLAGS)),
            confirm_within=dict(type='str'),
        ),
        required_if=[('action', 'delete', ['numbers'])],
        supports_check_mode=True,
    )
    blankslate = Blankslate(module)
    listed = blankslate.generations()
    result = dict(changed=False, listed=listed, before=marks(listed))
    prepared = None
    action = module.params['action']
    if action == 'rollback':
        prepared = rollback(module, blankslate, result)
    elif action == 'delete':
        delete(module, blankslate, result)
    elif action == 'gc':
        gc(module, blankslate, result)
    before = result.pop('before')
    result.pop('listed')
    generations = blankslate.generations() if result['changed'] and not module.check_mode else listed
    result.update(generations=generations, marks=marks(generations), commands=blankslate.commands)
    add_marks_diff(module, result, before, result['marks'], prepared)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
