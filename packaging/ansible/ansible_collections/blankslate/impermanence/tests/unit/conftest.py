# -*- coding: utf-8 -*-
# Copyright: blankslate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Runs the modules in this process against the real blankslate binary on scratch
roots, each with a tmpfs as its persistent volume. Mounting needs root and a private
mount namespace (packaging/ansible/test runs the tests under `unshare --mount
--propagation private`): without them the tests fail, they are not skipped, since
the point is the real binary's outputs.

ansible-test passes no environment of its own to the tests, so packaging/ansible/test
writes what they need into tests/output/blankslate-units.json: `binary`, the mount
namespace the tests were started from (`outer_mount_ns`), and `scratch`, the directory
the scratch roots go in (not /tmp, which the project's CI checks stays clean)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

V1 = '''version = 1

[persist."/persist"]
directories = ["/var/log"]

[etc."passwd"]
text = "root:x:0:0::/root:/bin/sh\\n"

[etc."group"]
text = "root:x:0:\\n"

[etc."hosts"]
text = "127.0.0.1 localhost\\n"
'''

# The same with another /etc/hosts: a second generation.
V2 = V1.replace('127.0.0.1 localhost', '127.0.0.1 localhost box')


class Exited(Exception):
    """What a module returned, with `failed` when it called fail_json."""

    def __init__(self, result):
        super(Exited, self).__init__(result)
        self.result = result


def _exit_json(self, **result):
    result.setdefault('changed', False)
    raise Exited(result)


def _fail_json(self, msg, **result):
    result.update(failed=True, msg=msg)
    raise Exited(result)


def run_module(module, args, check=False, diff=False):
    """Runs `module.main()` with `args` and returns its result."""
    args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args):
        original = basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json
        basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json = _exit_json, _fail_json
        try:
            module.main()
        except Exited as exited:
            return exited.result
        finally:
            basic.AnsibleModule.exit_json, basic.AnsibleModule.fail_json = original
    raise AssertionError('%s returned without exit_json or fail_json' % module.__name__)


def _mount_points_below(directory):
    with open('/proc/self/mountinfo') as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p == directory or p.startswith(directory + '/')]


SETTINGS = os.path.join(os.path.dirname(__file__), '..', 'output', 'blankslate-units.json')


def _settings():
    assert os.path.exists(SETTINGS), 'run the tests with packaging/ansible/test, which writes %s' % SETTINGS
    with open(SETTINGS) as settings:
        return json.load(settings)


class Host(object):
    """A scratch root with its volume mounted, the declarations beside it, and the
    module arguments that point the modules at it."""

    def __init__(self, directory, binary):
        self.directory = directory
        self.root = os.path.join(self.directory, 'root')
        os.makedirs(os.path.join(self.root, 'persist'))
        subprocess.check_call(['mount', '-t', 'tmpfs', 'volume', os.path.join(self.root, 'persist')])
        self.v1 = self.write('v1.toml', V1)
        self.v2 = self.write('v2.toml', V2)
        self.target = dict(binary=binary, root=self.root)

    def write(self, name, text):
        path = os.path.join(self.directory, name)
        with open(path, 'w') as declaration:
            declaration.write(text)
        return path

    def blankslate(self, *arguments):
        """The binary's own output, to compare the modules' results with."""
        return subprocess.run([self.target['binary']] + list(arguments) + ['--root', self.root],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, universal_newlines=True)

    def args(self, **specific):
        return dict(self.target, **specific)

    def wait_for_active(self, generation, seconds):
        """Waits until `generation` is active (a trial's watcher acts on its own)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            listed = json.loads(self.blankslate('generations', 'list', '--json').stdout)
            if [g['generation'] for g in listed if g['active']] == [generation]:
                return listed
            time.sleep(0.5)
        raise AssertionError('generation %d not active after %d s' % (generation, seconds))

    def unmount(self):
        for point in reversed(_mount_points_below(self.root)):
            subprocess.check_call(['umount', point])


@pytest.fixture
def host():
    settings = _settings()
    assert os.geteuid() == 0, 'the tests mount: run them as root'
    assert os.readlink('/proc/self/ns/mnt') != settings['outer_mount_ns'], \
        'the tests mount: run them in a private mount namespace (as packaging/ansible/test does)'
    scratch = Host(tempfile.mkdtemp(dir=settings['scratch']), settings['binary'])
    yield scratch
    scratch.unmount()
    shutil.rmtree(scratch.directory)


@pytest.fixture
def run():
    return run_module


def pytest_configure(config):
    """pytest's own temporary directories go to the scratch directory too."""
    if os.path.exists(SETTINGS) and not config.option.basetemp:
        config.option.basetemp = os.path.join(_settings()['scratch'], 'pytest')
