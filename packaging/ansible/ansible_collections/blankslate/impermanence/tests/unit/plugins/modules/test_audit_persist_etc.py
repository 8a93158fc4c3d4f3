# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""audit, persist and etc_keep against the real binary."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.blankslate.impermanence.plugins.modules import audit, etc_keep, persist, switch


def test_the_audit_is_facts_with_counts_per_class(host, run):
    run(switch, host.args(declaration=host.v1))
    clean = run(audit, host.args())
    facts = clean['ansible_facts']['blankslate_audit']
    assert not clean['changed'] and clean['exit_code'] == 0 and facts['exit_code'] == 0
    assert facts['generation'] == 1 and facts['generations']['active'] == 1
    assert set(clean['counts']) >= set(['undeclared', 'etc-drift', 'persist', 'volume', 'fallback'])
    os.makedirs(os.path.join(host.root, 'srv/new'))
    with open(os.path.join(host.root, 'srv/new/file'), 'w') as written:
        written.write('x')
    found = run(audit, host.args(no_sizes=True), check=True)
    assert found['exit_code'] == 1 and found['counts']['undeclared'] == 1
    assert [(f['class'], f['path']) for f in found['ansible_facts']['blankslate_audit']['findings']] == \
        [('undeclared', '/srv/new')]
    # The same report the binary prints, with the counts beside it.
    printed = json.loads(host.blankslate('audit', '--json', '--no-sizes').stdout)
    assert printed['summary']['undeclared']['count'] == found['counts']['undeclared']
    gated = run(audit, host.args(max_exit_code=0))
    assert gated['failed'] and 'exited 1 (above 0): undeclared /srv/new' in gated['msg']
    assert gated['ansible_facts']['blankslate_audit']['counts']['undeclared'] == 1


def test_drift_exits_2(host, run):
    run(switch, host.args(declaration=host.v1))
    hosts = os.path.join(host.root, 'etc/hosts')
    os.remove(hosts)
    with open(hosts, 'w') as edited:
        edited.write('edited\n')
    drifted = run(audit, host.args())
    assert drifted['exit_code'] == 2 and drifted['counts']['etc-drift'] == 1


def test_persist_moves_once_and_declares(host, run):
    run(switch, host.args(declaration=host.v1))
    os.makedirs(os.path.join(host.root, 'srv/app'))
    with open(os.path.join(host.root, 'srv/app/data'), 'w') as data:
        data.write('kept\n')
    predicted = run(persist, host.args(path='/srv/app', declaration=host.v1), check=True)
    assert predicted['changed'] and predicted['entry'] is None
    assert '/srv/app' not in open(host.v1).read()
    moved = run(persist, host.args(path='/srv/app', declaration=host.v1))
    assert moved['changed'] and moved['entry']['state'] == 'mounted' and moved['moved']['files'] == 1
    assert '"/srv/app"' in open(host.v1).read()
    with open(os.path.join(host.root, 'persist/srv/app/data')) as volume:
        assert volume.read() == 'kept\n'
    again = run(persist, host.args(path='/srv/app', declaration=host.v1))
    assert not again['changed'] and again['entry']['path'] == '/srv/app'


def test_etc_keep_keeps_once(host, run):
    tree = os.path.join(host.directory, 'etc-tree')
    os.mkdir(tree)
    declaration = host.write('tree.toml', open(host.v1).read() + '\n[etc_tree]\nsource = "etc-tree"\n')
    run(switch, host.args(declaration=declaration))
    os.makedirs(os.path.join(host.root, 'etc/default'))
    with open(os.path.join(host.root, 'etc/default/atd'), 'w') as written:
        written.write('OPTS="-b 60"\n')
    predicted = run(etc_keep, host.args(paths=['/etc/default/atd'], declaration=declaration), check=True)
    assert predicted['changed'] and predicted['kept'] == ['default/atd']
    assert not os.path.exists(os.path.join(tree, 'default/atd'))
    kept = run(etc_keep, host.args(paths=['/etc/default/atd'], declaration=declaration), diff=True)
    assert kept['changed'] and kept['etc_tree'] == tree
    with open(os.path.join(tree, 'default/atd')) as copied:
        assert copied.read() == 'OPTS="-b 60"\n'
    assert 'default/atd None' in kept['diff']['before'] and 'default/atd 100644 0:0' in kept['diff']['after']
    assert run(audit, host.args())['exit_code'] == 0
    again = run(etc_keep, host.args(paths=['default/atd'], declaration=declaration))
    assert not again['changed'] and again['kept'] == []


def test_etc_keep_needs_an_etc_tree(host, run):
    run(switch, host.args(declaration=host.v1))
    failed = run(etc_keep, host.args(paths=['/etc/hosts'], declaration=host.v1))
    assert failed['failed'] and 'has no etc tree' in failed['msg']
