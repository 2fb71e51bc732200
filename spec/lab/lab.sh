#!/bin/sh
# The mxprobe test lab: real DNS and SMTP servers on loopback addresses.
#
#   sh spec/lab/lab.sh up       make CA, keys, zone and configs; start NSD,
#                               Unbound, Postfix, nginx and the blackhole;
#                               wait until every server answers
#   sh spec/lab/lab.sh down     stop what "up" started; remove the state
#   sh spec/lab/lab.sh status   what runs, and on which sockets
#   sh spec/lab/lab.sh check    talk to every scenario and print a table
#
# Everything the lab makes lives in spec/lab/state/; see spec/lab/README.md
# for the scenarios. Needs root (ports 25 and 53) and the Debian packages
# postfix nsd unbound ldnsutils openssl python3 nginx (scripts/install-deps.sh).
set -u

LAB=$(cd "$(dirname "$0")" && pwd)
STATE=$LAB/state
CA=$STATE/ca
DNS=$STATE/dns
PF=$STATE/postfix
TOOL="python3 $LAB/labtool.py"

# How long "up" waits for the servers to answer, and "down" for them to exit.
UP_WAIT=${LAB_UP_WAIT:-20}
DOWN_WAIT=${LAB_DOWN_WAIT:-10}

DNS_AUTH=127.0.53.1
DNS_RESOLVER=127.0.53.53
# Every address Postfix listens on (port 25).
SMTP_ADDRS="127.0.1.1 127.0.1.2 127.0.2.1 127.0.3.1 127.0.4.1 127.0.5.1
127.0.6.1 127.0.7.1 127.0.8.1 127.0.9.1 127.0.10.1 127.0.13.1 127.0.14.1
127.0.15.1 127.0.16.1 127.0.17.1 [::1]
127.0.20.1 127.0.20.2 127.0.20.3 127.0.20.4
127.0.40.1 127.0.40.2 127.0.40.3 127.0.40.4
127.0.70.1"
CLOSED_ADDR=127.0.11.1
BLACKHOLE_ADDR=127.0.12.1
# MTA-STS (issue 8): nginx serving the policies, port 443, by SNI
NGINX=$STATE/nginx
NGINX_ADDR=127.0.30.1

PATH=$PATH:/usr/sbin:/sbin
export PATH

say() { echo "lab: $*"; }
warn() { echo "lab: $*" >&2; }
die() { warn "$*"; exit 1; }

# ------------------------------------------------------------ processes

# name, pidfile, command name (/proc/PID/comm starts with it)
components() {
	cat <<-EOF
	postfix $STATE/postfix-queue/pid/master.pid master
	nsd $DNS/nsd.pid nsd
	unbound $DNS/unbound.pid unbound
	blackhole $STATE/blackhole.pid python3
	nginx $STATE/nginx/nginx.pid nginx
	EOF
}

# Is process $1 one the lab started? Its command line names a file in the
# state directory (nsd, unbound, the blackhole) or it runs in it (Postfix's
# master runs in its queue directory). Guards against a stale pid file.
is_ours() {
	[ -d "/proc/$1" ] || return 1
	tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF "$STATE/" && return 0
	case $(readlink "/proc/$1/cwd" 2>/dev/null) in "$STATE"/*) return 0 ;; esac
	return 1
}

# Prints the pid in pidfile $1 if it is a live process of ours named $2.
live_pid() {
	[ -s "$1" ] || return 1
	pid=$(tr -dc '0-9' < "$1")
	[ -n "$pid" ] && is_ours "$pid" || return 1
	case $(cat "/proc/$pid/comm" 2>/dev/null) in "$2"*) ;; *) return 1 ;; esac
	case $(ps -o stat= -p "$pid") in Z*) return 1 ;; esac
	echo "$pid"
}

# Pids of the live (not zombie) processes of session $1.
session_pids() {
	ps -e -o pid= -o sid= -o stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ { print $1 }'
}

# Waits (at most 3 s) until the sessions $@ have no process at all, not even
# a zombie: some init processes reap orphans only once a second.
wait_reaped() {
	[ $# -gt 0 ] || return 0
	i=0
	while [ "$i" -lt 30 ]; do
		ps -e -o sid= | awk -v l=" $* " 'index(l, " " $1 " ") { found = 1 } END { exit !found }' || return 0
		sleep 0.1
		i=$((i + 1))
	done
}

# The session to stop with daemon $1: its own, when the session leader is
# one of ours (all the daemons' children are in it); else empty.
our_session() {
	sid=$(ps -o sid= -p "$1" | tr -d ' ')
	[ -n "$sid" ] && is_ours "$sid" && echo "$sid"
}

# Stops one daemon we started: TERM, a bounded wait for it and every
# process of its session, then KILL.
stop_one() { # name pid
	name=$1 pid=$2
	sid=$(our_session "$pid")
	kill -TERM "$pid" 2>/dev/null
	i=0
	while [ "$i" -lt $((DOWN_WAIT * 10)) ]; do
		if [ -n "$sid" ]; then
			[ -z "$(session_pids "$sid")" ] && return 0
		else
			kill -0 "$pid" 2>/dev/null || return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	warn "$name (pid $pid) did not stop in ${DOWN_WAIT}s; killing it"
	if [ -n "$sid" ]; then
		# shellcheck disable=SC2046
		kill -KILL $(session_pids "$sid") 2>/dev/null
	else
		kill -KILL "$pid" 2>/dev/null
	fi
	sleep 0.2
	if [ -n "$sid" ]; then [ -z "$(session_pids "$sid")" ]; else ! kill -0 "$pid" 2>/dev/null; fi
}

running_any() {
	components | while read -r _ pidfile comm; do
		live_pid "$pidfile" "$comm" >/dev/null && echo yes && break
	done | grep -q yes
}

# Stops everything "up" started; keeps the state (its logs).
stop_all() {
	[ -d "$STATE" ] || return 0
	failed=0 sessions=""
	while read -r comp pidfile comm; do
		if pid=$(live_pid "$pidfile" "$comm"); then
			sessions="$sessions $(our_session "$pid")"
			if stop_one "$comp" "$pid"; then
				say "stopped $comp (pid $pid)"
			else
				warn "could not stop $comp (pid $pid)"
				failed=1
			fi
		fi
	done <<-EOF
	$(components)
	EOF
	# a blackhole started by this "up" that has not written its pid file yet
	if [ -n "${blackhole_pid:-}" ] && is_ours "$blackhole_pid"; then
		kill -TERM "$blackhole_pid" 2>/dev/null
	fi
	# shellcheck disable=SC2086
	wait_reaped $sessions
	return "$failed"
}

do_down() {
	if stop_all; then
		rm -rf "$STATE"
	else
		warn "state kept in $STATE"
		return 1
	fi
}

# ------------------------------------------------------------ building

# The test CA: root -> intermediate -> leaves (EC P-256 unless told).
ca_dir() { # dir
	mkdir -p "$1/issued"
	: > "$1/index.txt"
	echo 1000 > "$1/serial"
}

ossl() { # openssl with the lab's CA config; quiet unless it fails
	out=$(LAB_SAN=${LAB_SAN:-DNS:unused.invalid} LAB_CA_DIR=${LAB_CA_DIR:-$CA/intermediate} openssl "$@" -config "$LAB/openssl-ca.cnf" 2>&1) || {
		warn "openssl $1 failed: $out"
		return 1
	}
}

eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

make_ca() {
	mkdir -p "$CA" && chmod 755 "$CA"
	ca_dir "$CA/root"
	ca_dir "$CA/intermediate"
	eckey "$CA/root/key.pem" &&
	ossl req -new -key "$CA/root/key.pem" -subj "/O=mxprobe lab/CN=mxprobe lab root CA" \
		-out "$CA/root/req.pem" &&
	LAB_CA_DIR=$CA/root ossl ca -batch -selfsign -keyfile "$CA/root/key.pem" \
		-in "$CA/root/req.pem" -out "$CA/root/cert.pem" -notext -extensions v3_root \
		-startdate 20200101000000Z -enddate 20450101000000Z &&
	cp "$CA/root/cert.pem" "$CA/root.pem" &&
	eckey "$CA/intermediate/key.pem" &&
	ossl req -new -key "$CA/intermediate/key.pem" \
		-subj "/O=mxprobe lab/CN=mxprobe lab intermediate CA" -out "$CA/intermediate/req.pem" &&
	LAB_CA_DIR=$CA/root ossl ca -batch -in "$CA/intermediate/req.pem" \
		-out "$CA/intermediate/cert.pem" -notext -extensions v3_intermediate \
		-startdate 20200101000000Z -enddate 20450101000000Z &&
	cp "$CA/intermediate/cert.pem" "$CA/intermediate.pem"
}

# leaf FILE CN SANS [chain=full|leaf] [key=ec|rsa1024] [md=sha256|sha1]
#      [days=N | dates=START,END]
# Writes FILE.key, FILE.crt and FILE.chain.pem (key, leaf, intermediate
# unless chain=leaf): the file a Postfix service's smtpd_tls_chain_files names.
leaf() {
	file=$1 cn=$2 san=$3
	shift 3
	chain=full key=ec md=sha256 dates="-days 365"
	for opt in "$@"; do
		case $opt in
		chain=*) chain=${opt#chain=} ;;
		key=*) key=${opt#key=} ;;
		md=*) md=${opt#md=} ;;
		days=*) dates="-days ${opt#days=}" ;;
		dates=*) d=${opt#dates=}; dates="-startdate ${d%,*} -enddate ${d#*,}" ;;
		esac
	done
	if [ "$key" = rsa1024 ]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$CA/$file.key" 2>/dev/null
	else
		eckey "$CA/$file.key"
	fi || return 1
	ossl req -new -key "$CA/$file.key" -subj "/CN=$cn" -out "$CA/$file.csr" || return 1
	# shellcheck disable=SC2086
	LAB_SAN=$san LAB_CA_DIR=$CA/intermediate ossl ca -batch -in "$CA/$file.csr" \
		-out "$CA/$file.crt" -notext -extensions v3_leaf -md "$md" $dates || return 1
	if [ "$chain" = leaf ]; then
		cat "$CA/$file.key" "$CA/$file.crt" > "$CA/$file.chain.pem"
	else
		cat "$CA/$file.key" "$CA/$file.crt" "$CA/intermediate.pem" > "$CA/$file.chain.pem"
	fi
}

make_certs() {
	n=example.test
	make_ca &&
	# 127.0.1.1 also serves samehost, mixed and single: their MX names are
	# in its certificate; alias.mxcname (a CNAME to it) deliberately is not.
	leaf mx1.good "mx1.good.$n" "DNS:mx1.good.$n,DNS:a.samehost.$n,DNS:b.samehost.$n,DNS:mx1.mixed.$n,DNS:mx.single.$n" &&
	leaf mx2.good "mx2.good.$n" "DNS:mx2.good.$n" &&
	leaf expired "mx.expired.$n" "DNS:mx.expired.$n" dates=20200101000000Z,20210101000000Z &&
	leaf wrongname other.example.org "DNS:other.example.org" &&
	leaf incomplete "mx.incomplete.$n" "DNS:mx.incomplete.$n" chain=leaf &&
	leaf openrelay "mx.openrelay.$n" "DNS:mx.openrelay.$n" &&
	leaf greylist "mx.greylist.$n" "DNS:mx.greylist.$n" &&
	leaf postscreen "mx.postscreen.$n" "DNS:mx.postscreen.$n" &&
	leaf slowbanner "mx.slowbanner.$n" "DNS:mx.slowbanner.$n" &&
	leaf implicit "implicit.$n" "DNS:implicit.$n" &&
	leaf v6only "mx.v6only.$n" "DNS:mx.v6only.$n" &&
	leaf expiring "mx.expiring.$n" "DNS:mx.expiring.$n" days=5 &&
	leaf weakkey "mx.weakkey.$n" "DNS:mx.weakkey.$n" key=rsa1024 md=sha1 &&
	leaf helo "mx.helo.$n" "DNS:mx.helo.$n" &&
	leaf tls12 "mx.tls12.$n" "DNS:mx.tls12.$n" &&
	# TLS posture: TLS 1.0/1.1 accepted, TLS 1.3 only
	leaf tlsold "mx.tlsold.$n" "DNS:mx.tlsold.$n" &&
	leaf tls13 "mx.tls13.$n" "DNS:mx.tls13.$n" &&
	leaf share "mx.share.$n" "DNS:mx.share.$n" &&   # hostshare (issue 10 item 3)
	# self-signed: no CA involved
	eckey "$CA/selfsigned.key" &&
	LAB_SAN="DNS:mx.selfsigned.$n" ossl req -new -x509 -key "$CA/selfsigned.key" \
		-subj "/CN=mx.selfsigned.$n" -days 365 -extensions v3_selfsigned -out "$CA/selfsigned.crt" &&
	cat "$CA/selfsigned.key" "$CA/selfsigned.crt" > "$CA/selfsigned.chain.pem" &&
	make_dane_certs &&
	chmod 600 "$CA"/*.key "$CA"/*.chain.pem "$CA"/*/key.pem
}

# DANE (RFC 7672): the certificates of the dane-* scenarios. One CA-issued
# leaf (with the intermediate) serves every name of the shared server
# 127.0.20.1; a self-signed and an expired leaf stand alone; "dane-next"
# is only a key: the next key of a rollover, published ahead, served nowhere.
make_dane_certs() {
	n=example.test
	sans=""
	for h in dane-ee dane-ee512 dane-ta dane-unusable dane-mismatch dane-rollover dane-stale \
		dane-digest dane-bogus; do
		sans="${sans}DNS:mx.$h.$n,"
	done
	leaf dane mx.dane-ee.$n "${sans}DNS:mx.unsigned.$n,DNS:mx.bogus.$n" &&
	leaf dane-expired "mx.dane-expired.$n" "DNS:mx.dane-expired.$n" dates=20200101000000Z,20210101000000Z &&
	eckey "$CA/dane-selfsigned.key" &&
	LAB_SAN="DNS:mx.dane-selfsigned.$n" ossl req -new -x509 -key "$CA/dane-selfsigned.key" \
		-subj "/CN=mx.dane-selfsigned.$n" -days 365 -extensions v3_selfsigned -out "$CA/dane-selfsigned.crt" &&
	cat "$CA/dane-selfsigned.key" "$CA/dane-selfsigned.crt" > "$CA/dane-selfsigned.chain.pem" &&
	eckey "$CA/dane-next.key"
}

# TLSA record data "U S M HEX" of a certificate file, or of key:FILE (a
# private key: its public half; selector 1 only). M is 1 (SHA-256) or 2
# (SHA-512).
tlsa_rr() { # usage selector mtype file
	der=$CA/tlsa.der
	case $4 in
	key:*) openssl pkey -in "${4#key:}" -pubout -outform DER -out "$der" ;;
	*) if [ "$2" = 0 ]; then
		openssl x509 -in "$4" -outform DER -out "$der"
	   else
		openssl x509 -in "$4" -noout -pubkey | openssl pkey -pubin -outform DER -out "$der"
	   fi ;;
	esac
	alg=sha256
	[ "$3" = 2 ] && alg=sha512
	h=$(openssl dgst -"$alg" -r "$der" | cut -d' ' -f1)
	rm -f "$der"
	echo "$1 $2 $3 $h"
}

# TLSA 3 1 1 (DANE-EE, SPKI, SHA-256) of a certificate file.
tlsa() {
	h=$(openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER |
		openssl dgst -sha256 -r | cut -d' ' -f1)
	echo "3 1 1 $h"
}

# The two zones, signed with fresh keys: example.test. with a KSK and a ZSK,
# 127.in-addr.arpa. with one key. Unbound trusts the DS of each KSK.
make_zones() {
	mkdir -p "$DNS"
	serial=$(date +%s)
	sed -e "s|@SERIAL@|$serial|" \
		-e "s|@TLSA_MX1_GOOD@|$(tlsa "$CA/mx1.good.crt")|" \
		-e "s|@TLSA_MX2_GOOD@|$(tlsa "$CA/mx2.good.crt")|" \
		-e "s|@TLSA_DANE_311@|$(tlsa_rr 3 1 1 "$CA/dane.crt")|" \
		-e "s|@TLSA_DANE_312@|$(tlsa_rr 3 1 2 "$CA/dane.crt")|" \
		-e "s|@TLSA_DANE_TA@|$(tlsa_rr 2 1 1 "$CA/intermediate.pem")|" \
		-e "s|@TLSA_DANE_PKIX_TA@|$(tlsa_rr 0 1 1 "$CA/intermediate.pem")|" \
		-e "s|@TLSA_DANE_PKIX_EE@|$(tlsa_rr 1 1 1 "$CA/dane.crt")|" \
		-e "s|@TLSA_DANE_NEXT@|$(tlsa_rr 3 1 1 "key:$CA/dane-next.key")|" \
		-e "s|@TLSA_DANE_NEXT512@|$(tlsa_rr 3 1 2 "key:$CA/dane-next.key")|" \
		-e "s|@TLSA_DANE_SELFSIGNED@|$(tlsa_rr 3 1 1 "$CA/dane-selfsigned.crt")|" \
		-e "s|@TLSA_DANE_EXPIRED@|$(tlsa_rr 3 1 1 "$CA/dane-expired.crt")|" \
		"$LAB/example.test.zone" > "$DNS/example.test.zone" &&
	# hostshare (issue 10 item 3): share001 ... share200, all MX mx.share
	i=1 && while [ $i -le 200 ]; do
		printf 'share%03d\tMX\t10 mx.share\n' $i
		i=$((i + 1))
	done >> "$DNS/example.test.zone" &&
	# and refused01 ... refused30: MX mx.share too, but not its destinations
	# (its postmaster RCPT is refused: Postfix's error limits in a batch)
	i=1 && while [ $i -le 30 ]; do
		printf 'refused%02d\tMX\t10 mx.share\n' $i
		i=$((i + 1))
	done >> "$DNS/example.test.zone" &&
	sed -e "s|@SERIAL@|$serial|" "$LAB/127.in-addr.arpa.zone" > "$DNS/127.in-addr.arpa.zone" &&
	sed -e "s|@SERIAL@|$serial|" -e "s|@TLSA_DANE_311@|$(tlsa_rr 3 1 1 "$CA/dane.crt")|" \
		"$LAB/unsigned.example.test.zone" > "$DNS/unsigned.example.test.zone" &&
	sed -e "s|@SERIAL@|$serial|" -e "s|@TLSA_DANE_311@|$(tlsa_rr 3 1 1 "$CA/dane.crt")|" \
		"$LAB/bogus.example.test.zone" > "$DNS/bogus.example.test.zone" &&
	(
		cd "$DNS" || exit 1
		# DANE: bogus.example.test is signed with signatures that expired
		# in 2020 (its DS is in the parent): every answer from it is bogus
		bksk=$(ldns-keygen -a ECDSAP256SHA256 -k bogus.example.test) &&
		ldns-signzone -i 20200101000000 -e 20200201000000 -f bogus.example.test.zone.signed \
			bogus.example.test.zone "$bksk" &&
		cat "$bksk.ds" >> example.test.zone &&
		ksk=$(ldns-keygen -a ECDSAP256SHA256 -k example.test) &&
		zsk=$(ldns-keygen -a ECDSAP256SHA256 example.test) &&
		ldns-signzone -f example.test.zone.signed.tmp example.test.zone "$zsk" "$ksk" &&
		# DANE: the signature over the TLSA records of mx.dane-bogus is
		# damaged after signing, so that one RRset is bogus
		awk 'BEGIN { OFS = "\t" }
			$1 == "_25._tcp.mx.dane-bogus.example.test." && $4 == "RRSIG" && $5 == "TLSA" {
				s = $NF; $NF = (substr(s, 1, 8) == "AAAAAAAA" ? "BBBBBBBB" : "AAAAAAAA") substr(s, 9) }
			{ print }' example.test.zone.signed.tmp > example.test.zone.signed &&
		rm -f example.test.zone.signed.tmp &&
		rksk=$(ldns-keygen -a ECDSAP256SHA256 -k 127.in-addr.arpa) &&
		ldns-signzone -f 127.in-addr.arpa.zone.signed 127.in-addr.arpa.zone "$rksk" &&
		cat "$ksk.ds" "$rksk.ds" > trust-anchors.ds
	)
}

subst() { # template output
	sed -e "s|@STATE@|$STATE|g" -e "s|@CA@|$CA|g" "$LAB/$1" > "$2"
}

make_postfix() {
	mkdir -p "$PF" "$STATE/postfix-queue" "$STATE/postfix-data"
	subst main.cf.in "$PF/main.cf" &&
	subst master.cf.in "$PF/master.cf" &&
	cp "$LAB/openssl-seclevel0.cnf" "$PF/openssl-seclevel0.cnf" &&
	# DANE: the SNI map of the dane-sni service (postmap -F reads the files in)
	echo "mx.dane-sni.example.test $CA/dane.chain.pem" > "$PF/sni" &&
	postmap -c "$PF" -F "hash:$PF/sni" &&
	: > "$PF/maillog" &&
	chown postfix "$STATE/postfix-data"
	# "postfix start" creates the queue's subdirectories (post-install create-missing)
}

# MTA-STS (issue 8): nginx's config, certificates and policies. Each
# scenario's policy is spec/lab/mta-sts/<scenario>.txt (the enforce one when
# there is none: the case is in its DNS records or its nginx server).
STS_SERVED="sts-enforce sts-testing sts-none sts-notlisted sts-wildcard sts-deep sts-expired
sts-invalid sts-twotxt sts-badid sts-notxt"
STS_NAMES="$STS_SERVED sts-404 sts-redirect sts-ctype sts-big"

make_nginx() {
	n=example.test
	mkdir -p "$NGINX/tmp" "$NGINX/www/empty" "$NGINX/www/big/.well-known" &&
	sans=$(for d in $STS_NAMES; do printf 'DNS:mta-sts.%s.%s,' "$d" "$n"; done) &&
	leaf mta-sts "mta-sts.sts-enforce.$n" "${sans%,}" &&
	cp "$CA/mta-sts.key" "$NGINX/mta-sts.key" &&
	cat "$CA/mta-sts.crt" "$CA/intermediate.pem" > "$NGINX/mta-sts.pem" &&
	cp "$CA/wrongname.key" "$NGINX/wrongname.key" &&
	cat "$CA/wrongname.crt" "$CA/intermediate.pem" > "$NGINX/wrongname.pem" &&
	chmod 600 "$NGINX"/*.key "$CA/mta-sts.key" &&
	for d in $STS_SERVED; do
		w=$NGINX/www/mta-sts.$d.$n/.well-known
		mkdir -p "$w" || return 1
		src=$LAB/mta-sts/$d.txt
		[ -f "$src" ] || src=$LAB/mta-sts/sts-enforce.txt
		cp "$src" "$w/mta-sts.txt" || return 1
	done &&
	# a valid policy followed by 70,000 bytes of an unknown key's value
	{ cat "$LAB/mta-sts/sts-enforce.txt"; printf 'padding: '; head -c 70000 /dev/zero | tr '\0' x; printf '\r\n'; } \
		> "$NGINX/www/big/.well-known/mta-sts.txt" &&
	chmod -R a+rX "$NGINX/www" &&
	sed -e "s|@STATE@|$STATE|g" -e "s|@LAB@|$LAB|g" "$LAB/nginx.conf.in" > "$NGINX/nginx.conf"
}

# Extra zones (the bulk benchmark, issue 10 part 5; bench/bulk.py):
# LAB_EXTRA_ZONES="NAME=FILE ..." -- each FILE (a zone file for NAME., not
# signed) is served by NSD and reached through Unbound (a stub and a
# transparent local zone; no trust anchor covers it, so its answers are
# insecure: no AD). A bench sends thousands of queries a second: NSD's
# response rate limiting is turned off then, and Unbound takes more queries
# at once (its defaults drop them past 1,024 waiting). Unset: nothing changes.
extra_zones() {
	for z in ${LAB_EXTRA_ZONES:-}; do
		name=${z%%=*} file=${z#*=}
		case $name in "" | *[!A-Za-z0-9.-]*) warn "LAB_EXTRA_ZONES: bad zone name '$name'"; return 1 ;; esac
		[ -f "$file" ] || { warn "LAB_EXTRA_ZONES: no file $file"; return 1; }
		cp "$file" "$DNS/extra.$name.zone" || return 1
		printf 'zone:\n  name: "%s."\n  zonefile: "%s"\n' "$name" "$DNS/extra.$name.zone" >> "$DNS/nsd.conf"
		printf 'server:\n  local-zone: "%s." transparent\nstub-zone:\n  name: "%s."\n  stub-addr: %s\n' \
			"$name" "$name" "$DNS_AUTH" >> "$DNS/unbound.conf"
	done
	[ -z "${LAB_EXTRA_ZONES:-}" ] && return 0
	sed -i 's/^server:$/server:\n  rrl-ratelimit: 0/' "$DNS/nsd.conf" &&
	printf 'server:\n  num-queries-per-thread: 4096\n  outgoing-range: 8192\n  so-rcvbuf: 4m\n' >> "$DNS/unbound.conf"
}

# ------------------------------------------------------------ commands

endpoints() {
	echo "udp:$DNS_AUTH:53 tcp:$DNS_AUTH:53 udp:$DNS_RESOLVER:53 tcp:$DNS_RESOLVER:53"
	for a in $SMTP_ADDRS $CLOSED_ADDR $BLACKHOLE_ADDR; do echo "tcp:$a:25"; done
	echo "tcp:$NGINX_ADDR:443"
}

readiness() {
	echo "dnsad:$DNS_RESOLVER:good.example.test:MX dns:$DNS_AUTH:good.example.test:MX"
	echo "dns:$DNS_AUTH:unsigned.example.test:MX dns:$DNS_AUTH:bogus.example.test:SOA"
	for a in $SMTP_ADDRS; do echo "smtp:$a:25"; done
	echo "https:$NGINX_ADDR:443:mta-sts.sts-enforce.example.test"
}

start_failed() { # what log
	warn "$1 did not start; last lines of $2:"
	tail -n 15 "$2" >&2 2>/dev/null
	stop_all >/dev/null 2>&1
	warn "stopped what had started; logs kept in $STATE (removed by: lab.sh down)"
	exit 1
}

up() {
	t0=$(date +%s.%N)
	[ "$(id -u)" = 0 ] || die "must run as root (it listens on ports 25 and 53)"
	case $STATE in *[[:space:]\|]*) die "the lab cannot run from a path with spaces: $STATE" ;; esac
	for c in postfix nsd unbound nginx ldns-keygen ldns-signzone openssl python3 ps ss awk; do
		command -v "$c" >/dev/null 2>&1 || die "$c not found; run: sh scripts/install-deps.sh"
	done
	if running_any; then
		say "already up; stopping it first"
		do_down || die "could not stop the running lab"
	fi
	rm -rf "$STATE"

	# shellcheck disable=SC2046
	busy=$($TOOL portcheck $(endpoints)) || {
		warn "ports the lab needs are taken:"
		echo "$busy" | sed 's/^/  /' >&2
		warn "listening there now:"
		ss -Hlntup 2>/dev/null | grep -E ':(25|53|443)[[:space:]]' | sed 's/^/  /' >&2
		exit 1
	}

	mkdir -p "$STATE"
	# interrupted half-way: stop what had started
	trap 'stop_all >/dev/null 2>&1; warn "interrupted; logs kept in $STATE"; exit 1' INT TERM HUP
	make_certs || { rm -rf "$STATE"; die "could not make the test CA"; }
	make_nginx || { rm -rf "$STATE"; die "could not set up nginx"; }
	make_zones > "$STATE/zone.log" 2>&1 || {
		cat "$STATE/zone.log" >&2; rm -rf "$STATE"; die "could not sign the zones"
	}
	subst nsd.conf.in "$DNS/nsd.conf"
	subst unbound.conf.in "$DNS/unbound.conf"
	extra_zones || { rm -rf "$STATE"; die "could not add LAB_EXTRA_ZONES"; }   # bulk bench (issue 10)
	make_postfix || { cat "$STATE/postfix-start.log" >&2; rm -rf "$STATE"; die "could not set up Postfix"; }

	# the blackhole proves itself (a 0.5 s connect must time out) while the others start
	$TOOL blackhole "$BLACKHOLE_ADDR" 25 "$STATE/blackhole.pid" </dev/null > "$STATE/blackhole.log" 2>&1 9<&- &
	blackhole_pid=$!
	nsd -c "$DNS/nsd.conf" </dev/null >> "$DNS/nsd.log" 2>&1 9<&- || start_failed nsd "$DNS/nsd.log"
	unbound -c "$DNS/unbound.conf" </dev/null >> "$DNS/unbound.log" 2>&1 9<&- ||
		start_failed unbound "$DNS/unbound.log"
	postfix -c "$PF" start </dev/null >> "$STATE/postfix-start.log" 2>&1 9<&- ||
		start_failed postfix "$STATE/postfix-start.log"
	nginx -p "$NGINX/" -c "$NGINX/nginx.conf" -e "$NGINX/error.log" </dev/null >> "$NGINX/start.log" 2>&1 9<&- ||
		start_failed nginx "$NGINX/error.log"
	i=0
	while [ ! -s "$STATE/blackhole.pid" ] && [ "$i" -lt 50 ]; do
		kill -0 "$blackhole_pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	[ -s "$STATE/blackhole.pid" ] || start_failed blackhole "$STATE/blackhole.log"

	# shellcheck disable=SC2046
	notready=$($TOOL wait "$UP_WAIT" $(readiness)) || {
		warn "not answering after ${UP_WAIT}s:"
		echo "$notready" | sed 's/^/  /' >&2
		grep -E 'fatal|error|panic' "$PF/maillog" | tail -n 5 >&2
		tail -n 3 "$DNS/nsd.log" "$DNS/unbound.log" >&2
		stop_all >/dev/null 2>&1
		warn "stopped what had started; logs kept in $STATE (removed by: lab.sh down)"
		exit 1
	}
	t1=$(date +%s.%N)
	say "up in $(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }')s: DNS $DNS_AUTH (NSD) and $DNS_RESOLVER (Unbound),"
	say "SMTP on $(echo "$SMTP_ADDRS" | wc -w) addresses, blackhole $BLACKHOLE_ADDR, closed $CLOSED_ADDR,"
	say "HTTPS (nginx, MTA-STS) on $NGINX_ADDR:443;"
	say "CA $CA/root.pem; state in $STATE"
}

status() {
	if [ ! -d "$STATE" ]; then
		say "down (no $STATE)"
		return 3
	fi
	components | while read -r name pidfile comm; do
		if pid=$(live_pid "$pidfile" "$comm"); then
			sid=$(our_session "$pid")
			n=$( { [ -n "$sid" ] && session_pids "$sid"; } | wc -l)
			printf 'lab: %-9s running, pid %s (%s processes)\n' "$name" "$pid" "$n"
		else
			printf 'lab: %-9s not running\n' "$name"
		fi
	done
	echo "lab: sockets:"
	ss -Hlntup 2>/dev/null | awk '$5 ~ /^(127\.0\.([0-9]+)\.[0-9]+|\[::1\]):(25|53|443)$/' |
		awk '{ p = $7; for (i = 8; i <= NF; i++) p = p " " $i; printf "  %-4s %-18s %s\n", $1, $5, p }'
	running_any && return 0 || return 1
}

# One "up" or "down" at a time: both hold a lock on this script file.
lock() {
	command -v flock >/dev/null 2>&1 || return 0
	exec 9< "$LAB/lab.sh"
	flock -w 60 9 || die "another lab.sh up/down has been running for 60 s"
}

case ${1:-} in
up) lock && up ;;
down) lock && do_down ;;
status) status ;;
check)
	[ -d "$STATE" ] || die "the lab is down"
	exec $TOOL check "$STATE"
	;;
*)
	echo "usage: sh spec/lab/lab.sh up|down|status|check" >&2
	exit 2
	;;
esac
