# syntax=docker/dockerfile:1
# Valine as a container: `valine serve` on an embedded SQLite store kept in the /data
# volume. Build: docker build -t valine .   Run: see "Running it as a service" in README.md.

# --- build: the release binary (LTO, stripped; see [profile.release] in Cargo.toml) ---
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them: a stub crate with the
# real manifest and lock file.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches examples \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for b in interactions store lambda; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && echo 'fn main() {}' > examples/loadkit.rs \
    && cargo build --release --locked --bin valine \
    && rm -rf src benches examples
COPY . .
# The commit for `valine --version`, passed in because .git is not copied:
#   docker build --build-arg VALINE_GIT_COMMIT="$(git rev-parse --short HEAD)" .
ARG VALINE_GIT_COMMIT=""
ENV VALINE_GIT_COMMIT=${VALINE_GIT_COMMIT}
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin valine \
    && cp target/release/valine /valine

# --- run: Debian slim with CA certificates, as an unprivileged user ---
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 valine \
    && useradd --system --uid 10001 --gid valine --home-dir /data --shell /usr/sbin/nologin valine \
    && mkdir -p /data \
    && chown valine:valine /data
COPY --from=build /valine /usr/local/bin/valine
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
ENV VALINE_LISTEN=0.0.0.0:8080 \
    VALINE_STORE=sqlite:/data/valine.db \
    VALINE_LOG_FORMAT=json
EXPOSE 8080
# `valine healthcheck` asks this container's own /healthz (store reachable) on the
# VALINE_LISTEN port; no curl needed in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["valine", "healthcheck"]
# SIGTERM stops serve gracefully: running work gets up to 10 s, leases are released.
STOPSIGNAL SIGTERM
ENTRYPOINT ["valine"]
CMD ["serve"]
