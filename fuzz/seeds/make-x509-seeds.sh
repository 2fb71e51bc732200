#!/bin/sh
# make-x509-seeds.sh -- the seed certificates of fuzz-x509, made with the
# openssl command line tool.
#
#   sh fuzz/seeds/make-x509-seeds.sh          # writes fuzz/corpus/x509/ and fuzz/ca.pem
#
# A root (fuzz/ca.pem, the CA the fuzz target verifies against) and an
# intermediate issue leaves that vary everything x509.c extracts: key types
# and sizes (RSA 1024..4096, RSA-PSS, DSA, EC P-256/P-384/P-521/brainpool,
# Ed25519, Ed448, an algorithm OpenSSL cannot load), signature algorithms,
# names (UTF-8, BMPString, T61String, a CN longer than MXP_TEXT_MAX with
# multi-byte characters at the cut, a NUL in the CN and in a SAN), SANs
# (DNS, IP v4/v6, e-mail, URI, directory name, 20 of them), serials (20
# bytes, negative), dates (UTCTime, GeneralizedTime, expired, not yet
# valid), a v1 certificate, an unknown critical extension, chains of 2, 3
# and 6. Dates and serials are fixed; the keys, and so the digests, change
# on every run. Each chain is written as PEM (*.pem) and most also as DER
# (*.der: certificates back to back, the harness's DER mode). The lab's
# own certificates are as good as seeds: copy them in as *.pem.
set -eu

here=$(cd "$(dirname "$0")/../.." && pwd)
out=$here/fuzz/corpus/x509
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work"
mkdir -p "$out"

CA_START=20200101000000Z
CA_END=21250101000000Z
START=20240101000000Z
END=21240101000000Z

cat > ca.cnf <<'EOF'
[ ca ]
default_ca = fuzzca
[ fuzzca ]
dir             = .
database        = ./index.txt
new_certs_dir   = ./new
serial          = ./serial
default_md      = sha256
policy          = anything
unique_subject  = no
copy_extensions = none
preserve        = yes
[ anything ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = optional
emailAddress           = optional
serialNumber           = optional
[ req ]
distinguished_name = dn
string_mask        = utf8only
utf8               = yes
[ dn ]
[ ca_ext ]
basicConstraints       = critical, CA:true
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[ leaf ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth, clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
subjectAltName         = $ENV::SAN
certificatePolicies    = 2.23.140.1.2.1
authorityInfoAccess    = OCSP;URI:http://ocsp.example.test/, caIssuers;URI:http://ca.example.test/i.der
crlDistributionPoints  = URI:http://crl.example.test/i.crl
[ leaf_critical ]
basicConstraints       = critical, CA:false
subjectAltName         = $ENV::SAN
1.3.6.1.4.1.55555.7    = critical, DER:05:00
2.5.29.99              = critical, ASN1:UTF8String:unknown but standard arc
[ leaf_min ]
subjectAltName         = $ENV::SAN
EOF
mkdir new
: > index.txt
SAN=DNS:mx.example.test
export SAN

# ca ISSUER_CERT ISSUER_KEY CSR OUT SERIAL START END EXT [openssl ca args]
ca() {
	ic=$1 ik=$2 csr=$3 o=$4 serial=$5 s=$6 e=$7 ext=$8
	shift 8
	echo "$serial" > serial
	if [ "$ext" = none ]; then set -- "$@"; else set -- -extensions "$ext" "$@"; fi
	openssl ca -batch -notext -config ca.cnf -cert "$ic" -keyfile "$ik" \
	    -in "$csr" -out "$o" -startdate "$s" -enddate "$e" "$@" 2>/dev/null
}
# req KEY SUBJECT CSR [openssl req args]
req() {
	k=$1 subj=$2 csr=$3
	shift 3
	openssl req -new -config ca.cnf -utf8 -key "$k" -subj "$subj" -out "$csr" "$@"
}
key() { k=$1; shift; openssl genpkey -out "$k" "$@" 2>/dev/null; }
rsa() { key "$1" -algorithm RSA -pkeyopt rsa_keygen_bits:"$2"; }
ec() { key "$1" -algorithm EC -pkeyopt ec_paramgen_curve:"$2"; }
der() { for f in "$@"; do openssl x509 -in "$f" -outform DER; done; }
# leaf NAME KEYFILE SUBJECT SERIAL [START END EXT ISSUER [ca args]]
leaf() {
	n=$1 k=$2 subj=$3 serial=$4
	s=${5:-$START} e=${6:-$END} ext=${7:-leaf} iss=${8:-inter}
	[ $# -gt 8 ] && shift 8 || shift $#
	req "$k" "$subj" "$n.csr" >/dev/null
	ca "$iss.pem" "$iss.key" "$n.csr" "$n.pem" "$serial" "$s" "$e" "$ext" "$@"
}

# the hierarchy: root (RSA 4096) -> intermediate (EC P-384) -> leaves
rsa root.key 4096
req root.key "/C=ZZ/O=mxprobe fuzz/CN=mxprobe Fuzz Root" root.csr
ca root.csr root.key root.csr root.pem 01 $CA_START $CA_END ca_ext -selfsign
ec inter.key secp384r1
req inter.key "/C=ZZ/O=mxprobe fuzz/CN=mxprobe Fuzz Intermediate" inter.csr
ca root.pem root.key inter.csr inter.pem 02 $CA_START $CA_END ca_ext

# the good lab-like leaf: what a healthy MX sends
rsa rsa2048.key 2048
SAN="DNS:mx.example.test, DNS:*.example.test, IP:127.0.0.25, IP:fd00::25"
leaf good rsa2048.key "/C=ZZ/O=Example/CN=mx.example.test" 1000

# key types
rsa rsa1024.key 1024;  SAN=DNS:weak.example.test;  leaf rsa1024 rsa1024.key "/CN=weak.example.test" 1001
rsa rsa3072.key 3072;  SAN=DNS:rsa3072.example.test; leaf rsa3072 rsa3072.key "/CN=rsa3072.example.test" 1002
key pss.key -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048
SAN=DNS:pss.example.test; leaf pss pss.key "/CN=pss.example.test" 1003
key dsa.params -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048
openssl genpkey -paramfile dsa.params -out dsa.key 2>/dev/null
SAN=DNS:dsa.example.test; leaf dsa dsa.key "/CN=dsa.example.test" 1004
ec p256.key prime256v1; SAN=DNS:p256.example.test; leaf p256 p256.key "/CN=p256.example.test" 1005
ec p521.key secp521r1;  SAN=DNS:p521.example.test; leaf p521 p521.key "/CN=p521.example.test" 1006
ec bp.key brainpoolP256r1; SAN=DNS:bp.example.test; leaf brainpool bp.key "/CN=bp.example.test" 1007
key ed25519.key -algorithm ED25519; SAN=DNS:ed25519.example.test
leaf ed25519 ed25519.key "/CN=ed25519.example.test" 1008
key ed448.key -algorithm ED448; SAN=DNS:ed448.example.test
leaf ed448 ed448.key "/CN=ed448.example.test" 1009

# signatures: SHA-1 and RSA-PSS by the RSA root
SAN=DNS:sha1.example.test
leaf sha1 rsa2048.key "/CN=sha1.example.test" 1010 $START $END leaf root -md sha1
SAN=DNS:pss-sig.example.test
leaf psssig rsa2048.key "/CN=pss-sig.example.test" 1011 $START $END leaf root \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32

# names and SANs
SAN="DNS:a.example.test, DNS:b.example.test, DNS:c.example.test, DNS:d.example.test, DNS:e.example.test, DNS:f.example.test, DNS:g.example.test, DNS:h.example.test, DNS:i.example.test, DNS:j.example.test, DNS:k.example.test, DNS:l.example.test, DNS:m.example.test, DNS:n.example.test, DNS:o.example.test, DNS:p.example.test, IP:192.0.2.1, IP:2001:db8::1, DNS:q.example.test, DNS:r.example.test"
leaf manysans p256.key "/CN=a.example.test" 1012
SAN="email:postmaster@example.test, URI:https://mta-sts.example.test/, dirName:dirsect, RID:1.2.3.4, otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_smtp.example.test, DNS:mx.example.test"
printf '[ dirsect ]\nCN = directory name\nO = Example\n' >> ca.cnf
leaf othersans p256.key "/CN=mx.example.test/emailAddress=hostmaster@example.test" 1013
SAN=DNS:utf8.example.test
leaf utf8 p256.key "/C=ZZ/O=Bücher & Söhne – Ünïcødé/OU=日本語の部署/CN=mx.例え.テスト" 1014
# a 102-byte CN whose byte 64 is inside a two-byte character, and a
# subject of 20 long OUs (over 1024 bytes on one line)
long=a$(printf 'é%.0s' $(seq 1 40))日本語
ous=$(for i in $(seq 10 29); do printf '/OU=%s' "$i$(printf 'x%.0s' $(seq 1 62))"; done)
SAN=DNS:long.example.test
leaf longcn p256.key "/CN=$long.example.test$ous/O=$(printf 'o%.0s' $(seq 1 64))" 1015
# T61String and BMPString: the "default" string mask picks the smallest
# type; openssl x509 -req copies the subject as it is (its dates are not
# fixed: from now on for 100 years)
sed 's/^string_mask .*/string_mask = default/' ca.cnf > mask.cnf
openssl req -new -config mask.cnf -utf8 -key p256.key -out bmp.csr \
    -subj "/C=ZZ/O=Bücher & Söhne/OU=日本語の部署/CN=bmp.example.test"
printf 'subjectAltName = DNS:bmp.example.test\n' > bmp.ext
openssl x509 -req -in bmp.csr -CA inter.pem -CAkey inter.key -set_serial 1016 \
    -days 36500 -extfile bmp.ext -out bmp.pem 2>/dev/null
SAN=DNS:multi.example.test
req p256.key "/CN=multi.example.test+serialNumber=42/O=Example+OU=Mail/CN=second-cn.example.test" \
    multirdn.csr -multivalue-rdn
ca inter.pem inter.key multirdn.csr multirdn.pem 1017 $START $END leaf -multivalue-rdn

# serials and dates
SAN=DNS:serial.example.test
leaf bigserial p256.key "/CN=serial.example.test" 7FEEDDCCBBAA99887766554433221100FFEEDDCC
SAN=DNS:neg.example.test
leaf negserial-orig p256.key "/CN=neg.example.test" 7A5A5A5A
SAN=DNS:expired.example.test
leaf expired p256.key "/CN=expired.example.test" 1018 20200601000000Z 20210601000000Z
SAN=DNS:future.example.test
leaf future p256.key "/CN=future.example.test" 1019 21000101000000Z 21240101000000Z
SAN=DNS:gentime.example.test
leaf gentime p256.key "/CN=gentime.example.test" 1020 20500101000000Z 99991231235959Z

# extensions: none (v1), an unknown critical one, minimal
leaf v1 p256.key "/CN=v1.example.test" 1021 $START $END none
SAN=DNS:critical.example.test
leaf critical p256.key "/CN=critical.example.test" 1022 $START $END leaf_critical
SAN=DNS:min.example.test
leaf minimal p256.key "/CN=min.example.test" 1023 $START $END leaf_min

# self-signed, and a chain of six (root, four intermediates, leaf)
SAN=DNS:self.example.test
req p256.key "/CN=self.example.test" self.csr
ca self.csr p256.key self.csr selfsigned.pem 2000 $START $END leaf -selfsign
cp root.pem c0.pem; cp root.key c0.key
for i in 1 2 3 4; do
	ec c$i.key prime256v1
	req c$i.key "/CN=mxprobe Fuzz Level $i" c$i.csr
	ca c$((i - 1)).pem c$((i - 1)).key c$i.csr c$i.pem $((3000 + i)) $CA_START $CA_END ca_ext
done
SAN=DNS:deep.example.test
leaf deep p256.key "/CN=deep.example.test" 3010 $START $END leaf c4

# patched DER (same lengths, so the ASN.1 stays well-formed; only the
# signatures break, which x509_parse does not check):
# NUL in the CN and a SAN; a negative serial; an SPKI algorithm OID no one
# knows (1.2.840.10045.2.99 instead of id-ecPublicKey)
SAN="DNS:good.example.test, DNS:bank.example.test!evil.example.test"
leaf nul-orig p256.key "/CN=bank.example.test!evil.example.test" 1024
patch() { # IN OUT PERL-SUBSTITUTION
	openssl x509 -in "$1" -outform DER | perl -0777 -pe "$3" > "$2.der"
	openssl x509 -inform DER -in "$2.der" -out "$2.pem"
}
patch nul-orig.pem nul 's/bank\.example\.test!evil/bank.example.test\0evil/g'
patch negserial-orig.pem negserial 's/\x02\x04\x7a\x5a\x5a\x5a/\x02\x04\xfa\x5a\x5a\x5a/'
patch p256.pem unknownkey 's/\x06\x07\x2a\x86\x48\xce\x3d\x02\x01/\x06\x07\x2a\x86\x48\xce\x3d\x02\x63/'

# outputs: single certificates, chains, PEM variants, DER
for n in good rsa1024 rsa3072 pss dsa p256 p521 brainpool ed25519 ed448 sha1 psssig \
         manysans othersans utf8 longcn multirdn bigserial negserial expired future \
         gentime v1 critical minimal selfsigned nul unknownkey; do
	cp "$n.pem" "$out/$n.pem"
done
cp bmp.pem "$out/bmp.pem"
cat good.pem inter.pem > "$out/chain-good.pem"
cat good.pem inter.pem root.pem > "$out/chain-full.pem"
cat root.pem inter.pem good.pem > "$out/chain-reversed.pem"
cat deep.pem c4.pem c3.pem c2.pem c1.pem root.pem > "$out/chain-deep.pem"
cat sha1.pem root.pem > "$out/chain-sha1.pem"
# PEM as servers and tools write it: with text, CRLF, other labels
openssl x509 -in good.pem -text > "$out/text-good.pem"
cat good.pem inter.pem | sed 's/$/\r/' > "$out/crlf-chain.pem"
openssl x509 -in good.pem -trustout -addtrust serverAuth > "$out/trusted.pem"
sed 's/BEGIN CERTIFICATE/BEGIN X509 CERTIFICATE/; s/END CERTIFICATE/END X509 CERTIFICATE/' good.pem > "$out/x509-label.pem"
{ openssl pkey -in p256.key; cat p256.pem; } > "$out/key-then-cert.pem"
# DER: the harness wraps each DER element in its own PEM block
for n in good p256 ed25519 dsa utf8 bmp manysans othersans v1 critical nul negserial unknownkey gentime; do
	der "$n.pem" > "$out/$n.der"
done
der good.pem inter.pem root.pem > "$out/chain-full.der"
der deep.pem c4.pem c3.pem c2.pem c1.pem root.pem > "$out/chain-deep.der"

cp root.pem "$here/fuzz/ca.pem"
echo "make-x509-seeds: $(ls "$out" | wc -l) seeds in $out, CA in fuzz/ca.pem"
