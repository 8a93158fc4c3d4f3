# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options every blankslate module takes: which binary, which root.
    DOCUMENTATION = r'''
options:
  binary:
    description:
      - The blankslate binary to run, by path or by name (looked up in C(PATH)).
    type: str
    default: blankslate
  root:
    description:
      - The root directory of the system to work on, as the binary's C(--root).
      - V(/) on a host; a scratch directory in tests.
    type: path
    default: /
  state_dir:
    description:
      - Where the store and profiles live, as seen from inside O(root) (the binary's C(--state-dir)).
    type: str
    default: /var/lib/blankslate
  lock_timeout:
    description:
      - Wait at most this many seconds for the lock another blankslate command holds, then fail.
      - Without it the binary waits as long as the other command runs.
    type: int
attributes:
  platform:
    platforms: posix
    details: A Linux host with blankslate.
requirements:
  - the blankslate binary on the managed host
notes:
  - The binary's exit codes are the contract. 0 is success, 1 an invalid declaration, 2 a wrong command line,
    3 a failure (I/O, permissions, lock, broken state). A module fails with the binary's own message on any
    code that is not a result.
'''
