#!/bin/bash
# The UEFI test's probe, started by vmtest-probe.service once multi-user.target is
# reached, on the installed Debian and on blankslate alike. The host names the phase
# on a small read-only disk of its own (serial vmtest-phase): which system GRUB must
# have booted is the test's question, so nothing on the kernel command line says it.
# Prints VMTEST OK|FAIL per check and VMTEST FACT key=value, then VMTEST PASS or
# VMTEST FAILED, and reboots or powers off as the phase says.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
# The phase, and "broken-first" where the first try of blankslate must fail.
read -r phase variant < <(tr -d '\0' </dev/disk/by-id/virtio-vmtest-phase | head -n 1)
state=$(systemctl is-system-running --wait)
echo "VMTEST PHASE $phase"
fail=0
check() {
    local name=$1; shift
    if "$@"; then echo "VMTEST OK $name"; else echo "VMTEST FAIL $name"; fail=1; fi
}
fact() { echo "VMTEST FACT $1=$2"; }
# `exits N NAME COMMAND…`: runs COMMAND, shows its output led by `NAME: `, and checks
# that it exits with N.
exits() {
    local expected=$1 name=$2 status; shift 2
    "$@" >"/run/vmtest-$name.txt" 2>&1
    status=$?
    sed "s/^/$name: /" "/run/vmtest-$name.txt"
    [ "$status" = "$expected" ] || { echo "$name: exit status $status, expected $expected"; return 1; }
}
mounted() { # MOUNT_POINT FSTYPE SOURCE (of the mount on top)
    local found
    found="$(findmnt -n -o FSTYPE "$1" | tail -n 1) $(findmnt -n -o SOURCE "$1" | tail -n 1)"
    [ "$found" = "$2 $3" ] || { echo "$1: $found, expected $2 $3"; return 1; }
}
cmdline=$(cat /proc/cmdline)
luks=$(sed -n 's/.*rd\.luks\.uuid=\([^ ]*\).*/\1/p' /proc/cmdline)
# How the installer laid the disk out (uefi-install.sh): the root on LVM on LUKS, and
# the volume an LV beside it; or the root on LUKS and the volume on a LUKS partition.
layout=$(cat /etc/vmtest-layout)
root_luks=$(sed -n 's/.*rd\.luks\.uuid=\([^ ]*\).*/\1/p' /etc/vmtest-cmdline)
if [ "$layout" = lvm ]; then
    old_root=/dev/mapper/vg0-root
    volume=/dev/mapper/vg0-persist
else
    old_root=/dev/mapper/luks-$root_luks
    volume_luks=$(cryptsetup luksUUID /dev/vda4)
    volume=/dev/mapper/luks-$volume_luks
fi
esp=$(findmnt -n -o SOURCE /boot/efi)

# --- every boot: the firmware's GRUB booted it, the disk as installed ---
fact state "$state"
fact cmdline "$cmdline"
check running [ "$state" = running ]
[ "$state" = running ] || { systemctl --failed --no-legend; journalctl -b -p warning --no-pager | tail -n 40; }
check booted-through-uefi [ -d /sys/firmware/efi ]
check booted-by-grub grep -q 'BOOT_IMAGE=' /proc/cmdline
check luks-opened-in-the-initrd cryptsetup status "luks-$luks"
check boot-is-its-own-partition mounted /boot ext4 /dev/vda2
check esp-at-boot-efi mounted /boot/efi vfat /dev/vda1
check grub-reads-this-boot [ -f /boot/grub/grub.cfg ] && [ -f "/boot/vmlinuz-$(uname -r)" ]
fact next-entry "$(grub-editenv list | sed -n 's/^next_entry=//p')"

old_system() {
    check "root-on-$layout" mounted / ext4 "$old_root"
    check not-blankslate [ ! -e /run/blankslate/booted ]
}

case $phase in
installed)
    # The installed Debian: adopt it as the README's walkthrough does, on route b.
    old_system
    kver=$(uname -r)
    # The package and its dracut module in the initrd came with the image (see
    # uefi.rs: dracut in the guest would take minutes); the rest is done here.
    check package-installed dpkg -s blankslate
    check initrd-has-blankslate sh -c "lsinitrd /boot/initrd.img-$kver | grep -q usr/bin/blankslate"
    if [ "$layout" = lvm ]; then
        check lvm-volume exits 0 lvcreate lvcreate -q -y -L 1024M -n persist vg0
        volume_words=
    else
        # The LUKS partition the installer made: opened here by hand, and by dracut at
        # blankslate's boot, which its UUID on the entry's command line asks for.
        check luks-volume cryptsetup open --key-file /etc/keys/root.key /dev/vda4 "luks-$volume_luks"
        volume_words=" rd.luks.uuid=$volume_luks"
    fi
    check volume-mkfs exits 0 mkfs mkfs.ext4 -q -L persist "$volume"
    mkdir -p /mnt/persist
    check volume-mounted mount "$volume" /mnt/persist
    cat >/etc/blankslate/initrd.conf <<EOF
ROUTE=b
CMDLINE="$(cat /etc/vmtest-cmdline)$volume_words root=tmpfs rootflags=mode=755 blankslate.persist=LABEL=persist"
GRUB_ROOT=$(findmnt -n -o SOURCE /)
EOF
    check update-grub-diverted [ -x /usr/sbin/update-grub.distrib ]
    check adopt exits 0 adopt blankslate adopt --from / --to /mnt/persist
    check adopt-leaves-the-boot-partition-mounted grep -Eq '^ +/boot +a file system of its own, mounted there as before' \
        /run/vmtest-adopt.txt
    check boot-stays-in-the-fstab grep -Eq '^UUID=[^ ]+ /boot ext4' /mnt/persist/etc/blankslate/etc/fstab
    check update-grub exits 0 update-grub update-grub
    check grub-lists-blankslate grep -q "menuentry 'blankslate, with Linux $kver'" /boot/grub/grub.cfg
    # The first try is broken on purpose: the volume's label is not yet what the
    # entry names, so blankslate's initrd service fails and the boot never ends.
    [ "$variant" != broken-first ] || check label-broken e2label "$volume" notyet
    umount /mnt/persist
    check one-time-entry grub-reboot blankslate
    fact next-entry-set "$(grub-editenv list | sed -n 's/^next_entry=//p')"
    after=reboot
    ;;
fallback)
    # GRUB used the one-time entry and forgot it: a reset comes back here by itself.
    old_system
    check next-entry-consumed [ -z "$(grub-editenv list | sed -n 's/^next_entry=//p')" ]
    check label-mended e2label "$volume" persist
    check one-time-entry grub-reboot blankslate
    after=reboot
    ;;
blankslate)
    check root-is-tmpfs [ "$(findmnt -n -o FSTYPE /)" = tmpfs ]
    check booted-by-blankslate [ -e /run/blankslate/booted ]
    # The volume is the LV or the partition in the encrypted disk (by device number:
    # the mount's source names whichever path to it blankslate found).
    persist=$(lsblk -dno MAJ:MIN "$volume" | tr -d ' ')
    check "volume-on-$layout" sh -c "findmnt -rn -o MAJ:MIN | grep -qx '$persist'"
    check blankslate-cmdline grep -q 'root=tmpfs' /proc/cmdline
    check next-entry-consumed [ -z "$(grub-editenv list | sed -n 's/^next_entry=//p')" ]
    check audit-clean exits 0 audit blankslate audit
    # The /boot model: kernels and initrds go to the partition GRUB reads, from here
    # too, and update-grub works here (the package's, with GRUB_ROOT as `/`): as the
    # admin runs it, and as a kernel's installation does (zz-update-grub). Nothing
    # changed since the old system wrote grub.cfg, so it writes the same file: Debian's
    # entries boot the old root (the "old" phase boots one), blankslate's this system.
    check boot-is-writable sh -c 'touch /boot/vmtest-written && rm /boot/vmtest-written'
    cp /boot/grub/grub.cfg /run/vmtest-grub.cfg
    check update-grub exits 0 update-grub update-grub
    check grub-cfg-as-the-old-system-wrote-it diff -u /run/vmtest-grub.cfg /boot/grub/grub.cfg
    # Debian's 10_linux names an LV by its path, a file system elsewhere by its UUID.
    if [ "$layout" = lvm ]; then old_root_word=root=$old_root; else
        old_root_word=root=UUID=$(blkid -s UUID -o value "$old_root"); fi
    check debian-entry-boots-the-old-root grep -q "$old_root_word" /boot/grub/grub.cfg
    check kernel-install-updates-grub exits 0 zz-update-grub /etc/kernel/postinst.d/zz-update-grub "$(uname -r)" \
        "/boot/vmlinuz-$(uname -r)"
    check zz-update-grub-ran grep -q 'Generating grub configuration file' /run/vmtest-zz-update-grub.txt
    check grub-cfg-still-the-same diff -u /run/vmtest-grub.cfg /boot/grub/grub.cfg
    check nothing-left-mounted sh -c '! findmnt -rn -o TARGET | grep -q grub-root'
    # From now on GRUB boots blankslate by itself (GRUB_DEFAULT=saved).
    check permanent-default grub-set-default blankslate
    after=reboot
    ;;
blankslate-default)
    check root-is-tmpfs [ "$(findmnt -n -o FSTYPE /)" = tmpfs ]
    check booted-by-blankslate [ -e /run/blankslate/booted ]
    check saved-entry [ "$(grub-editenv list | sed -n 's/^saved_entry=//p')" = blankslate ]
    check next-entry-none [ -z "$(grub-editenv list | sed -n 's/^next_entry=//p')" ]
    check audit-clean exits 0 audit blankslate audit
    # And back to the old system, for good, by its entry's title.
    check default-back grub-set-default 'Debian GNU/Linux'
    after=reboot
    ;;
old)
    # Nothing asked for blankslate: GRUB's default is the old system, which still boots.
    old_system
    after=poweroff
    ;;
*)
    echo "VMTEST FAIL unknown-phase $phase"
    fail=1
    after=poweroff
    ;;
esac

sync
if [ "$fail" = 0 ]; then echo "VMTEST PASS"; else echo "VMTEST FAILED"; fi
systemctl "$after"
