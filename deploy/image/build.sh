#!/usr/bin/env bash
# Builds the rota container images without pulling anything: binaries from this workspace
# (release by default), the shared libraries they link (as `ldd` resolves them on this host),
# a static busybox for the basic tools and dash for /bin/sh, assembled into a root filesystem
# in a temporary directory, then `docker build` of deploy/image/Dockerfile (FROM scratch) on it.
#
# Usage: deploy/image/build.sh [TAG]          TAG defaults to rota:dev
# Makes: TAG (coordinator), TAG-agent (agent), TAG-cli (the rota CLI); one shared layer.
#
# Environment:
#   CARGO_TARGET_DIR   where cargo puts the binaries (default: <repo>/target)
#   ROTA_PROFILE       the cargo profile to build and take the binaries from: release (the
#                      default) or debug (`cargo build`, <target>/debug), e.g. for tests
#   ROTA_SKIP_CARGO=1  use the binaries already built for ROTA_PROFILE, do not run cargo
#   ROTA_BIN_DIR       take rota, rota-coordinator and rota-agent from this directory (files or
#                      symlinks to them) and do not run cargo: the test suite passes the
#                      binaries `cargo test` built, so it needs no second (release) build
#   ROTA_SH            the image's /bin/sh (default: this host's /bin/dash; busybox's ash if absent)
#   ROTA_STRIP=1       strip debug info from the binaries in the image (a debug build's
#                      300 MB become about 80 MB; the build dir's copies keep theirs)
#   ROTA_KEEP_ROOTFS=1 keep the temporary build context and print its path
#   DOCKER             the docker client to use (default: docker)
#   CA_BUNDLE          the CA certificates the images trust for TLS to the coordinator
#                      (default: this host's /etc/ssl/certs/ca-certificates.crt)
#   ROTA_EXTRA_CA      PEM file(s), space-separated, appended to that bundle: a farm's own CA
#
# The image holds this host's glibc: build on the oldest distribution you deploy to, and on
# the architecture you deploy to (no cross-compilation here).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tag=${1:-rota:dev}
docker=${DOCKER:-docker}
rota_uid=10001
# rota-local: `rota run` and `rota apply`, which the thin rota execs beside itself.
binaries=(rota rota-local rota-coordinator rota-agent)

cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac

log() { printf 'build.sh: %s\n' "$*" >&2; }

profile=${ROTA_PROFILE:-release}
case $profile in
    release) cargo_flags=(--release) ;;
    debug | dev) profile=debug cargo_flags=() ;;
    *) log "ROTA_PROFILE=$profile: release or debug"; exit 1 ;;
esac
if [[ -n ${ROTA_BIN_DIR:-} ]]; then
    bin_dir=$(cd "$ROTA_BIN_DIR" && pwd)
else
    bin_dir=$target_dir/$profile
    if [[ ${ROTA_SKIP_CARGO:-} != 1 ]]; then
        log "cargo build ${cargo_flags[*]} (rota-cli, rota-local, rota-coordinator, rota-agent)"
        cargo build "${cargo_flags[@]}" -p rota-cli -p rota-local -p rota-coordinator -p rota-agent
    fi
fi
for bin in "${binaries[@]}"; do
    [[ -x $bin_dir/$bin ]] || { log "missing $bin_dir/$bin"; exit 1; }
done

# A static busybox gives the image /bin/sh (agents run `--shell` commands with it) and the
# basic tools; Debian's busybox-static package installs it as /bin/busybox.
busybox=${BUSYBOX:-/bin/busybox}
if [[ ! -x $busybox ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing busybox-static"
        apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null
    else
        log "no $busybox: install Debian's busybox-static (or set BUSYBOX=/path/to/busybox)"
        exit 1
    fi
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/rota-image.XXXXXX")
if [[ ${ROTA_KEEP_ROOTFS:-} == 1 ]]; then
    log "build context kept in $ctx"
else
    trap 'rm -rf "$ctx"' EXIT
fi
rootfs=$ctx/rootfs
mkdir -p "$rootfs"/{bin,etc,usr/local/bin,usr/bin,tmp,var/lib} "$ctx"/state/{rota,rota-agent} "$ctx"/home/rota
chmod 1777 "$rootfs/tmp"

# Copies each shared library that `ldd` names for $1 to the same path in the rootfs, following
# symlinks (the loader looks the libraries up by those paths, e.g. /lib64/ld-linux-x86-64.so.2).
copy_libraries() {
    local lib
    # "not a dynamic executable" (a static binary) prints no paths: nothing to copy.
    for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*' || true); do
        if [[ ! -e $rootfs$lib ]]; then
            mkdir -p "$rootfs$(dirname "$lib")"
            cp -L "$lib" "$rootfs$lib"
        fi
    done
}

for bin in "${binaries[@]}"; do
    install -m 0755 "$bin_dir/$bin" "$rootfs/usr/local/bin/$bin"
    [[ ${ROTA_STRIP:-} != 1 ]] || strip --strip-debug "$rootfs/usr/local/bin/$bin"
    copy_libraries "$bin_dir/$bin"
done

install -m 0755 "$busybox" "$rootfs/bin/busybox"
copy_libraries "$busybox" # nothing for busybox-static; the libraries of a dynamic one
for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
done
ln -sf ../../bin/busybox "$rootfs/usr/bin/env" # for `#!/usr/bin/env sh` scripts

# /bin/sh is this host's dash (Debian's /bin/sh, linking only glibc), not busybox's ash: that
# ash runs its own applets before anything on PATH, so a derived image's GNU `seq` or `tar`
# in /opt/tools/bin would never run from a `--shell` job (`seq -f` failed in one). dash looks
# commands up on PATH; busybox still provides the tools in /bin. Without dash, busybox's ash.
shell=${ROTA_SH:-/bin/dash}
if [[ -x $shell ]]; then
    rm -f "$rootfs/bin/sh"
    install -m 0755 "$shell" "$rootfs/bin/sh"
    copy_libraries "$shell"
else
    log "no $shell: /bin/sh is busybox's ash (it prefers its applets to PATH)"
fi

# The CA bundle: without one the agent and CLI find no trust roots and every https://
# coordinator fails with a transport error, even with --ca. rustls reads SSL_CERT_FILE (set in
# the Dockerfile) or this Debian path.
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [[ ! -s $ca_bundle && -z ${CA_BUNDLE:-} ]] && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing ca-certificates"
    apt-get update -qq && apt-get install -y -qq ca-certificates >/dev/null
fi
[[ -s $ca_bundle ]] || { log "no CA bundle at $ca_bundle: install ca-certificates or set CA_BUNDLE"; exit 1; }
mkdir -p "$rootfs/etc/ssl/certs"
# shellcheck disable=SC2086 # ROTA_EXTRA_CA is a space-separated list of files
cat "$ca_bundle" ${ROTA_EXTRA_CA:-} >"$rootfs/etc/ssl/certs/ca-certificates.crt"
log "CA bundle: $(grep -c 'BEGIN CERTIFICATE' "$rootfs/etc/ssl/certs/ca-certificates.crt") certificates"

cat >"$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
rota:x:$rota_uid:$rota_uid:rota:/home/rota:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$rootfs/etc/group" <<EOF
root:x:0:
rota:x:$rota_uid:
nobody:x:65534:
EOF
# glibc resolves the coordinator's host name (e.g. `coordinator` on a compose network) from
# /etc/hosts, then DNS; say so rather than rely on glibc's built-in default.
cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group:  files
hosts:  files dns
EOF

cp "$here/Dockerfile" "$ctx/Dockerfile"
log "rootfs of $(du -sh "$rootfs" | cut -f1) in $ctx"

# Targets share every layer; only the ENTRYPOINT (the role) differs.
"$docker" build --target coordinator -t "$tag" "$ctx"
"$docker" build --target agent -t "$tag-agent" "$ctx"
"$docker" build --target cli -t "$tag-cli" "$ctx"
log "built $tag (coordinator), $tag-agent, $tag-cli"
