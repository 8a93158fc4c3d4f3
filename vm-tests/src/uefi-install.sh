#!/bin/bash
# The UEFI test's installer, run as init (PID 1) by the Debian kernel booted directly
# from the image tree on /dev/vdb: it installs that same tree onto /dev/vda the way
# Debian's installer lays out "guided, entire disk, encrypted LVM" on a UEFI machine
# (vmtest_layout=lvm, the default):
#   vda1  ESP (vfat), mounted at /boot/efi
#   vda2  /boot (ext4): kernels, initrds and GRUB's files, what the firmware's GRUB reads
#   vda3  LUKS2, holding the LVM group vg0 with the root (ext4); blankslate's volume is
#         made there later, on the installed system
# or, with vmtest_layout=luks (the kernel passes it to init as a variable), encryption
# without LVM: vda3 LUKS2 holding the root (ext4) directly, and vda4 a LUKS2 partition
# of its own (same key) in which blankslate's volume is made later.
# The LUKS key is a key file (/etc/keys/root.key, made by the host with the tree), which
# dracut puts into the initrd (install_items): the test has no one at the console to
# type a passphrase. On an unencrypted /boot such a key protects nothing; a real
# machine types a passphrase at the console, where systemd-cryptsetup asks for it. The
# initrd is the one the host built in the tree (dracut, chrooted): under emulation
# dracut takes minutes.
# Prints VMTEST INSTALLED and powers off; anything failing prints VMTEST INSTALL FAILED.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
step() { echo "VMTEST STEP $*"; }
trap 'echo "VMTEST INSTALL FAILED at line $LINENO"; sync; poweroff -f' ERR

for fs in proc:/proc sysfs:/sys devtmpfs:/dev tmpfs:/run; do
    mountpoint -q "${fs#*:}" || mount -t "${fs%%:*}" "${fs%%:*}" "${fs#*:}"
done
mount -o remount,rw /
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle

disk=/dev/vda
layout=${vmtest_layout:-lvm}
case $layout in
lvm) crypt="type=linux, name=crypt" ;;
luks) crypt="size=1536MiB, type=linux, name=crypt
type=linux, name=persist" ;;
*) echo "VMTEST INSTALL FAILED: vmtest_layout=$layout"; poweroff -f ;;
esac
step partitioning $disk for $layout
sfdisk --quiet "$disk" <<EOF
label: gpt
size=64MiB, type=uefi, name=esp
size=256MiB, type=linux, name=boot
$crypt
EOF
udevadm settle
mkfs.vfat -n ESP "${disk}1" >/dev/null
mkfs.ext4 -q -L boot "${disk}2"

step luks and $layout
# PBKDF2 with few iterations: the default (argon2id, a second of work and up to 1 GiB)
# is for passphrases; under emulation it would take minutes at every boot.
luks_format() {
    cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --key-file /etc/keys/root.key "$1"
}
luks_format "${disk}3"
luks=$(cryptsetup luksUUID "${disk}3")
cryptsetup open --key-file /etc/keys/root.key "${disk}3" "luks-$luks"
if [ "$layout" = lvm ]; then
    pvcreate -q "/dev/mapper/luks-$luks"
    vgcreate -q vg0 "/dev/mapper/luks-$luks"
    lvcreate -q -y -L 1536M -n root vg0
    root=/dev/vg0/root
    lvm_words=" rd.lvm.vg=vg0"
else
    luks_format "${disk}4"
    root=/dev/mapper/luks-$luks
    lvm_words=
fi
udevadm settle
mkfs.ext4 -q -L root "$root"

step copying the system
mount "$root" /mnt
mkdir /mnt/boot
mount "${disk}2" /mnt/boot
mkdir /mnt/boot/efi
mount "${disk}1" /mnt/boot/efi
tar -C / --one-file-system --exclude=./mnt --exclude=./lost+found -cf - . | tar -C /mnt -xpf -
mkdir -p /mnt/proc /mnt/sys /mnt/dev /mnt/run /mnt/tmp /mnt/mnt
rm -f /mnt/usr/local/sbin/vmtest-install

uuid() { blkid -s UUID -o value "$1"; }
cat >/mnt/etc/fstab <<EOF
# /etc/fstab: static file system information (written by the test's installer).
UUID=$(uuid "$root") / ext4 errors=remount-ro 0 1
UUID=$(uuid "${disk}2") /boot ext4 defaults 0 2
UUID=$(uuid "${disk}1") /boot/efi vfat umask=0077 0 1
EOF
# no_timer_check: the kernel's check of the timer interrupt fails now and then under
# emulation on a loaded machine ("IO-APIC + timer doesn't work"), as cloud images know.
# panic=-1: a panic reboots, which ends QEMU, instead of waiting forever.
cmdline="console=ttyS0 loglevel=6 no_timer_check panic=-1 rd.luks.uuid=$luks rd.luks.key=/etc/keys/root.key$lvm_words"
echo "$cmdline" >/mnt/etc/vmtest-cmdline
echo "$layout" >/mnt/etc/vmtest-layout
cat >/mnt/etc/default/grub <<EOF
# The test's: GRUB on the serial console, one second of menu, the entry chosen by
# grub-set-default (saved_entry) or, once, by grub-reboot (next_entry).
GRUB_DEFAULT=saved
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="$cmdline"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
EOF
step grub
for fs in proc sys dev run; do mount --rbind "/$fs" "/mnt/$fs"; done
chroot /mnt grub-install --target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram
chroot /mnt update-grub
grep -q "rd.luks.uuid=$luks" /mnt/boot/grub/grub.cfg

step unmounting
sync
umount -R /mnt
[ "$layout" = luks ] || vgchange -q -an vg0
cryptsetup close "luks-$luks"
echo "VMTEST INSTALLED luks=$luks"
sync
poweroff -f
