"""Packaging beyond what setup.cfg can say: the top-level `sql/` (Alembic scripts) and `templates/`
(the admin UI's pages) ship inside the package, as `ouipost._sql` and `ouipost._templates`.

They stay top-level folders in the checkout (DESIGN.md; `python run.py` finds them there), and a
built wheel carries them where an installed package finds them (ouipost/db/migrations.py,
ouipost/ui/__init__.py look in the package first). A `package_dir` mapping does this without
moving or linking anything; setup.cfg's `packages = find:` cannot name such mapped packages.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["ouipost", "ouipost.*", "workers", "workers.*"]),
        "ouipost._sql",
        "ouipost._sql.versions",
        "ouipost._templates",
    ],
    package_dir={"ouipost._sql": "sql", "ouipost._templates": "templates"},
)
