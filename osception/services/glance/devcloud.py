"""glance in the devcloud: its API under gunicorn; its image stores under the
devcloud's data/glance (the controller's are a volume at /var/lib/glance)."""

from ..record import Devcloud, Process


def overrides(layout, host, release, nodes):
    data = layout.data("glance")
    return {"glance-api.conf": {
        "fs": {"filesystem_store_datadir": data / "images"},
        "os_glance_staging_store": {"filesystem_store_datadir": data / "staging"},
        "os_glance_tasks_store": {"filesystem_store_datadir": data / "tasks_work_dir"},
        "oslo_concurrency": {"lock_path": layout.lock("glance")},
    }}


def files(layout):
    """glance-manage (the db-sync Job's `db_load_metadefs`) reads the metadata
    definitions from /etc/glance/metadefs, an option of its own (not of
    glance-api.conf): here they are in etc/glance/metadefs (image_files), told in
    glance-manage.conf, which glance-manage finds beside glance-api.conf."""
    return {"glance/glance-manage.conf":
            f"[DEFAULT]\nmetadata_source_path = {layout.etc('glance')}/metadefs\n"}


DEVCLOUD = Devcloud({"glance": Process("glance-api", 29292)},
                    image_files=("glance/glance-api-paste.ini", "glance/metadefs"),
                    overrides=overrides, files=files)
