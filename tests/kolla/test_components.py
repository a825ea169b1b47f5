"""The Kolla rows of the component table (releases.components) against each release's
own Kolla sources: the RabbitMQ and Erlang pins, the MariaDB repository, memcached
from the distro, the base distro. A pin moved in a pinned Kolla fails here, so the
table cannot drift from the images."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from osception import releases

from .test_contract import kolla_sources, release  # noqa: F401  (the fixtures, per release)


def _image_dir(docker: Path, image: str) -> Path:
    """The folder of one Kolla image (its Dockerfile.j2): docker/<image>/ or, where a
    family builds several, docker/<family>/<image>/ (Kolla 18 and 20's rabbitmq)."""
    found = [d.parent for d in docker.rglob("Dockerfile.j2") if d.parent.name == image]
    assert len(found) == 1, (image, found)
    return found[0]


def _pins(text: str) -> dict[str, str]:
    """{Package: Pin} of an apt_preferences file."""
    return {m.group(1): m.group(2)
            for m in re.finditer(r"^Package: (\S+)\nPin: (.+)$", text, re.M)}


def test_rabbitmq_row_is_the_pins_of_the_image_kolla_ansible_deploys(release, kolla_sources):
    defaults = (kolla_sources.roles / "rabbitmq/defaults/main.yml").read_text()
    image = re.search(r'^rabbitmq_image: ".*?([\w-]+)"$', defaults, re.M).group(1)
    distro, _ = release.kolla_base
    pins = _pins((_image_dir(kolla_sources.docker, image) / f"apt_preferences_rabbitmq.{distro}")
                 .read_text())
    assert pins["rabbitmq-server"] == f"version {release.rabbitmq}.*"
    assert pins["erlang*"] == f"version {release.erlang}"
    row = {c.name: c for c in releases.components(release)}["RabbitMQ"]
    assert row.version == f"{release.rabbitmq}.* on Erlang {release.erlang}"


def test_mariadb_row_is_the_series_of_kollas_mariadb_repository(release, kolla_sources):
    distro, codename = release.kolla_base
    repos = yaml.safe_load((kolla_sources.kolla / "kolla/template/repos.yaml").read_text())
    repo = repos[distro]["mariadb"]
    assert f"/mariadb-server/{release.mariadb}/repo/{distro}" in repo["url"]
    assert repo["suite"] == codename
    # The series floats with that repository: the base image puts it above the distro's.
    base_pins = _pins((kolla_sources.docker / "base" / f"apt_preferences.{distro}").read_text())
    assert base_pins["*"] == f"origin {repo['url'].split('/')[2]}"
    # ...and the image that installs mariadb-server enables it.
    enabling = [d for d in kolla_sources.docker.rglob("Dockerfile.j2")
                if d.parent.name.startswith("mariadb")
                and "enable_extra_repos(['mariadb'])" in d.read_text()]
    assert enabling
    row = {c.name: c for c in releases.components(release)}["MariaDB"]
    assert row.version == f"{release.mariadb}.*"


def test_memcached_comes_from_the_base_distro(release, kolla_sources):
    dockerfile = (_image_dir(kolla_sources.docker, "memcached") / "Dockerfile.j2").read_text()
    assert "memcached_packages = ['memcached']" in dockerfile
    assert "enable_extra_repos" not in dockerfile  # no repository of its own: the distro's
    _, codename = release.kolla_base
    row = {c.name: c for c in releases.components(release)}["memcached"]
    assert row.version == releases.UBUNTU_MEMCACHED[codename]


def test_kolla_base_is_the_release_kolla_builds_on(release, kolla_sources):
    distro, codename = release.kolla_base
    config = (kolla_sources.kolla / "kolla/common/config.py").read_text()
    tag = re.search(rf"'{distro}': {{'name': '{distro}', 'tag': '([\d.]+)'}}", config).group(1)
    # Kolla 18 builds jammy by default (22.04); 2024.1's tag is jammy too.
    assert tag == releases.UBUNTU_VERSIONS[codename]
    repos = yaml.safe_load((kolla_sources.kolla / "kolla/template/repos.yaml").read_text())
    assert repos[distro]["rabbitmq"]["suite"] == codename  # the repositories are that release's
