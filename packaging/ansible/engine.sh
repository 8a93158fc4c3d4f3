# shellcheck shell=bash disable=SC2154  # here, target and python are the caller's
# Sourced by packaging/ansible/test and packaging/ansible/rollout-on-vms: the engine the
# collection is run with. The caller sets `here` (this directory), `target` (cargo's
# target directory) and `python`.

# The collection's source.
collection=$here/ansible_collections/blankslate/impermanence

# ansible_venv: a virtual environment with ansible-core as pinned in requirements.txt
# (target/ansible-venv, made again when that file changes), put first on PATH.
ansible_venv() {
    local venv=$target/ansible-venv wanted
    wanted=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
    if [ "$(cat "$venv/requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
        echo "== venv: $("$python" --version), $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')"
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
        echo "$wanted" >"$venv/requirements.sha256"
    fi
    export PATH="$venv/bin:$PATH"
}

# install_collection BUILT INSTALLED: builds the collection's tarball with
# `ansible-galaxy collection build` into BUILT, and installs it (offline) into
# INSTALLED, emptied first: the collection as users install it.
install_collection() {
    local built=$1 installed=$2
    echo "== ansible-galaxy collection build, install"
    ansible-galaxy collection build --force --output-path "$built" "$collection"
    rm -rf "$installed"
    ansible-galaxy collection install --offline -p "$installed" \
        "$built/blankslate-impermanence-$(sed -n 's/^version: //p' "$collection/galaxy.yml").tar.gz"
}
