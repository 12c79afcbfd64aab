"""`flask archive verify`: recompute every e-archive package and check it against the audit chain."""
import sys

import click
from flask.cli import AppGroup

from .archive import verify_archives

archive_cli = AppGroup("archive")


@archive_cli.command("verify")
@click.option("--files", "with_files", is_flag=True, help="同时解密并重新计算档案所列文件的哈希")
def verify(with_files):
    """Check every package against its hash and the audit chain; exit status 1 on any mismatch."""
    result = verify_archives(files=with_files)
    if result.ok:
        click.echo(f"电子档案完整：共 {result.count} 件")
        return
    for problem in result.problems:
        click.echo(problem, err=True)
    click.echo(f"电子档案校验失败：{len(result.problems)} 处问题（共 {result.count} 件）", err=True)
    sys.exit(1)
