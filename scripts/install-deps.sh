#!/bin/sh
# Installs, as root, every Debian 12 package that building, testing and the
# lab need; a no-op when they are all present. Package service scripts are
# kept from starting system-wide daemons (the lab runs its own instances on
# loopback), through a temporary policy-rc.d.
set -eu

PKGS="make gcc pkg-config lua5.4 liblua5.4-dev libtls-dev libldns-dev ldnsutils
libssl-dev openssl lua-busted lua-check lua-cjson lua-argparse luarocks
postfix nsd unbound python3 procps iproute2 clang libclang-rt-dev valgrind"
# reports (issue 11): the HTML report is rendered in headless chromium by its spec
PKGS="$PKGS chromium"
# MTA-STS (issue 8): the lab's HTTPS server for the policies
PKGS="$PKGS nginx"
# bulk CLI: the Kubernetes example's spec reads its YAML
PKGS="$PKGS python3-yaml"
# bulk bench (issue 10 part 5): swaks in the peer baseline's loop (bench/peer-loop.sh)
PKGS="$PKGS swaks"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi

created_policy=no
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	created_policy=yes
fi
trap '[ "$created_policy" = yes ] && rm -f /usr/sbin/policy-rc.d' EXIT

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
