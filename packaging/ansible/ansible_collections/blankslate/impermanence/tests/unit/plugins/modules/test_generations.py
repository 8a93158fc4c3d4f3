# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""generations against the real binary: list, rollback, delete, gc."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.blankslate.impermanence.plugins.modules import generations, switch


def test_list_rollback_delete_gc(host, run):
    run(switch, host.args(declaration=host.v1))
    run(switch, host.args(declaration=host.v2))
    listed = run(generations, host.args())
    assert not listed['changed'] and [g['generation'] for g in listed['generations']] == [1, 2]
    assert listed['marks']['active'] == 2

    predicted = run(generations, host.args(action='rollback'), check=True, diff=True)
    assert predicted['changed'] and predicted['marks']['active'] == 2
    assert 'generation 2 -> generation 1' in predicted['diff']['prepared']
    rolled = run(generations, host.args(action='rollback'))
    assert rolled['changed'] and rolled['marks']['active'] == 1 and rolled['marks']['boot_default'] == 1
    first = run(generations, host.args(action='rollback'))
    assert first['failed'] and 'no generation before 1' in first['msg']

    assert run(generations, host.args(action='delete', numbers=[2, 9]), check=True)['deleted'] == [2]
    assert len(run(generations, host.args())['generations']) == 2
    deleted = run(generations, host.args(action='delete', numbers=[2, 9]))
    assert deleted['changed'] and deleted['deleted'] == [2]
    assert [g['generation'] for g in deleted['generations']] == [1]
    assert not run(generations, host.args(action='delete', numbers=[2]))['changed']

    would = run(generations, host.args(action='gc'), check=True)
    assert would['changed'] and would['collected']['dry_run'] and would['collected']['removed']
    collected = run(generations, host.args(action='gc'))
    assert collected['changed'] and collected['collected']['removed'] == would['collected']['removed']
    assert not run(generations, host.args(action='gc'))['changed']
