#!/usr/bin/env bash
# Build a stand-in for the r-base image where Docker Hub is out of reach:
# a debootstrapped Debian bookworm with R from Debian (r-base-core) and, as r-base and rocker/r2u
# carry R's build tools, the C compiler and make (the training image compiles rsagemaker with them).
#
#   scripts/standin-base.sh [IMAGE [ARCH]]
#       IMAGE  default: localhost/r-sagemaker-standin:bookworm
#       ARCH   a Debian architecture, amd64 or arm64 (default: this machine's). A foreign one
#              (arm64 for Graviton on an amd64 machine) runs under qemu: it needs the
#              qemu-user-static and binfmt-support packages and is slow (minutes).
#
# Does nothing when IMAGE already exists in the engine (STANDIN_REBUILD=1 forces
# a rebuild). The debootstrap root filesystem is cached in
# $ENGINE_STATE_DIR/standin-rootfs.tar (standin-rootfs-ARCH.tar for a foreign
# architecture), so a rebuild skips debootstrap.
# A foreign architecture gets R, the compiler and STANDIN_INCLUDE (more Debian packages, comma
# separated: the suite passes the training image's) in debootstrap's own emulated second stage, so
# every package is unpacked and configured under qemu once, not again in an `apt-get install` layer.
# Needs root (debootstrap). Uses scripts/engine.sh for the engine.
set -euo pipefail

IMAGE=${1:-localhost/r-sagemaker-standin:bookworm}
HOST_ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
ARCH=${2:-$HOST_ARCH}
case $ARCH in
  amd64 | arm64) ;;
  *) printf 'standin-base.sh: error: unsupported architecture %s (amd64 or arm64)\n' "$ARCH" >&2; exit 2 ;;
esac
if [[ $ARCH == "$HOST_ARCH" ]]; then
  ROOTFS_IMAGE=${STANDIN_ROOTFS_IMAGE:-localhost/r-sagemaker-standin-rootfs:bookworm}
  ROOTFS_NAME=standin-rootfs.tar
else
  ROOTFS_IMAGE=${STANDIN_ROOTFS_IMAGE:-localhost/r-sagemaker-standin-rootfs:bookworm-$ARCH}
  ROOTFS_NAME=standin-rootfs-$ARCH.tar
fi
PLATFORM=linux/$ARCH
SUITE=bookworm
# What r-base and rocker/r2u carry: R and its build tools (the training image compiles rsagemaker).
R_PACKAGES=r-base-core,ca-certificates,gcc,libc6-dev,make

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel 2>/dev/null || dirname -- "$SCRIPT_DIR")
export ENGINE_STATE_DIR=${ENGINE_STATE_DIR:-$REPO_ROOT/.engine}
mkdir -p -- "$ENGINE_STATE_DIR"
ENGINE_STATE_DIR=$(cd -- "$ENGINE_STATE_DIR" && pwd)
ROOTFS_TAR=$ENGINE_STATE_DIR/$ROOTFS_NAME

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'standin-base.sh: error: %s\n' "$*" >&2; exit 1; }

START=$SECONDS
elapsed() { printf '%ss' "$((SECONDS - START))"; }

# --- engine -------------------------------------------------------------------
# engine.sh ensure prints the export lines for podman (nothing for a real Docker).
engine_env=$("$SCRIPT_DIR/engine.sh" ensure)
eval "$engine_env"

if [[ ${STANDIN_REBUILD:-0} != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE already present; nothing to do (STANDIN_REBUILD=1 rebuilds)"
  exit 0
fi

# --- a foreign architecture runs under qemu (binfmt_misc) ----------------------------
if [[ $ARCH != "$HOST_ARCH" ]]; then
  binfmt=/proc/sys/fs/binfmt_misc
  qemu_entry=$binfmt/qemu-${ARCH/arm64/aarch64}
  if [[ ! -e $binfmt/status ]]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null ||
      die "binfmt_misc is not mounted and cannot be mounted here (mount -t binfmt_misc binfmt_misc $binfmt)"
  fi
  if [[ ! -e $qemu_entry ]] && command -v update-binfmts >/dev/null 2>&1; then
    # Installed before binfmt_misc was mounted: register the interpreter now.
    update-binfmts --enable "${qemu_entry##*/}" >/dev/null 2>&1 || true
  fi
  if [[ ! -e $qemu_entry ]]; then
    die "no qemu interpreter registered for $ARCH ($qemu_entry): apt-get install qemu-user-static binfmt-support (scripts/host-packages.sh installs them)"
  fi
  grep -q '^flags: .*F' "$qemu_entry" ||
    die "$qemu_entry lacks the F flag, so containers cannot use it: reinstall qemu-user-static"
fi

# --- apt sources of the host ------------------------------------------------------
# Prints the first URI of the host's apt sources for SUITE (deb822 *.sources first,
# then one-line sources.list files).
host_mirror_for() {
  local suite=$1 f
  shopt -s nullglob
  for f in /etc/apt/sources.list.d/*.sources; do
    awk -v suite="$suite" '
      function flush() { if (is_deb && has_suite && uri != "") { print uri; found = 1; exit } }
      /^[ \t]*$/ { flush(); is_deb = 0; has_suite = 0; uri = ""; next }
      /^[ \t]*#/ { next }
      tolower($1) == "types:"  { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
      tolower($1) == "uris:"   { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
      END { if (!found) flush() }
    ' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    # deb [options] URI SUITE COMPONENTS...
    sed -E 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }'
  done
  shopt -u nullglob
}

MIRROR=${STANDIN_MIRROR:-$(host_mirror_for "$SUITE" | head -n 1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${STANDIN_SECURITY_MIRROR:-$(host_mirror_for "$SUITE-security" | head -n 1)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# --- root filesystem (cached) ---------------------------------------------------------
build_rootfs() {
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root (or provide $ROOTFS_TAR)"
  if ! command -v debootstrap >/dev/null 2>&1 && [[ ! -x /usr/sbin/debootstrap ]]; then
    command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing and apt-get is not available"
    log "installing debootstrap with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  local keyring_opt=()
  if [[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]]; then
    keyring_opt=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  fi

  local dir
  dir=$(mktemp -d "$ENGINE_STATE_DIR/rootfs.XXXXXX")
  # shellcheck disable=SC2064  # expand $dir now
  trap "rm -rf -- '$dir' '$ROOTFS_TAR.partial'" EXIT

  local debootstrap_log=$ENGINE_STATE_DIR/debootstrap-$ARCH.log
  log "debootstrap --arch=$ARCH --variant=minbase $SUITE from $MIRROR ($(elapsed); log: $debootstrap_log)"
  local include=()
  if [[ $ARCH != "$HOST_ARCH" ]]; then
    include=("--include=$R_PACKAGES${STANDIN_INCLUDE:+,$STANDIN_INCLUDE}")
  fi
  if ! PATH=$PATH:/usr/sbin:/sbin debootstrap --arch="$ARCH" --variant=minbase "${keyring_opt[@]}" "${include[@]}" \
    "$SUITE" "$dir" "$MIRROR" >"$debootstrap_log" 2>&1; then
    tail -n 20 -- "$debootstrap_log" >&2
    die "debootstrap failed"
  fi

  log "writing apt sources ($SUITE, $SUITE-updates, $SUITE-security) into the rootfs"
  rm -f -- "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # Keep the host's tolerance for a frozen (snapshot) mirror, if it has one.
  if apt-config dump 2>/dev/null | grep -q '^Acquire::Check-Valid-Until "false"'; then
    printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
      >"$dir/etc/apt/apt.conf.d/99standin-snapshot"
  fi
  # The engine provides these at run time.
  : >"$dir/etc/resolv.conf"
  : >"$dir/etc/hostname"
  rm -rf -- "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/tmp/*

  log "packing rootfs into $ROOTFS_TAR ($(elapsed))"
  tar --numeric-owner --xattrs -C "$dir" -cf "$ROOTFS_TAR.partial" .
  mv -f -- "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
  rm -rf -- "$dir"
  trap - EXIT
}

if [[ -f $ROOTFS_TAR ]]; then
  log "using cached rootfs $ROOTFS_TAR"
else
  build_rootfs
fi

log "importing rootfs as $ROOTFS_IMAGE ($PLATFORM; $(elapsed))"
docker import --platform "$PLATFORM" - "$ROOTFS_IMAGE" <"$ROOTFS_TAR" >/dev/null

# --- R on top -------------------------------------------------------------------
ctx=$(mktemp -d)
trap 'rm -rf -- "$ctx"' EXIT
if [[ $ARCH != "$HOST_ARCH" ]]; then
  # R is in the rootfs already (debootstrap --include): nothing to run under emulation.
  printf 'FROM %s\nENV LANG=C.UTF-8\nCMD ["R"]\n' "$ROOTFS_IMAGE" >"$ctx/Dockerfile"
else
  cat >"$ctx/Dockerfile" <<EOF
FROM $ROOTFS_IMAGE
ENV LANG=C.UTF-8
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${R_PACKAGES//,/ } \\
 && rm -rf /var/lib/apt/lists/*
CMD ["R"]
EOF
fi

log "building $IMAGE for $PLATFORM (r-base-core, gcc, make from Debian; $(elapsed))"
build_log=$ENGINE_STATE_DIR/standin-build-$ARCH.log
if ! docker build --platform "$PLATFORM" -t "$IMAGE" "$ctx" >"$build_log" 2>&1; then
  tail -n 30 -- "$build_log" >&2
  die "docker build failed (log: $build_log)"
fi

size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
built_arch=$(docker image inspect --format '{{.Architecture}}' "$IMAGE")
[[ $built_arch == "$ARCH" ]] || die "$IMAGE was built for $built_arch, not $ARCH"
log "built $IMAGE ($ARCH, $((size / 1000000)) MB) in $(elapsed)"
