#!/usr/bin/env bash
# Mints a dcem site's broker PKI with the openssl CLI, and the broker's ACL
# (who may publish and subscribe where).
#
#   scripts/mint-certs.sh [-d DIR] [--san NAME]... [--collector NAME]... SITE/GATEWAY...
#   scripts/mint-certs.sh -d DIR --revoke SITE/GATEWAY
#
# In DIR (default ./dcem-pki), each made only when it is not there yet:
#   ca.crt, ca.key                 the site CA (kept unless --new-ca)
#   server.crt, server.key         the broker's certificate; SANs from --san
#                                  (default localhost and 127.0.0.1)
#   collectors/NAME.crt, .key      a collector's identity: CN = NAME
#                                  (default one named dcem-collector)
#   gateways/SITE/GW.crt, .key     a gateway's identity: CN = SITE/GW
#   dynsec.json                    the broker's rules (mosquitto's dynamic-security
#                                  plugin), written anew each run from the
#                                  identities in DIR (revoked ones left out)
#   crl.pem                        mosquitto crlfile: the revoked certificates
# Keys are mode 0600. The broker takes the CN as the MQTT username
# (use_identity_as_username), and the rules name each user explicitly, so a
# gateway writes only its own data/state/metrics and reads only its own
# ack/ctl (docs/broker.md). A gateway's CN is SITE/GW because a gateway id is
# unique only within its site; the '/' also keeps collector names (which
# must not have one) and gateway names apart.
set -euo pipefail

die() { echo "mint-certs: $*" >&2; exit 2; }

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
  cat <<'EOF'
Options:
  -d, --dir DIR          where the PKI lives (default ./dcem-pki)
  --san NAME             a DNS name or IP address clients reach the broker by
                         (repeatable; default localhost and 127.0.0.1)
  --collector NAME       a collector identity (repeatable; default dcem-collector
                         when DIR has none yet)
  --days N               validity of the certificates it issues (default 825)
  --new-ca               make a new CA although one exists, and issue every
                         certificate in DIR anew under it
  --reissue              issue the server's and every client's certificate anew
                         (new SANs, near expiry); keys are kept
  --revoke SITE/GATEWAY  put the gateway's certificate on the CRL and out of the ACL
EOF
}

dir=./dcem-pki
sans=() collectors=() gateways=() revoke=()
days=825 new_ca=0 reissue=0
while (($#)); do
  case $1 in
  -d | --dir) dir=${2:?}; shift 2 ;;
  --san) sans+=("${2:?}"); shift 2 ;;
  --collector) collectors+=("${2:?}"); shift 2 ;;
  --days) days=${2:?}; shift 2 ;;
  --new-ca) new_ca=1; shift ;;
  --reissue) reissue=1; shift ;;
  --revoke) revoke+=("${2:?}"); shift 2 ;;
  -h | --help) usage; exit 0 ;;
  -*) usage >&2; exit 2 ;;
  *) gateways+=("$1"); shift ;;
  esac
done
[[ $days =~ ^[1-9][0-9]{0,4}$ ]] || die "--days: a whole number of days, 1 to 99999"
((${#sans[@]})) || sans=(localhost 127.0.0.1)

# dcem ids (docs/wire-format.md): letters, digits, '-', '_', '.', at most 63.
id_ok() { [[ $1 =~ ^[A-Za-z0-9._-]{1,63}$ && $1 != . && $1 != .. ]]; }
for g in "${gateways[@]}" "${revoke[@]}"; do
  [[ $g == */* ]] && id_ok "${g%%/*}" && id_ok "${g#*/}" ||
    die "$g: a gateway is SITE/GATEWAY, each an id of letters, digits, '-', '_', '.'"
done
for c in "${collectors[@]}"; do
  id_ok "$c" || die "$c: a collector name is letters, digits, '-', '_', '.' (no '/')"
done
for s in "${sans[@]}"; do
  [[ $s =~ ^[A-Za-z0-9.:*-]+$ ]] || die "$s: not a DNS name or IP address"
done

mkdir -p "$dir/collectors" "$dir/gateways" "$dir/revoked" "$dir/db"
cd "$dir"
[[ -f db/index.txt ]] || : >db/index.txt
[[ -f db/crlnumber ]] || echo 1000 >db/crlnumber

say() { printf '%-7s %s\n' "$1" "$2"; }

# openssl ca keeps the issued/revoked list (db/index.txt) the CRL is made from.
cat >db/ca.cnf <<'EOF'
[ca]
default_ca = dcem
[dcem]
dir = .
database = $dir/db/index.txt
new_certs_dir = $dir/db
certificate = $dir/ca.crt
private_key = $dir/ca.key
serial = $dir/db/serial
crlnumber = $dir/db/crlnumber
default_md = sha256
default_crl_days = 3650
policy = any
unique_subject = no
[any]
commonName = supplied
EOF

newkey() { # newkey FILE: an EC P-256 key, mode 0600
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

# A '/' in a -subj value starts a new RDN unless escaped.
subj() { printf '/CN=%s' "${1//\//\\/}"; }

if [[ ! -f ca.crt || ! -f ca.key || $new_ca == 1 ]]; then
  newkey ca.key
  openssl req -new -x509 -key ca.key -out ca.crt -days 3650 -sha256 -subj "/CN=dcem site CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  : >db/index.txt
  reissue=1
  say made "$dir/ca.crt, ca.key (the site CA; keep ca.key offline)"
else
  say kept "$dir/ca.crt (the site CA)"
fi

# issue NAME CN EXT: NAME.crt for NAME.key (made if missing), signed by the CA.
issue() {
  local name=$1 cn=$2 ext=$3
  if [[ -f $name.crt && -f $name.key && $reissue == 0 ]]; then
    say kept "$dir/$name.crt ($cn)"
    return
  fi
  [[ -f $name.key ]] || newkey "$name.key"
  printf '%s\n' "$ext" >db/ext.cnf
  openssl req -new -key "$name.key" -subj "$(subj "$cn")" -out db/req.csr 2>/dev/null
  openssl x509 -req -in db/req.csr -CA ca.crt -CAkey ca.key -CAserial db/serial -CAcreateserial \
    -days "$days" -sha256 -extfile db/ext.cnf -out "$name.crt" 2>/dev/null
  rm -f db/req.csr db/ext.cnf
  chmod 0644 "$name.crt"
  say made "$dir/$name.crt, $name.key ($cn)"
}

san_list=
for s in "${sans[@]}"; do
  if [[ $s =~ ^[0-9.]+$ || $s == *:* ]]; then san_list+=",IP:$s"; else san_list+=",DNS:$s"; fi
done
issue server "${sans[0]}" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=serverAuth
subjectAltName=${san_list#,}"

client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyAgreement
extendedKeyUsage=clientAuth"

# Every identity DIR holds, with those given: each issued when it is missing
# (or with --reissue / --new-ca), so the script can be run again at will.
declare -A seen=()
for f in collectors/*.crt; do [[ -e $f ]] && collectors+=("$(basename "${f%.crt}")"); done
((${#collectors[@]})) || collectors=(dcem-collector)
for c in "${collectors[@]}"; do
  [[ -n ${seen[c/$c]:-} ]] && continue
  seen[c/$c]=1
  issue "collectors/$c" "$c" "$client_ext"
done
for f in gateways/*/*.crt; do [[ -e $f ]] && { g=${f#gateways/}; gateways+=("${g%.crt}"); }; done
for g in "${gateways[@]}"; do
  [[ -n ${seen[g/$g]:-} ]] && continue
  seen[g/$g]=1
  mkdir -p "gateways/${g%%/*}"
  issue "gateways/$g" "$g" "$client_ext"
done

# Revocation: on the CRL (the broker refuses the TLS handshake) and out of
# the ACL below (the broker would grant it nothing anyway). The CRL names
# the certificate's serial, so the gateway can be given a new key and
# certificate later under the same id.
for g in "${revoke[@]}"; do
  [[ -f gateways/$g.crt ]] || die "--revoke $g: no certificate gateways/$g.crt in $dir"
  openssl ca -config db/ca.cnf -revoke "gateways/$g.crt" -batch 2>/dev/null ||
    die "--revoke $g: openssl ca failed"
  serial=$(openssl x509 -in "gateways/$g.crt" -noout -serial)
  mkdir -p "revoked/${g%%/*}"
  mv "gateways/$g.crt" "revoked/$g.${serial#serial=}.crt"
  rm -f "gateways/$g.key"
  rmdir --ignore-fail-on-non-empty "gateways/${g%%/*}"
  say revoked "$g (its certificate is in $dir/revoked/)"
done
if [[ ! -f crl.pem || ${#revoke[@]} -gt 0 || $new_ca == 1 ]]; then
  openssl ca -config db/ca.cnf -gencrl -out crl.pem -batch 2>/dev/null || die "openssl ca -gencrl failed"
fi
chmod 0644 crl.pem ca.crt

# The broker's rules, for mosquitto's dynamic-security plugin: one role per
# identity, listed explicitly (no patterns to reason about), everything else
# denied. Not an acl_file: mosquitto 2.0's acl_file grants every SUBSCRIBE
# and only filters on delivery, so a gateway could join the collector's
# shared subscription ($share/<group>/...) and the broker would drop the
# batches it hands that member. The plugin refuses such a SUBSCRIBE
# (reason 135), and checks a shared one whole, "$share/<group>/<filter>".
acl_entry() { printf '%s{"acltype": "%s", "topic": "%s", "allow": true}' "$sep" "$1" "$2"; sep=', '; }
role() { # role NAME send:|receive:|sub: TOPIC... : what NAME may do on which topics
  local name=$1 type= t
  shift
  printf '%s\n    {"rolename": "%s", "acls": [' "$rsep" "$name"
  rsep=,
  sep=
  for t in "$@"; do
    case $t in
    send:* | receive:* | sub:*) type=${t%%:*}; continue ;;
    esac
    case $type in
    send) acl_entry publishClientSend "$t" ;;
    receive) acl_entry publishClientReceive "$t" ;;
    sub) acl_entry "$([[ $t == *+* ]] && echo subscribePattern || echo subscribeLiteral)" "$t" ;;
    esac
  done
  printf ']}'
}
names=() roles=()
for f in collectors/*.crt; do
  [[ -e $f ]] || continue
  c=$(basename "${f%.crt}")
  names+=("$c") roles+=(collector)
done
for f in gateways/*/*.crt; do
  [[ -e $f ]] || continue
  g=${f#gateways/}
  names+=("${g%.crt}") roles+=("gateway:${g%.crt}")
done
{
  printf '{\n  "clients": ['
  for i in "${!names[@]}"; do
    printf '%s\n    {"username": "%s", "roles": [{"rolename": "%s"}]}' "$([[ $i == 0 ]] || echo ,)" \
      "${names[i]}" "${roles[i]}"
  done
  printf '\n  ],\n  "roles": ['
  rsep=
  # A collector reads every gateway's data/state/metrics (its data also
  # through a shared subscription of any group name) and writes acks,
  # resend requests and alerts.
  role collector sub: dcem/v1/+/+/data dcem/v1/+/+/state dcem/v1/+/+/metrics \
    '$share/+/dcem/v1/+/+/data' receive: dcem/v1/+/+/data dcem/v1/+/+/state \
    dcem/v1/+/+/metrics send: dcem/v1/+/+/ack dcem/v1/+/+/ctl dcem/v1/+/alerts
  # A gateway writes its own data/state (its birth and last will)/metrics,
  # and reads its own ack/ctl.
  for i in "${!names[@]}"; do
    [[ ${roles[i]} == gateway:* ]] || continue
    t=dcem/v1/${names[i]}
    role "${roles[i]}" send: "$t/data" "$t/state" "$t/metrics" sub: "$t/ack" "$t/ctl" \
      receive: "$t/ack" "$t/ctl"
  done
  printf '\n  ],\n  "defaultACLAccess": {"publishClientSend": false, "publishClientReceive": false, '
  printf '"subscribe": false, "unsubscribe": true}\n}\n'
} >dynsec.json.new
chmod 0644 dynsec.json.new
mv dynsec.json.new dynsec.json
say wrote "$dir/dynsec.json (${#names[@]} identities), $dir/crl.pem ($(grep -c '^R' db/index.txt) revoked)"
