# The product's one image: static worker, starter, devicemock and
# healthcheck binaries on an empty base. docker-compose.yml picks the
# binary per service with its entrypoint.

# The Go of go.mod; GOTOOLCHAIN=local fails the build instead of
# downloading another toolchain when go.mod asks for a newer one.
FROM golang:1.26.8 AS build
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags="-s -w" -o /out/ ./worker ./starter ./devicemock ./worker/healthcheck

# Nothing but the binaries and the CA bundle that device and firmware
# HTTPS connections verify against. Time zones are embedded in the worker
# (time/tzdata). No shell: health checks run the healthcheck binary.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/ /usr/local/bin/
ENV PATH=/usr/local/bin
# An unprivileged user without a passwd entry (the binaries need none).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/worker"]
