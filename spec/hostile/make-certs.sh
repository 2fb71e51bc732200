#!/bin/sh
# make-certs.sh -- the certificate fixtures of the hostile peer (peer.py).
#
#   sh spec/hostile/make-certs.sh            (re)make spec/hostile/certs/
#
# Outputs (committed; valid for 100 years, so the specs never expire):
#   ca.pem / ca.key          the test CA the specs trust (ca_file)
#   normal.pem / .key        a good leaf for mx.hostile.test (harness check)
#   cert-nul-cn.pem          leaf whose CN and DNS SAN are
#                            "mx.hostile.test\0.evil.example" (NUL inside)
#   cert-many-sans.pem       leaf with 3,000 subjectAltName DNS entries
#   chain-200.pem            leaf + 199 intermediates: a 200-certificate chain
#   chain-wrong-order.pem    leaf, int1, int2 (int2 issued the leaf: out of order)
#   unknown-critical-ext.pem leaf with a critical private extension
#                            (1.3.6.1.4.1.55555.1.1) nobody understands
#   rsa-16384.pem            leaf with a 16384-bit RSA key (the key is kept
#                            when it exists: generating it takes minutes)
# Each <fault>.pem is the chain the peer presents, leaf first; <fault>.key
# its key. openssl(1) does the work; python3 only patches one byte (the NUL).
set -eu
cd "$(dirname "$0")"
mkdir -p certs
cd certs
DAYS=36500
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign SUBJ KEY ISSUER_PEM ISSUER_KEY EXTFILE OUT
sign() {
	openssl req -new -key "$2" -subj "$1" -out "$tmp/req.csr"
	openssl x509 -req -in "$tmp/req.csr" -CA "$3" -CAkey "$4" -set_serial "0x$(openssl rand -hex 8)" \
		-days $DAYS -sha256 -extfile "$5" -out "$6" 2>/dev/null
}

cat > "$tmp/ca.ext" <<'EOF'
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
cat > "$tmp/int.ext" <<'EOF'
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = none
authorityKeyIdentifier = none
EOF
leaf_ext() {   # leaf_ext OUT [extra lines...]
	out=$1; shift
	{
		echo "basicConstraints = critical, CA:false"
		echo "keyUsage = critical, digitalSignature, keyEncipherment"
		echo "extendedKeyUsage = serverAuth"
		echo "subjectAltName = DNS:mx.hostile.test, DNS:*.hostile.test"
		for l in "$@"; do echo "$l"; done
	} > "$out"
}

# --- the CA and a good leaf ---------------------------------------------------
ec_key ca.key
openssl req -new -x509 -key ca.key -subj "/O=mxprobe hostile peer/CN=mxprobe hostile test CA" \
	-days $DAYS -sha256 -addext "basicConstraints = critical, CA:true" \
	-addext "keyUsage = critical, keyCertSign, cRLSign" -out ca.pem
leaf_ext "$tmp/leaf.ext"
ec_key normal.key
sign "/CN=mx.hostile.test" normal.key ca.pem ca.key "$tmp/leaf.ext" normal.pem

# --- cert-nul-cn: made with a placeholder byte, patched to NUL, re-signed ----
ec_key cert-nul-cn.key
cat > "$tmp/nul.ext" <<'EOF'
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:mx.hostile.test~.evil.example
EOF
openssl req -new -key cert-nul-cn.key -subj "/CN=mx.hostile.test~.evil.example" -out "$tmp/nul.csr"
openssl x509 -req -in "$tmp/nul.csr" -signkey cert-nul-cn.key -days $DAYS -sha256 \
	-extfile "$tmp/nul.ext" -outform DER -out "$tmp/nul.der" 2>/dev/null
python3 - "$tmp/nul.der" <<'PY'
import sys
p = sys.argv[1]
der = open(p, "rb").read()
old, new = b"mx.hostile.test~.evil.example", b"mx.hostile.test\x00.evil.example"
assert der.count(old) == 3, der.count(old)   # subject, issuer, SAN
open(p, "wb").write(der.replace(old, new))
PY
# the patch broke the self-signature: self-sign again (x509 -CA wants a
# self-signed input), then have the CA sign it; subject and extensions stay
openssl x509 -inform DER -in "$tmp/nul.der" -signkey cert-nul-cn.key -preserve_dates -out "$tmp/nul.pem"
openssl x509 -in "$tmp/nul.pem" -CA ca.pem -CAkey ca.key -preserve_dates -sha256 -set_serial 0x4e554c \
	-out cert-nul-cn.pem

# --- cert-many-sans: 3,000 DNS names -------------------------------------------
ec_key cert-many-sans.key
{
	echo "basicConstraints = critical, CA:false"
	echo "keyUsage = critical, digitalSignature, keyEncipherment"
	echo "extendedKeyUsage = serverAuth"
	echo "subjectAltName = @alt"
	echo "[alt]"
	echo "DNS.1 = mx.hostile.test"
	i=2
	while [ $i -le 3000 ]; do echo "DNS.$i = s$i.hostile.test"; i=$((i + 1)); done
} > "$tmp/sans.ext"
# an extfile with sections needs -extensions: put the extensions in [v3]
{ echo "[v3]"; cat "$tmp/sans.ext"; } > "$tmp/sans.cnf"
openssl req -new -key cert-many-sans.key -subj "/CN=mx.hostile.test" -out "$tmp/sans.csr"
openssl x509 -req -in "$tmp/sans.csr" -CA ca.pem -CAkey ca.key -set_serial 0x5a4e5300 \
	-days $DAYS -sha256 -extfile "$tmp/sans.cnf" -extensions v3 -out cert-many-sans.pem 2>/dev/null

# --- chain-200: CA -> i001 -> ... -> i199 -> leaf ------------------------------
ec_key "$tmp/int.key"
cp ca.pem "$tmp/issuer.pem"
cp ca.key "$tmp/issuer.key"
: > "$tmp/ints.pem"
i=1
while [ $i -le 199 ]; do
	n=$(printf '%03d' $i)
	sign "/CN=hostile intermediate $n" "$tmp/int.key" "$tmp/issuer.pem" "$tmp/issuer.key" \
		"$tmp/int.ext" "$tmp/i.pem"
	cat "$tmp/ints.pem" > "$tmp/ints.old"
	cat "$tmp/i.pem" "$tmp/ints.old" > "$tmp/ints.pem"   # newest first
	cp "$tmp/i.pem" "$tmp/issuer.pem"
	cp "$tmp/int.key" "$tmp/issuer.key"
	i=$((i + 1))
done
ec_key chain-200.key
sign "/CN=mx.hostile.test" chain-200.key "$tmp/issuer.pem" "$tmp/issuer.key" "$tmp/leaf.ext" "$tmp/leaf.pem"
cat "$tmp/leaf.pem" "$tmp/ints.pem" > chain-200.pem

# --- chain-wrong-order: CA -> int1 -> int2 -> leaf, sent leaf, int1, int2 -------
ec_key "$tmp/w1.key"
ec_key "$tmp/w2.key"
sign "/CN=hostile order int1" "$tmp/w1.key" ca.pem ca.key "$tmp/int.ext" "$tmp/w1.pem"
sign "/CN=hostile order int2" "$tmp/w2.key" "$tmp/w1.pem" "$tmp/w1.key" "$tmp/int.ext" "$tmp/w2.pem"
ec_key chain-wrong-order.key
sign "/CN=mx.hostile.test" chain-wrong-order.key "$tmp/w2.pem" "$tmp/w2.key" "$tmp/leaf.ext" "$tmp/leaf.pem"
cat "$tmp/leaf.pem" "$tmp/w1.pem" "$tmp/w2.pem" > chain-wrong-order.pem

# --- unknown-critical-ext -----------------------------------------------------
ec_key unknown-critical-ext.key
leaf_ext "$tmp/crit.ext" "1.3.6.1.4.1.55555.1.1 = critical, ASN1:NULL"
sign "/CN=mx.hostile.test" unknown-critical-ext.key ca.pem ca.key "$tmp/crit.ext" unknown-critical-ext.pem

# --- rsa-16384 ----------------------------------------------------------------
if [ ! -s rsa-16384.key ]; then
	echo "generating a 16384-bit RSA key (minutes)..." >&2
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:16384 -out rsa-16384.key
fi
sign "/CN=mx.hostile.test" rsa-16384.key ca.pem ca.key "$tmp/leaf.ext" rsa-16384.pem

rm -f ca.srl
ls -l
