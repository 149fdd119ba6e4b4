#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what is
# missing, checks formatting and lint, and runs every test (integration tests
# included; they start the servers they need themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need (the database servers and their tools are
# started by the tests themselves, in temporary directories).
packages=(mariadb-server mariadb-client mariadb-backup postgresql)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "installing Debian packages: ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

go version
go mod download

# MinIO, the S3 server the storage/s3 and e2e tests start (internal/s3test),
# built once from the Go module proxy into a cache directory: about 7
# minutes on 2 shared cores, a second on later runs. The module proxy
# serves only a pseudo-version. AGPL: run as a separate test process,
# never linked.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
minio_dir="${HOME}/.cache/rdsbackup/minio"
if [ ! -x "$minio_dir/minio" ] || [ "$(cat "$minio_dir/version" 2>/dev/null)" != "$MINIO_VERSION" ]; then
	echo "building minio $MINIO_VERSION into $minio_dir"
	mkdir -p "$minio_dir"
	start=$(date +%s)
	(cd "$(mktemp -d)" && GOBIN="$minio_dir" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_VERSION")
	echo "$MINIO_VERSION" >"$minio_dir/version"
	echo "built minio in $(($(date +%s) - start))s"
fi
export RDSBACKUP_MINIO="$minio_dir/minio"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
echo "== go test"
go test -count=1 -timeout 20m ./...
# A short run of each fuzz target (their seed corpora already ran above as
# ordinary tests); a crash fails the suite and leaves its input under the
# package's testdata/fuzz, to be committed as a regression test.
echo "== go test -fuzz (8s each)"
for target in rpc:FuzzParseRequest rpc:FuzzSignatures rpc:FuzzParseAuthorization ram:FuzzPolicyDocument \
	backup:FuzzSetFile cmd/rdsbackup:FuzzParseConfig storage/encrypted:FuzzDecrypt; do
	go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime 8s "./${target%%:*}"
done
