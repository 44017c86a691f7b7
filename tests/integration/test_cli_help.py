"""``creatorpay --help`` and every command's ``--help`` say what it does: the whole click tree,
every domain's commands included, is walked; no command, group or option goes unexplained."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from payments import cli as cli_module
from payments import domains


def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


def tree() -> list[tuple[tuple[str, ...], click.Command]]:
    cli_module._load_domain_commands()
    return list(walk(cli_module.cli, ()))


def test_every_domain_command_is_in_the_tree() -> None:
    names = {path[0] for path, _ in tree() if path}
    for command in domains.commands():
        assert command.name in names
    assert {"db", "admin", "serve", "dev", "metrics", "ledger", "webhooks", "sandbox"} <= names


def test_every_command_and_option_has_a_help_text() -> None:
    runner = CliRunner()
    commands = tree()
    assert len(commands) > 20
    for path, command in commands:
        where = "creatorpay " + " ".join(path)
        assert command.help and len(command.help.strip()) >= 15, f"{where} has no help text"
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"{where} {param.opts[0]} has no help text"
        for flag in ("--help", "-h"):
            result = runner.invoke(cli_module.cli, [*path, flag])
            assert result.exit_code == 0, (where, result.output)
            first_line = command.help.strip().splitlines()[0].split()[0]
            assert first_line in result.output, (where, result.output)
            assert "Usage: " in result.output


def test_the_top_level_help_lists_every_command_with_its_summary() -> None:
    result = CliRunner().invoke(cli_module.cli, ["--help"])
    assert result.exit_code == 0
    for name, command in cli_module.cli.commands.items():
        assert name in result.output
        assert command.get_short_help_str(limit=45)[:20] in result.output
