"""``python -m harbor_secrets`` runs the CLI."""

from harbor_secrets.cli import run

if __name__ == "__main__":
    run()
