"""binary collation on MySQL/MariaDB: ids, Idempotency-Keys and every other text compared byte for byte

Revision ID: 0013_binary_collation
Revises: 0012_insight_rollups
Create Date: 2026-12-03

A database created with the server's default collation (utf8mb4_general_ci, uca1400_ai_ci...) compares
text case- and accent-insensitively: `media_ABC` would find `media_abc`, and two Idempotency-Keys that
differ only in case would be one. SQLite, and the test databases, compare bytes. This converts the
database's default and every table that is not utf8mb4_bin yet (a rebuild of each such table: on a
large database, run it in a quiet hour). Binary is stricter than any other collation, so no unique
index can gain a duplicate. Nothing to do on SQLite; the downgrade keeps the binary collation.
"""

from __future__ import annotations

from typing import Any

from alembic import op
from sqlalchemy.engine import Connection

revision = "0013_binary_collation"
down_revision = "0012_insight_rollups"
branch_labels = None
depends_on = None

COLLATION = "utf8mb4_bin"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "mysql":
        return
    database = bind.exec_driver_sql("SELECT DATABASE()").scalar()
    op.execute(f"ALTER DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE {COLLATION}")
    tables = sorted(set(bind.exec_driver_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_type = 'BASE TABLE' AND table_collation <> %s "
        "UNION SELECT table_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND collation_name IS NOT NULL AND collation_name <> %s",
        (COLLATION, COLLATION),
    ).scalars().all()))
    if not tables:
        return
    # MariaDB refuses to change the collation of a column a foreign key joins, even with the checks
    # off: the foreign keys are dropped, every table converted, and the same keys added back.
    foreign_keys = _foreign_keys(bind)
    for fk in foreign_keys:
        op.execute(f"ALTER TABLE `{fk['table']}` DROP FOREIGN KEY `{fk['name']}`")
    op.execute("SET FOREIGN_KEY_CHECKS=0")  # the rows were consistent before: no need to check them again
    try:
        for table in tables:
            op.execute(f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE {COLLATION}")
        for fk in foreign_keys:
            columns = ", ".join(f"`{c}`" for c in fk["columns"])
            referenced = ", ".join(f"`{c}`" for c in fk["referenced_columns"])
            op.execute(
                f"ALTER TABLE `{fk['table']}` ADD CONSTRAINT `{fk['name']}` FOREIGN KEY ({columns}) "
                f"REFERENCES `{fk['referenced_table']}` ({referenced}) "
                f"ON DELETE {fk['delete_rule']} ON UPDATE {fk['update_rule']}"
            )
    finally:
        op.execute("SET FOREIGN_KEY_CHECKS=1")


def _foreign_keys(bind: Connection) -> list[dict[str, Any]]:
    """Every foreign key of the database, with its columns in order and its rules."""
    rows = bind.exec_driver_sql(
        "SELECT rc.table_name, rc.constraint_name, rc.referenced_table_name, rc.delete_rule, rc.update_rule, "
        "kcu.column_name, kcu.referenced_column_name "
        "FROM information_schema.referential_constraints rc "
        "JOIN information_schema.key_column_usage kcu ON kcu.constraint_schema = rc.constraint_schema "
        "AND kcu.constraint_name = rc.constraint_name AND kcu.table_name = rc.table_name "
        "WHERE rc.constraint_schema = DATABASE() "
        "ORDER BY rc.table_name, rc.constraint_name, kcu.ordinal_position"
    ).all()
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for table, name, referenced_table, delete_rule, update_rule, column, referenced_column in rows:
        fk = keys.setdefault((table, name), {
            "table": table, "name": name, "referenced_table": referenced_table, "delete_rule": delete_rule,
            "update_rule": update_rule, "columns": [], "referenced_columns": [],
        })
        fk["columns"].append(column)
        fk["referenced_columns"].append(referenced_column)
    return list(keys.values())


def downgrade() -> None:
    pass  # a case-insensitive collation would merge ids and keys that differ in case: kept binary
