# syntax=docker/dockerfile:1
# Switchyard in a container: a multi-stage build of the `switchyard` binary on Debian bookworm.
#
#   docker build -t switchyard .          # BuildKit (the default builder since Docker 23)
#   docker run --rm -p 8080:8080 -v "$PWD/switchyard.toml:/etc/switchyard/switchyard.toml:ro" switchyard
#
# See docs/docker.md for a compose setup (switchyard, app-green, app-blue), the admin API and
# dashboard from outside the container (token_env), and a deploy script.
#
# Base images are named in full (registry/namespace/name:tag), so a builder without a default
# registry (Podman, Buildah) finds them, and pinned: the Rust toolchain CI tests with, and the
# Debian release the binary was built against.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace (see .dockerignore): cargo reads every member's manifest.
COPY . .
# Cache mounts keep the crate registry and the target directory from one build to the next, so
# a source edit recompiles the workspace's own crates, not its ~200 dependencies. The release
# profile is built without debug info and stripped here (about 9 MB instead of about 45 MB);
# the binary is copied out of the cached target directory, which does not outlive this step.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,id=switchyard-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=switchyard-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=switchyard-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p switchyard \
 && install -m 0755 target/release/switchyard /usr/local/bin/switchyard

FROM docker.io/library/debian:bookworm-slim
# A system user without a shell or a login; the state file lives in its home.
RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/switchyard \
        --shell /usr/sbin/nologin switchyard \
 && install -d -o switchyard -g switchyard -m 0750 /var/lib/switchyard \
 && install -d -m 0755 /etc/switchyard
COPY --from=build /usr/local/bin/switchyard /usr/local/bin/switchyard
# The embedded default config, as a file to edit or to replace with a bind mount.
COPY config/switchyard.toml /etc/switchyard/switchyard.toml
USER switchyard
WORKDIR /var/lib/switchyard
VOLUME ["/var/lib/switchyard"]
# 8080: client traffic. 9901: the admin API, dashboard and /metrics (loopback-only unless a
# token is set: see docs/docker.md).
EXPOSE 8080 9901
# GET /healthz on the admin listener with bash's /dev/tcp: nothing extra installed, no token
# needed. Set SWITCHYARD_ADMIN_PORT if the admin API listens on another port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SWITCHYARD_ADMIN_PORT:-9901} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# SIGTERM stops gracefully: no new connections, in-flight requests finish, exit 0.
STOPSIGNAL SIGTERM
CMD ["switchyard", "serve", "-c", "/etc/switchyard/switchyard.toml"]
