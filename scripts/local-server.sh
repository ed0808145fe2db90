# Sourced by scripts/fuzz and scripts/clients (one place for it): starts loyalty-local on a
# throwaway data folder and a free port, waits until it answers, stops it (and removes the data)
# when the calling script exits, and defines `token <role> [id]` for that server's tokens.
# Needs $target set; sets $bin, $base and $data. Usage: . scripts/local-server.sh <log name>
bin="$target/debug/loyalty-local"
[ -x "$bin" ] || cargo build -q -p loyalty-local
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_log="$target/$1-server.log"
"$bin" --data "$data" --listen "127.0.0.1:$port" >"$server_log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
base="http://127.0.0.1:$port"
up=
for _ in $(seq 1 100); do curl -sf -o /dev/null "$base/v1/openapi.json" && { up=1; break; }; sleep 0.1; done
[ -n "$up" ] || { cat "$server_log"; echo "loyalty-local did not answer on $base (log above: $server_log)" >&2; exit 1; }
token() { "$bin" --data "$data" token "$@" 2>/dev/null; }
