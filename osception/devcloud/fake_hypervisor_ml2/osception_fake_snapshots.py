"""TEST AID for `osception devcloud` only (copied into the devcloud venv's nova/virt/ by
venv.install_fake_snapshots): Nova's fake hypervisor, with snapshots
that Glance can store.

nova.virt.fake's snapshot only moves the task state: the image Nova's API made stays
`queued` forever, so nothing that waits for a snapshot (`osception bake`) could run
against the devcloud. Here the "disk" is a fixed 1 MiB of zeros, uploaded through
Nova's own image API as a real driver (libvirt) uploads its disk. The bytes mean
nothing: it proves the API's server -> snapshot -> active image flow, not an image's
content. Never load it in a real cloud.
"""

import io

from nova.image import glance
from nova.virt import fake

DISK = b"\0" * (1 << 20)


class FakeDriverWithSnapshots(fake.FakeDriverWithoutFakeNodes):
    def snapshot(self, context, instance, image_id, update_task_state):
        super().snapshot(context, instance, image_id, update_task_state)  # IMAGE_UPLOADING
        glance.API().update(context, image_id, {"disk_format": "raw", "container_format": "bare"},
                            io.BytesIO(DISK), purge_props=False)
        # The compute manager clears the task state itself once this returns.
