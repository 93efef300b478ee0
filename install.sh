#!/bin/sh
# pilox-mesh installer. POSIX sh; safe to pipe from curl (nothing runs until the last line).
# Every binary is checked before it is installed: its SHA-256 against a SHA256SUMS whose
# Ed25519 signature (SHA256SUMS.sig) verifies with the release key pinned below (openssl), or
# against an explicit --sha256. Anything less is refused unless --insecure.
set -eu

# The release signing key (PEM, Ed25519). `npm run build` with PILOX_RELEASE_KEY_FILE pins it in
# the dist/install.sh it publishes beside the binaries.
# PINNED: none (a development copy)
RELEASE_PUBKEY=""

usage() {
  cat <<'USAGE'
usage: install.sh [options]          (as root, or with --root DIR)

  curl -fsSL <release>/install.sh | sh -s -- --url <release>
  sh install.sh --binary ./dist/pilox-mesh-linux-x64

source of the binary (one of):
  --url URL        release directory holding pilox-mesh-linux-<arch>, SHA256SUMS and
                   SHA256SUMS.sig
  --binary PATH    install this binary; checked against --sha256, or against SHA256SUMS and
                   SHA256SUMS.sig beside it
checks:
  --sha256 HEX     expected SHA-256 of the binary (you vouch for it: no signature needed)
  --pubkey FILE    the release key (PEM, Ed25519) to check SHA256SUMS.sig with, instead of
                   the one pinned in this script
  --insecure       install even without a verified checksum (not recommended)
  --skip-check     upgrade without first running the new binary's check-config against the
                   installed configuration
where:
  --root DIR       install into DIR instead of / (also: DESTDIR=DIR); for images and tests
  --no-systemd     do not install the systemd unit
  --no-start       install and enable the unit, but do not start it
removal:
  --uninstall      remove the binary and the unit; keep config, state and the user
  --purge          with --uninstall: also remove config, state and the user

Idempotent: run it again to upgrade in place. An upgrade is refused when the new binary
rejects the installed configuration, and rolled back when the new binary does not run (or,
with systemd, when the restarted service does not come up). Never overwrites a configuration.
Exit 0 done, 1 refused or failed.
USAGE
}

main() {
  URL="" BINARY="" SHA="" ROOT="${DESTDIR:-}" SYSTEMD=1 START=1 UNINSTALL=0 PURGE=0 PUBKEY="" INSECURE=0 CHECK=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --url) URL="${2:?--url needs a value}"; shift 2 ;;
      --binary) BINARY="${2:?--binary needs a value}"; shift 2 ;;
      --sha256) SHA="${2:?--sha256 needs a value}"; shift 2 ;;
      --root) ROOT="${2:?--root needs a value}"; shift 2 ;;
      --pubkey) PUBKEY="${2:?--pubkey needs a value}"; shift 2 ;;
      --insecure) INSECURE=1; shift ;;
      --skip-check) CHECK=0; shift ;;
      --no-systemd) SYSTEMD=0; shift ;;
      --no-start) START=0; shift ;;
      --uninstall) UNINSTALL=1; shift ;;
      --purge) PURGE=1; shift ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option: $1 (see --help)" ;;
    esac
  done
  ROOT="${ROOT%/}"
  BIN="$ROOT/usr/local/bin/pilox-mesh"
  ETC="$ROOT/etc/pilox-mesh"
  STATE="$ROOT/var/lib/pilox-mesh"
  UNIT="$ROOT/etc/systemd/system/pilox-mesh.service"
  USER_NAME=pilox-mesh
  # Talk to the running systemd only when installing into this machine's own root.
  LIVE_SYSTEMD=0
  if [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then LIVE_SYSTEMD=1; fi
  [ "$(id -u)" = 0 ] || [ -n "$ROOT" ] || die "run as root (or with --root DIR)"

  if [ "$UNINSTALL" = 1 ]; then uninstall; exit 0; fi
  [ "$PURGE" = 0 ] || die "--purge goes with --uninstall"
  install_all
}

say() { printf 'pilox-mesh install: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

detect_arch() {
  case "$(uname -m)" in
    x86_64|amd64) echo x64 ;;
    aarch64|arm64) echo arm64 ;;
    *) die "unsupported architecture $(uname -m) (x86-64 and ARM64 are built)" ;;
  esac
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

fetch() {
  if command -v curl >/dev/null 2>&1; then curl -fsSL --proto '=https,http' -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
  else die "neither curl nor wget is installed"; fi
}

# The release key: --pubkey FILE, else the pinned one; empty when neither.
release_key() {
  if [ -n "$PUBKEY" ]; then
    [ -f "$PUBKEY" ] || die "no such file: $PUBKEY"
    cp "$PUBKEY" "$TMPD/release.pem"
  elif [ -n "$RELEASE_PUBKEY" ]; then
    printf '%s\n' "$RELEASE_PUBKEY" > "$TMPD/release.pem"
  else
    return 1
  fi
}

# SHA256SUMS must carry a good Ed25519 signature by the release key (openssl does the check).
verify_sums() {
  sums="$1" sig="$2"
  if ! release_key; then
    insecure_or_die "this install.sh pins no release key (a development copy) to check $sums with: give --pubkey FILE, or --sha256 HEX"
    return 0
  fi
  if [ ! -f "$sig" ]; then insecure_or_die "no SHA256SUMS.sig beside $sums"; return 0; fi
  command -v openssl >/dev/null 2>&1 || die "openssl is needed to check the release signature"
  if openssl pkeyutl -verify -pubin -inkey "$TMPD/release.pem" -rawin -in "$sums" -sigfile "$sig" >/dev/null 2>&1; then
    say "SHA256SUMS signature verified"
  else
    die "SHA256SUMS.sig does not verify with the release key: refusing"
  fi
}

insecure_or_die() {
  if [ "$INSECURE" = 1 ]; then say "warning (--insecure): $1"; else die "$1 (or --insecure to install anyway)"; fi
}

obtain_binary() {
  ARCH=$(detect_arch)
  TMPD=$(mktemp -d)
  trap 'rm -rf "$TMPD"' EXIT
  if [ -n "$BINARY" ]; then
    [ -f "$BINARY" ] || die "no such file: $BINARY"
    cp "$BINARY" "$TMPD/pilox-mesh"
    name=$(basename "$BINARY")
    sums="$(dirname "$BINARY")/SHA256SUMS"
    if [ -z "$SHA" ] && [ -f "$sums" ]; then
      SHA=$(awk -v f="$name" '$2 == f { print $1 }' "$sums")
      [ -n "$SHA" ] || insecure_or_die "$sums lists no $name"
      [ -z "$SHA" ] || verify_sums "$sums" "$sums.sig"
    fi
  else
    [ -n "$URL" ] || die "give --url RELEASE_URL or --binary PATH"
    name="pilox-mesh-linux-$ARCH"
    fetch "${URL%/}/$name" "$TMPD/pilox-mesh"
    if [ -z "$SHA" ]; then
      fetch "${URL%/}/SHA256SUMS" "$TMPD/SHA256SUMS"
      fetch "${URL%/}/SHA256SUMS.sig" "$TMPD/SHA256SUMS.sig" 2>/dev/null || rm -f "$TMPD/SHA256SUMS.sig"
      SHA=$(awk -v f="$name" '$2 == f { print $1 }' "$TMPD/SHA256SUMS")
      [ -n "$SHA" ] || insecure_or_die "SHA256SUMS lists no $name"
      [ -z "$SHA" ] || verify_sums "$TMPD/SHA256SUMS" "$TMPD/SHA256SUMS.sig"
    fi
  fi
  if [ -n "$SHA" ]; then
    got=$(sha256_of "$TMPD/pilox-mesh")
    [ "$got" = "$SHA" ] || die "SHA-256 mismatch: expected $SHA, got $got"
    say "SHA-256 verified"
  else
    insecure_or_die "no SHA-256 to check the binary against (give --sha256, or a SHA256SUMS beside it)"
  fi
  chmod 0755 "$TMPD/pilox-mesh"
}

ensure_user() {
  if [ -n "$ROOT" ]; then
    # A scratch or image root: write the account files there.
    mkdir -p "$ROOT/etc"
    touch "$ROOT/etc/passwd" "$ROOT/etc/group"
    if ! grep -q "^$USER_NAME:" "$ROOT/etc/group"; then
      gid=$(awk -F: 'BEGIN{m=999} $3>=100 && $3<1000 && $3<m {m=$3} END{print m-1}' "$ROOT/etc/group")
      echo "$USER_NAME:x:$gid:" >> "$ROOT/etc/group"
    fi
    if ! grep -q "^$USER_NAME:" "$ROOT/etc/passwd"; then
      gid=$(awk -F: -v u="$USER_NAME" '$1==u {print $3}' "$ROOT/etc/group")
      echo "$USER_NAME:x:$gid:$gid:pilox-mesh:/var/lib/pilox-mesh:/usr/sbin/nologin" >> "$ROOT/etc/passwd"
    fi
    OWNER_UID=$(awk -F: -v u="$USER_NAME" '$1==u {print $3}' "$ROOT/etc/passwd")
    OWNER_GID=$(awk -F: -v u="$USER_NAME" '$1==u {print $4}' "$ROOT/etc/passwd")
  else
    if ! getent group "$USER_NAME" >/dev/null; then groupadd --system "$USER_NAME"; fi
    if ! getent passwd "$USER_NAME" >/dev/null; then
      useradd --system --gid "$USER_NAME" --home-dir /var/lib/pilox-mesh --no-create-home --shell /usr/sbin/nologin --comment pilox-mesh "$USER_NAME"
    fi
    OWNER_UID=$(id -u "$USER_NAME")
    OWNER_GID=$(id -g "$USER_NAME")
  fi
}

# chown only works as root; a non-root --root install keeps the caller as owner.
own() { if [ "$(id -u)" = 0 ]; then chown "$@"; fi; }

write_config() {
  mkdir -p "$ETC/conf.d"
  chmod 0750 "$ETC"; own "0:$OWNER_GID" "$ETC"
  chmod 0750 "$ETC/conf.d"; own "0:$OWNER_GID" "$ETC/conf.d"
  if [ -e "$ETC/pilox-mesh.toml" ]; then
    say "keeping the existing $ETC/pilox-mesh.toml"
    return
  fi
  cat > "$ETC/pilox-mesh.toml" <<'TOML'
# pilox-mesh configuration. Every key is optional; `pilox-mesh check-config` shows the
# effective result. Drop-ins in conf.d/*.toml are merged after this file, in name order.
# Reference: /usr/share/doc/pilox-mesh/configuration.md (installed by the .deb), or
# docs/configuration.md in the source: every key, its default and range.

[http]
listen = "127.0.0.1:7420"              # /.well-known/pilox-mesh.json, /healthz, /readyz, /metrics

[instance]
# origin = "https://mesh.example.org"  # the public origin peers reach this instance at

[bus]
max_age_seconds = 300                  # older messages are refused as stale
accept_v1_unextended = true            # accept stock Pilox producers (no meshExt)

# Share the bus between hosts through Redis (then [[bus.keys]] is required):
# [bus.redis]
# url = "redis://10.0.0.5:6379"
# [[bus.keys]]
# id = "k1"
# secret_file = "/etc/pilox-mesh/bus-k1.key"   # chmod 600, owned by pilox-mesh
# [[bus.channels]]
# name = "jobs"
# durable = true                       # Redis Streams; run Redis with appendonly yes
TOML
  chmod 0640 "$ETC/pilox-mesh.toml"; own "0:$OWNER_GID" "$ETC/pilox-mesh.toml"
  say "wrote a default $ETC/pilox-mesh.toml"
}

# The unit below is systemd/pilox-mesh.service verbatim (a test keeps the two identical).
write_unit() {
  mkdir -p "$(dirname "$UNIT")"
  cat > "$UNIT.tmp" <<'UNIT'
[Unit]
Description=pilox-mesh: the mesh layer for AI-agent platforms
Documentation=https://github.com/pilox/pilox-mesh/blob/main/docs/operator-guide.md
After=network-online.target redis-server.service
Wants=network-online.target

[Service]
Type=exec
User=pilox-mesh
Group=pilox-mesh
# serve validates the configuration itself and exits 78 on a bad one, which
# RestartPreventExitStatus covers (an ExecStartPre failure would not be: it restarts).
ExecStart=/usr/local/bin/pilox-mesh serve
# The reload command waits for the verdict and exits 78 when the configuration is refused,
# so `systemctl reload` fails visibly; SIGHUP would report success either way.
ExecReload=/usr/local/bin/pilox-mesh reload
# SIGTERM drains in-flight requests, acknowledges finished work and flushes the spool.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=2
# 78 (EX_CONFIG) will not fix itself by restarting.
RestartPreventExitStatus=78

# Directories (created with the right owner; their paths reach the process in the environment)
StateDirectory=pilox-mesh
StateDirectoryMode=0700
RuntimeDirectory=pilox-mesh
RuntimeDirectoryMode=0755
ConfigurationDirectory=pilox-mesh
ConfigurationDirectoryMode=0750
UMask=0077

# Hardening
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
# Node's JIT needs writable+executable memory, so MemoryDenyWriteExecute stays off.
MemoryDenyWriteExecute=no
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
# No capabilities: ports below 1024 need CAP_NET_BIND_SERVICE (see docs/operator-guide.md).
CapabilityBoundingSet=
AmbientCapabilities=
DevicePolicy=closed
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT
  chmod 0644 "$UNIT.tmp"
  mv "$UNIT.tmp" "$UNIT"
}

install_all() {
  obtain_binary
  ensure_user
  was_active=0
  if [ "$LIVE_SYSTEMD" = 1 ] && systemctl is-active --quiet pilox-mesh 2>/dev/null; then was_active=1; fi
  # An upgrade must not install a binary that refuses the configuration already in place.
  if [ "$CHECK" = 1 ] && [ -f "$ETC/pilox-mesh.toml" ]; then
    if ! out=$("$TMPD/pilox-mesh" --config "$ETC/pilox-mesh.toml" --state-dir "$TMPD/check-state" check-config --quiet 2>&1); then
      printf '%s\n' "$out" >&2
      die "the new binary rejects $ETC/pilox-mesh.toml: nothing was changed (fix the configuration, or --skip-check)"
    fi
  fi
  mkdir -p "$(dirname "$BIN")"
  had_old=0
  if [ -f "$BIN" ]; then cp -p "$BIN" "$BIN.old"; had_old=1; fi
  # Atomic replace, so a running process keeps its old file and an upgrade is never half done.
  cp "$TMPD/pilox-mesh" "$BIN.new"
  chmod 0755 "$BIN.new"; own 0:0 "$BIN.new"
  mv -f "$BIN.new" "$BIN"
  if ! "$BIN" version >/dev/null 2>&1; then rollback "the new binary does not run on this host"; fi
  say "installed $BIN"
  write_config
  mkdir -p "$STATE"
  chmod 0700 "$STATE"; own "$OWNER_UID:$OWNER_GID" "$STATE"
  if [ ! -e "$STATE/identity.key" ]; then
    if "$BIN" keygen --out "$STATE/identity.key" >/dev/null 2>&1; then
      own "$OWNER_UID:$OWNER_GID" "$STATE/identity.key"
      say "created the instance identity $STATE/identity.key"
    else
      say "the identity key will be created on first start"
    fi
  fi
  if [ "$SYSTEMD" = 1 ]; then
    write_unit
    say "installed $UNIT"
    if [ "$LIVE_SYSTEMD" = 1 ]; then
      systemctl daemon-reload
      systemctl enable pilox-mesh >/dev/null 2>&1
      if [ "$was_active" = 1 ]; then
        systemctl restart pilox-mesh || true
        sleep 3
        systemctl is-active --quiet pilox-mesh || rollback "pilox-mesh did not come up after the upgrade (journalctl -u pilox-mesh)"
        say "restarted pilox-mesh"
      elif [ "$START" = 1 ]; then systemctl start pilox-mesh; say "started pilox-mesh"; fi
    fi
  fi
  rm -f "$BIN.old"
  "$BIN" version >&2 2>/dev/null || true
}

# Puts the previous binary back (and restarts the service on it), then fails.
rollback() {
  if [ "$had_old" = 1 ]; then
    mv -f "$BIN.old" "$BIN"
    if [ "$LIVE_SYSTEMD" = 1 ] && [ "$was_active" = 1 ]; then systemctl restart pilox-mesh || true; fi
    die "$1: rolled back to the previous binary"
  fi
  rm -f "$BIN"
  die "$1: removed it"
}

uninstall() {
  if [ "$LIVE_SYSTEMD" = 1 ]; then
    systemctl disable --now pilox-mesh >/dev/null 2>&1 || true
  fi
  rm -f "$BIN" "$UNIT"
  if [ "$LIVE_SYSTEMD" = 1 ]; then systemctl daemon-reload; fi
  say "removed the binary and the unit"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE"
    if [ -n "$ROOT" ]; then
      for f in passwd group; do
        [ -f "$ROOT/etc/$f" ] && { grep -v "^$USER_NAME:" "$ROOT/etc/$f" > "$ROOT/etc/$f.tmp" || true; mv "$ROOT/etc/$f.tmp" "$ROOT/etc/$f"; }
      done
    elif getent passwd "$USER_NAME" >/dev/null; then
      userdel "$USER_NAME" 2>/dev/null || true
      getent group "$USER_NAME" >/dev/null && groupdel "$USER_NAME" 2>/dev/null || true
    fi
    say "purged config, state and the $USER_NAME user"
  else
    say "kept $ETC and $STATE (use --purge to remove them)"
  fi
}

main "$@"
