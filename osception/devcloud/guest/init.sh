#!/bin/sh
# /init of the osception guest: a Debian cloud kernel, busybox, Debian's dropbear and
# netcat, nothing else, behaving as CirrOS does for Tempest. Loads the virtio drivers
# (NIC, disks) and what a config drive needs, starts the SSH server, takes an address
# by DHCP, reads the OpenStack metadata when it answers (instance id, hostname, the
# public keys for the user, user data), serves one page on port 80, says it is ready
# on ttyS0, runs its user data if that is a script, and hands over to busybox init for
# the login prompt there (/etc/inittab).
export PATH=/bin:/usr/bin:/usr/sbin  # busybox and a link per applet; dropbear

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts

say() { echo "osception-guest: $*" >/dev/ttyS0; }

# The modules of the kernel package (etc/modules: virtio NIC and disks, config drive),
# in load order (dependencies first).
while read -r module; do
  insmod "/lib/modules/$module.ko" || say "insmod $module failed"
done </etc/modules
# /tmp on the guest's own disk, as on CirrOS (whose root is its disk): a directory of
# its boot partition (the FAT labelled as guest.DISK_LABEL says), so what a test writes
# there survives a reboot, a snapshot and a shelve. FAT keeps no owners or modes: every
# file is everyone's and executable (umask=000), and chmod or chown there succeed
# without effect (quiet), as a script written to /tmp expects (Tempest's metadata
# meter runs `chmod +x` on its own).
# The first disk with that label: vda, or the rescue image's when rescued. (Booted from
# a kernel and initramfs alone there is no such disk: /tmp stays in RAM.)
mkdir -p /media/disk
if ! { disk=$(findfs LABEL=OSCEPTION) && mount -t vfat -o umask=000,quiet "$disk" /media/disk \
    && mkdir -p /media/disk/tmp && mount -o bind /media/disk/tmp /tmp; }; then
  say "no disk labelled OSCEPTION: /tmp in RAM"
fi
# The ACPI power button powers the guest off (/etc/acpi/PWRF/00000080), as on CirrOS.
# (Its log in /run: the default, /var/log, does not exist and acpid would exit.)
acpid -l /run/acpid.log || say "acpid failed"

# The image's one user (uid 1000, /etc/passwd): its home is made root's in the cpio.
user=$(awk -F: '$3 == 1000 { print $1 }' /etc/passwd)
chown -R "$user:$user" "/home/$user"

# SSH: host keys made now (the guest runs from RAM: every boot is a first boot), then
# the server, in the background while DHCP and the metadata go on: dropbearkey waits for
# the kernel's random pool, which takes seconds to fill under TCG. No root login (-w);
# the user by password or by a key of the metadata (below).
(
  mkdir -p /etc/dropbear
  keys=
  for type in ed25519 ecdsa; do
    if dropbearkey -t "$type" -f "/etc/dropbear/dropbear_${type}_host_key" >/dev/null 2>&1; then
      keys="$keys -r /etc/dropbear/dropbear_${type}_host_key"
    else
      say "dropbearkey -t $type failed"
    fi
  done
  # shellcheck disable=SC2086  # the -r options
  dropbear -w $keys || say "dropbear failed"
) &

hostname osception-guest
ip link set lo up
ip link set eth0 up
# The lease is applied by /etc/udhcpc.script; udhcpc stays in the background to renew it
# (its pid where Tempest's renew_lease reads it: /var/run/udhcpc.<nic>.pid). Without a
# lease after 30 s it goes on asking in the background (-b), as a cloud image's DHCP
# client does: a guest that boots while its network's DHCP agent is down (a network
# node rebooting) takes its address once the agent is back.
if ! udhcpc -i eth0 -s /etc/udhcpc.script -p /run/udhcpc.eth0.pid -t 15 -T 2 -b >/dev/null 2>&1 \
    || [ ! -s /run/ip ]; then
  say "no DHCP lease on eth0 yet: still asking in the background"
fi
ip=$(cat /run/ip 2>/dev/null)

# The metadata service: Neutron's (the boot test's slirp network answers there too).
metadata=http://169.254.169.254
# Each try up to 20 s: Neutron's proxy asks nova-api, slow on a busy machine. (timeout,
# not wget -T: busybox 1.35's wget crashes on -T.) Up to 10 tries 5 s apart, as CirrOS
# and cloud-init wait for it: the first guest of a router on a compute (DVR) may boot
# before that compute's L3 agent has made the router's namespace and metadata proxy.
tries=0
until [ -z "$ip" ] || timeout 20 wget -q -O /run/meta_data.json "$metadata/openstack/latest/meta_data.json"; do
  rm -f /run/meta_data.json
  tries=$((tries + 1))
  [ "$tries" -ge 10 ] && break
  sleep 5
done
if [ -s /run/meta_data.json ]; then
  uuid=$(sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' /run/meta_data.json)
  name=$(sed -n 's/.*"hostname": *"\([^".]*\).*/\1/p' /run/meta_data.json)
  [ -n "$name" ] && hostname "$name"
  say "instance-id ${uuid:-unknown}"
  # The instance's public keys (the "public_keys" object: name -> key), for the user,
  # as CirrOS installs them.
  sed -n 's/.*"public_keys": *{\([^}]*\)}.*/\1/p' /run/meta_data.json \
    | grep -oE ': *"[^"]*"' | sed 's/^: *"//; s/"$//; s/\\n$//' >/run/public_keys
  if [ -s /run/public_keys ]; then
    mkdir -p "/home/$user/.ssh"
    cp /run/public_keys "/home/$user/.ssh/authorized_keys"
    chmod 700 "/home/$user/.ssh"
    chmod 600 "/home/$user/.ssh/authorized_keys"
    chown -R "$user:$user" "/home/$user/.ssh"
    say "$(wc -l </run/public_keys) public key(s) for $user"
  fi
  if timeout 20 wget -q -O /run/user_data "$metadata/openstack/latest/user_data"; then
    say "user data in /run/user_data ($(wc -c </run/user_data) bytes)"
  else
    rm -f /run/user_data
  fi
else
  say "no metadata at $metadata"
fi

mkdir -p /www
echo "osception-guest $(hostname) ${uuid:-}" >/www/index.html
httpd -p 80 -h /www

echo "osception-guest ready ${ip:-no-address}" >/dev/ttyS0
# User data that is a script runs once, as CirrOS runs it, its output on ttyS0 (a test
# reads another guest's page through it: guest to guest across the tunnels).
# (By sh: the file stays as it came, readable by the console's user.)
if [ "$(head -c 2 /run/user_data 2>/dev/null)" = "#!" ]; then
  (sh /run/user_data >/dev/ttyS0 2>&1; say "user data exited $?") &
fi
exec init
