"""The gateway's database: engine, tables, migrations, the key box for channel keys."""
