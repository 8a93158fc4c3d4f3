#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: persist
short_description: Persist a live path on a blankslate host
description:
  - Moves a live path into the persistent volume, bind-mounts it over the original and adds the entry to the
    declaration file, keeping its comments and layout (C(blankslate persist add)). A crash at any point loses
    nothing.
  - Changes nothing when the declaration already declares the path (C(blankslate persist list)).
version_added: 0.1.0
author: blankslate contributors (!UNKNOWN)
extends_documentation_fragment:
  - blankslate.impermanence.target
  - ansible.builtin.action_common_attributes
options:
  path:
    description:
      - The live path (absolute), a directory or a regular file.
    type: path
    required: true
  declaration:
    description:
      - The declaration file on the host to read and edit.
    type: path
    required: true
  volume:
    description:
      - The persistent root to move it to. By default the only one declared.
    type: path
  user:
    description:
      - The owner to declare. By default the live path's.
    type: str
  group:
    description:
      - The group to declare. By default the live path's.
    type: str
  mode:
    description:
      - The mode to declare, in octal. By default the live path's.
    type: str
  how:
    description:
      - For a file, a bind mount or a symlink into the volume.
    type: str
    choices: [bind, symlink]
attributes:
  check_mode:
    support: full
    details: Says whether the path is declared yet, and moves nothing.
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Keep PostgreSQL's data across reboots
  blankslate.impermanence.persist:
    path: /var/lib/postgresql
    declaration: /etc/blankslate/system.toml
'''

RETURN = r'''
entry:
  description: The declared entry, from C(persist list --json) (path, volume, kind, owner, mode, state, problems).
  returned: when the path is declared (always, except in check mode before the first run)
  type: dict
  sample: {path: /srv/app, volume: /persist, kind: directory, user: root, group: root, mode: '0755',
           state: mounted, problems: []}
moved:
  description: What C(persist add --json) reports it did (files, directories, bytes copied, generations made).
  returned: changed and not in check mode
  type: dict
commands:
  description: The command lines run.
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.blankslate.impermanence.plugins.module_utils.blankslate import (
    Blankslate,
    merged_argument_spec,
)


def declared_entry(blankslate, path, declaration):
    """The entry declaring `path`, from `persist list` (which exits 1 when some
    entry is not as declared: that is a report too)."""
    listed = blankslate.run_json(['persist', 'list'], ['--json', '--declaration', declaration], ok=(0, 1))[1]
    return next((entry for entry in listed['entries'] if entry['path'] == path), None)


def add_arguments(params):
    arguments = ['--json', '--declaration', params['declaration']]
    for option in ('volume', 'user', 'group', 'mode', 'how'):
        if params[option] is not None:
            arguments += ['--' + option, params[option]]
    return arguments + ['--', params['path']]


def main():
    module = AnsibleModule(
        argument_spec=merged_argument_spec(
            path=dict(type='path', required=True),
            declaration=dict(type='path', required=True),
            volume=dict(type='path'),
            user=dict(type='str'),
            group=dict(type='str'),
            mode=dict(type='str'),
            how=dict(type='str', choices=['bind', 'symlink']),
        ),
        supports_check_mode=True,
    )
    params = module.params
    blankslate = Blankslate(module)
    entry = declared_entry(blankslate, params['path'], params['declaration'])
    if entry is not None or module.check_mode:
        module.exit_json(changed=entry is None, entry=entry, commands=blankslate.commands)
    moved = blankslate.run_json(['persist', 'add'], add_arguments(params))[1]
    entry = declared_entry(blankslate, params['path'], params['declaration'])
    module.exit_json(changed=True, entry=entry, moved=moved, commands=blankslate.commands)


if __name__ == '__main__':
    main()
