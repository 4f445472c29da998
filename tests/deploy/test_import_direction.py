"""Dependencies point one way: wizard -> provisioning -> ORM and SDKs; sandbox imports neither,
not even the product's SAML checks (it is their witness). Any import that points back, even
inside a function, fails here."""

from __future__ import annotations

from pathlib import Path

from celery import current_app

from provisioning.user_changes.helpers import MAKE_USER_CHANGES_TASK
from wizard.management.commands.import_graph import (
    imports_between_folders,
    points_back,
)


def test_no_import_points_back() -> None:
    wrong = points_back(imports_between_folders())

    assert [f"{entry.source}:{entry.line} imports {entry.imported}" for entry in wrong] == []


def test_the_check_sees_an_import_hidden_in_a_function(tmp_path: Path) -> None:
    for folder in ("wizard", "provisioning", "sandbox"):
        (tmp_path / folder).mkdir()
    (tmp_path / "provisioning" / "engine.py").write_text(
        "def later():\n    from wizard.services import runs\n"
    )
    (tmp_path / "sandbox" / "aws.py").write_text(
        "from provisioning.signin_checks import check_sign_in\nimport provisioning.models\n"
    )
    (tmp_path / "wizard" / "views.py").write_text("from provisioning import runner\n")

    wrong = points_back(imports_between_folders(tmp_path))

    assert sorted((str(entry.source), entry.imported) for entry in wrong) == [
        ("provisioning/engine.py", "wizard.services"),
        ("sandbox/aws.py", "provisioning.models"),
        ("sandbox/aws.py", "provisioning.signin_checks"),
    ]


def test_the_engine_sends_helper_tasks_by_a_name_the_tasks_module_registers() -> None:
    import provisioning.tasks  # noqa: F401  (registers the tasks)

    assert MAKE_USER_CHANGES_TASK in current_app.tasks
