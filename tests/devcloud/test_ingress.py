"""The devcloud's HTTPS front is the real Traefik, run as k3s's chart runs it from the
plan (osception/devcloud/ingress.py): real requests to its entry points, as a client
that resolves every <api>.<domain> to the controller reaches its ports 80 and 443."""

from __future__ import annotations

import json
import time

from osception import secrets as secrets_mod
from osception.devcloud import configs
from osception.devcloud.layout import PORTS
from osception.devcloud.lifecycle import Settings
from tests.test_ingress import trusting, via

MiB = 2**20


def _plan(devcloud):
    settings = Settings.load(devcloud.layout)
    sec = secrets_mod.ensure(devcloud.layout.root, "devcloud")
    return configs.plan(settings.run_config(), sec, devcloud.layout, nodes=bool(settings.nodes))


def _hrefs(doc) -> list[str]:
    if isinstance(doc, dict):
        return [v for k, v in doc.items() if k == "href" and isinstance(v, str)] + \
            [h for v in doc.values() for h in _hrefs(v)]
    if isinstance(doc, list):
        return [h for v in doc for h in _hrefs(v)]
    return []


def test_plain_http_is_redirected_to_the_https_name(devcloud):
    plan = _plan(devcloud)
    for api in configs.APIS:
        name = f"{api}.{plan.domain}"
        conn = via(name, PORTS["traefik-web"])
        conn.request("GET", "/")
        r = conn.getresponse()
        assert (r.status, r.getheader("Location")) == (301, f"https://{name}/"), api


def test_every_api_version_document_links_https(devcloud):
    """Through Traefik, each API's version document (its root, and Keystone's /v3)
    names itself by https://<name>/: the API reads X-Forwarded-Proto (oslo.middleware's
    enable_proxy_headers_parsing). Placement's root links relatively (href "")."""
    plan = _plan(devcloud)
    ca = trusting(plan.ingress.ca)
    linked = set()
    for api in configs.APIS:
        name = f"{api}.{plan.domain}"
        for path in ["/", "/v3"] if api == "keystone" else ["/"]:
            conn = via(name, PORTS["traefik"], ca)
            conn.request("GET", path, headers={"Accept": "application/json"})
            r = conn.getresponse()
            assert r.status in (200, 300), (api, path, r.status)
            absolute = [h for h in _hrefs(json.loads(r.read())) if "://" in h]
            assert all(h.startswith(f"https://{name}/") for h in absolute), (api, path, absolute)
            if absolute:
                linked.add(api)
    assert linked == set(configs.APIS) - {"placement"}


def test_a_300_MB_image_upload_taking_longer_than_a_minute_is_not_cut(devcloud):
    """Traefik 3 reads a request within 60 s by default, body included: a 300 MB image
    sent at ~4 MB/s (an upload from a laptop, a Nova snapshot) took longer and was cut.
    The plan's readTimeout (the HelmChartConfig) lets it through to Glance whole."""
    plan = _plan(devcloud)
    conn_sdk = devcloud.connect("admin")
    image = conn_sdk.image.create_image(name="osception-ingress-upload", disk_format="raw",
                                        container_format="bare")
    try:
        name = f"glance.{plan.domain}"
        conn = via(name, PORTS["traefik"], trusting(plan.ingress.ca), timeout=600)
        size, seconds = 300 * MiB, 75
        conn.putrequest("PUT", f"/v2/images/{image.id}/file")
        for key, value in (("X-Auth-Token", conn_sdk.auth_token), ("Content-Type", "application/octet-stream"),
                           ("Content-Length", str(size))):
            conn.putheader(key, value)
        conn.endheaders()
        chunk, start = b"\0" * MiB, time.monotonic()
        for i in range(size // MiB):
            conn.send(chunk)
            time.sleep(max(0.0, start + (i + 1) * seconds / (size // MiB) - time.monotonic()))
        r = conn.getresponse()
        took = time.monotonic() - start
        assert r.status == 204, (r.status, r.read()[:500])
        assert took > 60  # longer than Traefik's default: that is what is shown
        got = conn_sdk.image.get_image(image.id)
        assert (got.status, got.size) == ("active", size)
    finally:
        conn_sdk.image.delete_image(image.id, ignore_missing=True)
