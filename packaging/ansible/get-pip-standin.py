# Stands in for pip's get-pip.py, the script ansible-test downloads from
# ci-files.testing.ansible.com to put pip into the virtual environments it makes for
# each sanity test (a download that fails where only package registries are
# reachable). The test script saves it where ansible-test caches that download. Like
# get-pip.py it takes pip's install arguments, minus its own --no-setuptools and
# --no-wheel: pip comes from Python's own ensurepip, then installs what was asked.
import subprocess
import sys

# In a process of its own: ensurepip turns pip's configuration off in the environment
# of the process that runs it (PIP_CONFIG_FILE=/dev/null), and the install below needs it.
subprocess.check_call([sys.executable, '-m', 'ensurepip'])
arguments = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + arguments))
