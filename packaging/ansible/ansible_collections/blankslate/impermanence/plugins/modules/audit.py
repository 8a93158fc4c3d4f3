#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: audit
short_description: The blankslate audit of a host, as facts
description:
  - Runs C(blankslate audit --json) and returns its report (schema 1) as the fact C(blankslate_audit), with the
    count of findings per class beside it, for M(ansible.builtin.assert) and C(when).
  - Never changes anything.
  - The audit's exit code is data, not a failure. 0 is clean, 1 undeclared state, 2 drift, broken persistence,
    a volume not mounted or a fallback, 3 an incomplete audit. Set O(max_exit_code) to fail the task above a
    code.
version_added: 0.1.0
author: blankslate contributors (!UNKNOWN)
extends_documentation_fragment:
  - blankslate.impermanence.target
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
options:
  generation:
    description:
      - Audit against this generation. By default the one C(/etc) was activated to, else the current one.
    type: int
  limit:
    description:
      - List at most this many findings per class (largest first). The counts always count everything.
    type: int
    default: 200
  no_sizes:
    description:
      - Do not stat undeclared files for their sizes, which is faster on huge roots (sizes are then 0).
    type: bool
    default: false
  max_exit_code:
    description:
      - Fail the task when the audit exits above this code. The facts are set either way.
    type: int
    choices: [0, 1, 2, 3]
    default: 3
attributes:
  check_mode:
    support: full
    details: The audit only reads, so it runs in check mode too.
  diff_mode:
    support: none
  facts:
    support: full
'''

EXAMPLES = r'''
- name: Audit the host
  blankslate.impermanence.audit:
    no_sizes: true

- name: Nothing drifted and every volume is mounted
  ansible.builtin.assert:
    that:
      - blankslate_audit.exit_code <= 1
      - blankslate_audit.counts.volume == 0
    fail_msg: "{{ blankslate_audit.findings | map(attribute='path') | list }}"
'''

RETURN = r'''
ansible_facts:
  description: The fact C(blankslate_audit).
  returned: always
  type: complex
  contains:
    blankslate_audit:
      description:
        - The binary's JSON report (C(schema), C(exit_code), C(generation), C(generations), C(declaration),
          C(summary), C(findings), C(stats), C(time)) with C(counts), the count of findings per class.
      type: dict
      sample:
        exit_code: 1
        generation: 2
        generations: {active: 2, booted: 2, default: 2}
        counts: {undeclared: 1, etc-stray: 0, persist: 0, volume: 0}
        findings: [{class: undeclared, kind: directory, path: /srv/new, files: 1, bytes: 2}]
exit_code:
  description: The audit's exit code.
  returned: always
  type: int
  sample: 1
counts:
  description: Findings per class.
  returned: always
  type: dict
  sample: {undeclared: 1, etc-drift: 0}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.blankslate.impermanence.plugins.module_utils.blankslate import (
    Blankslate,
    merged_argument_spec,
)


def audit_arguments(params):
    arguments = ['--limit', str(params['limit'])]
    if params['generation'] is not None:
        arguments += ['--generation', str(params['generation'])]
    if params['no_sizes']:
        arguments.append('--no-sizes')
    return arguments


def main():
    module = AnsibleModule(
        argument_spec=merged_argument_spec(
            generation=dict(type='int'),
            limit=dict(type='int', default=200),
            no_sizes=dict(type='bool', default=False),
            max_exit_code=dict(type='int', default=3, choices=[0, 1, 2, 3]),
        ),
        supports_check_mode=True,
    )
    blankslate = Blankslate(module)
    exit_code, report = blankslate.audit(audit_arguments(module.params))
    counts = dict((name, totals['count']) for name, totals in report['summary'].items())
    report['counts'] = counts
    result = dict(changed=False, ansible_facts=dict(blankslate_audit=report), exit_code=exit_code, counts=counts,
                  commands=blankslate.commands)
    if exit_code > module.params['max_exit_code']:
        listed = ', '.join('%s %s' % (f['class'], f['path']) for f in report['findings'][:5])
        module.fail_json(msg='the audit exited %d (above %d): %s' % (exit_code, module.params['max_exit_code'], listed),
                         **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
