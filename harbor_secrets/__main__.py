"""``python -m harbor_secrets`` runs the CLI."""

from harbor_secrets.cli import main

if __name__ == "__main__":
    main()
