# syntax=docker/dockerfile:1
# calops service image, for those who prefer Docker: `calops image build --builder buildx`
# runs `docker buildx build --platform linux/amd64,linux/arm64 --provenance=false --push ...`.
# The Rust build runs on the build platform and cross-compiles (no QEMU emulation of rustc).
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM --platform=$BUILDPLATFORM rust:1-bookworm AS build
ARG TARGETARCH
ARG BUILDARCH
RUN set -eu; \
    case "$TARGETARCH" in \
      arm64) triple=aarch64-unknown-linux-gnu; gcc=gcc-aarch64-linux-gnu; libc=libc6-dev-arm64-cross; linker=aarch64-linux-gnu-gcc ;; \
      amd64) triple=x86_64-unknown-linux-gnu; gcc=gcc-x86-64-linux-gnu; libc=libc6-dev-amd64-cross; linker=x86_64-linux-gnu-gcc ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    rustup target add "$triple"; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      apt-get update && apt-get install -y --no-install-recommends "$gcc" "$libc" && rm -rf /var/lib/apt/lists/*; \
      echo "CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER=$linker" > /cross.env; \
    else : > /cross.env; fi; \
    echo "$triple" > /triple
WORKDIR /src
COPY . .
RUN set -eu; triple=$(cat /triple); \
    env $(cat /cross.env) cargo build --release --locked --bin calops --target "$triple"; \
    cp "target/$triple/release/calops" /calops

FROM ${BASE_IMAGE}
COPY --from=build --chown=0:0 --chmod=0755 /calops /usr/local/bin/calops
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/calops", "serve"]
