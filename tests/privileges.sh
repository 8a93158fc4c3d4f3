# What ./demo and ./test share (sourced, not run): they build as the person who runs
# them, with the Rust toolchain in that person's PATH, and use sudo only for what needs
# root. Under sudo, PATH is reset and cargo is usually not found: say so plainly.

# need_cargo SCRIPT: stops with an explanation if cargo is not in PATH.
need_cargo() {
    command -v cargo >/dev/null && return
    if [ -n "${SUDO_USER:-}" ]; then
        echo "$1: cargo is not in PATH (sudo resets PATH): run ./$1 as yourself, without sudo;" \
            "it builds with your Rust toolchain and asks sudo itself for what needs root" >&2
    else
        echo "$1: cargo is not in PATH: install a Rust toolchain (https://rustup.rs) first" >&2
    fi
    exit 1
}

# need_sudo SCRIPT WHY: stops with an explanation if sudo cannot be used; otherwise
# asks for the password now, once, rather than in the middle of the output.
need_sudo() {
    if ! command -v sudo >/dev/null; then
        echo "$1: $2: run ./$1 as root, or install sudo" >&2
        exit 1
    fi
    sudo -v
}
