"""`python manage.py import_graph`: which top folder imports which, counted from the source.

Dependencies point one way: wizard -> provisioning -> the ORM and the SDKs; sandbox imports
neither. Every import is counted, at module level or inside a function (a function-level import
is how a cycle hides). `--check` exits 1 when an import points back (tests/deploy runs it)."""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

ROOT = Path(__file__).resolve().parents[3]
FOLDERS = ("wizard", "provisioning", "sandbox")
# Who may import whom; anything else between these folders points the wrong way.
# The sandbox imports neither: it is a witness of the clouds, so none of its decisions may come
# from the code whose mistakes it exists to catch.
ALLOWED = {("wizard", "provisioning")}


@dataclass(frozen=True)
class Import:
    source: Path
    line: int
    importer: str  # top folder of the importing file
    imported: str  # the module imported


def imports_between_folders(root: Path = ROOT) -> list[Import]:
    """Every import, anywhere in a file, from one of FOLDERS to another."""
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                modules: list[str] = []
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                for module in modules:
                    top = module.split(".")[0]
                    if top in FOLDERS and top != folder:
                        found.append(Import(path.relative_to(root), node.lineno, folder, module))
    return found


def points_back(found: list[Import]) -> list[Import]:
    return [
        entry
        for entry in found
        if not any(
            entry.importer == importer
            and (entry.imported == allowed or entry.imported.startswith(allowed + "."))
            for importer, allowed in ALLOWED
        )
    ]


class Command(BaseCommand):
    help = "Count the imports between wizard, provisioning and sandbox (--check: fail on any back)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--check", action="store_true", help="Exit 1 if an import points back.")

    def handle(self, *args: Any, **options: Any) -> None:
        found = imports_between_folders()
        counts = Counter((entry.importer, entry.imported.split(".")[0]) for entry in found)
        for (importer, imported), count in sorted(counts.items()):
            self.stdout.write(f"{importer} -> {imported}: {count}")
        wrong = points_back(found)
        for entry in wrong:
            self.stdout.write(f"points back: {entry.source}:{entry.line} imports {entry.imported}")
        if options["check"] and wrong:
            raise CommandError(f"{len(wrong)} import(s) point back; see above.")
