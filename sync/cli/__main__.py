"""`python -m tracetune.sync.cli`: how the local stack starts its own tracetune processes."""

from tracetune.sync.cli.app import main

main()
