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
EXPOSE 8080 9090
# docker run IMAGE            → the receiver
# docker run IMAGE worker ...  → a worker
CMD ["receiver"]
