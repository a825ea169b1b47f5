"""Jinja2 over templates/ -> {relative path: text}. Pure and deterministic.

The layout of a plan (what `osception plan --out DIR` writes):

    k8s-0/user-data            the controller's cloud-init document (the manifests and the
                               diagnoser inside, as one xz-compressed tar: CONTROLLER_ARCHIVE)
    k8s-0/manifests/*.yaml     the control plane, one readable file per service
    k8s-0/kube_diagnose.py     what the controller runs to say which workloads are not ready
    k8s-0/config/*             the rendered service config files (secrets in *.secret.conf)
    compute-N/user-data        (and network-N/...) what each data-plane node receives

One module per concern, each importing only those above it in this list:

    checks      the parse-back checks and Nova's user data limit (PlanError)
    env         the Jinja environment: a value is never structure; the filters
    layout      where files land on the nodes; the names the setup shares with the bake
    rollout     rollout hashing: what a re-applied plan rolls and runs again
    conf        the services' INI files, for the controller's pods and for a node
    patches     `patches:` pinned and placed, on the controller and on the nodes
    controller  the controller's manifests, archive and user data
    node        a compute or network node's variables, files and user data
    plan        the Plan, made (new_plan, then add_controller and add_node) and written
    bake        `osception bake`'s builder user data

This package's face is what a caller of the whole renders with: make a plan, write
it, and the two errors a plan can stop with (the CLI turns them into one line).
Everything else is imported from the module that holds it.
"""

from .checks import PlanError, UserDataTooLarge
from .plan import Plan, build, write

__all__ = ["Plan", "PlanError", "UserDataTooLarge", "build", "write"]
