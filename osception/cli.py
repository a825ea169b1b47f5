"""The `osception` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import config as config_mod
from . import releases, render, secrets, state

app = typer.Typer(
    help="A real multi-node OpenStack on top of an existing OpenStack cloud.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="osception.yaml (default: ./osception.yaml if present)."),
]
EnvOpt = Annotated[Optional[str], typer.Option("--env", "-e", help="Environment name (overrides `name:`).")]
StateOpt = Annotated[
    Optional[Path],
    typer.Option("--state-dir", help=f"State home (default: ${state.ENV_VAR} or the user data dir)."),
]


def fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def load_config(path: Path | None, env: str | None) -> config_mod.Config:
    if path is None and Path("osception.yaml").exists():
        path = Path("osception.yaml")
    try:
        cfg = config_mod.load(path)
        if env is not None:
            cfg = config_mod.Config.model_validate(cfg.model_dump() | {"name": env})
    except config_mod.ConfigError as e:
        fail(str(e))
    except Exception as e:  # pydantic error from --env
        fail(f"--env: must match {config_mod.NAME_RE} ({type(e).__name__})")
    return cfg


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the file.")] = Path("osception.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented osception.yaml holding every default."""
    if path.exists() and not force:
        fail(f"{path} exists; use --force to overwrite it")
    path.write_text(config_mod.DEFAULT_YAML)
    console.print(f"wrote {path}")


@app.command()
def plan(
    config: ConfigOpt = None,
    env: EnvOpt = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Write the files here (default: the env's state).")
    ] = None,
    state_dir: StateOpt = None,
) -> None:
    """Render every file every node will receive. Needs no cloud."""
    cfg = load_config(config, env)
    env_dir = state.env_dir(cfg.name, state_dir)
    sec = secrets.ensure(env_dir, cfg.name)
    result = render.build(cfg, sec)
    target = out or env_dir / "plan"
    render.write(result, target)

    table = Table(title=f"osception plan: {cfg.name}", show_header=True)
    table.add_column("node")
    table.add_column("role")
    table.add_column("flavor")
    table.add_column("image")
    for node in result.nodes:
        table.add_row(node.name, node.role, node.flavor, node.image)
    console.print(table)
    rel = result.release
    console.print(f"release   {rel.name} ({rel.codename}); control plane images {rel.kolla_tag}; "
                  f"node packages {rel.package_source}")
    console.print(f"services  {', '.join(result.services)}")
    console.print(f"endpoints http://keystone.{result.domain} ...", highlight=False)
    if result.controller_ip == render.PLACEHOLDER_CONTROLLER_IP:
        console.print(f"          (controller IP unknown until `up`: shown as {result.controller_ip})")
    console.print(f"files     {len(result.files)} written to {target}")
    console.print(f"state     {env_dir} (secrets 0600)")


@app.command("releases")
def list_releases() -> None:
    """List the supported OpenStack releases."""
    table = Table()
    for col in ("release", "codename", "control plane images", "node packages"):
        table.add_column(col)
    for rel in releases.RELEASES.values():
        mark = " (default)" if rel.name == releases.DEFAULT_RELEASE else ""
        table.add_row(rel.name + mark, rel.codename, rel.kolla_tag, rel.package_source)
    console.print(table)


if __name__ == "__main__":
    app()
