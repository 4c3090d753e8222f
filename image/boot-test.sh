#!/usr/bin/env bash
# Boots the rig image in QEMU (software emulation, as a USB stick on xHCI) against a real
# management node, the validating Stratum pool and an SNTP server on host loopback, and
# checks what an operator would see. Never waits for power-off: every guest is killed.
#
# Usage: image/boot-test.sh [--no-build] [--only bios|uefi|broken|unreachable]... [--timing N]
# Boots: bios (SeaBIOS), uefi (OVMF), broken (a rig.conf with a bad line; SeaBIOS),
# unreachable (no manager at boot, started later; SeaBIOS).
# Exit status 0 when every check passed.
# Writes target/image/boot-test/ (serial logs, manager and pool logs, timings.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BUILD=1
ONLY=()
TIMING=0
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0; shift ;;
        --only) ONLY+=("$2"); shift 2 ;;
        # --timing N: only power-on to registered, N boots of each of bios and uefi, medians
        --timing) TIMING=$2; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "boot-test.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#ONLY[@]} -gt 0 ] || ONLY=(bios uefi broken unreachable)

# Time limits (seconds of wall time under TCG on a 2-core machine).
BOOT_LIMIT=${BOOT_LIMIT:-90}     # power-on to registered / the awaited marker
CHECK_LIMIT=${CHECK_LIMIT:-45}   # each later check
QEMU_LIMIT=${QEMU_LIMIT:-300}    # hard kill of any guest

for tool in qemu-system-x86_64 mcopy timeout; do
    command -v "$tool" >/dev/null || { echo "boot-test.sh: $tool not found (apt-get install qemu-system-x86 ovmf mtools)" >&2; exit 1; }
done
OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

if [ "$BUILD" = 1 ]; then
    cargo build --release --locked -p compushare -p compushare-init -p compushare-image-harness >&2
    image/build.sh --no-cargo >/dev/null
fi
IMG=target/image/compushare-rig.img
BIN=$ROOT/target/release/compushare
HARNESS=$ROOT/target/release/compushare-boot-harness
for f in "$IMG" "$BIN" "$HARNESS"; do
    [ -e "$f" ] || { echo "boot-test.sh: $f missing (run without --no-build)" >&2; exit 1; }
done

T=$ROOT/target/image/boot-test
rm -rf "$T"
mkdir -p "$T"
PIDS=()
cleanup() {
    local p
    # Children first: a guest runs under `timeout`, which cannot pass on a SIGKILL.
    for p in "${PIDS[@]}"; do pkill -KILL -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

FAILED=0
PASSED=0
log() { echo "boot-test: $*" >&2; }
pass() { PASSED=$((PASSED + 1)); log "PASS $1: $2"; }
fail() { FAILED=$((FAILED + 1)); log "FAIL $1: $2"; }
# check NAME DESCRIPTION COMMAND...: runs COMMAND; passes or fails NAME.
check() {
    local name=$1 what=$2; shift 2
    if "$@"; then pass "$name" "$what"; else fail "$name" "$what"; fi
}
# wait_for FILE PATTERN SECONDS: waits until FILE has a line matching PATTERN (grep -E).
wait_for() {
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        grep -qaE "$2" "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
now_ms() { date +%s%3N; }

# --- host services -------------------------------------------------------------------------
"$BIN" manager init --data "$T/mgr" >"$T/manager-key" 2>"$T/manager-init.log"
MK=$(tail -1 "$T/manager-key")
MPORT=$("$HARNESS" port)
PPORT=$("$HARNESS" port)
start_manager() {
    "$BIN" manager run --data "$T/mgr" --listen "127.0.0.1:$MPORT" >>"$T/manager.log" 2>&1 &
    MANAGER_PID=$!
    PIDS+=("$MANAGER_PID")
    wait_for "$T/manager.log" "listening on" 20 || { log "manager did not start"; cat "$T/manager.log" >&2; exit 1; }
}
stop_manager() { kill "$MANAGER_PID" 2>/dev/null || true; wait "$MANAGER_PID" 2>/dev/null || true; }
"$HARNESS" pool "127.0.0.1:$PPORT" 0.0001 >"$T/pool.log" 2>&1 &
PIDS+=($!)
wait_for "$T/pool.log" "pool: listening" 20 || { log "pool did not start"; exit 1; }
# The rig asks its gateway (10.0.2.2, the host's loopback under QEMU's user network) for
# the time on port 123 when neither rig.conf nor DHCP names a server.
NTP_LIVE=0
"$HARNESS" ntp "127.0.0.1:123" >"$T/ntp.log" 2>&1 &
PIDS+=($!)
if wait_for "$T/ntp.log" "ntp: listening" 5; then NTP_LIVE=1; else log "cannot bind 127.0.0.1:123 (not root, or in use): clock check skipped"; fi

# --- one boot ----------------------------------------------------------------------------------
# boot NAME FIRMWARE RIGCONF NIC: copies the image, puts RIGCONF on the stick, starts QEMU
# with the serial port on FIFOs ($T/NAME.serial.in/.out) copied to $T/NAME.serial.log.
boot() {
    local name=$1 firmware=$2 conf=$3 nic=$4
    local disk="$T/$name.img"
    cp "$IMG" "$disk"
    MTOOLS_SKIP_CHECK=1 mcopy -o -i "$disk@@1M" "$conf" ::/rig.conf
    mkfifo "$T/$name.serial.in" "$T/$name.serial.out"
    local fw=()
    if [ "$firmware" = uefi ]; then
        cp "$OVMF_VARS" "$T/$name.vars.fd"
        fw=(-drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE" -drive "if=pflash,format=raw,file=$T/$name.vars.fd")
    fi
    BOOT_START_MS=$(now_ms)
    timeout -s KILL "$QEMU_LIMIT" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1024 \
        "${fw[@]}" -machine q35 \
        -display none -monitor none -no-reboot \
        -chardev "pipe,id=ser,path=$T/$name.serial" -serial chardev:ser \
        -rtc base=2001-01-01T00:00:00 \
        -device qemu-xhci,id=xhci -drive "if=none,id=stick,format=raw,file=$disk" \
        -device usb-storage,bus=xhci.0,drive=stick,bootindex=0 \
        -netdev user,id=n0 -device "$nic,netdev=n0" -device virtio-rng-pci \
        >"$T/$name.qemu.log" 2>&1 &
    QEMU_PID=$!
    PIDS+=("$QEMU_PID")
    cat "$T/$name.serial.out" >"$T/$name.serial.log" &
    PIDS+=($!)
    exec 3>"$T/$name.serial.in"
    SERIAL="$T/$name.serial.log"
}
end_boot() {
    exec 3>&-
    # QEMU_PID is the `timeout` wrapping the guest: kill the guest itself (a SIGKILL to
    # `timeout` would leave QEMU running with nothing left to stop it), then the wrapper.
    pkill -KILL -P "$QEMU_PID" 2>/dev/null || true
    kill -KILL "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
}
# type_line TEXT: types TEXT and Enter on the serial port, slowly (the guest UART has a
# 16-byte FIFO and no flow control).
type_line() {
    local s="$1" i
    for ((i = 0; i < ${#s}; i++)); do printf '%s' "${s:i:1}" >&3; sleep 0.02; done
    printf '\r' >&3
}

# rig.conf for a boot: the rig's own settings, the manager and the pool on the host.
PAYOUT=$(printf 'ab%.0s' $(seq 32))
rig_conf() { # NAME [EXTRA LINE]
    cat <<CONF
# boot test rig $1
MANAGER=10.0.2.2:$MPORT
MANAGER_KEY=$MK
RIG_NAME=$1
PAYOUT=$PAYOUT
STATE_DIR=/stick/compushare
SERIAL_CONSOLE=/dev/ttyS0
CPU_DEVICES=1
POOL1=stratum+tcp://10.0.2.2:$PPORT
POOL1_USER=$1.w
POOL1_PASS=x
${2:-}
CONF
}

rig_key() { grep -aoE "rig $1 \([0-9a-f]{64}\)" "$SERIAL" | head -1 | grep -oE "[0-9a-f]{64}"; }
registered_on_manager() { # NAME: the manager logged the Hello with one CPU device
    wait_for "$T/manager.log" "rig [0-9a-f]{8} \($1\) joined with 1 device" "$2"
}
record_known() { # NAME: `compushare status --rig` finds it with its label
    local key
    key=$(rig_key "$1") || return 1
    "$BIN" status --rig "$key" --manager "127.0.0.1:$MPORT" --manager-key "$MK" \
        --key "$T/client.key" --json 2>>"$T/status.log" | grep -q "\"label\":\"$1\""
}
mining_at_pool() { wait_for "$T/pool.log" "accepted=[1-9][0-9]* .*workers=.*$1\.w" "$2"; }
console_answers() { # NAME [PATTERN]: `help` lists the commands; `status` names the rig (and
    # shows PATTERN)
    local mark deadline
    mark=$(( $(stat -c %s "$SERIAL") + 1 ))
    type_line "help"
    deadline=$((SECONDS + CHECK_LIMIT))
    # -w: "role" as a word (PID 1's "controller" lines must not count).
    until tail -c +"$mark" "$SERIAL" | grep -qaw "role" && tail -c +"$mark" "$SERIAL" | grep -qaw "pools"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
    mark=$(( $(stat -c %s "$SERIAL") + 1 ))
    type_line "status"
    deadline=$((SECONDS + CHECK_LIMIT))
    # The console's status starts with "rig       NAME".
    until tail -c +"$mark" "$SERIAL" | grep -qaE "^rig +$1\b" \
        && { [ -z "${2:-}" ] || tail -c +"$mark" "$SERIAL" | grep -qaE "$2"; }; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

TIMINGS="$T/timings.txt"
: >"$TIMINGS"
normal_boot() { # NAME FIRMWARE NIC
    local name=$1 fw=$2 nic=$3
    rig_conf "$name" >"$T/$name.rig.conf"
    log "booting $name ($fw, $nic)"
    boot "$name" "$fw" "$T/$name.rig.conf" "$nic"
    if registered_on_manager "$name" "$BOOT_LIMIT"; then
        local ms=$(( $(now_ms) - BOOT_START_MS ))
        echo "$name power-on to registered: $ms ms" | tee -a "$TIMINGS" >&2
    fi
    check "$name-banner" "banner on the serial console" grep -qa "CompuShare rig" "$SERIAL"
    check "$name-dhcp" "address from QEMU's DHCP server" grep -qaE "init: net: eth0 10\.0\.2\.15/24 via 10\.0\.2\.2 \(DHCP server" "$SERIAL"
    check "$name-stick" "stick found by label and mounted" grep -qa "init: stick: /dev/sd[a-z]1 mounted on /stick" "$SERIAL"
    check "$name-registered" "manager saw the rig's Hello with 1 CPU device" registered_on_manager "$name" 1
    check "$name-record" "manager's record of the rig (status --rig)" record_known "$name"
    if [ "$NTP_LIVE" = 1 ]; then
        check "$name-clock" "clock stepped from the 2001 RTC by NTP at the gateway" \
            wait_for "$SERIAL" "clock: ntp 10\.0\.2\.2:123 stepped .*now $(date -u +%Y)-" "$CHECK_LIMIT"
    fi
    check "$name-status" "status line on the serial console" wait_for "$SERIAL" "^status: up .*controller up" "$CHECK_LIMIT"
    check "$name-mining" "shares accepted by the pool from $name" mining_at_pool "$name" "$CHECK_LIMIT"
    check "$name-console" "serial console answers help and status" console_answers "$name"
    end_boot
}

broken_boot() {
    local name=broken
    rig_conf "$name" "POOL1_PASSWORD=oops" >"$T/$name.rig.conf"
    local line
    line=$(grep -n "POOL1_PASSWORD" "$T/$name.rig.conf" | cut -d: -f1)
    log "booting $name (bios): rig.conf line $line is wrong"
    boot "$name" bios "$T/$name.rig.conf" e1000e
    check "$name-line" "serial console names rig.conf line $line" \
        wait_for "$SERIAL" "rig\.conf:$line: POOL1_PASSWORD" "$BOOT_LIMIT"
    check "$name-maintenance" "controller stays up in maintenance mode" \
        bash -c "sleep 5; ! grep -qa 'init: controller exited' '$SERIAL'"
    check "$name-console" "serial console accepts commands in maintenance mode and names the line" \
        console_answers "$name" "MAINTENANCE MODE: .*rig\.conf:$line"
    end_boot
}

unreachable_boot() {
    local name=late
    stop_manager
    rig_conf "$name" >"$T/$name.rig.conf"
    log "booting $name (bios) with the manager down"
    boot "$name" bios "$T/$name.rig.conf" virtio-net-pci
    check "$name-mining" "hashes at its pool while the manager is down" mining_at_pool "$name" "$BOOT_LIMIT"
    wait_for "$SERIAL" "starting controller" "$BOOT_LIMIT" || true
    sleep 5
    check "$name-not-registered" "not registered while the manager is down" bash -c "! grep -qa '($name) joined' '$T/manager.log'"
    start_manager
    check "$name-registered" "registers once the manager appears" registered_on_manager "$name" 60
    end_boot
}

start_manager
if [ "$TIMING" -gt 0 ]; then
    for fw in bios uefi; do
        for i in $(seq "$TIMING"); do
            rig_conf "t$fw$i" >"$T/t$fw$i.rig.conf"
            nic=e1000e; [ "$fw" = uefi ] && nic=virtio-net-pci
            boot "t$fw$i" "$fw" "$T/t$fw$i.rig.conf" "$nic"
            if registered_on_manager "t$fw$i" "$BOOT_LIMIT"; then
                echo "$fw $(( $(now_ms) - BOOT_START_MS ))" >>"$T/timing.raw"
            else
                fail "t$fw$i-registered" "no registration within $BOOT_LIMIT s"
            fi
            end_boot
        done
        med=$(awk -v fw="$fw" '$1 == fw {print $2}' "$T/timing.raw" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        all=$(awk -v fw="$fw" '$1 == fw {printf "%s ", $2}' "$T/timing.raw")
        echo "$fw power-on to registered: median $med ms of $TIMING (${all% })" | tee -a "$TIMINGS"
    done
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
    exit
fi
for b in "${ONLY[@]}"; do
    case "$b" in
        bios) normal_boot bios bios e1000e ;;
        uefi) normal_boot uefi uefi virtio-net-pci ;;
        broken) broken_boot ;;
        unreachable) unreachable_boot ;;
        *) log "unknown boot $b"; exit 2 ;;
    esac
done

size=$(stat -c %s "$IMG")
echo "image size: $size bytes ($((size / 1048576)) MiB)" | tee -a "$TIMINGS" >&2
check image-size "image <= 64 MiB" test "$size" -le $((64 * 1048576))
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
