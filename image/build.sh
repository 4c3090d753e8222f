#!/usr/bin/env bash
# Builds the CompuShare rig USB image: target/image/compushare-rig.img.
#
# One raw disk image (MBR, one FAT32 partition labelled COMPUSHARE) that boots by legacy
# BIOS (syslinux) and by UEFI (systemd-boot, \EFI\BOOT\BOOTX64.EFI) from the same kernel and
# initramfs files. Everything comes from Debian packages (apt-get download + dpkg-deb -x)
# and this workspace's release binaries; no root, loop devices or mounts are needed.
#
# Usage: image/build.sh [--rig-conf FILE] [--nvidia] [--no-cargo] [--out FILE]
#   --rig-conf FILE  put FILE on the stick as rig.conf (default: rig.conf.example, whose
#                    placeholders keep the rig in maintenance mode until edited)
#   --nvidia         add NVIDIA's kernel modules (built from Debian's nvidia-kernel-source
#                    against the image's kernel headers), GSP firmware and libcuda; needs
#                    the non-free and non-free-firmware components in apt's sources
#   --no-cargo       use the binaries already in target/release
#   --out FILE       write the image there instead
# Environment: IMAGE_MB (disk size, default 48; 320 with --nvidia), ZSTD_LEVEL, KERNEL_PKG (default: what
# linux-image-amd64 depends on), SOURCE_DATE_EPOCH (timestamps; default: the last commit).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RIG_CONF=image/rig.conf.example
NVIDIA=0
CARGO=1
OUT=target/image/compushare-rig.img
while [ $# -gt 0 ]; do
    case "$1" in
        --rig-conf) RIG_CONF=$2; shift 2 ;;
        --nvidia) NVIDIA=1; shift ;;
        --no-cargo) CARGO=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

# 48 MiB: FAT32 needs about 33 MiB; the rest is room for STATE_DIR. NVIDIA's driver, firmware
# and NVRTC need far more (and are outside the 64 MiB budget).
if [ "$NVIDIA" = 1 ]; then IMAGE_MB=${IMAGE_MB:-320}; else IMAGE_MB=${IMAGE_MB:-48}; fi
ZSTD_LEVEL=${ZSTD_LEVEL:-$([ "$NVIDIA" = 1 ] && echo 12 || echo 19)}
WORK="$ROOT/target/image/work"
DEBS=target/image/debs
mkdir -p "$WORK" "$DEBS" "$(dirname "$OUT")"
say() { echo "build.sh: $*" >&2; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

for tool in apt-get apt-cache dpkg-deb depmod modprobe cpio zstd mkfs.vfat mmd mcopy syslinux sfdisk strip ldd; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install --no-install-recommends kmod cpio zstd dosfstools mtools syslinux fdisk binutils"
done
[ -f "$RIG_CONF" ] || die "$RIG_CONF: no such file"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# --- binaries --------------------------------------------------------------------------------
if [ "$CARGO" = 1 ]; then
    cargo build --release --locked -p compushare -p compushare-init >&2
fi
for b in compushare compushare-init; do
    [ -x "target/release/$b" ] || die "target/release/$b missing (run without --no-cargo)"
done

# --- Debian packages (cached in target/image/debs) -------------------------------------------
KERNEL_PKG=${KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}
if [ -z "$KERNEL_PKG" ]; then
    # No apt lists (offline): use the newest kernel already cached.
    KERNEL_PKG=$(ls "$DEBS"/linux-image-[0-9]*_amd64.deb 2>/dev/null | sort -V | tail -1 | xargs -r basename | cut -d_ -f1)
fi
[ -n "$KERNEL_PKG" ] || die "cannot tell which kernel to use: run apt-get update, or set KERNEL_PKG"
KVER=${KERNEL_PKG#linux-image-}
PKGS=("$KERNEL_PKG" libc6 libgcc-s1 syslinux-common systemd-boot-efi ca-certificates)
if [ "$NVIDIA" = 1 ]; then
    PKGS+=(nvidia-kernel-source firmware-nvidia-gsp libcuda1 libnvidia-ptxjitcompiler1
           libnvrtc11.2 libnvrtc-builtins11.8
           "linux-headers-$KVER" "linux-headers-${KVER%-amd64}-common" "linux-kbuild-$(cut -d. -f1,2 <<<"$KVER")")
fi

# The .deb of package $1 in the cache: the version apt would install now if apt knows the
# package (so a security update is picked up), else the newest cached one.
deb_of() {
    local want
    want=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$want" ] && [ "$want" != "(none)" ]; then
        ls "$DEBS/$1_${want//:/%3a}_"*.deb 2>/dev/null | head -1
    else
        ls "$DEBS/$1_"*.deb 2>/dev/null | sort -V | tail -1
    fi
}
missing=()
for p in "${PKGS[@]}"; do
    [ -n "$(deb_of "$p")" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "downloading ${missing[*]}"
    (cd "$DEBS" && apt-get download "${missing[@]}" >&2) || die "apt-get download ${missing[*]} failed (run apt-get update; --nvidia needs non-free)"
fi
extract() { # package -> directory with its files (cached by .deb name)
    local deb dir
    deb=$(deb_of "$1")
    [ -n "$deb" ] || die "no .deb for $1"
    dir="$WORK/pkg/$(basename "$deb" .deb)"
    if [ ! -e "$dir/.done" ]; then
        rm -rf "$dir" && mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir"
        touch "$dir/.done"
    fi
    echo "$dir"
}
KDIR=$(extract "$KERNEL_PKG")
LIBC=$(extract libc6)
LIBGCC=$(extract libgcc-s1)
SYSLINUX=$(extract syslinux-common)
SDBOOT=$(extract systemd-boot-efi)
CACERTS=$(extract ca-certificates)
VMLINUZ="$KDIR/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || die "$VMLINUZ missing from $KERNEL_PKG"
[ -f "$KDIR/lib/modules/$KVER/modules.dep" ] || depmod -b "$KDIR" "$KVER"

# --- initramfs -------------------------------------------------------------------------------
RD="$WORK/initramfs"
rm -rf "$RD"
mkdir -p "$RD"/{dev,proc,sys,run,tmp,stick,root,etc/compushare,usr/bin,lib64,lib/x86_64-linux-gnu,lib/modules,etc/ssl/certs}
ln -s usr/bin "$RD/bin"
strip -o "$RD/init" target/release/compushare-init
strip -o "$RD/usr/bin/compushare" target/release/compushare

# The dynamic loader and the libraries ldd lists, taken from the Debian packages (not the
# build host), so the image is what the packages say.
copy_lib() { # soname
    local f
    f=$(find "$LIBC" "$LIBGCC" -name "$1" \( -type f -o -type l \) | head -1)
    [ -n "$f" ] || die "library $1 not found in libc6/libgcc-s1"
    cp -L "$f" "$RD/lib/x86_64-linux-gnu/$1"
}
for bin in target/release/compushare target/release/compushare-init; do
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1}'); do
        [ -e "$RD/lib/x86_64-linux-gnu/$lib" ] || copy_lib "$lib"
    done
done
copy_lib ld-linux-x86-64.so.2
# The ELF interpreter path every x86-64 glibc program names.
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$RD/lib64/ld-linux-x86-64.so.2"

# Kernel modules, in the load order modprobe computes (module parameters after the path).
# Storage first (USB enumerates while the rest loads), then FAT, then NICs.
WANT=(xhci-pci ehci-pci ohci-pci uhci-hcd usb-storage:delay_use=0 uas sd_mod ahci nvme
      virtio_pci virtio_blk virtio_scsi
      vfat nls_cp437 nls_ascii nls_utf8
      virtio_net e1000 e1000e igb r8169 virtio-rng)
# nvidia.ko needs drm (nvidia_add checks every dependency of the modules it builds).
[ "$NVIDIA" = 1 ] && WANT+=(drm)
MODDIR="$RD/lib/modules"
ORDER="$MODDIR/load-order"
: >"$ORDER"
declare -A seen=()
for w in "${WANT[@]}"; do
    mod=${w%%:*}; params=""
    [ "$w" != "$mod" ] && params=${w#*:}
    lines=$(modprobe -d "$KDIR" -S "$KVER" --show-depends "$mod" 2>&1) || die "modprobe --show-depends $mod: $lines"
    # The wanted module is the last line; its dependencies come before it.
    last=$(awk '$1 == "insmod" {p = $2} END {print p}' <<<"$lines")
    while read -r kind path _; do
        [ "$kind" = insmod ] || continue # builtin: nothing to load
        rel=${path#"$KDIR/lib/modules/$KVER/"}
        [ -n "${seen[$rel]:-}" ] && continue
        seen[$rel]=1
        mkdir -p "$MODDIR/$(dirname "$rel")"
        cp "$path" "$MODDIR/$rel"
        if [ "$path" = "$last" ] && [ -n "$params" ]; then
            echo "$rel ${params//,/ }" >>"$ORDER"
        else
            echo "$rel" >>"$ORDER"
        fi
    done <<<"$lines"
done

# Static files: name service, hosts, CA bundle for stratum+ssl pools.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$RD/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/nonexistent\n' >"$RD/etc/passwd"
printf 'root:x:0:\n' >"$RD/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$RD/etc/hosts"
find "$CACERTS/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat >"$RD/etc/ssl/certs/ca-certificates.crt"

# Controller flags this build's binary has (the init passes them): the serial console on
# ttyS0 even when rig.conf is broken or does not name one.
: >"$RD/etc/compushare/controller.args"
if target/release/compushare rig --help 2>/dev/null | grep -q -- '--serial-console'; then
    printf -- '--serial-console\n/dev/ttyS0\n' >>"$RD/etc/compushare/controller.args"
fi
VERSION=$(target/release/compushare --version 2>/dev/null | awk '{print $2}')
BUILD="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +)"
cat >"$RD/etc/compushare/release" <<REL
VERSION=${VERSION:-unknown}
BUILD=$BUILD
KERNEL=$KVER
BUILT=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
NVIDIA=$NVIDIA
REL

if [ "$NVIDIA" = 1 ]; then
    # shellcheck source=image/nvidia.sh
    . image/nvidia.sh
    nvidia_add "$RD" "$KDIR" "$KVER"
fi

# Deterministic archive: sorted names, fixed times, root-owned.
find "$RD" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
INITRD="$WORK/initrd.img"
(cd "$RD" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) \
    | zstd -q -"$ZSTD_LEVEL" -T0 -f -o "$INITRD"

# --- the FAT partition -----------------------------------------------------------------------
CMDLINE="console=tty0 console=ttyS0,115200n8 quiet loglevel=4 panic=10 rdinit=/init"
PART_START=2048 # sectors: 1 MiB alignment
PART_SECTORS=$(( IMAGE_MB * 2048 - PART_START ))
PART="$WORK/part.img"
rm -f "$PART"
VOLID=$(printf '%08x' $(( SOURCE_DATE_EPOCH & 0xffffffff )))
mkfs.vfat -C -F 32 -n COMPUSHARE -i "$VOLID" -h "$PART_START" "$PART" $(( PART_SECTORS / 2 )) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$PART" ::/syslinux ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/compushare
cat >"$WORK/syslinux.cfg" <<CFG
SERIAL 0 115200
DEFAULT compushare
PROMPT 0
TIMEOUT 0
LABEL compushare
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND $CMDLINE
CFG
printf 'default compushare.conf\ntimeout 0\neditor no\nconsole-mode keep\n' >"$WORK/loader.conf"
printf 'title CompuShare rig\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$CMDLINE" >"$WORK/compushare.conf"
mcopy -i "$PART" "$VMLINUZ" ::/vmlinuz
mcopy -i "$PART" "$INITRD" ::/initrd.img
mcopy -i "$PART" "$WORK/syslinux.cfg" ::/syslinux/syslinux.cfg
mcopy -i "$PART" "$SDBOOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$PART" "$WORK/loader.conf" ::/loader/loader.conf
mcopy -i "$PART" "$WORK/compushare.conf" ::/loader/entries/compushare.conf
mcopy -i "$PART" image/rig.conf.example ::/rig.conf.example
mcopy -i "$PART" "$RIG_CONF" ::/rig.conf
syslinux --install --directory /syslinux "$PART"

# --- the disk: MBR boot code, one active FAT32 (LBA) partition -------------------------------
rm -f "$OUT.tmp"
truncate -s "${IMAGE_MB}M" "$OUT.tmp"
printf 'label: dos\nlabel-id: 0x%s\nstart=%d, size=%d, type=c, bootable\n' "$VOLID" "$PART_START" "$PART_SECTORS" \
    | sfdisk --quiet "$OUT.tmp"
dd if="$SYSLINUX/usr/lib/syslinux/mbr/mbr.bin" of="$OUT.tmp" bs=440 count=1 conv=notrunc status=none
dd if="$PART" of="$OUT.tmp" bs=512 seek="$PART_START" conv=notrunc status=none
mv "$OUT.tmp" "$OUT"

size=$(stat -c %s "$OUT")
used=$(( $(stat -c %s "$VMLINUZ") + $(stat -c %s "$INITRD") ))
say "$OUT: $(( size / 1048576 )) MiB (kernel $KVER $(( $(stat -c %s "$VMLINUZ") / 1024 )) KiB, initramfs $(( $(stat -c %s "$INITRD") / 1024 )) KiB, $(wc -l <"$ORDER") modules; boot files $(( used / 1048576 )) MiB)"
echo "$OUT"
