# syntax=docker/dockerfile:1
# Multi-stage build of both binaries: static (CGO off), non-root, small.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/receiver ./cmd/receiver \
 && go build -trimpath -ldflags="-s -w" -o /out/worker ./cmd/worker \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/receiver /out/worker /usr/local/bin/
COPY rules.yaml /etc/zohook/rules.yaml
# The embedded NATS server's files (single-node use); distroless has no shell
# to mkdir, so the directory is copied in already owned by nonroot.
COPY --from=build --chown=nonroot:nonroot /out/data /var/lib/zohook/data
WORKDIR /var/lib/zohook
ENV ZOHOOK_RULES=/etc/zohook/rules.yaml \
    ZOHOOK_DATA_DIR=/var/lib/zohook/data
USER nonroot:nonroot
# A receiver without -nats-url embeds a NATS server: its JetStream files
# (every accepted event not yet handled) and the NKey seeds it creates for
# its users (nats-auth/admin.nk, worker.nk, receiver.nk) live here. Give it
# a named volume (docker run -v zohook-data:/var/lib/zohook/data), or events
# and seeds go with the container. Unused when -nats-url names a cluster.
VOLUME ["/var/lib/zohook/data"]
# 8080: the receiver's public port (Zoho callbacks, /healthz, /readyz).
# 9091, 9090: the admin listeners (/metrics) of the receiver and the worker;
# they bind 127.0.0.1 unless ZOHOOK_ADMIN_ADDR says otherwise (:9091 for
# Prometheus on a private network). 4222: the embedded NATS server, loopback
# unless ZOHOOK_NATS_LISTEN says otherwise.
EXPOSE 8080 9091 9090 4222
# docker run IMAGE            → the receiver
# docker run IMAGE worker ...  → a worker
CMD ["receiver"]
