#!/bin/bash
# Research for issue 27, not product code: the manual Ceph bootstrap the node role will
# do (1 mon, 1 mgr, 2 file-backed BlueStore OSDs, pool volumes, the cinder key with
# least caps), run in a Debian 13 root under systemd-nspawn. How to rerun it:
# volumes-secrets-stacks.md, "Proven on this machine".
set -euxo pipefail
ip link set lo up || true
rm -rf /var/lib/ceph/mon/* /var/lib/ceph/mgr/* /var/lib/ceph/osd/* /etc/ceph/*.keyring /tmp/ceph.mon.keyring /tmp/monmap
install -d -o ceph -g ceph /run/ceph
IP=127.0.0.1
ID=a
FSID=$(uuidgen)
cat > /etc/ceph/ceph.conf <<CONF
[global]
fsid = $FSID
mon_initial_members = $ID
mon_host = [v2:$IP:3300,v1:$IP:6789]
public_network = 127.0.0.0/8
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
osd_pool_default_size = 2
osd_pool_default_min_size = 1
osd_crush_chooseleaf_type = 0
mon_data_avail_warn = 2
[osd]
bluestore_block_size = 2147483648
osd_memory_target = 939524096
CONF
ceph-authtool --create-keyring /tmp/ceph.mon.keyring --gen-key -n mon. --cap mon 'allow *'
ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
mkdir -p /var/lib/ceph/bootstrap-osd
ceph-authtool --create-keyring /var/lib/ceph/bootstrap-osd/ceph.keyring --gen-key -n client.bootstrap-osd \
  --cap mon 'profile bootstrap-osd' --cap mgr 'allow r'
ceph-authtool /tmp/ceph.mon.keyring --import-keyring /etc/ceph/ceph.client.admin.keyring
ceph-authtool /tmp/ceph.mon.keyring --import-keyring /var/lib/ceph/bootstrap-osd/ceph.keyring
chown ceph:ceph /tmp/ceph.mon.keyring
monmaptool --create --addv "$ID" "[v2:$IP:3300,v1:$IP:6789]" --fsid "$FSID" /tmp/monmap
install -d -o ceph -g ceph /var/lib/ceph/mon/ceph-"$ID"
runuser -u ceph -- ceph-mon --mkfs -i "$ID" --monmap /tmp/monmap --keyring /tmp/ceph.mon.keyring
ceph-mon -i "$ID" --setuser ceph --setgroup ceph
sleep 2
timeout 60 ceph -s
ceph mon enable-msgr2 || true
install -d -o ceph -g ceph /var/lib/ceph/mgr/ceph-"$ID"
ceph auth get-or-create mgr."$ID" mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o /var/lib/ceph/mgr/ceph-"$ID"/keyring
chown -R ceph:ceph /var/lib/ceph/mgr
ceph-mgr -i "$ID" --setuser ceph --setgroup ceph
for _ in 0 1; do
  U=$(uuidgen); S=$(ceph-authtool --gen-print-key)
  OSD=$(echo "{\"cephx_secret\": \"$S\"}" | ceph osd new "$U" -i - -n client.bootstrap-osd -k /var/lib/ceph/bootstrap-osd/ceph.keyring)
  install -d -o ceph -g ceph /var/lib/ceph/osd/ceph-"$OSD"
  ceph-authtool --create-keyring /var/lib/ceph/osd/ceph-"$OSD"/keyring --name osd."$OSD" --add-key "$S"
  chown -R ceph:ceph /var/lib/ceph/osd/ceph-"$OSD"
  runuser -u ceph -- ceph-osd -i "$OSD" --mkfs --osd-uuid "$U" --osd-objectstore bluestore
  ceph-osd -i "$OSD" --setuser ceph --setgroup ceph
done
ceph osd pool create volumes 32
rbd pool init volumes
ceph auth get-or-create client.cinder mon 'profile rbd' osd 'profile rbd pool=volumes' mgr 'profile rbd pool=volumes' -o /etc/ceph/ceph.client.cinder.keyring
for _ in $(seq 60); do ceph pg stat | grep -q "active+clean" && break; sleep 2; done
ceph -s
ceph health detail
rbd -n client.cinder create volumes/v1 --size 64
rbd -n client.cinder ls volumes
rbd -n client.cinder info volumes/v1
rbd -n client.cinder snap create volumes/v1@s1
rbd -n client.cinder resize volumes/v1 --size 128
echo hello | rbd -n client.cinder import - volumes/v2
rbd -n client.cinder export volumes/v2 - | head -c 6
# Least caps: cinder cannot touch other pools
ceph osd pool create other
rbd -n client.cinder create other/x --size 1 && echo "UNEXPECTED: cinder wrote to other" || echo "refused as expected"
ps -o pid,rss,comm -C ceph-mon,ceph-mgr,ceph-osd
du -sh /var/lib/ceph/osd/*/block
