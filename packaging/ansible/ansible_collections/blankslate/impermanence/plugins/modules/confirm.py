#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: confirm
short_description: Confirm that a host works on its new generation
description:
  - Keeps a switch on trial (M(blankslate.impermanence.switch) with O(blankslate.impermanence.switch#module:confirm_within)),
    which also makes it the boot default. Marks the generation this boot runs good, which ends a boot trial
    and makes it what later trials fall back to (C(blankslate confirm)).
  - Run it only after the play's own checks of the new generation passed. Without it the host falls back by
    itself.
  - Changes nothing when no switch is on trial and the booted generation is already good.
version_added: 0.1.0
author: blankslate contributors (!UNKNOWN)
extends_documentation_fragment:
  - blankslate.impermanence.target
  - ansible.builtin.action_common_attributes
options: {}
attributes:
  check_mode:
    support: full
    details: Says whether a confirm would change anything, from the generations' marks.
  diff_mode:
    support: full
    details: The marks before and after.
'''

EXAMPLES = r'''
- name: Confirm once the service answers on the new generation
  blankslate.impermanence.confirm:
  when: health.status == 200
'''

RETURN = r'''
generation:
  description: The active generation, confirmed.
  returned: always
  type: int
  sample: 2
marks:
  description: The generations carrying each mark after the confirm, and whether one is still on trial.
  returned: always
  type: dict
  sample: {active: 2, boot_default: 2, booted: null, good: null, on_trial: false}
report:
  description: What the binary printed (empty in check mode or when nothing was to confirm).
  returned: always
  type: str
commands:
  description: The command lines run.
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.blankslate.impermanence.plugins.module_utils.blankslate import (
    Blankslate,
    add_marks_diff,
    marks,
    merged_argument_spec,
)


def main():
    module = AnsibleModule(argument_spec=merged_argument_spec(), supports_check_mode=True)
    blankslate = Blankslate(module)
    before = marks(blankslate.generations())
    # A switch on trial waits for it; a generation booted by blankslate and not yet
    # good (a boot trial, or a boot nobody confirmed) is marked good by it.
    pending = before['on_trial'] or (before['booted'] is not None and before['booted'] != before['good'])
    report = ''
    after = before
    if pending and module.check_mode:
        after = dict(before, on_trial=False, boot_default=before['active'], good=before['booted'] or before['good'])
    elif pending:
        report = blankslate.run(['confirm'])[1]
        after = marks(blankslate.generations())
    result = dict(changed=after != before, generation=after['active'], marks=after, report=report,
                  commands=blankslate.commands)
    add_marks_diff(module, result, before, after)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
