from vitonprep.cli import app

app(prog_name="vitonprep")
