from zhiku.cli.main import app

app(prog_name="zhiku")
