"""The devcloud's config files, overrides merged, against the release's real option
definitions: a misspelt override would otherwise be ignored by the service, silently.
The devcloud's release (tests/devcloud/conftest.py RELEASE): scripts/test.sh runs
this module again for every other release."""

from __future__ import annotations

import pytest

from osception import config, releases, secrets, services
from osception.devcloud import configs
from osception.devcloud.layout import Layout
from osception.devcloud.overrides import overrides
from tests.devcloud.conftest import RELEASE
from tests.validators import oslo


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    layout = Layout(tmp_path_factory.mktemp("devcloud"))
    sec = secrets.ensure(layout.root, "devcloud")
    return configs.rendered(config.Config(release=RELEASE), sec, layout)


FILES = sorted([*services.CONTROLLER_INI, "nova-compute.conf"])


@pytest.mark.parametrize("name", FILES)
def test_every_devcloud_file_is_valid_for_the_release(services_venv, rendered, name, tmp_path):
    path = tmp_path / name
    path.write_text(rendered[name])
    oslo.assert_valid(services_venv, path, "nova.conf" if name == "nova-compute.conf" else name)


def test_every_override_names_a_rendered_file(rendered, tmp_path):
    assert set(overrides(Layout(tmp_path), releases.get(RELEASE))) == set(rendered) == set(FILES)
