from sparks.cli.main import main

main()
