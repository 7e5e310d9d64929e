# syntax=docker/dockerfile:1
# llmgate: a static binary on a distroless base, running as non-root.
#   docker build -t llmgate .
#   docker run --rm -p 8080:8080 -v $PWD/config.yaml:/etc/llmgate/config.yaml:ro llmgate
# The config must listen on 0.0.0.0:8080 (the default 127.0.0.1 is unreachable from outside).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/llmgate ./cmd/llmgate \
    && /out/llmgate version

# static: CA certificates (for https upstreams), tzdata, /etc/passwd with nonroot; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/llmgate /usr/local/bin/llmgate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llmgate"]
CMD ["serve", "-config", "/etc/llmgate/config.yaml"]
