from vitontrain.cli import app

app(prog_name="vitontrain")
