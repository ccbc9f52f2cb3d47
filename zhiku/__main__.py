from zhiku.cli import app

app(prog_name="zhiku")
