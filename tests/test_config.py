"""The documented configuration errors, and that defaults alone are valid."""

import pytest
import yaml
from typer.testing import CliRunner

from osception import config
from osception.cli import app
from osception.render.layout import NODE_ETC
from osception.render.node import load_ansible_vars


def test_defaults_need_no_file():
    cfg = config.load(None)
    assert (cfg.nodes.controller.count, cfg.nodes.compute.count, cfg.nodes.network.count) == (1, 2, 2)
    assert cfg.node_image("compute") == "Debian 13" and cfg.node_image("controller") == "Debian 13"
    assert cfg.network == "Ext-Net"
    assert cfg.release == "2026.2"


def test_the_release_node_os_is_the_nodes_default_image_and_python(tmp_path):
    """2024.1's nodes run Debian 12 (releases.py): their default image, and pypi's venv
    made with its python3.11; the controller's image is the same for every release."""
    from osception import releases, render, secrets, topology

    for release in releases.RELEASES.values():
        cfg = config.Config(release=release.name, node_source="pypi")
        images = {n.role: n.image for n in topology.nodes(cfg)}
        assert images == {"controller": "Debian 13", "compute": release.node_os.image,
                          "network": release.node_os.image}
        plan = render.build(cfg, secrets.ensure(tmp_path / release.name, cfg.name))
        written = {f["path"]: f["content"] for f in yaml.safe_load(plan.files["compute-0/user-data"])["write_files"]}
        assert load_ansible_vars(written[f"{NODE_ETC}/vars.yml"])["node_python"] == release.node_os.python
    assert releases.get("2024.1").node_os.image == "Debian 12"
    # an image set by the user stays hers, also on another release of the same OS
    assert config.Config(nodes={"compute": {"image": "Debian 13 (2026-01)"}}).node_image("compute") == "Debian 13 (2026-01)"


def test_init_file_is_exactly_the_defaults(tmp_path):
    path = tmp_path / "osception.yaml"
    path.write_text(config.DEFAULT_YAML)
    assert config.load(path) == config.Config()


# (yaml text, the one-line error it must give)
BAD = [
    ("nodez: {}", "nodez: unknown key"),
    ("release: '2023.2'", "release: must be one of 2024.1, 2025.1, 2025.2, 2026.1, 2026.2"),
    ("nodes: {compute: {count: -1, flavor: x}}", "nodes.compute.count: Input should be greater than or equal to 0"),
    ("nodes: {controller: {count: 2, flavor: x}}", "nodes.controller: must be 1"),
    ("nodes: {compute: {count: 1, flavr: x}}", "nodes.compute.flavr: unknown key"),
    ("name: Bad_Name", "name: String should match pattern"),
    ("public_network: {mode: provider}", "public_network: mode provider needs network, cidr, gateway"),
    ("public_network: {mode: bridge}", "public_network.mode: Input should be 'none' or 'provider'"),
    (
        "public_network: {mode: provider, network: pub, cidr: 198.51.100.0/28, gateway: 192.0.2.1}",
        "gateway 192.0.2.1 is not inside cidr 198.51.100.0/28",
    ),
    ("images: {nova: x}", "images: unknown image 'nova'; allowed:"),
    ("overrides: {nova.ini: {DEFAULT: {debug: true}}}", "overrides: unknown file 'nova.ini'; allowed:"),
    ("domain: 'not a domain'", "domain: must be a DNS name"),
    ("access_cidr: 10.0.0.0/33", "access_cidr:"),
    ("- a list", "must be a mapping of settings"),
    ("nodes: [", "is not valid YAML"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_config_gives_one_line_and_writes_nothing(tmp_path, text, message):
    cfg = tmp_path / "osception.yaml"
    cfg.write_text(text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(cfg)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)
    # Through the CLI: exit 2, the same line, and nothing written anywhere.
    out, home = tmp_path / "out", tmp_path / "home"
    result = CliRunner().invoke(app, ["plan", "-c", str(cfg), "--out", str(out), "--state-dir", str(home)])
    assert result.exit_code == 2
    assert message.split(":")[0] in result.output
    assert not out.exists() and not home.exists()


def test_overrides_reach_the_generated_file(tmp_path):
    from osception import render, secrets

    path = tmp_path / "o.yaml"
    path.write_text(yaml.safe_dump({"overrides": {"nova.conf": {"DEFAULT": {"debug": True},
                                                                "quota": {"instances": 50}}}}))
    cfg = config.load(path)
    plan = render.build(cfg, secrets.ensure(tmp_path / "s", cfg.name))
    nova = plan.files["k8s-0/config/nova.conf"]
    assert "debug = true" in nova and "debug = false" not in nova
    assert "[quota]\ninstances = 50" in nova
