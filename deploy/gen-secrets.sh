#!/usr/bin/env bash
# Writes the secrets deploy/compose.yaml needs, without overwriting any:
#   secrets/nats-{admin,worker,receiver}.nk   NKey seeds, one per NATS user
#   env/nats.env                              their public keys (for the NATS servers)
#   env/receiver.env                          a random CRM notification token
#   env/grafana.env                           a random Grafana admin password
#   env/worker.env                            copied from the example: fill in your Zoho client
# Needs Go (the NKeys are made by github.com/nats-io/nkeys/nk, a dependency
# of zohook, run from the repository: ZOHOOK_ROOT, default the parent
# directory) and openssl.
set -euo pipefail
cd "$(dirname "$0")"
root=${ZOHOOK_ROOT:-$(cd .. && pwd)}
umask 077

if [[ -e secrets/nats-admin.nk || -e env/nats.env ]]; then
  echo "secrets/nats-*.nk or env/nats.env exist already: keeping them (delete both to make new keys)"
else
  : > env/nats.env.tmp
  for role in admin worker receiver; do
    out=$(go -C "$root" run github.com/nats-io/nkeys/nk -gen user -pubout)
    seed=$(sed -n 1p <<<"$out")
    pub=$(sed -n 2p <<<"$out")
    [[ $seed == SU* && $pub == U* ]] || { echo "unexpected nk output" >&2; exit 1; }
    printf '%s\n' "$seed" > "secrets/nats-$role.nk"
    printf 'ZOHOOK_NATS_%s_NKEY=%s\n' "${role^^}" "$pub" >> env/nats.env.tmp
  done
  mv env/nats.env.tmp env/nats.env
  chmod 0644 env/nats.env
  # The zohook image runs as nonroot (uid 65532): it must read its seed.
  if [[ $(id -u) == 0 ]]; then
    chown 65532:65532 secrets/nats-*.nk
  else
    echo "note: run 'sudo chown 65532:65532 deploy/secrets/nats-*.nk' so the containers' nonroot user can read the seeds"
  fi
  echo "wrote secrets/nats-{admin,worker,receiver}.nk and env/nats.env"
fi

if [[ ! -e env/receiver.env ]]; then
  printf 'ZOHOOK_CRM_NOTIFY_TOKENS=%s\n' "$(openssl rand -hex 32)" > env/receiver.env
  echo "wrote env/receiver.env (the token to give Zoho is in it)"
fi
if [[ ! -e env/grafana.env ]]; then
  printf 'GF_SECURITY_ADMIN_PASSWORD=%s\nGF_USERS_ALLOW_SIGN_UP=false\n' "$(openssl rand -hex 16)" > env/grafana.env
  echo "wrote env/grafana.env"
fi
if [[ ! -e env/worker.env ]]; then
  cp env/worker.env.example env/worker.env
  echo "wrote env/worker.env from the example: fill in your Zoho client before starting"
fi
