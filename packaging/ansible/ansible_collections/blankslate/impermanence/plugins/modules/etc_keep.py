#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: etc_keep
short_description: Keep what packages and tools changed in a blankslate host's /etc
description:
  - Copies live C(/etc) files, with their owner and mode, into the declaration's etc tree
    (C([etc_tree] source)), then switches to the declaration, so that they survive the next boot
    (C(blankslate etc keep)).
  - Changes nothing when the audit finds no stray, drifted or lost entry at or below the paths and the etc tree
    holds them all already.
version_added: 0.1.0
author: blankslate contributors (!UNKNOWN)
extends_documentation_fragment:
  - blankslate.impermanence.target
  - ansible.builtin.action_common_attributes
options:
  paths:
    description:
      - Paths below C(/etc) (C(/etc/default/atd), or C(default/atd)).
    type: list
    elements: str
    required: true
  declaration:
    description:
      - The declaration (on the host) whose etc tree takes them.
    type: path
    required: true
  switch:
    description:
      - Switch to the declaration afterwards. With V(false) they are only copied into the etc tree.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Says, from the audit and the etc tree, whether anything is to keep.
  diff_mode:
    support: full
    details: The etc tree's entries below the paths (kind, mode, owner, content hash) before and after.
'''

EXAMPLES = r'''
- name: Keep the units and the link that systemctl enable made
  blankslate.impermanence.etc_keep:
    paths:
      - /etc/systemd/system/blankslate-audit.timer
      - /etc/systemd/system/timers.target.wants/blankslate-audit.timer
    declaration: /etc/blankslate/system.toml
'''

RETURN = r'''
kept:
  description: The paths (relative to C(/etc)) that the audit found stray, drifted or lost, or the etc tree lacked.
  returned: always
  type: list
  elements: str
  sample: [default/atd]
etc_tree:
  description: The declaration's etc tree, on the host.
  returned: always
  type: str
report:
  description: What the binary printed.
  returned: always
  type: str
commands:
  description: The command lines run.
  returned: always
  type: list
  elements: list
'''

import hashlib
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.blankslate.impermanence.plugins.module_utils.blankslate import (
    Blankslate,
    merged_argument_spec,
)

# The audit's classes that say an /etc entry is not what the generation holds.
ETC_CLASSES = ('etc-stray', 'etc-drift', 'package-missing')
# Enough to list every finding: the audit's limit bounds only what it lists.
EVERY_FINDING = '1000000'


def below_etc(path):
    """`/etc/default/atd` or `default/atd` as `default/atd`."""
    relative = path[len('/etc/'):] if path.startswith('/etc/') else path
    return relative.strip('/')


def fingerprint(tree, relative):
    """Each entry at or below tree/relative: kind, mode, owner, and a hash of its
    contents or link target (None where there is nothing)."""
    entries = {}
    top = os.path.join(tree, relative)
    for path in [top] + [os.path.join(d, n) for d, dirs, files in os.walk(top) for n in dirs + files]:
        try:
            status = os.lstat(path)
        except OSError:
            entries[os.path.relpath(path, tree)] = None
            continue
        if os.path.islink(path):
            content = os.readlink(path).encode('utf-8', 'surrogateescape')
        elif os.path.isfile(path):
            with open(path, 'rb') as contents:
                content = contents.read()
        else:
            content = b''
        entries[os.path.relpath(path, tree)] = '%o %d:%d %s' % (
            status.st_mode, status.st_uid, status.st_gid, hashlib.sha256(content).hexdigest())
    return entries


def fingerprint_text(entries):
    return ''.join('%s %s\n' % (path, entries[path]) for path in sorted(entries))


def to_keep(blankslate, relatives, tree):
    """The paths the audit finds stray, drifted or lost (at or below them), and those
    the etc tree lacks."""
    report = blankslate.audit(['--no-sizes', '--limit', EVERY_FINDING])[1]
    flagged = [below_etc(f['path']) for f in report['findings']
               if f['class'] in ETC_CLASSES and f['path'].startswith('/etc/')]
    return [relative for relative in relatives
            if not os.path.lexists(os.path.join(tree, relative))
            or any(f == relative or f.startswith(relative + '/') for f in flagged)]


def main():
    module = AnsibleModule(
        argument_spec=merged_argument_spec(
            paths=dict(type='list', elements='str', required=True),
            declaration=dict(type='path', required=True),
            switch=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    blankslate = Blankslate(module)
    relatives = [below_etc(path) for path in params['paths']]
    checked = blankslate.run_json(['check'], ['--json', '--root', params['root'], '--', params['declaration']],
                                  target=False)[1]
    tree = (checked[0]['declaration'].get('etc_tree') or {}).get('source')
    if not tree:
        module.fail_json(msg='%s has no etc tree to keep /etc files in: add [etc_tree] with a source first'
                         % params['declaration'], commands=blankslate.commands)
    before = dict((r, fingerprint(tree, r)) for r in relatives)
    kept = to_keep(blankslate, relatives, tree)
    report = ''
    after = before
    if kept and not module.check_mode:
        arguments = ['--declaration', params['declaration']] + ([] if params['switch'] else ['--no-switch'])
        report = blankslate.run(['etc', 'keep'], arguments + ['--'] + ['/etc/' + r for r in kept])[1]
        after = dict((r, fingerprint(tree, r)) for r in relatives)
    result = dict(changed=bool(kept), kept=kept, etc_tree=tree, report=report, commands=blankslate.commands)
    if module._diff:
        result['diff'] = dict(before=''.join(fingerprint_text(before[r]) for r in relatives),
                              after=''.join(fingerprint_text(after[r]) for r in relatives))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
