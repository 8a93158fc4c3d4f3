#!/bin/bash
# dracut module: the static blankslate binary and blankslate-initrd.service in a
# systemd initrd. Install this directory as /usr/lib/dracut/modules.d/90blankslate
# and build with `dracut --add blankslate`.

check() {
    require_binaries blankslate || return 1
    # Only when asked for (--add blankslate or add_dracutmodules+=" blankslate ").
    return 255
}

depends() {
    echo systemd
}

install() {
    inst_binary "$(command -v blankslate)" /usr/bin/blankslate
    inst_simple "$moddir/blankslate-initrd.service" "$systemdsystemunitdir/blankslate-initrd.service"
    $SYSTEMCTL -q --root "$initdir" enable blankslate-initrd.service
}
