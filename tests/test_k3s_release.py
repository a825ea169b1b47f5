"""The pinned k3s is a real release, fetched by the names its release really has: the
version against k3s's published releases, the controller's download URLs and checksum
file against the release's own asset names (tests/data/k3s, each with its source)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import yaml

from osception import config, releases
from osception.render.bake import bake_user_data
from osception.render.layout import NODE_ETC

DATA = Path(__file__).parent / "data" / "k3s"
RELEASE_DOWNLOAD = "https://github.com/k3s-io/k3s/releases/download/"


def _listed(name: str) -> list[str]:
    return [line.split()[0] for line in (DATA / name).read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _written(user_data: str, path: str) -> str:
    return next(f["content"] for f in yaml.safe_load(user_data)["write_files"] if f["path"] == path)


def test_the_pinned_k3s_is_a_published_release_of_the_validated_kubernetes():
    assert releases.K3S_VERSION in _listed("releases.txt"), \
        f"k3s {releases.K3S_VERSION} is not a release listed in tests/data/k3s/releases.txt"
    kubernetes = re.fullmatch(r"v(\d+\.\d+)\.\d+\+k3s\d+", releases.K3S_VERSION).group(1)
    # the manifests are validated against this Kubernetes: the same minor version
    assert releases.KUBERNETES_VERSION.rsplit(".", 1)[0] == kubernetes


def test_the_controller_bake_fetches_files_the_release_has():
    """bake-controller.sh: every "$K3S_RELEASE/<file>" it downloads is an asset of the
    pinned release, at that release's URL, and it checks them against the release's
    checksum file by their names there."""
    script = _written(bake_user_data(config.Config(), "controller"), f"{NODE_ETC}/bake")
    assets = set(_listed("release-assets.txt"))
    variables = dict(re.findall(r"^([A-Z0-9_]+)=(\S+)$", script, re.M))
    url = variables["K3S_RELEASE"]
    assert url.startswith(RELEASE_DOWNLOAD) and unquote(url.removeprefix(RELEASE_DOWNLOAD)) == releases.K3S_VERSION
    # the tag's "+" must be escaped in the path (GitHub answers a literal "+" with 404)
    assert "+" not in url

    def resolve(text: str) -> str:
        return re.sub(r"\$\{?([A-Z0-9_]+)\}?", lambda m: variables.get(m.group(1), m.group(0)), text)

    fetched = [resolve(m) for m in re.findall(r'"\$K3S_RELEASE/([^"]+)"', script)]
    assert fetched and set(fetched) <= assets, set(fetched) - assets
    checksums = [f for f in fetched if f.startswith("sha256sum-")]
    assert checksums == ["sha256sum-amd64.txt"]
    # the names it looks up in the checksum file: the binary and the airgap images it fetched
    wanted = re.search(r'grep -E " \((.+)\)\\\$" "\$dl/sha256sum-amd64.txt"', script).group(1)
    assert {resolve(n) for n in wanted.split("|")} == set(fetched) - set(checksums)


def test_the_controller_setup_installs_the_pinned_release_with_k3s_installer(default_plan):
    """controller-setup.sh: k3s's installer (get.k3s.io), given the pinned version; the
    installer downloads ${GITHUB_URL}/download/${VERSION}/k3s and sha256sum-amd64.txt
    (tests/data/k3s/release-assets.txt names its source)."""
    setup = _written(default_plan.files["k8s-0/user-data"], "/usr/local/sbin/osception-setup")
    assert f"INSTALL_K3S_VERSION='{releases.K3S_VERSION}'" in setup
    assert "https://get.k3s.io" in setup
    assert {"k3s", "sha256sum-amd64.txt"} <= set(_listed("release-assets.txt"))
