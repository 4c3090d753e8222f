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
    for p in "linux-headers-$kver" "linux-headers-${kver%-amd64}-common" "linux-kbuild-${kver%%-*}"; do
        cp -a "$(extract "$p")/." "$tree/"
    done
    hdr="$tree/usr/src/linux-headers-$kver"
    [ -d "$hdr" ] || die "kernel headers for $kver missing"
    src="$WORK/nvidia-src"
    rm -rf "$src" && mkdir -p "$src"
    f=$(find "$(extract nvidia-kernel-source)" -name 'nvidia-kernel.tar.*' | head -1)
    [ -n "$f" ] || die "nvidia-kernel-source has no nvidia-kernel.tar.*"
    tar -xf "$f" -C "$src"
    src=$(find "$src" -maxdepth 2 -name Kbuild -printf '%h\n' | head -1)
    [ -n "$src" ] || die "no Kbuild in the NVIDIA source"
    make -C "$hdr" M="$src" -j"$(nproc)" modules >&2 || die "building the NVIDIA modules failed"
    mkdir -p "$rd/lib/modules/nvidia"
    for m in nvidia nvidia-uvm; do
        cp "$src/$m.ko" "$rd/lib/modules/nvidia/" || die "$m.ko was not built"
        echo "nvidia/$m.ko" >>"$rd/lib/modules/load-order"
    done
    # GSP firmware (used by Turing and newer).
    mkdir -p "$rd/lib/firmware"
    cp -a "$(extract firmware-nvidia-gsp)/lib/firmware/." "$rd/lib/firmware/"
    # The user-space driver and NVRTC.
    for p in libcuda1 libnvidia-ptxjitcompiler1 libnvidia-nvvm4 libnvrtc11.2 libnvrtc-builtins11.8; do
        lib=$(extract "$p")
        find "$lib" \( -type f -o -type l \) -name '*.so*' | while read -r f; do
            cp -L "$f" "$rd/lib/x86_64-linux-gnu/$(basename "$f")"
        done
    done
    # cudarc looks for libnvrtc.so and libcuda.so without a version.
    ln -sf libnvrtc.so.11.2 "$rd/lib/x86_64-linux-gnu/libnvrtc.so"
    [ -e "$rd/lib/x86_64-linux-gnu/libcuda.so" ] || ln -sf libcuda.so.1 "$rd/lib/x86_64-linux-gnu/libcuda.so"
}
