"""The devcloud's RabbitMQ refuses what the release's RabbitMQ (its Kolla image's)
refuses by default: Debian 13's broker, told by rabbitmq.conf (infra.rabbitmq_conf).
Declared with the services' own AMQP client (py-amqp of the services venv), as the
services' user. That RPC works on it with the rendered queue options: the cloud tests
(test_cloud.py: servers boot, which takes nova-api -> conductor -> scheduler -> compute).
(global_qos, also denied by 4.3, is not refused: RabbitMQ turns a global basic.qos into a
per-consumer one, rabbit_channel.erl; oslo.messaging asks per-consumer QoS anyway.)"""

from __future__ import annotations

import subprocess

from osception import releases, secrets as secrets_mod, services
from osception.devcloud.layout import HOST, PORTS
from tests.devcloud.conftest import RELEASE, _services_venv

DECLARE = """
import sys, amqp
port, password = sys.argv[1], sys.argv[2]
conn = amqp.Connection(f"{HOST}:{port}", userid="{USER}", password=password)
conn.connect()
ch = conn.channel()
try:
    ch.queue_declare("osception-test-transient", durable=False, exclusive=False, auto_delete=True)
    print("permitted")
except amqp.exceptions.AMQPError as e:
    print("refused", e.code, e.reply_text.splitlines()[0])
""".replace("{HOST}", HOST).replace("{USER}", services.RABBITMQ_USER)


def _declare(devcloud) -> str:
    password = secrets_mod.ensure(devcloud.layout.root, "devcloud").rabbitmq_password
    r = subprocess.run([str(_services_venv() / "bin" / "python"), "-c", DECLARE,
                        str(PORTS["rabbitmq"]), password],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_transient_non_exclusive_queue_is_as_the_release_rabbitmq_says(devcloud):
    said = _declare(devcloud)
    if "transient_nonexcl_queues" in releases.get(RELEASE).rabbitmq_denied:
        assert said == "refused 541 INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated.", said
    else:
        assert said == "permitted"

