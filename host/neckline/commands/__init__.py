"""One module per `neckline` command group."""
