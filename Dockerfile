# smarthost as a container image: the Linux single executable (npm run build:exe) on an empty base,
# with only the libraries it links. No shell, no Node, no package manager in the image.
#
#   docker build -t smarthost .
#   docker buildx build --platform linux/amd64,linux/arm64 -t smarthost .
#   docker run -d -p 25:2525 -v smarthost-spool:/var/spool/smarthost \
#     -e SMARTHOST_RELAY_LIST=192.168.1.0/24 -e SMARTHOST_UPSTREAM_URL=smtp+starttls://smtp.office365.com:587 \
#     -e SMARTHOST_UPSTREAM_USERNAME=scanner@contoso.com -e SMARTHOST_UPSTREAM_PASSWORD=… smarthost
#
# Settings: SMARTHOST_* variables (src/config/env.ts) and/or /etc/smarthost/smarthost.yaml in the
# config volume; a variable that is set wins over the file. docs/install.md "Container".
# test/e2e/exe.test.ts runs the binary exactly as this image does (read-only root, user 65534,
# config from the environment only) and builds the final stage with buildah when it is installed.

# ---- build: bundle, inject, collect the root file system ---------------------------------------
FROM node:24-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The build runs on the target's platform (buildx emulates arm64), so ldd reports that platform's
# libraries and the plain strip works.
RUN set -eu; \
    case "$(uname -m)" in x86_64) target=linux-x64 ;; aarch64) target=linux-arm64 ;; *) echo "unsupported: $(uname -m)"; exit 1 ;; esac; \
    node scripts/build-exe.mjs --target "$target" --out /out; \
    bash scripts/exe-rootfs.sh "/out/smarthost-$target" /rootfs

FROM scratch AS rootfs
COPY --from=build /rootfs /

# ---- the image ---------------------------------------------------------------------------------
FROM scratch
COPY --from=rootfs / /
# 65534 ("smarthost" in the image's /etc/passwd): never root. 2525 inside (a port above 1024
# needs no privilege on any runtime); publish it as 25 (-p 25:2525).
USER 65534:65534
# serve reads ./smarthost.yaml when the config volume holds one
WORKDIR /etc/smarthost
ENV SMARTHOST_MAILROOT=/var/spool/smarthost \
    SMARTHOST_LISTEN=0.0.0.0:2525 \
    SMARTHOST_WEB_LISTEN=127.0.0.1:8025
# The spool (queue, pickup, badmail, history, TLS key) must outlive the container: a volume.
VOLUME ["/var/spool/smarthost", "/etc/smarthost"]
EXPOSE 2525 8025
# /healthz of the console (on loopback inside the container unless SMARTHOST_WEB_LISTEN says otherwise)
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["/smarthost", "health"]
# SIGTERM: open sessions and deliveries finish (up to 30 s); use docker stop -t 40
STOPSIGNAL SIGTERM
ENTRYPOINT ["/smarthost"]
CMD ["serve"]
