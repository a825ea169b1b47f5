# Research for issue 27, not product code: Debian 12's python3-rbd (Ceph 16.2.15, what the
# devcloud's cinder-volume would load) against the Debian 13 cluster of
# ceph-manual-bootstrap.sh, as client.cinder with its least caps.
# Usage: /usr/bin/python3 ceph-pacific-client.py <root>/etc/ceph/ceph.conf
import rados, rbd, sys
conf = sys.argv[1]
with rados.Rados(conffile=conf, rados_id="cinder", conf={"keyring": conf.replace("ceph.conf", "ceph.client.cinder.keyring")}) as c:
    print("librados", rados.Rados.version(c), "cluster fsid", c.get_fsid())
    with c.open_ioctx("volumes") as io:
        r = rbd.RBD()
        r.create(io, "from-pacific", 32 * 2**20, old_format=False, features=rbd.RBD_FEATURE_LAYERING)
        with rbd.Image(io, "from-pacific") as img:
            img.write(b"osception", 0)
            print("read back", img.read(0, 9))
            img.create_snap("s")
            img.protect_snap("s")
        r.clone(io, "from-pacific", "s", io, "clone", features=rbd.RBD_FEATURE_LAYERING)
        with rbd.Image(io, "clone") as img:
            img.resize(64 * 2**20); print("clone size", img.size(), img.read(0, 9))
            img.flatten()
        print("images", sorted(r.list(io)))
        r.remove(io, "clone")
        with rbd.Image(io, "from-pacific") as img:
            img.unprotect_snap("s"); img.remove_snap("s")
        r.remove(io, "from-pacific")
        print("images after", sorted(r.list(io)))
    cmd = '{"prefix": "mon dump", "format": "json"}'
    ret, out, err = c.mon_command(cmd, b"")
    import json; print("mon dump as cinder:", ret, [m["addr"] for m in json.loads(out)["mons"]])
