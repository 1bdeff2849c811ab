#!/bin/bash
# Runs a command as root inside a throwaway Linux ("L1") that has a hardware-style KVM: QEMU's
# TCG emulates an AMD CPU with SVM and nested paging, and Debian's kvm_amd runs on it. This is how
# we test what this machine's own /dev/kvm cannot run (an unmodified Linux guest: it is kvm_pvm
# there, which emulates guest ring 0) and prove our VMM on the KVM that ordinary hardware has.
#
#   run-in-l1.sh [-m MiB] [-t seconds] [-r boots] [-n] [-f PATH]... -- COMMAND [ARG]...
#   run-in-l1.sh --prepare      only fetch the L1 kernel and modules (exit 1 if that fails)
#   run-in-l1.sh --mode         print where COMMAND would run: "l1" or "direct" (see below)
#
#   -m   L1 memory (default 1536). Files passed with -f live in L1's RAM (an initramfs).
#   -t   give up after this many seconds (default 600, per boot); exit status 124 then.
#   -r   boot the L1 up to this many times (default 1) when it freezes (below).
#   -n   also load what a host network for guests needs: tun (/dev/net/tun for TAPs) and bridge
#        (with stp and llc). Without -n, L1 has neither.
#   -f   copy a file or folder into the L1 at the same absolute path; an ELF file's shared
#        libraries (from ldd) come along. Repeatable.
#   One COMMAND word is a shell command line; several are a command and its arguments.
#
# COMMAND's output is printed with the prefix "L1| "; the exit status is COMMAND's.
# The L1 kernel (Debian 12's generic linux-image, downloaded with apt-get download, never
# installed) and its KVM modules are cached under ${COLO_CACHE:-$HOME/.cache/colo-replicate}/l1.
# Needs the Debian packages qemu-system-x86, busybox-static, cpio.
#
# A frozen L1: now and then (about one boot in ten on 2026-12-06, under QEMU's COLO as under ours,
# and with no guest at all) the L1's console goes silent for good while QEMU sits idle: the L1
# waits for an interrupt that never comes. The L1 prints a tick every 10 s beside COMMAND; no tick
# for 90 s while QEMU used under a tenth of a CPU is taken for that freeze (one line on stderr
# says so). With -r, the L1 is then booted again and COMMAND run anew, after the line
# "L1| run-in-l1: the L1 froze ...": what it printed before that line is void. An L1 that is busy
# but prints no tick is not frozen (a runaway guest starving it): that runs into -t as before.
#
# Costs here: about 7 s from start to COMMAND; inside, guest code runs natively under KVM but
# every nested page fault is emulated (~190 us for a guest's first touch of a page).
#
# On a host whose own /dev/kvm is a hardware KVM (kvm_intel or kvm_amd, not kvm_pvm) there is no
# need for an L1: COMMAND runs directly on the host, with the same "L1| " prefix and exit status,
# so the nested tier tests the direct path there. COLO_NESTED=l1 or COLO_NESTED=direct forces
# one or the other.
set -euo pipefail

mem=1536
timeout_s=600
boots=1
files=()
prepare_only=""
[ "${1:-}" = --prepare ] && { prepare_only=1; shift; set -- -- true; }
show_mode=""
[ "${1:-}" = --mode ] && { show_mode=1; shift; set -- -- true; }
net_modules=""
usage() { echo "usage: $0 [-m MiB] [-t seconds] [-n] [-f PATH]... -- COMMAND [ARG]..." >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        -m) mem=$2; shift 2 ;;
        -t) timeout_s=$2; shift 2 ;;
        -r) boots=$2; shift 2 ;;
        -n) net_modules=1; shift ;;
        -f) files+=("$2"); shift 2 ;;
        --) shift; break ;;
        *) usage ;;
    esac
done
[ $# -gt 0 ] || usage
die() { echo "run-in-l1.sh: $*" >&2; exit 1; }

# --- 0. A hardware KVM on this host: run COMMAND here.
mode=${COLO_NESTED:-auto}
case "$mode" in
    auto) if [ -c /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] &&
             { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then mode=direct; else mode=l1; fi ;;
    l1|direct) ;;
    *) die "COLO_NESTED must be l1, direct or auto, not '$mode'" ;;
esac
[ -z "$show_mode" ] || { echo "$mode"; exit 0; }
if [ "$mode" = direct ]; then
    [ -z "$prepare_only" ] || exit 0
    echo "run-in-l1.sh: running directly on this host's KVM (no L1)" >&2
    here=$(mktemp -d)
    trap 'rm -rf "$here"' EXIT
    if [ $# -eq 1 ]; then set -- sh -c "$1"; fi
    set +e
    (cd "$here" && timeout "$timeout_s" "$@") 2>&1 | sed -u 's/^/L1| /'
    status=${PIPESTATUS[0]}
    [ "$status" != 124 ] || echo "run-in-l1.sh: the command did not finish within ${timeout_s}s" >&2
    exit "$status"
fi
for tool in qemu-system-x86_64 cpio; do
    command -v "$tool" >/dev/null || die "$tool is missing (see debian-packages.txt)"
done
[ -x /bin/busybox ] || die "/bin/busybox is missing (apt-get install busybox-static)"

cache=${COLO_CACHE:-$HOME/.cache/colo-replicate}/l1

# --- 1. The L1 kernel and the four modules KVM on AMD needs, in load order; then what -n loads.
modules=(virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko drivers/crypto/ccp/ccp.ko arch/x86/kvm/kvm-amd.ko)
network=(drivers/net/tun.ko net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko)
cached=1
for m in "${modules[@]}" "${network[@]}"; do [ -s "$cache/modules/$(basename "$m")" ] || cached=""; done
if [ ! -s "$cache/vmlinuz" ] || [ -z "$cached" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}') || pkg=""
    [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (run apt-get update first)"
    kver=${pkg#linux-image-}
    dl=$(mktemp -d)
    (cd "$dl" && apt-get download "$pkg" >/dev/null 2>&1) || { rm -rf "$dl"; die "apt-get download $pkg failed"; }
    dpkg -x "$dl"/*.deb "$dl/root"
    mkdir -p "$cache/modules"
    for m in "${modules[@]}" "${network[@]}"; do
        cp "$dl/root/lib/modules/$kver/kernel/$m" "$cache/modules/" || { rm -rf "$dl"; die "$pkg has no $m"; }
    done
    cp "$dl/root/boot/vmlinuz-$kver" "$cache/vmlinuz.tmp" && mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
    rm -rf "$dl"
fi

[ -z "$prepare_only" ] || exit 0

# --- 2. The L1's initramfs: busybox, the modules, the requested files, the command, an /init.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,modules}
cp /bin/busybox "$root/bin/"
[ -z "$net_modules" ] || modules+=("${network[@]}")
for m in "${modules[@]}"; do cp "$cache/modules/$(basename "$m")" "$root/modules/"; done
printf '%s\n' "${modules[@]}" | sed 's#.*/##; s#\.ko$##' > "$root/modules/order"

copy_in() {  # copy one path (and, for ELF files, its shared libraries) to the same place in L1
    local src=$1
    if [ -d "$src" ]; then
        mkdir -p "$root$src" && cp -a "$src/." "$root$src/"
        return
    fi
    [ -e "$src" ] || die "no such file: $src"
    mkdir -p "$root$(dirname "$src")" && cp -L "$src" "$root$src"
    if [ "$(head -c4 "$src" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
        local lib
        for lib in $(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
            [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"; }
        done
    fi
}
for f in "${files[@]}"; do copy_in "$(readlink -f "$f")"; [ "$(readlink -f "$f")" = "$f" ] || copy_in "$f"; done

if [ $# -eq 1 ]; then printf '%s\n' "$1"; else printf '%q ' "$@"; echo; fi > "$root/command"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do
    insmod /modules/$m.ko 2>&1 | sed 's/^/L1| insmod: /'
done
[ -c /dev/kvm ] || echo "L1| run-in-l1: no /dev/kvm after loading kvm-amd"
cd /tmp
(while :; do echo "L1-TICK $(cut -d' ' -f1 /proc/uptime)"; sleep 10; done) &
(sh /command; echo $? > /run/status) 2>&1 | sed 's/^/L1| /'
echo "L1-STATUS $(cat /run/status)"
poweroff -f
INIT
chmod +x "$root/init"
# Uncompressed: under TCG, gunzipping a 60 MB guest kernel costs L1 more than reading it.
(cd "$root" && find . | cpio -o -H newc --quiet) > "$work/initramfs.cpio"

# --- 3. Boot it. Only our prefixed lines and the status line are of interest; the console log
# is kept for a failure message.
# cpu_ticks PID: the CPU time PID has used, in clock ticks (utime + stime).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)
freeze_s=90
boot() {  # boot N: one L1 run; sets qemu_status (124: -t ran out, 125: the L1 froze) and log
    log=$work/console.$1.log
    : > "$log"
    qemu-system-x86_64 -accel tcg -cpu max,-smap -m "$mem" -smp 1 -nodefaults \
        -display none -no-reboot -kernel "$cache/vmlinuz" -initrd "$work/initramfs.cpio" \
        -append "console=ttyS0 quiet panic=-1" -serial stdio < /dev/null > >(sed -u 's/\r$//' | tee "$log" | grep --line-buffered '^L1| ') &
    local qemu=$! started=$SECONDS ticks=0 tick_at=$SECONDS cpu_at n
    cpu_at=$(cpu_ticks "$qemu")
    qemu_status=""
    while kill -0 "$qemu" 2>/dev/null; do
        sleep 2
        n=$(grep -c '^L1-TICK' "$log")
        if [ "$n" != "$ticks" ]; then
            ticks=$n tick_at=$SECONDS cpu_at=$(cpu_ticks "$qemu")
        elif [ $((SECONDS - tick_at)) -ge "$freeze_s" ] && [ "$ticks" -gt 0 ]; then
            local used=$(( $(cpu_ticks "$qemu") - cpu_at ))
            if [ $((used * 10)) -lt $((freeze_s * hz)) ]; then
                echo "run-in-l1.sh: the L1 froze: no tick for ${freeze_s} s after L1 uptime $(grep '^L1-TICK' "$log" | tail -1 | cut -d' ' -f2) s, QEMU used $((used / hz)) s of CPU meanwhile (boot $1 of $boots)" >&2
                qemu_status=125
                kill -KILL "$qemu" 2>/dev/null
                break
            fi
        fi
        if [ $((SECONDS - started)) -ge "$timeout_s" ]; then
            qemu_status=124
            kill -KILL "$qemu" 2>/dev/null
            break
        fi
    done
    { wait "$qemu"; } 2>/dev/null  # not bash's "Killed" line: ours above says why
    local exited=$?
    [ -n "$qemu_status" ] || qemu_status=$exited
    wait  # for the output filter
}
set +e
for ((b = 1; ; b++)); do
    boot "$b"
    [ "$qemu_status" = 125 ] && [ "$b" -lt "$boots" ] || break
    echo "L1| run-in-l1: the L1 froze (boot $b of $boots); booting it again: what the command printed above is void"
done
set -e
status=$(sed -n 's/^L1-STATUS \([0-9]*\).*/\1/p' "$log" | tail -1)
if [ -z "$status" ]; then
    [ "$qemu_status" = 124 ] && { echo "run-in-l1.sh: L1 did not finish within ${timeout_s}s" >&2; exit 124; }
    [ "$qemu_status" = 125 ] && { echo "run-in-l1.sh: the L1 froze in all $boots boots" >&2; exit 125; }
    echo "run-in-l1.sh: L1 ended without running the command (qemu exit $qemu_status); last console lines:" >&2
    grep -v '^L1-TICK' "$log" | tail -5 | tr -d '\r' >&2
    exit 1
fi
exit "$status"
