# NVIDIA support for image/build.sh --nvidia (sourced by build.sh; uses its extract and die).
#
# Debian ships no prebuilt NVIDIA kernel modules: nvidia-kernel-source (the 535 branch in
# bookworm, proprietary modules: Maxwell to Ada) is built here against the image kernel's
# headers (linux-headers-KVER, its -common part and linux-kbuild), extracted like every
# other package, with the host's gcc (the Debian kernel is built with gcc-12, bookworm's).
# Added to the initramfs: nvidia.ko and nvidia-uvm.ko (loaded by PID 1 after the other
# modules; it then makes /dev/nvidia*), the GSP firmware, libcuda and the libraries it
# loads, and NVRTC (the controller compiles its kernels at run time).
# Needs apt sources with the non-free and non-free-firmware components, make and gcc.

nvidia_add() { # INITRAMFS_DIR KERNEL_DIR KVER
    local rd=$1 kver=$3 tree src hdr f lib
    command -v make >/dev/null && command -v gcc >/dev/null || die "--nvidia needs make and gcc"
    tree="$WORK/nvidia-tree"
    rm -rf "$tree" && mkdir -p "$tree"
    for p in "linux-headers-$kver" "linux-headers-${kver%-amd64}-common" "linux-kbuild-$(cut -d. -f1,2 <<<"$kver")"; do
        cp -a "$(extract "$p")/." "$tree/"
    done
    hdr="$tree/usr/src/linux-headers-$kver"
    [ -d "$hdr" ] || die "kernel headers for $kver missing"
    # The arch headers' Makefile includes the -common part by its installed (absolute) path.
    sed -i "s|include /usr/src/|include $tree/usr/src/|" "$hdr/Makefile"
    f=$(find "$(extract nvidia-kernel-source)" -name 'nvidia-kernel.tar.*' | head -1)
    [ -n "$f" ] || die "nvidia-kernel-source has no nvidia-kernel.tar.*"
    # Built once per kernel and driver version (a build takes minutes).
    src="$WORK/nvidia-build-$kver-$(basename "$(dirname "$(dirname "$(dirname "$f")")")")"
    if [ ! -e "$src/.done" ]; then
        rm -rf "$src" && mkdir -p "$src"
        tar -xf "$f" -C "$src"
        local kb
        kb=$(find "$src" -maxdepth 4 -name Kbuild -printf '%h\n' | head -1)
        [ -n "$kb" ] || die "no Kbuild in the NVIDIA source"
        # NVIDIA's own Makefile runs its conftest against the given kernel tree; only the two
        # modules CUDA needs are built. Debian splits the headers: sources in -common
        # (SYSSRC), the configured arch tree as the build output (SYSOUT).
        make -C "$kb" -j"$(nproc)" SYSSRC="$tree/usr/src/linux-headers-${kver%-amd64}-common" \
            SYSOUT="$hdr" KERNEL_UNAME="$kver" NV_KERNEL_MODULES="nvidia nvidia-uvm" modules >&2 \
            || die "building the NVIDIA modules failed"
        echo "$kb" >"$src/.done"
    fi
    src=$(cat "$src/.done")
    # Their kernel dependencies (drm) must already be in the load order.
    local dep
    for dep in $(modinfo -F depends "$src/nvidia.ko" "$src/nvidia-uvm.ko" | tr ',' '\n' | sort -u); do
        case "$dep" in nvidia*) continue ;; esac
        grep -q "/$dep.ko\( \|$\)" "$rd/lib/modules/load-order" || grep -q "/${dep//_/-}.ko\( \|$\)" "$rd/lib/modules/load-order" \
            || die "nvidia.ko needs $dep, which is not in the image's module list"
    done
    mkdir -p "$rd/lib/modules/nvidia"
    for m in nvidia nvidia-uvm; do
        # Debug sections are most of the module's size and never used on a rig.
        strip --strip-debug -o "$rd/lib/modules/nvidia/$m.ko" "$src/$m.ko" || die "$m.ko was not built"
        echo "nvidia/$m.ko" >>"$rd/lib/modules/load-order"
    done
    # GSP firmware (used by Turing and newer).
    mkdir -p "$rd/lib/firmware"
    cp -a "$(extract firmware-nvidia-gsp)/lib/firmware/." "$rd/lib/firmware/"
    # The user-space driver and NVRTC.
    # (libcuda JIT-compiles PTX with libnvidia-ptxjitcompiler; NVVM IR is not used.)
    for p in libcuda1 libnvidia-ptxjitcompiler1 libnvrtc11.2 libnvrtc-builtins11.8; do
        lib=$(extract "$p")
        # -a keeps Debian's soname links as links (same directory, relative names).
        find "$lib" \( -type f -o -type l \) -name '*.so*' -exec cp -a {} "$rd/lib/x86_64-linux-gnu/" \;
    done
    # cudarc looks for libnvrtc.so and libcuda.so without a version.
    ln -sf libnvrtc.so.11.2 "$rd/lib/x86_64-linux-gnu/libnvrtc.so"
    [ -e "$rd/lib/x86_64-linux-gnu/libcuda.so" ] || ln -sf libcuda.so.1 "$rd/lib/x86_64-linux-gnu/libcuda.so"
}
