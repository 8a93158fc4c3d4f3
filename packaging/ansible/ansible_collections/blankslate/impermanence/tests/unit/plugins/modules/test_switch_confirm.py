# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""switch and confirm against the real binary: what changes, what a trial does
without a confirm, what check and diff mode say."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.blankslate.impermanence.plugins.modules import confirm, switch


def listed(host):
    return json.loads(host.blankslate('generations', 'list', '--json').stdout)


def test_a_switch_changes_once_then_nothing(host, run):
    first = run(switch, host.args(declaration=host.v1))
    assert first['changed'] and first['generation'] == 1 and first['previous'] is None
    assert first['marks'] == dict(active=1, boot_default=1, booted=None, good=None, on_trial=False)
    assert first['report']['etc']['added'] == 3 and first['report']['generation'] == 1
    again = run(switch, host.args(declaration=host.v1))
    assert not again['changed'] and again['generation'] == 1
    # Only the dry run ran: no second switch.
    assert [c[1] for c in again['commands']] == ['generations', 'switch', 'generations']
    assert '--dry-run' in again['commands'][1]
    by_number = run(switch, host.args(generation=1))
    assert not by_number['changed']


def test_check_mode_predicts_and_changes_nothing(host, run):
    run(switch, host.args(declaration=host.v1))
    before = listed(host)
    predicted = run(switch, host.args(declaration=host.v2), check=True, diff=True)
    assert predicted['changed'] and predicted['generation'] == 2 and predicted['previous'] == 1
    assert listed(host) == before
    assert 'hosts' in predicted['diff']['prepared']
    assert 'active: 1' in predicted['diff']['before'] and 'active: 2' in predicted['diff']['after']


def test_a_trial_is_kept_by_confirm(host, run):
    run(switch, host.args(declaration=host.v1))
    trial = run(switch, host.args(declaration=host.v2, confirm_within='5m'))
    assert trial['changed'] and trial['on_trial'] and trial['previous'] == 1
    assert trial['marks']['active'] == 2 and trial['marks']['boot_default'] == 1
    assert trial['report']['trial']['generation'] == 2 and trial['report']['trial']['previous'] == 1
    assert run(confirm, host.args(), check=True)['changed']
    assert listed(host)[1]['notes'], 'check mode confirmed the trial'
    confirmed = run(confirm, host.args(), diff=True)
    assert confirmed['changed'] and confirmed['generation'] == 2
    assert confirmed['marks']['boot_default'] == 2 and not confirmed['marks']['on_trial']
    assert 'on_trial: True' in confirmed['diff']['before']
    assert not run(confirm, host.args())['changed']
    # The same declaration again, on trial or not: nothing to do, no trial started.
    assert not run(switch, host.args(declaration=host.v2, confirm_within='5m'))['changed']
    assert not any(g['notes'] for g in listed(host))


def test_a_trial_without_confirm_falls_back_by_itself(host, run):
    run(switch, host.args(declaration=host.v1))
    trial = run(switch, host.args(declaration=host.v2, confirm_within='2s'))
    assert trial['on_trial']
    after = host.wait_for_active(1, 30)
    assert [g['generation'] for g in after if g['boot_default']] == [1]
    assert any('not confirmed' in note or 'again' in note for g in after for note in g['notes']), after
    # Nothing is on trial any more: confirm has nothing to do.
    assert not run(confirm, host.args())['changed']


def test_test_mode_leaves_the_boot_default(host, run):
    run(switch, host.args(declaration=host.v1))
    tried = run(switch, host.args(declaration=host.v2, mode='test'))
    assert tried['changed'] and tried['marks']['active'] == 2 and tried['marks']['boot_default'] == 1
    assert not run(switch, host.args(generation=2, mode='test'))['changed']
    booting = run(switch, host.args(generation=2, mode='boot'))
    assert booting['changed'] and booting['marks']['boot_default'] == 2


def test_a_broken_declaration_fails_and_changes_nothing(host, run):
    run(switch, host.args(declaration=host.v1))
    before = listed(host)
    broken = host.write('broken.toml', 'version = 1\n[persist."/persist"]\ndirectories = ["relative"]\n')
    failed = run(switch, host.args(declaration=broken))
    assert failed['failed'] and 'blankslate switch exited 1' in failed['msg']
    assert listed(host) == before


def test_arguments_become_the_binarys_command_line(host, run):
    run(switch, host.args(declaration=host.v1))
    result = run(switch, host.args(declaration=host.v2, mode='test', refuse_conflicts=True, lock_timeout=7))
    real = result['commands'][2]
    assert real[:2] == [host.target['binary'], 'switch']
    assert real[2:] == ['--root', host.root, '--state-dir', '/var/lib/blankslate', '--lock-timeout', '7',
                        '--test', '--refuse-conflicts', '--json', '--', host.v2]


def test_a_declaration_named_like_an_option_is_a_file(host, run, monkeypatch):
    run(switch, host.args(declaration=host.v1))
    host.write('--test', open(host.v2).read())
    monkeypatch.chdir(host.directory)
    switched = run(switch, host.args(declaration='--test'))
    assert switched['changed'] and switched['marks']['active'] == 2 and switched['marks']['boot_default'] == 2


def test_a_missing_root_fails_with_the_binarys_message(host, run):
    failed = run(switch, dict(host.target, root=host.root + '/nothing-here', generation=1))
    assert failed['failed'] and 'exited 3' in failed['msg'] and 'nothing-here' in failed['msg']
