#!/usr/bin/env bash
# The .deb on a fresh Debian 12, for `scripts/test --long`:
#   1. cpack makes build/dropq_<version>_<arch>.deb;
#   2. debootstrap makes a minimal bookworm tree (kept in build/deb-root/ between runs);
#   3. `apt-get install ./dropq_*.deb redis-server` in it: every dependency comes from Debian;
#   4. if this machine lets systemd-nspawn boot the tree: under its real systemd,
#      dropq.service reaches READY, a dropped file is processed, `systemctl reload` and
#      `systemctl stop` are clean (a self-test unit in the tree checks and powers off).
# Steps 1-3 must pass. Step 4 is reported as "not possible here" when nspawn cannot boot
# (no privileges for namespaces, as in many containers); when it boots, it must pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
root=$build/deb-root
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

for p in debootstrap systemd-container dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done

echo "== deb: cpack" >&2
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls -t "$build"/dropq_*.deb | head -1)
echo "deb: $deb" >&2

if [ ! -x "$root/usr/bin/apt-get" ]; then
  echo "== deb: debootstrap bookworm into $root" >&2
  $SUDO rm -rf "$root"
  $SUDO debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$root" \
    "$mirror" >"$build/debootstrap.log" 2>&1 ||
    { tail -20 "$build/debootstrap.log" >&2; exit 1; }
fi

echo "== deb: apt-get install ./$(basename "$deb") redis-server (chroot)" >&2
$SUDO cp "$deb" "$root/tmp/"
$SUDO cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
for m in proc sys dev; do $SUDO mount --bind "/$m" "$root/$m"; done
trap 'for m in dev sys proc; do '"$SUDO"' umount -l "'"$root"'/$m" 2>/dev/null || true; done' EXIT
$SUDO chroot "$root" /bin/sh -c "
  set -e
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq /tmp/$(basename "$deb") redis-server >/tmp/apt.log 2>&1 || { tail -30 /tmp/apt.log; exit 1; }
  dpkg -s dropq | grep -q 'Status: install ok installed'
  test -x /usr/bin/dropqd && test -x /usr/bin/dropqctl && test -f /etc/dropq/dropq.yaml
  getent passwd dropq >/dev/null
  test -d /srv/dropq/default/inbox
  dropqd --check-config --config /etc/dropq/dropq.yaml
"
echo "deb: installed in a fresh bookworm tree: dropqd, dropqctl, /etc/dropq/dropq.yaml, user dropq, /srv/dropq/default" >&2
for m in dev sys proc; do $SUDO umount -l "$root/$m" 2>/dev/null || true; done
trap - EXIT

echo "== deb: boot the tree with systemd-nspawn" >&2
# The self-test runs once dropq.service is up, writes its findings and powers off.
$SUDO mkdir -p "$root/etc/systemd/system/dropq.service.d" "$root/etc/systemd/system/multi-user.target.wants"
$SUDO cp /usr/share/doc/dropq/examples/local-redis.conf "$root/etc/systemd/system/dropq.service.d/" 2>/dev/null ||
  $SUDO cp systemd/local-redis.conf "$root/etc/systemd/system/dropq.service.d/"
$SUDO tee "$root/usr/local/sbin/dropq-selftest" >/dev/null <<'SELFTEST'
#!/bin/sh
out=/root/selftest.log
exec >"$out" 2>&1
check() { if "$@"; then echo "ok: $*"; else echo "FAIL: $*"; fi; }
check systemctl is-active --quiet dropq.service
echo hello > /srv/dropq/default/inbox/hello.txt
i=0; while [ ! -e /srv/dropq/default/done/hello.txt ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done
check test -e /srv/dropq/default/done/hello.txt
check grep -q hello.txt /srv/dropq/default/manifest.txt
# Structured journal fields: `journalctl DROPQ_QUEUE=...` finds the queue's lines.
check sh -c 'journalctl -u dropq.service DROPQ_QUEUE=default DROPQ_EVENT=scan.done -o cat --no-pager | grep -q "^scan.done queue=default"'
check systemctl reload dropq.service
sleep 2
check systemctl is-active --quiet dropq.service
journalctl -u dropq.service --no-pager | grep -q reload.done && echo "ok: reload.done logged" || echo "FAIL: reload.done"
check systemctl stop dropq.service
systemctl show dropq.service -p Result -p ExecMainStatus
echo done
systemctl poweroff
SELFTEST
$SUDO chmod 755 "$root/usr/local/sbin/dropq-selftest"
$SUDO tee "$root/etc/systemd/system/dropq-selftest.service" >/dev/null <<'UNIT'
[Unit]
After=dropq.service
Wants=dropq.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/dropq-selftest
[Install]
WantedBy=multi-user.target
UNIT
$SUDO ln -sf /etc/systemd/system/dropq-selftest.service "$root/etc/systemd/system/multi-user.target.wants/"
$SUDO ln -sf /lib/systemd/system/dropq.service "$root/etc/systemd/system/multi-user.target.wants/"
$SUDO rm -f "$root/root/selftest.log"
if ! timeout 180 $SUDO systemd-nspawn -q -D "$root" --register=no --keep-unit --boot >"$build/nspawn.log" 2>&1; then
  if [ ! -s "$root/root/selftest.log" ]; then
    echo "deb: systemd-nspawn could not boot the tree here (not possible on this machine):" >&2
    tail -5 "$build/nspawn.log" >&2
    exit 0
  fi
fi
if [ ! -s "$root/root/selftest.log" ]; then
  echo "deb: the tree booted but the self-test did not run; see $build/nspawn.log" >&2
  exit 1
fi
cat "$root/root/selftest.log" >&2
! grep -q '^FAIL' "$root/root/selftest.log"
